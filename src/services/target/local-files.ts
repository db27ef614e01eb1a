// Named local objects of a target, anchored in the OSD's root index as Lustre anchors its
// local files (last_rcvd, CONFIGS, ...). Well-known ones have Lustre's own FIDs in
// FID_SEQ_LOCAL_FILE (enum local_oid in lustre_fid.h); others get the next free oid of
// FID_SEQ_LOCAL_NAME, counted in an xattr of the root index.
import type { Fid, ObjectType, Osd, Tx } from '../../osd/index.js';
import { fid, ROOT_INDEX_FID } from '../../osd/index.js';

export const FID_SEQ_LOCAL_FILE = 0x200000001;
export const FID_SEQ_LOCAL_NAME = 0x200000003;

/** Lustre's local_oid values for the objects the targets keep. */
export const LocalOid = {
  LAST_RECV: 11,
  OFD_LAST_GROUP: 4117,
  LLOG_CATALOGS: 4118,
  MGS_CONFIGS: 4119,
} as const;

export const LAST_RCVD_FID: Fid = fid(FID_SEQ_LOCAL_FILE, LocalOid.LAST_RECV);
export const MGS_CONFIGS_FID: Fid = fid(FID_SEQ_LOCAL_FILE, LocalOid.MGS_CONFIGS);

const LAST_LOCAL_OID = 'target.last_local_oid';

/** One anchoring at a time per OSD: two callers must not both allocate the same name or oid. */
const anchoring = new WeakMap<Osd, Promise<unknown>>();

/**
 * The FID of the local object `name` in the index `parent` (the OSD's root index by default),
 * creating it (with `wellKnown` as its FID if given) on first use. Durable when it resolves.
 */
export function localObject(osd: Osd, name: string, type: ObjectType,
  opts: { fid?: Fid; parent?: Fid; mode?: number } = {}): Promise<Fid> {
  const previous = anchoring.get(osd) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(() => anchor(osd, name, type, opts));
  anchoring.set(osd, next);
  return next;
}

async function anchor(osd: Osd, name: string, type: ObjectType, opts: { fid?: Fid; parent?: Fid; mode?: number }): Promise<Fid> {
  const parent = opts.parent ?? ROOT_INDEX_FID;
  const found = await osd.indexLookup(parent, name);
  if (found) return found.fid;
  const tx = osd.begin().declareCreate(opts.fid ?? parent).declareIndexInsert(parent);
  let target = opts.fid;
  if (!target) tx.declareXattrSet(ROOT_INDEX_FID, 8);
  await tx.start();
  try {
    target = await fill(osd, tx, parent, name, type, target, opts.mode);
  } finally {
    tx.stop();
  }
  await osd.sync();
  return target;
}

async function fill(osd: Osd, tx: Tx, parent: Fid, name: string, type: ObjectType, given: Fid | undefined, mode: number | undefined): Promise<Fid> {
  let target = given;
  if (!target) {
    const oid = (await lastLocalOid(osd)) + 1;
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(oid));
    await tx.xattrSet(ROOT_INDEX_FID, LAST_LOCAL_OID, value);
    target = fid(FID_SEQ_LOCAL_NAME, oid);
  }
  await tx.create(target, { type, mode: mode ?? (type === 'idx' || type === 'dir' ? 0o755 : 0o644) });
  await tx.indexInsert(parent, name, { fid: target, type });
  return target;
}

async function lastLocalOid(osd: Osd): Promise<number> {
  const last = await osd.xattrFind(ROOT_INDEX_FID, LAST_LOCAL_OID);
  return last ? Number(last.readBigUInt64LE(0)) : 0;
}
