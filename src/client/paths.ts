// Path resolution, as the Linux VFS walks a path (path_lookupat): component by component from
// the root through the MDT (one MDS_GETATTR_NAME each, nothing cached: until locks exist every
// walk revalidates with the server). '.' stays, '..' goes to the parent (the root's parent is
// the root), a symlink met before the last component is followed (and the last one too when
// the call follows links), at most SYMLINKS_MAX of them in one walk (ELOOP past that). A
// relative path is taken from the root (this library has no working directory).
//
// Paths come from users: checked here once (a string, no NUL, at most PATH_MAX bytes); names
// are checked by the MDT (ENAMETOOLONG, EINVAL).
import type { Mdc } from './mdc.js';
import type { MdtAttr } from '../services/mdt/protocol.js';
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

export const isDir = (a: MdtAttr): boolean => (a.mode & S_IFMT) === S_IFDIR;
export const isLink = (a: MdtAttr): boolean => (a.mode & S_IFMT) === S_IFLNK;

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

export interface ParentResolved {
  dir: MdtAttr;
  dirPath: string;
  /** The last component ('.' for the root itself). */
  name: string;
  /** The path ended with '/' (the last component must be a directory). */
  trailingSlash: boolean;
}

export class Walker {
  constructor(
    private readonly mdc: Mdc,
    private readonly rootFid: string,
  ) {}

  /** The object at path (following a symlink at the end unless followLast is false). */
  async resolve(path: string, followLast = true, syscall = 'stat'): Promise<Resolved> {
    const trailingSlash = path.endsWith('/');
    const r = await this.#walk(this.rootFid, [], components(path), followLast || trailingSlash, { links: 0 }, syscall, path);
    if (trailingSlash && !isDir(r.attr)) throw new FsError('ENOTDIR', syscall, path);
    return r;
  }

  /** The directory holding the last component of path, and that component's name. */
  async parent(path: string, syscall: string): Promise<ParentResolved> {
    const trailingSlash = /[^/]\/+$/.test(path);
    const parts = components(path);
    const last = parts.pop();
    if (last === undefined) {
      const root = await this.mdc.getattr(this.rootFid);
      return { dir: root, dirPath: '/', name: '.', trailingSlash: false };
    }
    if (Buffer.byteLength(last) > NAME_MAX) throw new FsError('ENAMETOOLONG', syscall, path, undefined, `a name of ${Buffer.byteLength(last)} bytes (at most ${NAME_MAX})`);
    const r = await this.#walk(this.rootFid, [], parts, true, { links: 0 }, syscall, path);
    if (!isDir(r.attr)) throw new FsError('ENOTDIR', syscall, path);
    return { dir: r.attr, dirPath: r.path, name: last, trailingSlash };
  }

  async #walk(startFid: string, startPath: string[], todo: string[], followLast: boolean, count: { links: number }, syscall: string, path: string): Promise<Resolved> {
    let cur: MdtAttr | undefined;
    let curFid = startFid;
    const canonical = [...startPath];
    const queue = [...todo];
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '..') {
        if (canonical.length === 0) continue;
        cur = await this.mdc.lookup(curFid, '..');
        curFid = cur.fid;
        canonical.pop();
        continue;
      }
      const a = await this.mdc.lookup(curFid, name);
      const last = queue.length === 0;
      if (isLink(a) && (!last || followLast)) {
        if (++count.links > SYMLINKS_MAX) throw new FsError('ELOOP', syscall, path);
        const target = await this.mdc.readlink(a.fid);
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
    return { attr: cur ?? (await this.mdc.getattr(curFid)), path: '/' + canonical.join('/') };
  }
}
