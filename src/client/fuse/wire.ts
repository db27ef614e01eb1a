// The FUSE kernel protocol as it crosses /dev/fuse: the headers, the request bodies and the reply
// bodies of the opcodes this package serves, decoded and encoded here and nowhere else.
//
// Facts restated from Linux's include/uapi/linux/fuse.h (protocol 7.x; this package answers INIT
// with minor FUSE_MINOR = 32 whatever larger minor the kernel offers, so the kernel speaks 7.32
// layouts to it). Every integer is little-endian on the machines we run on (the header is in host
// byte order; FUSE_INIT_BSWAP_RESERVED exists so that a peer of the other endianness is noticed).
// All structs are padded to 8 bytes.
//
// One read() of /dev/fuse returns exactly one request:
//   fuse_in_header (40 bytes)
//     0 u32 len      whole request, header included; must equal the bytes read
//     4 u32 opcode
//     8 u64 unique   the request's id; the reply carries it back; 0 never names a request
//    16 u64 nodeid   the inode the request is about (1 = FUSE_ROOT_ID, the mount's root)
//    24 u32 uid, 28 u32 gid, 32 u32 pid   the caller
//    36 u32 padding
//   then the opcode's body. One write() of /dev/fuse carries one whole reply:
//   fuse_out_header (16 bytes)
//     0 u32 len      whole reply, header included
//     4 i32 error    0 or a negative errno; a reply with an error has no body
//     8 u64 unique
//
// Request bodies (offsets within the body; "name" = a NUL-terminated string):
//   LOOKUP 1, UNLINK 10, RMDIR 11, REMOVEXATTR 24:  name
//   FORGET 2 (no reply):   fuse_forget_in      { 0 u64 nlookup }                          8
//   BATCH_FORGET 42 (no reply): fuse_batch_forget_in { 0 u32 count, 4 u32 dummy } then count x
//                          fuse_forget_one { 0 u64 nodeid, 8 u64 nlookup }                16 each
//   GETATTR 3:             fuse_getattr_in     { 0 u32 getattr_flags (1 = FUSE_GETATTR_FH),
//                                                4 u32 dummy, 8 u64 fh }                   16
//   SETATTR 4:             fuse_setattr_in     { 0 u32 valid (FATTR_*), 4 pad, 8 u64 fh,
//                          16 u64 size, 24 u64 lock_owner, 32 u64 atime, 40 u64 mtime,
//                          48 u64 ctime, 56 u32 atimensec, 60 u32 mtimensec, 64 u32 ctimensec,
//                          68 u32 mode, 72 u32 unused4, 76 u32 uid, 80 u32 gid, 84 unused5 }  88
//   READLINK 5, STATFS 17, DESTROY 38: no body
//   SYMLINK 6:             name (the link's name), then name (its target)
//   MKNOD 8:               fuse_mknod_in       { 0 u32 mode, 4 u32 rdev, 8 u32 umask, 12 pad } 16, name
//   MKDIR 9:               fuse_mkdir_in       { 0 u32 mode, 4 u32 umask }                 8, name
//   RENAME 12:             fuse_rename_in      { 0 u64 newdir }                            8, old name, new name
//   RENAME2 45:            fuse_rename2_in     { 0 u64 newdir, 8 u32 flags, 12 pad }      16, old name, new name
//   LINK 13:               fuse_link_in        { 0 u64 oldnodeid }                         8, new name
//   OPEN 14, OPENDIR 27:   fuse_open_in        { 0 u32 flags, 4 u32 unused }               8
//   READ 15, READDIR 28, READDIRPLUS 44: fuse_read_in { 0 u64 fh, 8 u64 offset, 16 u32 size,
//                          20 u32 read_flags, 24 u64 lock_owner, 32 u32 flags, 36 pad }   40
//   WRITE 16:              fuse_write_in       { 0 u64 fh, 8 u64 offset, 16 u32 size,
//                          20 u32 write_flags, 24 u64 lock_owner, 32 u32 flags, 36 pad }  40,
//                          then exactly size bytes of data
//   RELEASE 18, RELEASEDIR 29: fuse_release_in { 0 u64 fh, 8 u32 flags, 12 u32 release_flags,
//                          16 u64 lock_owner }                                             24
//   FSYNC 20, FSYNCDIR 30: fuse_fsync_in       { 0 u64 fh, 8 u32 fsync_flags (1 = FDATASYNC), 12 pad } 16
//   SETXATTR 21:           fuse_setxattr_in    { 0 u32 size, 4 u32 flags }                 8, name, size bytes of value
//   GETXATTR 22:           fuse_getxattr_in    { 0 u32 size, 4 pad }                       8, name
//   LISTXATTR 23:          fuse_getxattr_in                                                 8
//   FLUSH 25:              fuse_flush_in       { 0 u64 fh, 8 u32 unused, 12 pad, 16 u64 lock_owner } 24
//   INIT 26:               fuse_init_in        { 0 u32 major, 4 u32 minor, 8 u32 max_readahead,
//                          12 u32 flags, 16 u32 flags2 (7.36+), 20 unused[11] }            16 at least
//   ACCESS 34:             fuse_access_in      { 0 u32 mask, 4 pad }                       8
//   CREATE 35:             fuse_create_in      { 0 u32 flags, 4 u32 mode, 8 u32 umask, 12 pad } 16, name
//   INTERRUPT 36 (no reply of its own): fuse_interrupt_in { 0 u64 unique }                 8
//   FALLOCATE 43:          fuse_fallocate_in   { 0 u64 fh, 8 u64 offset, 16 u64 length, 24 u32 mode, 28 pad } 32
//   LSEEK 46:              fuse_lseek_in       { 0 u64 fh, 8 u64 offset, 16 u32 whence, 20 pad } 24
//   GETLK 31, SETLK 32, SETLKW 33: fuse_lk_in  { 0 u64 fh, 8 u64 owner, 16 fuse_file_lock lk,
//                          40 u32 lk_flags (1 = FUSE_LK_FLOCK: a BSD flock(), not a POSIX lock), 44 pad } 48
//     fuse_file_lock (24): { 0 u64 start, 8 u64 end, 16 u32 type, 20 u32 pid }: bytes start..end
//                          inclusive, end = OFFSET_MAX (2^63 - 1) for "to the end of the file, however
//                          far"; type F_RDLCK 0, F_WRLCK 1, F_UNLCK 2 (Linux's values); pid the caller's
//                          process (thread group) id, 0 in an unlock. owner names the lock owner: a
//                          scramble of the caller's file table (POSIX locks) or of the open file
//                          (flock), the same for every request of that owner. SETLKW waits for the
//                          lock; SETLK fails EAGAIN instead. A flock() is start 0, end OFFSET_MAX.
//   RELEASE's release_flags: 1 = FUSE_RELEASE_FLUSH, 2 = FUSE_RELEASE_FLOCK_UNLOCK (lock_owner is then
//                          the owner whose flock() locks end with this open file: the kernel keeps no
//                          record of them when the file system serves flock).
//   FLUSH's lock_owner: the owner of the caller's POSIX locks (every close() sends one; with
//                          FUSE_POSIX_LOCKS the kernel leaves their release at close to the file system).
//
// Reply bodies:
//   fuse_attr (88): 0 u64 ino, 8 u64 size, 16 u64 blocks, 24 u64 atime, 32 u64 mtime, 40 u64 ctime,
//     48 u32 atimensec, 52 u32 mtimensec, 56 u32 ctimensec, 60 u32 mode, 64 u32 nlink, 68 u32 uid,
//     72 u32 gid, 76 u32 rdev, 80 u32 blksize, 84 u32 flags
//   fuse_entry_out (128): 0 u64 nodeid, 8 u64 generation, 16 u64 entry_valid, 24 u64 attr_valid,
//     32 u32 entry_valid_nsec, 36 u32 attr_valid_nsec, 40 fuse_attr        (LOOKUP, MKNOD, MKDIR,
//     SYMLINK, LINK; nodeid 0 is a negative entry, cached for entry_valid)
//   fuse_attr_out (104): 0 u64 attr_valid, 8 u32 attr_valid_nsec, 12 u32 dummy, 16 fuse_attr
//   fuse_open_out (16): 0 u64 fh, 8 u32 open_flags (FOPEN_*), 12 pad
//   CREATE: fuse_entry_out then fuse_open_out (144)
//   fuse_write_out (8): 0 u32 size, 4 pad
//   fuse_statfs_out = fuse_kstatfs (80): 0 u64 blocks, 8 u64 bfree, 16 u64 bavail, 24 u64 files,
//     32 u64 ffree, 40 u32 bsize, 44 u32 namelen, 48 u32 frsize, 52 pad, 56 u32 spare[6]
//   fuse_getxattr_out (8): 0 u32 size, 4 pad   (GETXATTR/LISTXATTR asked with size 0)
//   fuse_lseek_out (8): 0 u64 offset
//   fuse_lk_out (24): fuse_file_lock: the lock that conflicts with the one asked about (GETLK), or
//     type F_UNLCK when none does (the other fields are then not read). The kernel refuses (EIO) a
//     conflicting lock whose end is below its start or above OFFSET_MAX.
//   READ, READLINK, GETXATTR and LISTXATTR (size > 0): the bytes themselves
//   READDIR: fuse_dirent records, each { 0 u64 ino, 8 u64 off, 16 u32 namelen, 20 u32 type,
//     24 name (not NUL-terminated) } padded to 8 bytes; off is the offset of the NEXT entry, the
//     one the kernel passes back to continue; type is the S_IFMT bits of the mode >> 12.
//   fuse_init_out (64): 0 u32 major, 4 u32 minor, 8 u32 max_readahead, 12 u32 flags,
//     16 u16 max_background, 18 u16 congestion_threshold, 20 u32 max_write, 24 u32 time_gran,
//     28 u16 max_pages, 30 u16 map_alignment, 32 u32 flags2, 36 unused[7]
//
// Notifications: a message the file system writes to /dev/fuse unasked, to drop what the kernel
// caches. A fuse_out_header with unique 0 and error = the notify code, then its body; the kernel
// answers through the write() itself: it returns the bytes written, or fails with the errno
// (ENOENT: nothing of that is cached; EINVAL: a malformed body).
//   FUSE_NOTIFY_INVAL_INODE 2: fuse_notify_inval_inode_out { 0 u64 ino (the nodeid), 8 i64 off,
//     16 i64 len } 24: drops the cached attributes, and the cached pages from off for len bytes
//     (len <= 0: to the end); off < 0 drops the attributes only.
//   FUSE_NOTIFY_INVAL_ENTRY 3: fuse_notify_inval_entry_out { 0 u64 parent, 8 u32 namelen, 12 u32 flags
//     (0: padding before 7.38) } 16, then the name and a NUL (namelen counts the name without it):
//     drops the cached name parent/name (and a negative entry of it).
//   (POLL 1, STORE 4, RETRIEVE 5, DELETE 6 are not sent by this package.)
//
// What makes a request valid here: at least 40 bytes; len equal to the bytes read; the body at
// least as long as the opcode's struct; every name NUL-terminated inside the body; a WRITE's data
// exactly its size; a lock of type F_RDLCK, F_WRLCK or F_UNLCK with start <= end <= OFFSET_MAX; nodeids and file handles below 2^53 (this package hands out only such). A
// request that breaks one of these is a WireError; the session answers it EIO and logs it.

export const FUSE_KERNEL_VERSION = 7;
/** The minor this package speaks: the layouts above. */
export const FUSE_MINOR = 32;
export const FUSE_ROOT_ID = 1;
export const IN_HEADER_BYTES = 40;
export const OUT_HEADER_BYTES = 16;
export const ATTR_BYTES = 88;
export const ENTRY_OUT_BYTES = 128;
export const ATTR_OUT_BYTES = 104;
export const OPEN_OUT_BYTES = 16;
export const STATFS_OUT_BYTES = 80;
export const INIT_OUT_BYTES = 64;
export const DIRENT_BYTES = 24;
export const LK_IN_BYTES = 48;
export const LK_OUT_BYTES = 24;
export const NOTIFY_INVAL_INODE_BYTES = 24;
export const NOTIFY_INVAL_ENTRY_BYTES = 16;
/** The kernel's limit on a notified name (FUSE_NAME_MAX); a real name is at most 255 bytes. */
export const FUSE_NAME_MAX = 1024;
/** fuse_file_lock.end of a lock that runs to the end of the file, however far it grows. */
export const OFFSET_MAX = 0x7fff_ffff_ffff_ffffn;
/** The kernel refuses a read of /dev/fuse into a buffer smaller than this. */
export const FUSE_MIN_READ_BUFFER = 8192;

export const Opcode = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32,
  SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40,
  NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
  COPY_FILE_RANGE: 47,
} as const;

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const InitFlag = {
  ASYNC_READ: 1 << 0, POSIX_LOCKS: 1 << 1, ATOMIC_O_TRUNC: 1 << 3, EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5, DONT_MASK: 1 << 6, FLOCK_LOCKS: 1 << 10, AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13, READDIRPLUS_AUTO: 1 << 14, ASYNC_DIO: 1 << 15, WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18, HANDLE_KILLPRIV: 1 << 19, POSIX_ACL: 1 << 20, ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22, CACHE_SYMLINKS: 1 << 23,
} as const;

/** fuse_setattr_in.valid bits. */
export const Fattr = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10,
} as const;

/** fuse_open_out.open_flags. */
export const FopenFlag = { DIRECT_IO: 1 << 0, KEEP_CACHE: 1 << 1, NONSEEKABLE: 1 << 2, CACHE_DIR: 1 << 3 } as const;

/** fuse_write_in.write_flags. KILL_SUIDGID: the writer may not keep setuid and setgid bits (no CAP_FSETID). */
export const WriteFlag = { CACHE: 1 << 0, LOCKOWNER: 1 << 1, KILL_SUIDGID: 1 << 2 } as const;

export const FUSE_GETATTR_FH = 1;
/** fuse_lk_in.lk_flags: the lock is a BSD flock(), not a POSIX (fcntl) lock. */
export const FUSE_LK_FLOCK = 1;
/** fuse_release_in.release_flags. */
export const ReleaseFlag = { FLUSH: 1 << 0, FLOCK_UNLOCK: 1 << 1 } as const;
/** fuse_out_header.error of a notification (unique 0). */
export const NotifyCode = { POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6 } as const;
/** fuse_file_lock.type: Linux's F_RDLCK, F_WRLCK, F_UNLCK. */
const LOCK_TYPES = ['read', 'write', 'unlock'] as const;
export const FUSE_FSYNC_FDATASYNC = 1;

/** A request that breaks the protocol: answered EIO by the session, never thrown past it. */
export class WireError extends Error {
  readonly code = 'EPROTO';
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

/** Attributes as the ops give them. Times are nanoseconds since the epoch (bigint, exact). */
export interface Attr {
  /** The inode number stat() shows; may use all 64 bits. */
  ino: number | bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  blksize: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** A shared (F_RDLCK) or exclusive (F_WRLCK) lock, or the end of one (F_UNLCK). */
export type LockType = (typeof LOCK_TYPES)[number];

/** fuse_file_lock: a byte range lock as the kernel asks for it or is told of it. */
export interface FileLock {
  /** First byte. */
  start: bigint;
  /** Last byte, inclusive; OFFSET_MAX for "to the end of the file". */
  end: bigint;
  type: LockType;
  /** The process that holds or asks (its thread group id); 0 in an unlock or when not known. */
  pid: number;
}

const MAX_ID = BigInt(Number.MAX_SAFE_INTEGER);
const NS_PER_S = 1_000_000_000n;

function readId(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > MAX_ID) throw new WireError(`${what} ${v} is above 2^53`);
  return Number(v);
}

export function decodeInHeader(b: Buffer): InHeader {
  if (b.length < IN_HEADER_BYTES) throw new WireError(`request of ${b.length} bytes is shorter than fuse_in_header`);
  const len = b.readUInt32LE(0);
  if (len !== b.length) throw new WireError(`fuse_in_header.len ${len} but ${b.length} bytes read`);
  return {
    len, opcode: b.readUInt32LE(4), unique: b.readBigUInt64LE(8), nodeid: readId(b, 16, 'nodeid'),
    uid: b.readUInt32LE(24), gid: b.readUInt32LE(28), pid: b.readUInt32LE(32),
  };
}

/** Reads a request body: fixed fields with bounds checks, then NUL-terminated names. */
export class BodyReader {
  private at = 0;
  constructor(private readonly b: Buffer, private readonly what: string) {}

  /** Requires `bytes` of fixed struct at the start of the body. */
  struct(bytes: number): this {
    if (this.b.length < bytes) throw new WireError(`${this.what}: body of ${this.b.length} bytes, struct needs ${bytes}`);
    this.at = bytes;
    return this;
  }
  u32(off: number): number { return this.b.readUInt32LE(off); }
  u64(off: number): number {
    const v = this.b.readBigUInt64LE(off);
    if (v > MAX_ID) throw new WireError(`${this.what}: field at ${off} (${v}) is above 2^53`);
    return Number(v);
  }
  big(off: number): bigint { return this.b.readBigUInt64LE(off); }
  name(): string {
    const end = this.b.indexOf(0, this.at);
    if (end < 0) throw new WireError(`${this.what}: name not NUL-terminated`);
    const s = this.b.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  /** The raw bytes of a name (xattr names, symlink targets may not be UTF-8; kept as given). */
  rest(bytes: number): Buffer {
    if (this.at + bytes > this.b.length) throw new WireError(`${this.what}: ${bytes} bytes of data but ${this.b.length - this.at} left`);
    const out = this.b.subarray(this.at, this.at + bytes);
    this.at += bytes;
    return out;
  }
  remaining(): number { return this.b.length - this.at; }
}

// ---- replies ----

export function outHeader(totalLen: number, error: number, unique: bigint): Buffer {
  const h = Buffer.allocUnsafe(OUT_HEADER_BYTES);
  h.writeUInt32LE(totalLen, 0);
  h.writeInt32LE(error, 4);
  h.writeBigUInt64LE(unique, 8);
  return h;
}

/** A reply with no body: errno > 0 answers -errno, 0 answers success. */
export function encodeError(unique: bigint, errno: number): Buffer {
  return outHeader(OUT_HEADER_BYTES, -errno, unique);
}

function splitNs(ns: bigint): [bigint, number] {
  const clamped = ns < 0n ? 0n : ns;
  return [clamped / NS_PER_S, Number(clamped % NS_PER_S)];
}

export function writeAttr(b: Buffer, at: number, a: Attr): void {
  b.writeBigUInt64LE(BigInt(a.ino), at);
  b.writeBigUInt64LE(BigInt(a.size), at + 8);
  b.writeBigUInt64LE(BigInt(a.blocks), at + 16);
  const [as, ans] = splitNs(a.atimeNs);
  const [ms, mns] = splitNs(a.mtimeNs);
  const [cs, cns] = splitNs(a.ctimeNs);
  b.writeBigUInt64LE(as, at + 24);
  b.writeBigUInt64LE(ms, at + 32);
  b.writeBigUInt64LE(cs, at + 40);
  b.writeUInt32LE(ans, at + 48);
  b.writeUInt32LE(mns, at + 52);
  b.writeUInt32LE(cns, at + 56);
  b.writeUInt32LE(a.mode >>> 0, at + 60);
  b.writeUInt32LE(a.nlink >>> 0, at + 64);
  b.writeUInt32LE(a.uid >>> 0, at + 68);
  b.writeUInt32LE(a.gid >>> 0, at + 72);
  b.writeUInt32LE(a.rdev >>> 0, at + 76);
  b.writeUInt32LE(a.blksize >>> 0, at + 80);
  b.writeUInt32LE(0, at + 84);
}

function writeValidity(b: Buffer, secAt: number, nsecAt: number, ms: number): void {
  const ns = BigInt(Math.max(0, Math.round(ms * 1e6)));
  const [s, n] = splitNs(ns);
  b.writeBigUInt64LE(s, secAt);
  b.writeUInt32LE(n, nsecAt);
}

export interface EntryOut { nodeid: number; generation: number; attr: Attr; entryTimeoutMs: number; attrTimeoutMs: number }

export function writeEntryOut(b: Buffer, at: number, e: EntryOut): void {
  b.writeBigUInt64LE(BigInt(e.nodeid), at);
  b.writeBigUInt64LE(BigInt(e.generation), at + 8);
  writeValidity(b, at + 16, at + 32, e.entryTimeoutMs);
  writeValidity(b, at + 24, at + 36, e.attrTimeoutMs);
  writeAttr(b, at + 40, e.attr);
}

export function encodeEntryOut(e: EntryOut): Buffer {
  const b = Buffer.alloc(ENTRY_OUT_BYTES);
  writeEntryOut(b, 0, e);
  return b;
}

export function encodeAttrOut(attr: Attr, attrTimeoutMs: number): Buffer {
  const b = Buffer.alloc(ATTR_OUT_BYTES);
  writeValidity(b, 0, 8, attrTimeoutMs);
  writeAttr(b, 16, attr);
  return b;
}

export function encodeOpenOut(fh: number, openFlags: number): Buffer {
  const b = Buffer.alloc(OPEN_OUT_BYTES);
  b.writeBigUInt64LE(BigInt(fh), 0);
  b.writeUInt32LE(openFlags >>> 0, 8);
  return b;
}

export function encodeCreateOut(e: EntryOut, fh: number, openFlags: number): Buffer {
  return Buffer.concat([encodeEntryOut(e), encodeOpenOut(fh, openFlags)]);
}

/** fuse_write_out, fuse_getxattr_out: one u32 and padding. */
export function encodeSizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size >>> 0, 0);
  return b;
}

export function encodeLseekOut(offset: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(offset), 0);
  return b;
}

export interface Statfs { blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number; frsize: number }

export function encodeStatfsOut(s: Statfs): Buffer {
  const b = Buffer.alloc(STATFS_OUT_BYTES);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  b.writeBigUInt64LE(BigInt(s.bfree), 8);
  b.writeBigUInt64LE(BigInt(s.bavail), 16);
  b.writeBigUInt64LE(BigInt(s.files), 24);
  b.writeBigUInt64LE(BigInt(s.ffree), 32);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

export interface InitIn { major: number; minor: number; maxReadahead: number; flags: number }

export function decodeInitIn(body: Buffer): InitIn {
  const r = new BodyReader(body, 'INIT').struct(16);
  return { major: r.u32(0), minor: r.u32(4), maxReadahead: r.u32(8), flags: r.u32(12) };
}

export interface InitOut {
  major: number; minor: number; maxReadahead: number; flags: number; maxBackground: number;
  congestionThreshold: number; maxWrite: number; timeGran: number; maxPages: number;
}

export function encodeInitOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT_BYTES);
  b.writeUInt32LE(o.major, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(o.flags >>> 0, 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(o.timeGran, 24);
  b.writeUInt16LE(o.maxPages, 28);
  return b;
}

export interface Dirent { ino: number | bigint; name: string; /** S_IFMT bits of the mode. */ type: number; /** Offset of the entry after this one. */ nextOffset: number }

/** Bytes one dirent takes: header, name, padding to 8. */
export function direntBytes(nameBytes: number): number {
  return (DIRENT_BYTES + nameBytes + 7) & ~7;
}

/** Packs as many entries as fit in maxBytes, in order; the kernel asks again from the last one's nextOffset. */
export function encodeDirents(entries: readonly Dirent[], maxBytes: number): Buffer {
  const names = entries.map((e) => Buffer.from(e.name));
  let total = 0;
  let count = 0;
  for (const n of names) {
    const size = direntBytes(n.length);
    if (total + size > maxBytes) break;
    total += size;
    count++;
  }
  const b = Buffer.alloc(total);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const e = entries[i]!;
    const n = names[i]!;
    b.writeBigUInt64LE(BigInt(e.ino), at);
    b.writeBigUInt64LE(BigInt(e.nextOffset), at + 8);
    b.writeUInt32LE(n.length, at + 16);
    b.writeUInt32LE((e.type & 0o170000) >>> 12, at + 20);
    n.copy(b, at + DIRENT_BYTES);
    at += direntBytes(n.length);
  }
  return b;
}

// ---- locks ----

export interface LkIn {
  fh: number;
  owner: bigint;
  lock: FileLock;
  /** FUSE_LK_FLOCK: a flock(), whose owner is the open file. */
  flock: boolean;
}

/** fuse_lk_in of GETLK, SETLK and SETLKW. */
export function decodeLkIn(body: Buffer, what = 'LK'): LkIn {
  const r = new BodyReader(body, what).struct(LK_IN_BYTES);
  const start = r.big(16);
  const end = r.big(24);
  const code = r.u32(32);
  const type = LOCK_TYPES[code];
  if (type === undefined) throw new WireError(`${what}: lock type ${code} is none of F_RDLCK, F_WRLCK, F_UNLCK`);
  if (end > OFFSET_MAX || start > end) throw new WireError(`${what}: lock range ${start}..${end} is not one`);
  return { fh: r.u64(0), owner: r.big(8), lock: { start, end, type, pid: r.u32(36) }, flock: (r.u32(40) & FUSE_LK_FLOCK) !== 0 };
}

/** fuse_lk_out: the lock that conflicts, or F_UNLCK (with the range asked about) when none does. */
export function encodeLkOut(lock: FileLock): Buffer {
  const b = Buffer.alloc(LK_OUT_BYTES);
  b.writeBigUInt64LE(lock.start, 0);
  b.writeBigUInt64LE(lock.end, 8);
  b.writeUInt32LE(LOCK_TYPES.indexOf(lock.type), 16);
  b.writeUInt32LE(lock.pid >>> 0, 20);
  return b;
}

// ---- notifications ----

/** FUSE_NOTIFY_INVAL_INODE, header included. offset < 0: the attributes only; length <= 0: to the end. */
export function encodeNotifyInvalInode(nodeid: number, offset: number, length: number): Buffer {
  const len = OUT_HEADER_BYTES + NOTIFY_INVAL_INODE_BYTES;
  const b = Buffer.alloc(len);
  outHeader(len, NotifyCode.INVAL_INODE, 0n).copy(b, 0);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeBigInt64LE(BigInt(offset), 24);
  b.writeBigInt64LE(BigInt(length), 32);
  return b;
}

/** FUSE_NOTIFY_INVAL_ENTRY, header included: the name's bytes then a NUL. */
export function encodeNotifyInvalEntry(parent: number, name: Buffer): Buffer {
  const len = OUT_HEADER_BYTES + NOTIFY_INVAL_ENTRY_BYTES + name.length + 1;
  const b = Buffer.alloc(len);
  outHeader(len, NotifyCode.INVAL_ENTRY, 0n).copy(b, 0);
  b.writeBigUInt64LE(BigInt(parent), 16);
  b.writeUInt32LE(name.length, 24);
  name.copy(b, 32);
  return b;
}
