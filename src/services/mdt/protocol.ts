// The MDT's wire protocol: the operation buffers of its requests and replies, shared by the
// MDT (src/services/mdt) and the MDC (src/client/mdc.ts).
//
// Opcodes are Lustre's (lustre_idl.h): MDS_GETATTR 33, MDS_GETATTR_NAME 34, MDS_CLOSE 35,
// MDS_REINT 36, MDS_READPAGE 37, MDS_CONNECT 38, MDS_GET_ROOT 40, MDS_STATFS 41,
// MDS_GETXATTR 49. MDS_REINT carries a sub-operation, Lustre's enum mds_reint_op:
// SETATTR 1, CREATE 2, LINK 3, UNLINK 4, RENAME 5, OPEN 6, SETXATTR 7.
//
// Buffers (for now; Lustre's mdt_body/mdt_rec_* layouts are a later step):
//   request: buffer 1 = one CBOR map (cbor-x, plain maps), the fields of the *Request types
//            below; every request that acts for a user carries `cred`.
//   reply:   buffer 1 = one CBOR map, the fields of the *Reply types below; an error is the
//            ptlrpc status (a negative Linux errno) with no buffers.
//   MDS_READPAGE: the directory page travels as bulk (a PUT into the client's sink of
//            `bytes` bytes): one CBOR array of DirEntry; the reply buffer says how many
//            entries, the cookie to continue after and whether the directory is exhausted.
// FIDs travel in Lustre's text form "[0x200000400:0x1:0x0]". Decoders validate every field and
// throw MdtProtocolError (EPROTO) on anything malformed: handlers behind them only assert.
//
// MDS_GETATTR_NAME { cred, parent, name, absentNames? }: with absentNames (0..LOOKUP_NAMES_MAX),
// a name that is not there is answered { absent: true, names? } instead of ENOENT, names being
// every name of the directory when it holds at most absentNames and the caller may read it.
//
// The layout xattr 'lustre.lov' is binary, Lustre's lov_mds_md_v1 (see layout.ts).
import { decode, Encoder } from 'cbor-x';
import { keptPerObject, parseFid, type Fid, fidToString, type ObjectType, OBJECT_TYPES } from '../../osd/index.js';
import type { IncomingRequest } from '../../ptlrpc/index.js';

export const MdsOpcode = {
  GETATTR: 33,
  GETATTR_NAME: 34,
  CLOSE: 35,
  REINT: 36,
  READPAGE: 37,
  CONNECT: 38,
  DISCONNECT: 39,
  GET_ROOT: 40,
  STATFS: 41,
  GETXATTR: 49,
} as const;

/**
 * The most names an MDS_GETATTR_NAME of an absent name may ask to be listed (absentNames): 256
 * names of 255 bytes fit in 64 KiB, within the 128 KiB an MDC takes in a reply.
 */
export const LOOKUP_NAMES_MAX = 256;

export const ReintOp = {
  SETATTR: 1,
  CREATE: 2,
  LINK: 3,
  UNLINK: 4,
  RENAME: 5,
  OPEN: 6,
  SETXATTR: 7,
} as const;
export type ReintOpCode = (typeof ReintOp)[keyof typeof ReintOp];

/** Linux x86 errno numbers the MDT answers with (ptlrpc's table lacks some of them). */
export const MdtErrno = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, E2BIG: 7, EACCES: 13, EBUSY: 16, EEXIST: 17, EXDEV: 18,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30, EMLINK: 31, ERANGE: 34,
  ENAMETOOLONG: 36, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, EPROTO: 71, EOPNOTSUPP: 95,
  ETIMEDOUT: 110, ESTALE: 116,
} as const;
export type MdtErrnoName = keyof typeof MdtErrno;

const errnoNames = new Map<number, string>(Object.entries(MdtErrno).map(([k, v]) => [v, k]));
/** 'ENOTDIR' for 20 or -20; undefined for a number without a name here. */
export function mdtErrnoName(status: number): string | undefined {
  return errnoNames.get(Math.abs(status));
}

/** open(2) flags as Linux x86 numbers them. */
export const OpenFlag = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, TRUNC: 0o1000, APPEND: 0o2000,
  DIRECTORY: 0o200000, NOFOLLOW: 0o400000,
} as const;

/** st_mode file type bits. */
export const S_IFMT = 0o170000;
const TYPE_BITS: Record<ObjectType, number> = {
  sock: 0o140000, lnk: 0o120000, reg: 0o100000, blk: 0o060000, dir: 0o040000, chr: 0o020000, fifo: 0o010000, idx: 0,
};
export function typeBits(type: ObjectType): number {
  return TYPE_BITS[type];
}
export function typeOfMode(mode: number): ObjectType | undefined {
  const bits = mode & S_IFMT;
  for (const [t, b] of Object.entries(TYPE_BITS)) if (b === bits && t !== 'idx') return t as ObjectType;
  return undefined;
}

export interface Cred {
  uid: number;
  gid: number;
  /** Supplementary groups. */
  groups: number[];
}

/** What getattr answers: st_mode has the file type bits. Size and blocks of a regular file are the OSTs'. */
export interface MdtAttr {
  fid: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  nlink: number;
  rdev: number;
}

/** A striping request or default: 0 fields mean "inherit"; stripeCount -1 is every OST, stripeOffset -1 any OST. */
export interface LayoutSpec {
  stripeCount: number;
  stripeSize: number;
  stripeOffset: number;
}

export interface DirEntry {
  name: string;
  fid: string;
  type: ObjectType;
}

export interface MdtStatfs {
  bytesTotal: number;
  bytesFree: number;
  objectsTotal: number;
  objectsFree: number;
  namelen: number;
}

// ---- requests ------------------------------------------------------------------------------

export interface GetattrRequest { cred: Cred; fid: string; readlink?: boolean }
export interface GetattrNameRequest { cred: Cred; parent: string; name: string }
export interface ReadpageRequest { cred: Cred; fid: string; cookie: string | null; bytes: number }
export interface GetxattrRequest { cred: Cred; fid: string; name: string | null }
export interface CloseRequest { handle: string }

/**
 * `keepParentLock` (create, unlink and rmdir, an open by name): the client keeps its own locks
 * on the parent directory through the update (the MDT's lock on the parent spares them: no
 * early cancel, no callback) and learns the directory's new attributes from the reply's
 * `parentAttr`, as if it had taken the lock again at once. Lustre's clients give the lock back
 * with an early cancel and enqueue it again at their next getattr: two requests saved.
 */
export type ReintRequest =
  | { op: 1; cred: Cred; fid: string; attrs: SetattrFields }
  | { op: 2; cred: Cred; parent: string; name: string; mode: number; rdev?: number; target?: string; layout?: LayoutSpec; keepParentLock?: boolean }
  | { op: 3; cred: Cred; fid: string; parent: string; name: string }
  | { op: 4; cred: Cred; parent: string; name: string; rmdir: boolean; keepParentLock?: boolean }
  | { op: 5; cred: Cred; parent: string; name: string; newParent: string; newName: string }
  | { op: 6; cred: Cred; parent?: string; name?: string; fid?: string; flags: number; mode: number; layout?: LayoutSpec; keepParentLock?: boolean }
  | { op: 7; cred: Cred; fid: string; name: string; value: Uint8Array | null; flags: number };

/**
 * setattr fields; `timesNow` is utimes(NULL): set atime and mtime to the server's now.
 * `killSuidGid` (Lustre's MDS_ATTR_KILL_SUID | MDS_ATTR_KILL_SGID): a write by someone who may
 * not keep them takes away the setuid bit, and the setgid bit when the group may execute; no
 * ownership is needed for it.
 */
export interface SetattrFields {
  mode?: number;
  uid?: number;
  gid?: number;
  atime?: number;
  mtime?: number;
  ctime?: number;
  timesNow?: boolean;
  killSuidGid?: boolean;
}

/** setxattr flags (Linux): XATTR_CREATE 1, XATTR_REPLACE 2. */
export const XattrFlag = { CREATE: 1, REPLACE: 2 } as const;

// ---- replies -------------------------------------------------------------------------------

export interface AttrReply { attr: MdtAttr; target?: string }
/** `parentAttr`: the parent directory's attributes after the update, when the request kept its lock (keepParentLock). */
export interface OpenReply { attr: MdtAttr; handle: string; created: boolean; layout?: Uint8Array; parentAttr?: MdtAttr }
/**
 * `orphan`: the object lost its last name while open somewhere, and lives on until its last
 * close; `destroyed`: it lost its last name and is gone (its OST objects logged for destruction).
 * Neither: it keeps other names.
 */
export interface UnlinkReply { orphan: boolean; destroyed: boolean; parentAttr?: MdtAttr }
export interface ReadpageReply { count: number; cookie: string | null; end: boolean }
export interface GetxattrReply { value?: Uint8Array; names?: string[] }
export interface RootReply { fid: string }

// ---- codec ---------------------------------------------------------------------------------

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });

export function encodeBody(value: unknown): Buffer {
  return Buffer.from(encoder.encode(value));
}

export class MdtProtocolError extends Error {
  readonly code = 'EPROTO';
}

function fail(what: string): never {
  throw new MdtProtocolError(`malformed MDT message: ${what}`);
}

export function decodeBody(buffers: readonly Buffer[], index = 0): Record<string, unknown> {
  const b = buffers[index];
  if (!b) fail('missing operation buffer');
  let v: unknown;
  try {
    v = decode(b);
  } catch {
    fail('operation buffer is not CBOR');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('operation buffer is not a map');
  return v as Record<string, unknown>;
}

export const u32 = (v: unknown, what: string): number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff ? (v as number) : fail(`${what} is not a u32`);
export const int = (v: unknown, what: string): number => (Number.isSafeInteger(v) ? (v as number) : fail(`${what} is not an integer`));
export const num = (v: unknown, what: string): number => (typeof v === 'number' && Number.isFinite(v) ? v : fail(`${what} is not a number`));
export const str = (v: unknown, what: string): string => (typeof v === 'string' ? v : fail(`${what} is not a string`));
export const bool = (v: unknown, what: string): boolean => (typeof v === 'boolean' ? v : fail(`${what} is not a boolean`));
export const bytes = (v: unknown, what: string): Uint8Array => (v instanceof Uint8Array ? v : fail(`${what} is not bytes`));
const opt = <T>(v: unknown, f: (v: unknown, w: string) => T, what: string): T | undefined => (v === undefined || v === null ? undefined : f(v, what));

export function fidField(v: unknown, what: string): Fid {
  try {
    return parseFid(str(v, what));
  } catch {
    return fail(`${what} is not a FID`);
  }
}

export function credField(v: unknown): Cred {
  if (typeof v !== 'object' || v === null) fail('cred missing');
  const c = v as Record<string, unknown>;
  const groups = c.groups ?? [];
  if (!Array.isArray(groups) || groups.length > 64) fail('cred.groups is not a list of at most 64');
  return { uid: u32(c.uid, 'cred.uid'), gid: u32(c.gid, 'cred.gid'), groups: groups.map((g) => u32(g, 'cred.groups[]')) };
}

export function layoutField(v: unknown): LayoutSpec | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') fail('layout is not a map');
  const l = v as Record<string, unknown>;
  const count = int(l.stripeCount ?? 0, 'layout.stripeCount');
  const size = int(l.stripeSize ?? 0, 'layout.stripeSize');
  const offset = int(l.stripeOffset ?? -1, 'layout.stripeOffset');
  if (count < -1 || count > 0xffff || size < 0 || size > 0xffffffff || offset < -1 || offset > 0xfffe) fail('layout out of range');
  return { stripeCount: count, stripeSize: size, stripeOffset: offset };
}

export function setattrField(v: unknown): SetattrFields {
  if (typeof v !== 'object' || v === null) fail('attrs missing');
  const a = v as Record<string, unknown>;
  const out: SetattrFields = {};
  const mode = opt(a.mode, u32, 'attrs.mode');
  if (mode !== undefined) out.mode = mode;
  const uid = opt(a.uid, u32, 'attrs.uid');
  if (uid !== undefined) out.uid = uid;
  const gid = opt(a.gid, u32, 'attrs.gid');
  if (gid !== undefined) out.gid = gid;
  for (const k of ['atime', 'mtime', 'ctime'] as const) {
    const t = opt(a[k], num, `attrs.${k}`);
    if (t !== undefined) out[k] = t;
  }
  if (a.timesNow !== undefined) out.timesNow = bool(a.timesNow, 'attrs.timesNow');
  if (a.killSuidGid !== undefined) out.killSuidGid = bool(a.killSuidGid, 'attrs.killSuidGid');
  return out;
}

/** A reint's body, decoded once per request: its prepare step (the locks) and its handler both read it. */
const reints = keptPerObject((request: IncomingRequest): { r: ReintRequest } | { error: unknown } => {
  try {
    return { r: decodeReint(request.buffers) };
  } catch (error) {
    return { error };
  }
});

/** The request's reint (decodeReint), or what decoding it threw, thrown again. */
export function reintOf(request: IncomingRequest): ReintRequest {
  const known = reints(request);
  if ('error' in known) throw known.error;
  return known.r;
}

/** Decodes and validates an MDS_REINT request (the edge: nothing malformed gets past). */
export function decodeReint(buffers: readonly Buffer[]): ReintRequest {
  const m = decodeBody(buffers);
  const op = u32(m.op, 'op');
  const cred = credField(m.cred);
  const name = () => str(m.name, 'name');
  switch (op) {
    case ReintOp.SETATTR:
      return { op, cred, fid: fidText(m.fid, 'fid'), attrs: setattrField(m.attrs) };
    case ReintOp.CREATE: {
      const r: ReintRequest = { op, cred, parent: fidText(m.parent, 'parent'), name: name(), mode: u32(m.mode, 'mode') };
      const rdev = opt(m.rdev, u32, 'rdev');
      if (rdev !== undefined) r.rdev = rdev;
      const target = opt(m.target, str, 'target');
      if (target !== undefined) r.target = target;
      const layout = layoutField(m.layout);
      if (layout) r.layout = layout;
      if (keepsParentLock(m)) r.keepParentLock = true;
      return r;
    }
    case ReintOp.LINK:
      return { op, cred, fid: fidText(m.fid, 'fid'), parent: fidText(m.parent, 'parent'), name: name() };
    case ReintOp.UNLINK: {
      const r: ReintRequest = { op, cred, parent: fidText(m.parent, 'parent'), name: name(), rmdir: bool(m.rmdir ?? false, 'rmdir') };
      if (keepsParentLock(m)) r.keepParentLock = true;
      return r;
    }
    case ReintOp.RENAME:
      return {
        op, cred, parent: fidText(m.parent, 'parent'), name: name(),
        newParent: fidText(m.newParent, 'newParent'), newName: str(m.newName, 'newName'),
      };
    case ReintOp.OPEN: {
      const r: ReintRequest = { op, cred, flags: u32(m.flags, 'flags'), mode: u32(m.mode ?? 0, 'mode') };
      if (m.fid !== undefined && m.fid !== null) r.fid = fidText(m.fid, 'fid');
      else {
        r.parent = fidText(m.parent, 'parent');
        r.name = name();
        if (keepsParentLock(m)) r.keepParentLock = true;
      }
      const layout = layoutField(m.layout);
      if (layout) r.layout = layout;
      return r;
    }
    case ReintOp.SETXATTR: {
      const value = m.value === null || m.value === undefined ? null : bytes(m.value, 'value');
      return { op, cred, fid: fidText(m.fid, 'fid'), name: name(), value, flags: u32(m.flags ?? 0, 'flags') };
    }
    default:
      return fail(`unknown reint op ${op}`);
  }
}

const keepsParentLock = (m: Record<string, unknown>): boolean => bool(m.keepParentLock ?? false, 'keepParentLock');

/** The parent directory whose lock a request keeps (keepParentLock), or undefined. */
export function keptParent(r: ReintRequest): string | undefined {
  return 'keepParentLock' in r && r.keepParentLock ? r.parent : undefined;
}

/** A FID field kept in text form after validation. */
export function fidText(v: unknown, what: string): string {
  return fidToString(fidField(v, what));
}

export function decodeAttr(v: unknown): MdtAttr {
  if (typeof v !== 'object' || v === null) fail('attr missing');
  const a = v as Record<string, unknown>;
  return {
    fid: fidText(a.fid, 'attr.fid'), mode: u32(a.mode, 'attr.mode'), uid: u32(a.uid, 'attr.uid'), gid: u32(a.gid, 'attr.gid'),
    size: int(a.size, 'attr.size'), blocks: int(a.blocks, 'attr.blocks'), atime: num(a.atime, 'attr.atime'),
    mtime: num(a.mtime, 'attr.mtime'), ctime: num(a.ctime, 'attr.ctime'), nlink: u32(a.nlink, 'attr.nlink'), rdev: u32(a.rdev ?? 0, 'attr.rdev'),
  };
}

export function decodeDirEntries(buffers: readonly Buffer[]): DirEntry[] {
  const data = Buffer.concat(buffers);
  let v: unknown;
  try {
    v = decode(data);
  } catch {
    fail('directory page is not CBOR');
  }
  if (!Array.isArray(v)) fail('directory page is not a list');
  return v.map((e: unknown) => {
    if (typeof e !== 'object' || e === null) fail('directory entry');
    const d = e as Record<string, unknown>;
    const type = str(d.type, 'entry.type');
    if (!(OBJECT_TYPES as readonly string[]).includes(type)) fail('entry.type');
    return { name: str(d.name, 'entry.name'), fid: fidText(d.fid, 'entry.fid'), type: type as ObjectType };
  });
}

export function decodeStatfs(v: unknown): MdtStatfs {
  if (typeof v !== 'object' || v === null) fail('statfs missing');
  const s = v as Record<string, unknown>;
  return {
    bytesTotal: int(s.bytesTotal, 'bytesTotal'), bytesFree: int(s.bytesFree, 'bytesFree'),
    objectsTotal: int(s.objectsTotal, 'objectsTotal'), objectsFree: int(s.objectsFree, 'objectsFree'), namelen: int(s.namelen, 'namelen'),
  };
}

export { opt as optionalField };
