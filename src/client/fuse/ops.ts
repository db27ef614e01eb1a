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
//
// Locks (getlk, setlk): with both ops the session offers the kernel remote POSIX locks
// (FUSE_POSIX_LOCKS: fcntl F_GETLK/F_SETLK/F_SETLKW and lockf come here instead of staying in this
// kernel), and with setlk BSD locks (FUSE_FLOCK_LOCKS: flock() comes to setlk with `flock`);
// without them the kernel keeps such locks to itself, visible to this mount only. A lock is
// named by its owner (a bigint the kernel chose: the same for every request of one process's
// POSIX locks, or of one open file's flock), not by fh: POSIX locks belong to the process and to
// the inode, whatever descriptor took them. What the kernel leaves to the file system, the session
// does for it: when a descriptor is closed (FLUSH) it calls setlk(unlock of the whole file,
// { close: true }) for the closer's POSIX locks, after flush; when the last descriptor of an open
// file that took a flock() goes (RELEASE with FUSE_RELEASE_FLOCK_UNLOCK) it calls setlk(unlock,
// { flock: true, close: true }) before release. flush and release see the same owner.
import type { Attr, Dirent, FileLock, LockType, Statfs } from './wire.js';

export type { Attr, Dirent, FileLock, LockType, Statfs };

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

/** How a setlk was asked. */
export interface SetlkOptions {
  /**
   * SETLKW (F_SETLKW, flock without LOCK_NB): wait until the lock can be had; throw EINTR when
   * ctx.signal aborts first (the caller got a signal or was killed), and hold nothing then.
   * Without wait (SETLK), a conflict throws EAGAIN at once. A wait has no op timeout.
   */
  wait: boolean;
  /** A BSD flock() (FUSE_LK_FLOCK): a whole-file lock owned by the open file, not by the process. */
  flock: boolean;
  /**
   * An unlock the session sends at close (FLUSH, or RELEASE of a file that took a flock):
   * every close() of a file of this file system sends one, so it must be cheap when the owner
   * holds nothing on the file.
   */
  close: boolean;
}

/** What RELEASE tells beyond the fh and the open flags. */
export interface ReleaseInfo {
  /** FUSE_RELEASE_FLUSH: the release stands for a flush too. */
  flush: boolean;
  /** FUSE_RELEASE_FLOCK_UNLOCK: the owner whose flock() locks end with this open file (already unlocked through setlk when there is one). */
  flockOwner?: bigint;
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
  /** Each close() of a descriptor; lockOwner is the closer's POSIX lock owner (its locks on the file end now). */
  flush?(ctx: Ctx, nodeid: number, fh: number, lockOwner: bigint): Promise<void>;
  /** The last close of an open file; its answer is not awaited by any caller. */
  release?(ctx: Ctx, nodeid: number, fh: number, flags: number, info: ReleaseInfo): Promise<void>;
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

  /**
   * F_GETLK: a lock held by another owner that conflicts with `lock` (its type 'read' or
   * 'write', its range and holder's pid), or null when `lock` could be taken. Offered to the
   * kernel (FUSE_POSIX_LOCKS) only together with setlk.
   */
  getlk?(ctx: Ctx, nodeid: number, fh: number, owner: bigint, lock: FileLock): Promise<FileLock | null>;
  /**
   * Takes, changes or ends (type 'unlock') the owner's lock on lock.start..lock.end, POSIX
   * fashion: a new lock replaces and splits the owner's own locks over the range; an unlock of
   * a range the owner does not hold succeeds. Throws EAGAIN on a conflict without opts.wait,
   * EDEADLK when waiting would close a cycle of waiters, EINTR when a wait is interrupted.
   */
  setlk?(ctx: Ctx, nodeid: number, fh: number, owner: bigint, lock: FileLock, opts: SetlkOptions): Promise<void>;
}

/** Whether the ops serve POSIX (fcntl) locks: getlk and setlk both. */
export function servesPosixLocks(ops: FuseOps): boolean {
  return typeof ops.getlk === 'function' && typeof ops.setlk === 'function';
}

/** Whether the ops serve BSD flock() locks: setlk. */
export function servesFlockLocks(ops: FuseOps): boolean {
  return typeof ops.setlk === 'function';
}

/** An Error with an errno name as its code, as Node's fs throws them. */
export function fuseError(code: string, message?: string): Error & { code: string } {
  return Object.assign(new Error(message ?? code), { code });
}
