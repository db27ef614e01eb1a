// Path resolution through the mount's name cache (md-cache.ts): the walk of paths.ts's Walker
// (component by component from the root, '.' kept, '..' to the parent, symlinks followed, at
// most SYMLINKS_MAX), each component found by `lookup` rather than always asked of the MDT. A
// name cached under its child's LOOKUP lock costs no request, as a kernel's dentry does.
//
// Permissions: the MDT checks the caller's search permission on each directory a
// MDS_GETATTR_NAME goes through; a name from the cache skips that check, so only a caller who
// may search every directory anyway (root: generic_permission's CAP_DAC_READ_SEARCH) walks
// through the cache; any other walks as paths.ts's Walker does, asking the MDT each time. (The
// FUSE mount's kernel checks permissions itself, from attributes under locks, before it asks.)
import type { MdtAttr } from '../services/mdt/protocol.js';
import { FsError } from './errors.js';
import { NAME_MAX, SYMLINKS_MAX, type ParentResolved, type Resolved } from './paths.js';

const S_IFMT = 0o170000;
const isDir = (a: { mode: number }): boolean => (a.mode & S_IFMT) === 0o040000;
const isLink = (a: { mode: number }): boolean => (a.mode & S_IFMT) === 0o120000;

/**
 * What a walk asks: one name in a directory (with its attributes, for the object a resolve
 * ends at; or only its FID and mode, for the directories and links on the way), an object's
 * attributes, a symlink's target.
 */
export interface WalkSource {
  lookup(parent: string, name: string): Promise<MdtAttr>;
  lookupName(parent: string, name: string): Promise<{ fid: string; mode: number }>;
  getattr(fid: string): Promise<MdtAttr>;
  readlink(fid: string): Promise<string>;
}

/** A directory a walk went through: its FID and mode (what parent() callers use of it). */
export interface WalkedDir {
  fid: string;
  mode: number;
}

/** parent()'s answer: as paths.ts's, the directory known by its FID and mode. */
export interface WalkedParent extends Omit<ParentResolved, 'dir'> {
  dir: WalkedDir;
}

/** Splits a path into its components ('' and '.' dropped). */
function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

export class CachedWalker {
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
  async parent(path: string, syscall: string): Promise<WalkedParent> {
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
