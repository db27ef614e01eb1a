// The operations a file system gives a FUSE session: FUSE's low-level API, inode based. The
// kernel names every inode by a nodeid the file system chose when it answered a lookup (or a
// create, mkdir, mknod, symlink, link); 1 is the root. Each such answer adds one to the nodeid's
// lookup count, and forget(nodeid, n) takes n away: at zero the file system may drop the nodeid.
//
// Conventions:
// - An op fails by throwing an Error whose `code` is an errno name ('ENOENT', 'EEXIST', ...), as
//   Node's fs does; the kernel then sees that errno. Any other throw answers EIO and is logged.
// - A missing op answers ENOSYS (the kernel then stops asking for some, e.g. getxattr).
// - nodeid and fh are numbers below 2^53 chosen by the file system; ino (what stat shows) may
//   use all 64 bits. Times are nanoseconds since the epoch, as bigint.
// - Timeouts of entries and attributes are in ms; when an op leaves them out, the session's
//   defaults apply.
import type { Attr, Dirent, Statfs } from './wire.js';

export type { Attr, Dirent, Statfs };

/** Who asked, and whether the kernel wants the request abandoned (FUSE_INTERRUPT). */
export interface RequestContext {
  uid: number;
  gid: number;
  pid: number;
  unique: bigint;
  /** Aborted when the kernel interrupts the request (best effort) or the session gives up on it. */
  signal: AbortSignal;
}

export interface Entry {
  nodeid: number;
  /** nodeid + generation must be unique over the file system's life; 0 when nodeids are never reused. */
  generation?: number;
  attr: Attr;
  entryTimeoutMs?: number;
  attrTimeoutMs?: number;
}

export interface AttrReply {
  attr: Attr;
  attrTimeoutMs?: number;
}

export interface OpenReply {
  fh: number;
  /** Bypass the page cache for this open file (FOPEN_DIRECT_IO). */
  directIo?: boolean;
  /** Keep the cached pages of the file from before this open (FOPEN_KEEP_CACHE). */
  keepCache?: boolean;
  nonSeekable?: boolean;
}

/** What setattr changes: only the fields present. 'now' asks for the current time. */
export interface SetattrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeNs?: bigint | 'now';
  mtimeNs?: bigint | 'now';
  ctimeNs?: bigint;
  /** The open file the change came through (ftruncate, fchmod, ...), when there is one. */
  fh?: number;
}

/** RENAME2 flags (linux/fs.h). An op that does not support a flag throws EINVAL. */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

/** The connection as negotiated at INIT, given to ops.init. */
export interface ConnectionInfo {
  major: number;
  minor: number;
  maxWrite: number;
  maxPages: number;
  maxReadahead: number;
  /** INIT flags both sides agreed on. */
  flags: number;
}

type Ctx = RequestContext;

export interface FuseOps {
  init?(conn: ConnectionInfo): void | Promise<void>;
  destroy?(): void | Promise<void>;

  lookup?(ctx: Ctx, parent: number, name: string): Promise<Entry>;
  /** No reply goes back; must not throw (a throw is logged). */
  forget?(nodeid: number, nlookup: number): void;
  getattr?(ctx: Ctx, nodeid: number, fh: number | undefined): Promise<AttrReply>;
  setattr?(ctx: Ctx, nodeid: number, changes: SetattrChanges): Promise<AttrReply>;
  readlink?(ctx: Ctx, nodeid: number): Promise<string>;
  mknod?(ctx: Ctx, parent: number, name: string, mode: number, rdev: number, umask: number): Promise<Entry>;
  mkdir?(ctx: Ctx, parent: number, name: string, mode: number, umask: number): Promise<Entry>;
  unlink?(ctx: Ctx, parent: number, name: string): Promise<void>;
  rmdir?(ctx: Ctx, parent: number, name: string): Promise<void>;
  symlink?(ctx: Ctx, parent: number, name: string, target: string): Promise<Entry>;
  rename?(ctx: Ctx, parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void>;
  link?(ctx: Ctx, nodeid: number, newParent: number, newName: string): Promise<Entry>;

  open?(ctx: Ctx, nodeid: number, flags: number): Promise<OpenReply>;
  /** Returns at most size bytes; fewer only at end of file. */
  read?(ctx: Ctx, nodeid: number, fh: number, offset: number, size: number): Promise<Buffer>;
  /** Returns the bytes written (all of them, unless an error). */
  write?(ctx: Ctx, nodeid: number, fh: number, offset: number, data: Buffer, writeFlags: number): Promise<number>;
  flush?(ctx: Ctx, nodeid: number, fh: number, lockOwner: bigint): Promise<void>;
  release?(ctx: Ctx, nodeid: number, fh: number, flags: number): Promise<void>;
  fsync?(ctx: Ctx, nodeid: number, fh: number, datasync: boolean): Promise<void>;
  create?(ctx: Ctx, parent: number, name: string, mode: number, flags: number, umask: number): Promise<{ entry: Entry; open: OpenReply }>;
  fallocate?(ctx: Ctx, nodeid: number, fh: number, offset: number, length: number, mode: number): Promise<void>;
  lseek?(ctx: Ctx, nodeid: number, fh: number, offset: number, whence: number): Promise<number>;

  opendir?(ctx: Ctx, nodeid: number, flags: number): Promise<OpenReply>;
  /**
   * Entries from `offset` on (0 = the start, else a nextOffset given before), '.' and '..'
   * included. The session packs as many as fit in maxBytes; giving more is allowed, the rest
   * is asked for again. An empty answer is the end of the directory.
   */
  readdir?(ctx: Ctx, nodeid: number, fh: number, offset: number, maxBytes: number): Promise<Dirent[]>;
  releasedir?(ctx: Ctx, nodeid: number, fh: number): Promise<void>;
  fsyncdir?(ctx: Ctx, nodeid: number, fh: number, datasync: boolean): Promise<void>;

  statfs?(ctx: Ctx, nodeid: number): Promise<Statfs>;
  setxattr?(ctx: Ctx, nodeid: number, name: string, value: Buffer, flags: number): Promise<void>;
  /** The value; throw ENODATA when the attribute does not exist. */
  getxattr?(ctx: Ctx, nodeid: number, name: string): Promise<Buffer>;
  listxattr?(ctx: Ctx, nodeid: number): Promise<string[]>;
  removexattr?(ctx: Ctx, nodeid: number, name: string): Promise<void>;
  /** Only sent when the session is mounted without default_permissions. */
  access?(ctx: Ctx, nodeid: number, mask: number): Promise<void>;
}

/** An Error with an errno name as its code, as Node's fs throws them. */
export function fuseError(code: string, message?: string): Error & { code: string } {
  return Object.assign(new Error(message ?? code), { code });
}
