// One request, decoded and served: the body of each opcode checked and turned into the call of
// its op, and the op's answer encoded as the reply body. INIT, INTERRUPT, FORGET, BATCH_FORGET
// and DESTROY belong to the session and never come here.
import { constants as osConstants } from 'node:os';
import type { Entry, FuseOps, OpenReply, ReleaseInfo, RequestContext, SetattrChanges } from './ops.js';
import { fuseError, servesFlockLocks, servesPosixLocks } from './ops.js';
import {
  BodyReader, Fattr, FopenFlag, FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, OFFSET_MAX, Opcode, ReleaseFlag, WireError,
  decodeLkIn, encodeAttrOut, encodeCreateOut, encodeDirents, encodeEntryOut, encodeLkOut, encodeLseekOut,
  encodeOpenOut, encodeSizeOut, encodeStatfsOut, type EntryOut, type FileLock, type InHeader,
} from './wire.js';

export interface Timeouts { entryTimeoutMs: number; attrTimeoutMs: number }

/** A reply body as pieces written with one writev (no copy of large data). Empty = success, no body. */
export type ReplyBody = Buffer[];

const NAME_MAX = 255;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;

function enosys(): never {
  throw fuseError('ENOSYS');
}

function checkName(name: string, max = NAME_MAX): string {
  if (name.length === 0) throw new WireError('empty name');
  if (Buffer.byteLength(name) > max) throw fuseError('ENAMETOOLONG');
  return name;
}

function entryOut(e: Entry, t: Timeouts): EntryOut {
  return {
    nodeid: e.nodeid, generation: e.generation ?? 0, attr: e.attr,
    entryTimeoutMs: e.entryTimeoutMs ?? t.entryTimeoutMs, attrTimeoutMs: e.attrTimeoutMs ?? t.attrTimeoutMs,
  };
}

function openFlags(o: OpenReply): number {
  return (o.directIo ? FopenFlag.DIRECT_IO : 0) | (o.keepCache ? FopenFlag.KEEP_CACHE : 0) | (o.nonSeekable ? FopenFlag.NONSEEKABLE : 0);
}

function decodeSetattr(body: Buffer): SetattrChanges {
  const r = new BodyReader(body, 'SETATTR').struct(88);
  const valid = r.u32(0);
  const ns = (secAt: number, nsecAt: number): bigint => r.big(secAt) * 1_000_000_000n + BigInt(r.u32(nsecAt));
  const c: SetattrChanges = {};
  if (valid & Fattr.MODE) c.mode = r.u32(68);
  if (valid & Fattr.UID) c.uid = r.u32(76);
  if (valid & Fattr.GID) c.gid = r.u32(80);
  if (valid & Fattr.SIZE) c.size = r.u64(16);
  if (valid & Fattr.ATIME) c.atimeNs = valid & Fattr.ATIME_NOW ? 'now' : ns(32, 56);
  if (valid & Fattr.MTIME) c.mtimeNs = valid & Fattr.MTIME_NOW ? 'now' : ns(40, 60);
  if (valid & Fattr.CTIME) c.ctimeNs = ns(48, 64);
  if (valid & Fattr.FH) c.fh = r.u64(8);
  return c;
}

/** What a close ends: every lock of the owner on the file. */
const WHOLE_FILE_UNLOCK: Readonly<FileLock> = Object.freeze({ start: 0n, end: OFFSET_MAX, type: 'unlock', pid: 0 });

/**
 * FLUSH: the op's flush, then the end of the closer's POSIX locks on the file (the kernel leaves
 * it to us once it has offered FUSE_POSIX_LOCKS). Without a flush op but with locks, FLUSH must
 * still succeed: an ENOSYS would make the kernel stop sending it, and locks would outlive their
 * process.
 */
async function serveFlush(ops: FuseOps, ctx: RequestContext, n: number, body: Buffer): Promise<ReplyBody> {
  const r = new BodyReader(body, 'FLUSH').struct(24);
  const fh = r.u64(0);
  const owner = r.big(16);
  const locks = servesPosixLocks(ops);
  // Without a flush op and without locks, ENOSYS: the kernel then stops sending FLUSH on every close.
  if (!ops.flush && !locks) enosys();
  await ops.flush?.(ctx, n, fh, owner);
  if (locks) await ops.setlk!(ctx, n, fh, owner, { ...WHOLE_FILE_UNLOCK }, { wait: false, flock: false, close: true });
  return [];
}

/** RELEASE: the end of the open file's flock() first (it may need the fh), then the op's release, whatever the unlock did. */
async function serveRelease(ops: FuseOps, ctx: RequestContext, n: number, body: Buffer): Promise<ReplyBody> {
  const r = new BodyReader(body, 'RELEASE').struct(24);
  const fh = r.u64(0);
  const releaseFlags = r.u32(12);
  const info: ReleaseInfo = { flush: (releaseFlags & ReleaseFlag.FLUSH) !== 0 };
  if (releaseFlags & ReleaseFlag.FLOCK_UNLOCK) info.flockOwner = r.big(16);
  let unlockFailed: { err: unknown } | undefined;
  if (info.flockOwner !== undefined && servesFlockLocks(ops)) {
    try {
      await ops.setlk!(ctx, n, fh, info.flockOwner, { ...WHOLE_FILE_UNLOCK }, { wait: false, flock: true, close: true });
    } catch (err) {
      unlockFailed = { err };
    }
  }
  await ops.release?.(ctx, n, fh, r.u32(8), info);
  if (unlockFailed) throw unlockFailed.err;
  return [];
}

/** Encodes an xattr answer as GETXATTR/LISTXATTR want it: its size when asked with size 0, else the bytes or ERANGE. */
function sizedAnswer(value: Buffer, size: number): ReplyBody {
  if (size === 0) return [encodeSizeOut(value.length)];
  if (value.length > size) throw fuseError('ERANGE');
  return [value];
}

/** Serves one request with the ops; resolves to the reply body. Throws WireError for a malformed body. */
export async function serve(ops: FuseOps, h: InHeader, body: Buffer, ctx: RequestContext, t: Timeouts): Promise<ReplyBody> {
  const n = h.nodeid;
  switch (h.opcode) {
    case Opcode.LOOKUP: {
      const name = checkName(new BodyReader(body, 'LOOKUP').name());
      const e = await (ops.lookup ?? enosys).call(ops, ctx, n, name);
      return [encodeEntryOut(entryOut(e, t))];
    }
    case Opcode.GETATTR: {
      const r = new BodyReader(body, 'GETATTR').struct(16);
      const fh = r.u32(0) & FUSE_GETATTR_FH ? r.u64(8) : undefined;
      const a = await (ops.getattr ?? enosys).call(ops, ctx, n, fh);
      return [encodeAttrOut(a.attr, a.attrTimeoutMs ?? t.attrTimeoutMs)];
    }
    case Opcode.SETATTR: {
      const a = await (ops.setattr ?? enosys).call(ops, ctx, n, decodeSetattr(body));
      return [encodeAttrOut(a.attr, a.attrTimeoutMs ?? t.attrTimeoutMs)];
    }
    case Opcode.READLINK: {
      const target = await (ops.readlink ?? enosys).call(ops, ctx, n);
      return [Buffer.from(target)];
    }
    case Opcode.SYMLINK: {
      const r = new BodyReader(body, 'SYMLINK');
      const name = checkName(r.name());
      const target = r.name();
      const e = await (ops.symlink ?? enosys).call(ops, ctx, n, name, target);
      return [encodeEntryOut(entryOut(e, t))];
    }
    case Opcode.MKNOD: {
      const r = new BodyReader(body, 'MKNOD').struct(16);
      const e = await (ops.mknod ?? enosys).call(ops, ctx, n, checkName(r.name()), r.u32(0), r.u32(4), r.u32(8));
      return [encodeEntryOut(entryOut(e, t))];
    }
    case Opcode.MKDIR: {
      const r = new BodyReader(body, 'MKDIR').struct(8);
      const e = await (ops.mkdir ?? enosys).call(ops, ctx, n, checkName(r.name()), r.u32(0), r.u32(4));
      return [encodeEntryOut(entryOut(e, t))];
    }
    case Opcode.UNLINK:
      await (ops.unlink ?? enosys).call(ops, ctx, n, checkName(new BodyReader(body, 'UNLINK').name()));
      return [];
    case Opcode.RMDIR:
      await (ops.rmdir ?? enosys).call(ops, ctx, n, checkName(new BodyReader(body, 'RMDIR').name()));
      return [];
    case Opcode.RENAME:
    case Opcode.RENAME2: {
      const two = h.opcode === Opcode.RENAME2;
      const r = new BodyReader(body, two ? 'RENAME2' : 'RENAME').struct(two ? 16 : 8);
      const newParent = r.u64(0);
      const flags = two ? r.u32(8) : 0;
      const name = checkName(r.name());
      const newName = checkName(r.name());
      await (ops.rename ?? enosys).call(ops, ctx, n, name, newParent, newName, flags);
      return [];
    }
    case Opcode.LINK: {
      const r = new BodyReader(body, 'LINK').struct(8);
      const e = await (ops.link ?? enosys).call(ops, ctx, r.u64(0), n, checkName(r.name()));
      return [encodeEntryOut(entryOut(e, t))];
    }
    case Opcode.OPEN:
    case Opcode.OPENDIR: {
      const dir = h.opcode === Opcode.OPENDIR;
      const r = new BodyReader(body, dir ? 'OPENDIR' : 'OPEN').struct(8);
      const op = dir ? ops.opendir : ops.open;
      const o = await (op ?? enosys).call(ops, ctx, n, r.u32(0));
      return [encodeOpenOut(o.fh, openFlags(o))];
    }
    case Opcode.READ: {
      const r = new BodyReader(body, 'READ').struct(40);
      const size = r.u32(16);
      const data = await (ops.read ?? enosys).call(ops, ctx, n, r.u64(0), r.u64(8), size);
      return [data.length > size ? data.subarray(0, size) : data];
    }
    case Opcode.WRITE: {
      const r = new BodyReader(body, 'WRITE').struct(40);
      const size = r.u32(16);
      if (r.remaining() !== size) throw new WireError(`WRITE of ${size} bytes carries ${r.remaining()}`);
      const written = await (ops.write ?? enosys).call(ops, ctx, n, r.u64(0), r.u64(8), r.rest(size), r.u32(20));
      return [encodeSizeOut(written)];
    }
    case Opcode.STATFS:
      return [encodeStatfsOut(await (ops.statfs ?? enosys).call(ops, ctx, n))];
    case Opcode.RELEASE:
      return serveRelease(ops, ctx, n, body);
    case Opcode.RELEASEDIR:
      await ops.releasedir?.(ctx, n, new BodyReader(body, 'RELEASEDIR').struct(24).u64(0));
      return [];
    case Opcode.FSYNC:
    case Opcode.FSYNCDIR: {
      const r = new BodyReader(body, 'FSYNC').struct(16);
      const op = h.opcode === Opcode.FSYNC ? ops.fsync : ops.fsyncdir;
      await (op ?? enosys).call(ops, ctx, n, r.u64(0), (r.u32(8) & FUSE_FSYNC_FDATASYNC) !== 0);
      return [];
    }
    case Opcode.FLUSH:
      return serveFlush(ops, ctx, n, body);
    case Opcode.SETXATTR: {
      const r = new BodyReader(body, 'SETXATTR').struct(8);
      const size = r.u32(0);
      if (size > XATTR_SIZE_MAX) throw fuseError('E2BIG');
      const name = checkName(r.name(), XATTR_NAME_MAX);
      await (ops.setxattr ?? enosys).call(ops, ctx, n, name, Buffer.from(r.rest(size)), r.u32(4));
      return [];
    }
    case Opcode.GETXATTR: {
      const r = new BodyReader(body, 'GETXATTR').struct(8);
      const size = r.u32(0);
      const value = await (ops.getxattr ?? enosys).call(ops, ctx, n, checkName(r.name(), XATTR_NAME_MAX));
      return sizedAnswer(value, size);
    }
    case Opcode.LISTXATTR: {
      const size = new BodyReader(body, 'LISTXATTR').struct(8).u32(0);
      const names = await (ops.listxattr ?? enosys).call(ops, ctx, n);
      return sizedAnswer(Buffer.from(names.map((x) => `${x}\0`).join('')), size);
    }
    case Opcode.REMOVEXATTR:
      await (ops.removexattr ?? enosys).call(ops, ctx, n, checkName(new BodyReader(body, 'REMOVEXATTR').name(), XATTR_NAME_MAX));
      return [];
    case Opcode.READDIR: {
      const r = new BodyReader(body, 'READDIR').struct(40);
      const size = r.u32(16);
      const entries = await (ops.readdir ?? enosys).call(ops, ctx, n, r.u64(0), r.u64(8), size);
      return [encodeDirents(entries, size)];
    }
    case Opcode.ACCESS: {
      const mask = new BodyReader(body, 'ACCESS').struct(8).u32(0);
      await (ops.access ?? enosys).call(ops, ctx, n, mask);
      return [];
    }
    case Opcode.CREATE: {
      const r = new BodyReader(body, 'CREATE').struct(16);
      const c = await (ops.create ?? enosys).call(ops, ctx, n, checkName(r.name()), r.u32(4), r.u32(0), r.u32(8));
      return [encodeCreateOut(entryOut(c.entry, t), c.open.fh, openFlags(c.open))];
    }
    case Opcode.FALLOCATE: {
      const r = new BodyReader(body, 'FALLOCATE').struct(32);
      await (ops.fallocate ?? enosys).call(ops, ctx, n, r.u64(0), r.u64(8), r.u64(16), r.u32(24));
      return [];
    }
    case Opcode.LSEEK: {
      const r = new BodyReader(body, 'LSEEK').struct(24);
      const at = await (ops.lseek ?? enosys).call(ops, ctx, n, r.u64(0), r.u64(8), r.u32(16));
      return [encodeLseekOut(at)];
    }
    case Opcode.GETLK: {
      const lk = decodeLkIn(body, 'GETLK');
      const held = await (ops.getlk ?? enosys).call(ops, ctx, n, lk.fh, lk.owner, lk.lock);
      return [encodeLkOut(held && held.type !== 'unlock' ? held : { ...lk.lock, type: 'unlock', pid: 0 })];
    }
    case Opcode.SETLK:
    case Opcode.SETLKW: {
      const wait = h.opcode === Opcode.SETLKW;
      const lk = decodeLkIn(body, wait ? 'SETLKW' : 'SETLK');
      await (ops.setlk ?? enosys).call(ops, ctx, n, lk.fh, lk.owner, lk.lock, { wait, flock: lk.flock, close: false });
      return [];
    }
    default:
      // ioctl, poll, bmap, readdirplus, copy_file_range: not offered; ENOSYS makes the
      // kernel fall back (or fail the call) on its own.
      throw fuseError('ENOSYS');
  }
}

/** The errno a thrown value answers: its Node `code` when that names an errno, else EIO. */
export function errnoOf(err: unknown): { errno: number; known: boolean } {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    const errno = (osConstants.errno as Record<string, number>)[code];
    if (errno !== undefined) return { errno, known: true };
  }
  return { errno: osConstants.errno.EIO, known: false };
}
