// A device's mountdata: what mkfs.lustre wrote about the target, as Lustre's CONFIGS/mountdata
// (struct lustre_disk_data) holds it. lustre.mount reads it to know which services to start.
//
// File DEVICE/mountdata, UTF-8 JSON, one object:
//   { "magic": "lustre-mountdata", "version": 1, "fsname": "testfs", "svname": "testfs-OST0000",
//     "mgs": false, "mdt": false, "ost": true, "index": 0, "mgsNids": ["127.0.0.2@tcp"],
//     "params": { "sys.timeout": "40" }, "uuid": "testfs-OST0000_UUID", "virgin": true,
//     "profile": ["ost"] }
// index is -1 while the MGS has not yet assigned one (mkfs.lustre without --index); svname then
// ends in "ffff", as Lustre's does. Written to mountdata.tmp, fsynced, renamed over mountdata and
// the folder fsynced, so a reader sees the old file or the new one, never a mix. A reader refuses
// a wrong magic, a newer version and any field of the wrong type (ENODEV / EINVAL).
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type TargetKind = 'mgs' | 'mdt' | 'ost';

export interface Mountdata {
  fsname: string; svname: string;
  mgs: boolean; mdt: boolean; ost: boolean; index: number;
  mgsNids: string[]; params: Record<string, string>; uuid: string; virgin: boolean;
  profile: Array<TargetKind>;
}

export const MOUNTDATA_FILE = 'mountdata';
export const MOUNTDATA_MAGIC = 'lustre-mountdata';
export const MOUNTDATA_VERSION = 1;
/** Lustre's limit on a file system name (MTI_NAME_MAXLEN allows more; mkfs.lustre allows 8). */
export const FSNAME_MAX_LENGTH = 8;
/** Target indexes are 16 bits in a svname (OST%04x). */
export const INDEX_MAX = 0xffff;

export type TargetErrorCode = 'ENODEV' | 'EINVAL' | 'EALREADY' | 'EBUSY' | 'ENOSYS' | 'EADDRINUSE';

/** An expected failure of a target's setup, with a stable code and a message a user can act on. */
export class TargetError extends Error {
  readonly code: TargetErrorCode;
  constructor(code: TargetErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'TargetError';
    this.code = code;
  }
}

/** 'testfs-OST0001', 'testfs-MDT0000', 'MGS' (index -1: 'testfs-OSTffff', not yet assigned). */
export function targetName(fsname: string, kind: TargetKind, index: number): string {
  if (kind === 'mgs') return 'MGS';
  const hex = (index < 0 ? INDEX_MAX : index).toString(16).padStart(4, '0');
  return `${fsname}-${kind.toUpperCase()}${hex}`;
}

/** Lustre's rule for a file system name: 1-8 characters of letters, digits, '_'. */
export function checkFsname(fsname: string): void {
  if (!/^[A-Za-z0-9_]{1,8}$/.test(fsname)) {
    throw new TargetError('EINVAL', `file system name '${fsname}' must be 1-${FSNAME_MAX_LENGTH} letters, digits or '_'`);
  }
}

export async function readMountdata(device: string): Promise<Mountdata> {
  const path = join(device, MOUNTDATA_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') {
      throw new TargetError('ENODEV', `${device} holds no mountdata: not a Lustre target (format it with mkfs.lustre)`);
    }
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TargetError('EINVAL', `${path} is not valid JSON`);
  }
  return decodeMountdata(raw, path);
}

export async function writeMountdata(device: string, md: Mountdata): Promise<void> {
  decodeMountdata({ magic: MOUNTDATA_MAGIC, version: MOUNTDATA_VERSION, ...md }, 'mountdata to write');
  const path = join(device, MOUNTDATA_FILE);
  const tmp = `${path}.tmp`;
  const body = { magic: MOUNTDATA_MAGIC, version: MOUNTDATA_VERSION, ...md };
  await writeFile(tmp, JSON.stringify(body, null, 2) + '\n');
  await fsync(tmp);
  await rename(tmp, path);
  await fsync(device);
}

async function fsync(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** The edge where a file's bytes become a typed Mountdata: every field checked once. */
function decodeMountdata(raw: unknown, where: string): Mountdata {
  const bad = (what: string): never => { throw new TargetError('EINVAL', `${where}: ${what}`); };
  if (typeof raw !== 'object' || raw === null) bad('not an object');
  const r = raw as Record<string, unknown>;
  if (r.magic !== MOUNTDATA_MAGIC) throw new TargetError('ENODEV', `${where}: not Lustre mountdata (magic ${JSON.stringify(r.magic)})`);
  if (typeof r.version !== 'number' || r.version > MOUNTDATA_VERSION) bad(`version ${String(r.version)} is newer than this code knows (${MOUNTDATA_VERSION})`);
  const str = (k: string): string => (typeof r[k] === 'string' ? (r[k] as string) : bad(`${k} must be a string`));
  const bool = (k: string): boolean => (typeof r[k] === 'boolean' ? (r[k] as boolean) : bad(`${k} must be a boolean`));
  const strings = (k: string): string[] =>
    Array.isArray(r[k]) && (r[k] as unknown[]).every((s) => typeof s === 'string') ? [...(r[k] as string[])] : bad(`${k} must be a list of strings`);
  const index = r.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < -1 || index > INDEX_MAX) bad(`index must be an integer in [-1, ${INDEX_MAX}]`);
  const params = r.params;
  if (typeof params !== 'object' || params === null || Array.isArray(params) ||
      !Object.values(params).every((v) => typeof v === 'string')) bad('params must map names to strings');
  const profile = strings('profile');
  if (!profile.every((p) => p === 'mgs' || p === 'mdt' || p === 'ost')) bad(`profile ${JSON.stringify(profile)} names an unknown service`);
  const md: Mountdata = {
    fsname: str('fsname'), svname: str('svname'), mgs: bool('mgs'), mdt: bool('mdt'), ost: bool('ost'),
    index: index as number, mgsNids: strings('mgsNids'), params: { ...(params as Record<string, string>) },
    uuid: str('uuid'), virgin: bool('virgin'), profile: profile as TargetKind[],
  };
  if (!md.mgs && !md.mdt && !md.ost) bad('the target is none of mgs, mdt, ost');
  if (md.mdt && md.ost) bad('a target cannot be both an MDT and an OST');
  return md;
}
