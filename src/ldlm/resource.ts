// Resource names: struct ldlm_res_id, four unsigned 64-bit words. Lustre builds them from a
// FID (fid_build_reg_res_name in lustre/include/lustre_fid.h):
//   name[0] = seq                        (LUSTRE_RES_ID_SEQ_OFF)
//   name[1] = oid | ver << 32            (LUSTRE_RES_ID_VER_OID_OFF)
//   name[2] = 0, name[3] = 0
// and, for a lock on one name of a directory (the parallel directory operations of the MDT,
// mdt_object_lock with a pdo hash), the hash of the name in name[3] (LUSTRE_RES_ID_HSH_OFF).
// Text form as Lustre prints it (DLDLMRES): "[0x200000401:0x1:0x0].0x0".

import { keptPerObject, type Fid } from '../osd/fid.js';
import { LdlmError } from './errors.js';

export type ResId = readonly [bigint, bigint, bigint, bigint];

export const RES_NAME_SIZE = 4;
export const RES_ID_SEQ_OFF = 0;
export const RES_ID_VER_OID_OFF = 1;
export const RES_ID_HSH_OFF = 3;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

export function resId(n0: bigint, n1 = 0n, n2 = 0n, n3 = 0n): ResId {
  const r = [n0, n1, n2, n3] as const;
  for (const w of r) {
    if (typeof w !== 'bigint' || w < 0n || w > U64_MAX) throw new LdlmError('EINVAL', `resource name word out of range: ${String(w)}`);
  }
  return r;
}

/**
 * fid_build_reg_res_name: the resource of an object (inode or OST object) by FID. Kept per FID
 * object, frozen, as resIdKey's keys are per name (keptPerObject): an update names the same few
 * objects again and again (its locks, the client's cache, the early cancels), and each name
 * and key made anew cost BigInt arithmetic and four BigInt toString(16)s.
 */
export const resIdOfFid: (fid: Fid) => ResId = keptPerObject((fid) =>
  Object.freeze([BigInt(fid.seq), BigInt(fid.oid) | (BigInt(fid.ver) << 32n), 0n, 0n] as const));

/** The resource of one name in a directory: the directory's FID, the name hash in name[3]. */
export function resIdOfName(dir: Fid, nameHash: number | bigint): ResId {
  const base = resIdOfFid(dir);
  return [base[0], base[1], 0n, BigInt(nameHash) & U64_MAX];
}

/** The FID a resource name was built from (fid_extract_from_res_name). */
export function fidOfResId(r: ResId): Fid {
  return { seq: Number(r[0]), oid: Number(r[1] & 0xffff_ffffn), ver: Number(r[1] >> 32n) };
}

/**
 * The hash of a directory entry name for resIdOfName. Lustre's MDT uses the directory's
 * name hash (full_name_hash); any stable 32-bit hash serves as long as every server and
 * client of one file system agrees, so this is FNV-1a over the UTF-8 bytes.
 */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A string key for maps: the four words in hex. */
export const resIdKey: (r: ResId) => string = keptPerObject((r) => `${r[0].toString(16)}:${r[1].toString(16)}:${r[2].toString(16)}:${r[3].toString(16)}`);

export function resIdEquals(a: ResId, b: ResId): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/** DLDLMRES: "[0x200000401:0x1:0x0].0x0". */
export function resIdToString(r: ResId): string {
  return `[0x${r[0].toString(16)}:0x${r[1].toString(16)}:0x${r[2].toString(16)}].0x${r[3].toString(16)}`;
}
