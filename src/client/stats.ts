// What stat, statfs and readdir answer, shaped as node:fs's Stats, StatFs and Dirent.
//
// st_ino is Lustre's fid_flatten32 of the FID (what a Lustre client gives 32-bit callers): the
// 64-bit fid_flatten of a normal FID needs 58 bits, more than a JavaScript number holds
// exactly; `fid` carries the FID itself. st_dev is derived from the fsname. st_blksize is the
// I/O size a Lustre client advertises (1 << LL_MAX_BLKSIZE_BITS, 4 MiB). Times are seconds on the
// wire (fractions allowed) and milliseconds here, as Node gives them.
import { parseFid, type Fid } from '../osd/index.js';
import { S_IFMT, type DirEntry, type MdtAttr } from '../services/mdt/protocol.js';

/** LL_MAX_BLKSIZE_BITS: st_blksize of every Lustre file. */
export const LL_BLKSIZE = 1 << 22;
/** LL_SUPER_MAGIC: f_type of a Lustre file system. */
export const LL_SUPER_MAGIC = 0x0bd00bd0;
const FID_SEQ_START = 0x200000000;

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

/** Lustre's fid_flatten32 (lustre_fid.h), with JavaScript's unsigned 32-bit arithmetic. */
export function fidFlatten32(f: Fid): number {
  const seq = BigInt(f.seq) - BigInt(FID_SEQ_START);
  const oid = BigInt(f.oid);
  const ino = (((seq & 0xfffffn) << 12n) + ((seq >> 8n) & 0xfffff000n) + ((seq >> 32n) & 0xffffff00n)
    + (oid & 0xff000fffn) + ((oid & 0x00fff000n) << 8n)) & 0xffffffffn;
  return ino !== 0n ? Number(ino) : f.oid;
}

/** st_dev: a stable number for a file system name (FNV-1a, 32 bits). */
export function devOf(fsname: string): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(fsname)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

abstract class TypeTests {
  protected abstract typeBits(): number;
  isFile(): boolean { return this.typeBits() === S_IFREG; }
  isDirectory(): boolean { return this.typeBits() === S_IFDIR; }
  isSymbolicLink(): boolean { return this.typeBits() === S_IFLNK; }
  isCharacterDevice(): boolean { return this.typeBits() === S_IFCHR; }
  isBlockDevice(): boolean { return this.typeBits() === S_IFBLK; }
  isFIFO(): boolean { return this.typeBits() === S_IFIFO; }
  isSocket(): boolean { return this.typeBits() === S_IFSOCK; }
}

/** The data side of a regular file: what the OST objects say (Lov.getattr), merged over the MDT's. */
export interface DataAttrs {
  size: number;
  blocks: number;
  mtime: number;
  atime: number;
  ctime: number;
}

export class Stats extends TypeTests {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  birthtimeMs: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
  birthtime: Date;
  /** The file's FID, Lustre's identity of it ('[0x200000400:0x1:0x0]'). */
  fid: string;

  /** The MDT's attributes, with size, blocks and times from the OSTs when given (ll_merge_attr). */
  constructor(a: MdtAttr, dev: number, data?: DataAttrs) {
    super();
    const seconds = {
      atime: Math.max(a.atime, data?.atime ?? 0), mtime: Math.max(a.mtime, data?.mtime ?? 0), ctime: Math.max(a.ctime, data?.ctime ?? 0),
    };
    this.dev = dev;
    this.ino = fidFlatten32(parseFid(a.fid));
    this.mode = a.mode;
    this.nlink = a.nlink;
    this.uid = a.uid;
    this.gid = a.gid;
    this.rdev = a.rdev;
    this.size = data ? data.size : a.size;
    this.blksize = LL_BLKSIZE;
    this.blocks = data ? data.blocks : a.blocks;
    this.atimeMs = seconds.atime * 1000;
    this.mtimeMs = seconds.mtime * 1000;
    this.ctimeMs = seconds.ctime * 1000;
    this.birthtimeMs = this.ctimeMs;
    this.atime = new Date(this.atimeMs);
    this.mtime = new Date(this.mtimeMs);
    this.ctime = new Date(this.ctimeMs);
    this.birthtime = new Date(this.birthtimeMs);
    this.fid = a.fid;
  }

  protected typeBits(): number {
    return this.mode & S_IFMT;
  }
}

const TYPE_OF_ENTRY: Record<DirEntry['type'], number> = {
  reg: S_IFREG, dir: S_IFDIR, lnk: S_IFLNK, chr: S_IFCHR, blk: S_IFBLK, fifo: S_IFIFO, sock: S_IFSOCK, idx: 0,
};

export class Dirent extends TypeTests {
  readonly name: string;
  /** The directory read (Node's dirent.path / parentPath). */
  readonly path: string;
  readonly parentPath: string;
  readonly fid: string;
  readonly #bits: number;

  constructor(e: DirEntry, dir: string) {
    super();
    this.name = e.name;
    this.path = dir;
    this.parentPath = dir;
    this.fid = e.fid;
    this.#bits = TYPE_OF_ENTRY[e.type];
  }

  protected typeBits(): number {
    return this.#bits;
  }
}

/** node:fs's StatFs (statfs(2)'s fields). */
export interface StatFs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}
