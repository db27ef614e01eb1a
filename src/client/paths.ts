// Path resolution, as the Linux VFS walks a path (path_lookupat): component by component from
// the root, each asked of a WalkSource. '.' stays, '..' goes to the parent (the root's parent
// is the root), a symlink met before the last component is followed (and the last one too when
// the call follows links), at most SYMLINKS_MAX of them in one walk (ELOOP past that). A
// relative path is taken from the root (this library has no working directory).
//
// Sources: mdcSource asks the MDT for every component (MDS_GETATTR_NAME), and the MDT checks
// the caller's search permission on each directory; the mount's name cache (fs.ts, md-cache.ts)
// answers a name held under its child's LOOKUP lock with no request, as a kernel's dentry, but
// skips that check, so only a caller who may search every directory anyway (root:
// generic_permission's CAP_DAC_READ_SEARCH) walks through it. (The FUSE mount's kernel checks
// permissions itself, from attributes under locks, before it asks.)
//
// Paths come from users: checked here once (a string, no NUL, at most PATH_MAX bytes); names
// are checked by the MDT (ENAMETOOLONG, EINVAL).
import type { Mdc } from './mdc.js';
import type { Cred, MdtAttr } from '../services/mdt/protocol.js';
import { FsError } from './errors.js';

/** Linux's MAXSYMLINKS. */
export const SYMLINKS_MAX = 40;
/** Linux's PATH_MAX (bytes, with the NUL). */
export const PATH_MAX = 4096;
/** Linux's NAME_MAX: bytes of one component. */
export const NAME_MAX = 255;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export const isDir = (a: { mode: number }): boolean => (a.mode & S_IFMT) === S_IFDIR;
export const isLink = (a: { mode: number }): boolean => (a.mode & S_IFMT) === S_IFLNK;

export const MAY_EXEC = 1;
export const MAY_WRITE = 2;
export const MAY_READ = 4;

/** Linux's generic_permission over the attributes the MDT gave. */
export function permits(a: MdtAttr, cred: Cred, mask: number): boolean {
  if (cred.uid === 0) return (mask & MAY_EXEC) === 0 || isDir(a) || (a.mode & 0o111) !== 0;
  let bits: number;
  if (cred.uid === a.uid) bits = (a.mode >> 6) & 7;
  else if (cred.gid === a.gid || (cred.groups ?? []).includes(a.gid)) bits = (a.mode >> 3) & 7;
  else bits = a.mode & 7;
  return (bits & mask) === mask;
}

/** A user's path argument as a string (Buffer and file: URL accepted, as node:fs does). */
export function pathArg(p: unknown, syscall: string): string {
  let s: string;
  if (typeof p === 'string') s = p;
  else if (Buffer.isBuffer(p)) s = p.toString();
  else if (p instanceof URL && p.protocol === 'file:') s = decodeURIComponent(p.pathname);
  else throw Object.assign(new TypeError(`The "path" argument must be of type string, Buffer or URL (${syscall})`), { code: 'ERR_INVALID_ARG_TYPE' });
  if (s.includes('\0')) throw new FsError('EINVAL', syscall, s.replace(/\0/g, '\\0'), undefined, 'a path holds a NUL byte');
  if (s.length === 0) throw new FsError('ENOENT', syscall, s);
  if (Buffer.byteLength(s) >= PATH_MAX) throw new FsError('ENAMETOOLONG', syscall, s.slice(0, 64) + '...');
  return s;
}

/** Splits a path into its components ('' and '.' dropped). */
function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

export interface Resolved {
  attr: MdtAttr;
  /** The canonical path (symlinks followed, '.' and '..' gone). */
  path: string;
}

/**
 * What a walk asks: one name in a directory (with its attributes, for the object a resolve
 * ends at; or only its FID and mode, for the directories and links on the way), an object's
 * attributes, a symlink's target.
 */
export interface WalkSource {
  lookup(parent: string, name: string): Promise<MdtAttr>;
  lookupName(parent: string, name: string): Promise<WalkedDir>;
  getattr(fid: string): Promise<MdtAttr>;
  readlink(fid: string): Promise<string>;
}

/** A directory a walk went through: its FID and mode (what parent() callers use of it). */
export interface WalkedDir {
  fid: string;
  mode: number;
}

export interface ParentResolved {
  dir: WalkedDir;
  dirPath: string;
  /** The last component ('.' for the root itself). */
  name: string;
  /** The path ended with '/' (the last component must be a directory). */
  trailingSlash: boolean;
}

/** Every component asked of the MDT (MDS_GETATTR_NAME), which checks the caller's search permission. */
export function mdcSource(mdc: Mdc): WalkSource {
  return {
    lookup: (parent, name) => mdc.lookup(parent, name),
    lookupName: (parent, name) => mdc.lookup(parent, name),
    getattr: (fid) => mdc.getattr(fid),
    readlink: (fid) => mdc.readlink(fid),
  };
}

export class Walker {
  constructor(
    private readonly source: WalkSource,
    private readonly rootFid: string,
  ) {}

  /** The object at path (following a symlink at the end unless followLast is false). */
  async resolve(path: string, followLast = true, syscall = 'stat'): Promise<Resolved> {
    const trailingSlash = path.endsWith('/');
    const r = await this.#walk(components(path), followLast || trailingSlash, syscall, path, true);
    if (trailingSlash && !isDir(r.attr)) throw new FsError('ENOTDIR', syscall, path);
    return { attr: r.attr as MdtAttr, path: r.path };
  }

  /** The directory holding the last component of path, and that component's name. */
  async parent(path: string, syscall: string): Promise<ParentResolved> {
    const trailingSlash = /[^/]\/+$/.test(path);
    const parts = components(path);
    const last = parts.pop();
    if (last === undefined) {
      const root = await this.source.getattr(this.rootFid);
      return { dir: root, dirPath: '/', name: '.', trailingSlash: false };
    }
    if (Buffer.byteLength(last) > NAME_MAX) throw new FsError('ENAMETOOLONG', syscall, path, undefined, `a name of ${Buffer.byteLength(last)} bytes (at most ${NAME_MAX})`);
    const r = await this.#walk(parts, true, syscall, path, false);
    if (!isDir(r.attr)) throw new FsError('ENOTDIR', syscall, path);
    return { dir: r.attr, dirPath: r.path, name: last, trailingSlash };
  }

  /** The walk; `attrs`: the object it ends at comes with its attributes (else FID and mode). */
  async #walk(todo: string[], followLast: boolean, syscall: string, path: string, attrs: boolean): Promise<{ attr: MdtAttr | WalkedDir; path: string }> {
    let cur: MdtAttr | WalkedDir | undefined;
    let curFid = this.rootFid;
    const canonical: string[] = [];
    const queue = [...todo];
    let links = 0;
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '..') {
        if (canonical.length === 0) continue;
        cur = await this.source.lookup(curFid, '..');
        curFid = cur.fid;
        canonical.pop();
        continue;
      }
      const last = queue.length === 0;
      const a = last && attrs ? await this.source.lookup(curFid, name) : await this.source.lookupName(curFid, name);
      if (isLink(a) && (!last || followLast)) {
        if (++links > SYMLINKS_MAX) throw new FsError('ELOOP', syscall, path);
        const target = await this.source.readlink(a.fid);
        if (target.startsWith('/')) {
          curFid = this.rootFid;
          cur = undefined;
          canonical.length = 0;
        }
        queue.unshift(...components(target));
        continue;
      }
      if (!last && !isDir(a)) throw new FsError('ENOTDIR', syscall, path);
      cur = a;
      curFid = a.fid;
      canonical.push(name);
    }
    return { attr: cur ?? (await this.source.getattr(curFid)), path: '/' + canonical.join('/') };
  }
}
