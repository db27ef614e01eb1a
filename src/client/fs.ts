// The file system object a mount returns, shaped like node:fs/promises:
//
//   const fs = await mount('127.0.0.2@tcp:/testfs', { nid: '127.0.0.5@tcp' });
//   const fh = await fs.open('/a/b', 'w+', 0o644);
//   await fh.write(Buffer.from('hello'), 0, 5, 0);
//   await fh.close();
//   (await fs.stat('/a/b')).size === 5
//   await fs.umount();
//
// Each call resolves its path through the MDT (paths.ts), acts through the MDC, and for file
// data through the mount's FileObject and the LOV; nothing is cached from one call to the next
// (until locks exist, that is how what another client wrote and closed is always what is read).
// A regular file's stat merges the MDT's attributes with its OST objects' size, blocks and
// times (Lustre's ll_merge_attr). Errors are FsErrors: Node's code, errno, syscall and path.
//
// Permissions are the MDT's, checked for the mount's user (root unless `cred` is given);
// fs.as(cred) is a view acting for another user over the same connections. New files and
// directories get mode & ~umask (umask 0o022 unless given).
import type { MdtAttr, MdtStatfs } from '../services/mdt/protocol.js';
import type { FileLayout } from '../services/mdt/layout.js';
import type { Cred } from '../services/mdt/protocol.js';
import { Dir } from './dir.js';
import { FsError, fsCall, toFsError } from './errors.js';
import { FileObject, raid0Of } from './file.js';
import { canWrite, OpenFlag, parseFlags } from './flags.js';
import { FileHandle, toSeconds, type HandleHost } from './handle.js';
import type { Mdc } from './mdc.js';
import { MountCore, parseDevice, type MountOptions } from './mount.js';
import type { LliteStats } from './lproc.js';
import type { ClientParams } from './params.js';
import { isDir, isLink, MAY_EXEC, MAY_READ, MAY_WRITE, mdcSource, pathArg, permits, SYMLINKS_MAX, Walker, type WalkSource } from './paths.js';
import { ReadAhead } from './readahead.js';
import { Dirent, LL_SUPER_MAGIC, Stats, type StatFs } from './stats.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const MiB = 1024 * 1024;

export { FileHandle } from './handle.js';
export { Dir } from './dir.js';
export { Stats, Dirent, type StatFs } from './stats.js';
export { FsError } from './errors.js';
export { ClientParams, DEFAULT_TUNABLES, type ClientTunables } from './params.js';
export { parseDevice, type MountOptions } from './mount.js';

export const constants = { F_OK: 0, X_OK: 1, W_OK: 2, R_OK: 4, ...OpenFlag } as const;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

type PathLike = string | Buffer | URL;
type Encoding = BufferEncoding | null | undefined;
interface WriteOptions { encoding?: Encoding; mode?: number; flag?: string | number }

/** Mounts a file system: `device` is MGSNID:/fsname. */
export async function mount(device: string, options: MountOptions = {}): Promise<FileSystem> {
  const spec = parseDevice(device);
  if (spec.path !== '/') throw new FsError('EINVAL', 'mount', device, undefined, 'mounting a subdirectory (fileset) is not supported: mount MGSNID:/fsname');
  const core = new MountCore(spec, { ...options });
  try {
    await core.start();
  } catch (err) {
    throw toFsError(err, 'mount', device);
  }
  return new FileSystem(core, core.mdc, options.cred ?? { uid: 0, gid: 0, groups: [] }, options.umask ?? 0o022);
}

const isRegular = (a: MdtAttr): boolean => (a.mode & S_IFMT) === S_IFREG;

/** A walk's names from the mount's name cache ('..' from the MDT: the cache keeps no such name). */
function cachedSource(core: MountCore, mdc: Mdc): WalkSource {
  return {
    lookup: async (parent, name) => (name === '..' ? mdc.lookup(parent, name) : (await core.mdCache.lookup(mdc, parent, name)).attr),
    lookupName: (parent, name) => (name === '..' ? mdc.lookup(parent, name) : core.mdCache.lookupName(mdc, parent, name)),
    getattr: (fid) => mdc.getattr(fid),
    readlink: (fid) => mdc.readlink(fid),
  };
}
/** What the OST objects of a file just created hold: nothing (times 0: the MDT's count). */
const NEW_FILE_DATA = Object.freeze({ size: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0 });

export class FileSystem implements HandleHost {
  /** Root walks through the mount's name cache; other users ask the MDT, which checks their search permission (paths.ts). */
  readonly #walker: Walker;
  readonly #handles: Set<FileHandle>;

  /** Use mount(); this is a view of a mount acting for `cred`. */
  constructor(
    readonly core: MountCore,
    readonly mdc: Mdc,
    readonly cred: Cred,
    readonly umask: number,
    handles?: Set<FileHandle>,
  ) {
    this.#walker = new Walker(cred.uid === 0 ? cachedSource(core, mdc) : mdcSource(mdc), core.rootFid);
    this.#handles = handles ?? new Set();
  }

  /** The same mount, acting for another user (FUSE passes each request's caller). */
  as(cred: Cred, umask = this.umask): FileSystem {
    const c = { uid: cred.uid, gid: cred.gid, groups: cred.groups ?? [] };
    return new FileSystem(this.core, this.core.mdc.asUser(c), c, umask, this.#handles);
  }

  get fsname(): string {
    return this.core.fsname;
  }

  /** The mount's tunables (osc.*.max_dirty_mb, osc.*.max_rpcs_in_flight, llite.*.max_read_ahead_mb). */
  get params(): ClientParams {
    return this.core.params;
  }

  /** llite.*.stats: each call below is counted once it succeeded (its handles' calls by them). */
  get lliteStats(): LliteStats {
    return this.core.lliteStats;
  }

  async #call<T>(syscall: string, path: string | undefined, fn: () => Promise<T>, dest?: string): Promise<T> {
    if (this.core.closed) throw new FsError('ENOTCONN', syscall, path, dest, `${this.fsname} is not mounted`);
    return fsCall(syscall, path, fn, dest);
  }

  // ---- attributes ----------------------------------------------------------------------------

  /**
   * Stats of an object: a regular file's size, blocks and times merged from its OST objects.
   * `created`: the file was created by the open that gave `attr` (its reply), so its objects
   * are new and empty: nothing to ask the OSTs (their times, older, lose to the MDT's anyway).
   */
  async statOf(attr: MdtAttr, file?: FileObject, created = false): Promise<Stats> {
    if (!isRegular(attr)) return new Stats(attr, this.core.dev);
    if (created) return new Stats(attr, this.core.dev, NEW_FILE_DATA);
    const f = file ?? this.core.files.get(attr.fid);
    if (f) {
      // Never written, truncated or revoked here (generation 0: no flush, no mtime stamp in
      // flight): the LVBs of fresh locks say all. Else the flush and the getattrs, as ever.
      const fresh = f.generation === 0 && f.dirtyBytes === 0 && f.layout ? await this.core.freshDataAttrs(f.layout) : undefined;
      return new Stats(attr, this.core.dev, fresh ?? (await f.dataAttrs()));
    }
    const raid0 = await this.core.layoutOf(this.mdc, attr.fid);
    if (!raid0) return new Stats(attr, this.core.dev);
    const data = this.core.keptDataAttrs(attr.fid) ?? (await this.core.freshDataAttrs(raid0, { fid: attr.fid }))
      ?? (await new FileObject(this.core.fileContext, attr.fid, raid0).dataAttrs());
    return new Stats(attr, this.core.dev, data);
  }

  getattr(fid: string): Promise<MdtAttr> {
    return this.mdc.getattr(fid);
  }

  async setattr(fid: string, attrs: { mode?: number; uid?: number; gid?: number }): Promise<void> {
    await this.mdc.setattr(fid, attrs);
  }

  checkWritable(attr: MdtAttr): void {
    if (!permits(attr, this.cred, MAY_WRITE)) throw new FsError('EACCES', 'truncate');
  }

  async stat(path: PathLike): Promise<Stats> {
    const p = pathArg(path, 'stat');
    return this.core.lliteStats.counted('getattr', () => this.#call('stat', p, async () => this.statOf((await this.#walker.resolve(p, true, 'stat')).attr)));
  }

  async lstat(path: PathLike): Promise<Stats> {
    const p = pathArg(path, 'lstat');
    return this.core.lliteStats.counted('getattr', () => this.#call('lstat', p, async () => this.statOf((await this.#walker.resolve(p, false, 'lstat')).attr)));
  }

  async chmod(path: PathLike, mode: number | string): Promise<void> {
    const p = pathArg(path, 'chmod');
    await this.core.lliteStats.counted('setattr', () => this.#call('chmod', p, async () => {
      await this.mdc.setattr((await this.#walker.resolve(p, true, 'chmod')).attr.fid, { mode: typeof mode === 'string' ? parseInt(mode, 8) : mode });
    }));
  }

  async #chown(syscall: string, path: PathLike, uid: number, gid: number, follow: boolean): Promise<void> {
    const p = pathArg(path, syscall);
    await this.core.lliteStats.counted('setattr', () => this.#call(syscall, p, async () => {
      const a = (await this.#walker.resolve(p, follow, syscall)).attr;
      await this.mdc.setattr(a.fid, { ...(uid !== -1 && { uid }), ...(gid !== -1 && { gid }) });
    }));
  }

  chown(path: PathLike, uid: number, gid: number): Promise<void> {
    return this.#chown('chown', path, uid, gid, true);
  }

  lchown(path: PathLike, uid: number, gid: number): Promise<void> {
    return this.#chown('lchown', path, uid, gid, false);
  }

  async #utimes(syscall: string, path: PathLike, atime: number | string | Date, mtime: number | string | Date, follow: boolean): Promise<void> {
    const p = pathArg(path, syscall);
    await this.core.lliteStats.counted('setattr', () => this.#call(syscall, p, async () => {
      const a = (await this.#walker.resolve(p, follow, syscall)).attr;
      await this.utimesFid(a.fid, a, toSeconds(atime), toSeconds(mtime));
    }));
  }

  utimes(path: PathLike, atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    return this.#utimes('utime', path, atime, mtime, true);
  }

  lutimes(path: PathLike, atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    return this.#utimes('lutime', path, atime, mtime, false);
  }

  async access(path: PathLike, mode: number = constants.F_OK): Promise<void> {
    const p = pathArg(path, 'access');
    await this.#call('access', p, async () => {
      const a = (await this.#walker.resolve(p, true, 'access')).attr;
      const mask = (mode & constants.R_OK ? MAY_READ : 0) | (mode & constants.W_OK ? MAY_WRITE : 0) | (mode & constants.X_OK ? MAY_EXEC : 0);
      if (mask && !permits(a, this.cred, mask)) throw new FsError('EACCES', 'access', p);
    });
  }

  async truncate(path: PathLike, len = 0): Promise<void> {
    const p = pathArg(path, 'truncate');
    await this.core.lliteStats.counted('truncate', () => this.#call('truncate', p, async () => {
      if (!Number.isSafeInteger(len) || len < 0) throw new FsError('EINVAL', 'truncate', p, undefined, `length ${len}`);
      const a = (await this.#walker.resolve(p, true, 'truncate')).attr;
      if (isDir(a)) throw new FsError('EISDIR', 'truncate', p);
      if (!isRegular(a)) throw new FsError('EINVAL', 'truncate', p, undefined, 'not a regular file');
      if (!permits(a, this.cred, MAY_WRITE)) throw new FsError('EACCES', 'truncate', p);
      const open = this.core.files.get(a.fid);
      await (open ?? new FileObject(this.core.fileContext, a.fid, await this.core.layoutOf(this.mdc, a.fid))).truncate(len);
    }));
  }

  /** A regular file's layout (its stripe size and objects) or a directory's default (lfs getstripe). */
  async layout(path: PathLike): Promise<FileLayout | undefined> {
    const p = pathArg(path, 'getxattr');
    return this.#call('getxattr', p, async () => this.mdc.getLayout((await this.#walker.resolve(p, true, 'getxattr')).attr.fid));
  }

  // ---- open files ---------------------------------------------------------------------------

  /**
   * open(2): flags as node:fs takes them; mode (less the umask) for a file created; `layout`
   * stripes a file created (lfs setstripe on a new file).
   */
  async open(path: PathLike, flags?: string | number, mode = 0o666, layout?: { stripeCount?: number; stripeSize?: number; stripeOffset?: number }): Promise<FileHandle> {
    const p = pathArg(path, 'open');
    const f = parseFlags(flags, 'open', p);
    return this.#call('open', p, () => this.#open(p, f, mode, layout));
  }

  async #open(path: string, flags: number, mode: number, layout?: { stripeCount?: number; stripeSize?: number; stripeOffset?: number }): Promise<FileHandle> {
    const t = performance.now();
    let p = path;
    for (let links = 0; ; links++) {
      const par = await this.#walker.parent(p, 'open');
      if (par.trailingSlash) {
        const existing = await this.#lookupOrNothing(par.dir.fid, par.name);
        if (!existing) throw new FsError(flags & OpenFlag.CREAT ? 'EISDIR' : 'ENOENT', 'open', path);
        if (!isDir(existing) && !isLink(existing)) throw new FsError('ENOTDIR', 'open', path);
      }
      // The open goes straight to the MDT; it refuses a symlink (ELOOP), which is then followed here.
      try {
        const r = await this.core.mdCache.open(this.mdc, par.dir.fid, par.name, flags, mode & ~this.umask & 0o7777, layout);
        return await this.#handleOf(path, flags, r, t);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ELOOP') throw err;
        const existing = await this.#lookupOrNothing(par.dir.fid, par.name);
        if (!existing || !isLink(existing)) throw err;
        if (flags & OpenFlag.NOFOLLOW) throw new FsError('ELOOP', 'open', path, undefined, 'O_NOFOLLOW on a symbolic link');
        if (links >= SYMLINKS_MAX) throw new FsError('ELOOP', 'open', path);
        const target = await this.mdc.readlink(existing.fid);
        p = target.startsWith('/') ? target : `${par.dirPath}/${target}`;
      }
    }
  }

  async #lookupOrNothing(dir: string, name: string): Promise<MdtAttr | undefined> {
    try {
      return await this.mdc.lookup(dir, name);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** open(2) by FID, flags as Linux numbers (the FUSE glue: the kernel names files by inode). */
  async openFid(fid: string, flags: number): Promise<FileHandle> {
    const t = performance.now();
    return this.#call('open', fid, async () => this.#handleOf(fid, flags, await this.mdc.openFid(fid, flags), t));
  }

  /** open(2) of `name` in the directory `parentFid`, flags (O_CREAT ...) as Linux numbers. */
  async createAt(parentFid: string, name: string, flags: number, mode: number): Promise<FileHandle> {
    return (await this.createIn(parentFid, name, flags, mode)).handle;
  }

  /** createAt, telling too whether this open created the file (statOf's `created`). */
  async createIn(parentFid: string, name: string, flags: number, mode: number): Promise<{ handle: FileHandle; created: boolean }> {
    const t = performance.now();
    return this.#call('open', name, async () => {
      const r = await this.core.mdCache.open(this.mdc, parentFid, name, flags, mode & ~this.umask & 0o7777);
      return { handle: await this.#handleOf(name, flags, r, t), created: r.created };
    });
  }

  /**
   * The handle of an open the MDT granted, begun at startMs: every open passes here, and is
   * counted here (an open that created its file counts as a create too, as an atomic open
   * with O_CREAT does in Lustre's llite).
   */
  async #handleOf(path: string, flags: number, r: Awaited<ReturnType<Mdc['open']>>, startMs: number): Promise<FileHandle> {
    let file: FileObject | undefined;
    let ra: ReadAhead | undefined;
    if (isRegular(r.attr)) {
      let layout = r.layout;
      if (!layout && canWrite(flags)) layout = await this.#instantiateLayout(r.attr.fid);
      file = this.core.fileOf(r.attr.fid, layout && raid0Of(layout));
      file.opened();
      try {
        if (flags & OpenFlag.TRUNC && !r.created && canWrite(flags)) await file.truncate(0);
      } catch (err) {
        file.opens--;
        if (file.opens === 0) this.core.files.delete(file.fid);
        await this.core.mdc.close(r.handle).catch(() => undefined);
        throw err;
      }
      ra = new ReadAhead(file, this.core.readAhead, () => this.core.params.values.maxReadAheadPerFileMb * MiB);
    }
    const h = new FileHandle(this.core.nextFd(), path, flags, r.attr, r.handle, this, file, ra);
    this.#handles.add(h);
    if (r.created) this.core.lliteStats.tally('create', startMs);
    this.core.lliteStats.tally('open', startMs);
    return h;
  }

  /** A file created while no OST was known has no objects: they are allocated at its first open for writing. */
  async #instantiateLayout(fid: string): Promise<FileLayout | undefined> {
    try {
      await this.mdc.setStripe(fid, {});
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') return undefined;
    }
    return this.mdc.getLayout(fid);
  }

  /** A handle's close: dirty data sent, then the MDT's open handle closed. */
  async release(h: FileHandle): Promise<void> {
    this.#handles.delete(h);
    let failure: unknown;
    const file = h.file;
    if (file) {
      try {
        await file.flush();
      } catch (err) {
        failure = err;
      } finally {
        if (--file.opens === 0) this.core.files.delete(file.fid);
      }
    }
    if (!this.core.closed || !failure) await this.core.mdc.close(h.mdtHandle);
    if (failure) throw failure;
  }

  async readFile(path: PathLike | FileHandle, options?: { encoding?: Encoding; flag?: string | number } | BufferEncoding | null): Promise<Buffer | string> {
    const o = typeof options === 'string' || options === null ? { encoding: options } : options ?? {};
    if (path instanceof FileHandle) return path.readFile(o);
    const h = await this.open(path, o.flag ?? 'r');
    try {
      return await h.readFile(o);
    } finally {
      await h.close();
    }
  }

  async writeFile(path: PathLike | FileHandle, data: string | NodeJS.ArrayBufferView, options?: WriteOptions | BufferEncoding | null): Promise<void> {
    const o: WriteOptions = typeof options === 'string' || options === null ? { encoding: options } : options ?? {};
    if (path instanceof FileHandle) return path.writeFile(data, o);
    const h = await this.open(path, o.flag ?? 'w', o.mode ?? 0o666);
    let failed = false;
    try {
      await h.writeFile(data, o);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      await h.close().catch((err: unknown) => {
        if (!failed) throw err;
      });
    }
  }

  appendFile(path: PathLike | FileHandle, data: string | NodeJS.ArrayBufferView, options?: WriteOptions | BufferEncoding | null): Promise<void> {
    const o: WriteOptions = typeof options === 'string' || options === null ? { encoding: options } : options ?? {};
    return this.writeFile(path, data, { ...o, flag: o.flag ?? 'a' });
  }

  // ---- the namespace ------------------------------------------------------------------------

  async readdir(path: PathLike, options?: { withFileTypes?: boolean; encoding?: Encoding } | BufferEncoding | null): Promise<string[] | Dirent[]> {
    const p = pathArg(path, 'scandir');
    const withTypes = typeof options === 'object' && options !== null && options.withFileTypes === true;
    const out = await this.core.lliteStats.counted('readdir', () => this.#call('scandir', p, async () => {
      const a = (await this.#walker.resolve(p, true, 'scandir')).attr;
      if (!isDir(a)) throw new FsError('ENOTDIR', 'scandir', p);
      const entries: Dirent[] = [];
      for await (const e of new Dir(this.mdc, a.fid, p)) entries.push(e);
      return entries;
    }));
    return withTypes ? out : out.map((e) => e.name);
  }

  /** A directory read page by page (any size, bounded memory). */
  async opendir(path: PathLike): Promise<Dir> {
    const p = pathArg(path, 'opendir');
    // Not an open in llite.*.stats: no MDT handle behind it, and no close to pair it with.
    return this.#call('opendir', p, async () => {
      const a = (await this.#walker.resolve(p, true, 'opendir')).attr;
      if (!isDir(a)) throw new FsError('ENOTDIR', 'opendir', p);
      return new Dir(this.mdc, a.fid, p);
    });
  }

  /** mkdir(2); with recursive, the missing parents too (resolves with the first directory created). */
  async mkdir(path: PathLike, options?: { recursive?: boolean; mode?: number } | number | string): Promise<string | undefined> {
    const p = pathArg(path, 'mkdir');
    const o = typeof options === 'object' ? options : { mode: typeof options === 'string' ? parseInt(options, 8) : options };
    const mode = (o.mode ?? 0o777) & ~this.umask & 0o7777;
    return this.#call('mkdir', p, async () => (o.recursive ? this.#mkdirp(p, mode) : (await this.#mkdir(p, mode), undefined)));
  }

  async #mkdir(p: string, mode: number): Promise<void> {
    const t = performance.now();
    const par = await this.#walker.parent(p, 'mkdir');
    if (par.name === '.' || par.name === '..') throw new FsError('EEXIST', 'mkdir', p);
    await this.mdc.mkdir(par.dir.fid, par.name, mode);
    this.core.lliteStats.tally('mkdir', t);
  }

  async #mkdirp(p: string, mode: number): Promise<string | undefined> {
    try {
      const a = (await this.#walker.resolve(p, true, 'mkdir')).attr;
      if (!isDir(a)) throw new FsError('EEXIST', 'mkdir', p);
      return undefined;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    const parent = p.replace(/\/+[^/]*\/*$/, '') || '/';
    const first = parent === p ? undefined : await this.#mkdirp(parent, mode);
    try {
      await this.#mkdir(p, mode);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
      return first;
    }
    return first ?? p;
  }

  async rmdir(path: PathLike): Promise<void> {
    const p = pathArg(path, 'rmdir');
    await this.core.lliteStats.counted('rmdir', () => this.#call('rmdir', p, async () => {
      const par = await this.#walker.parent(p, 'rmdir');
      if (par.name === '.' && par.dirPath === '/' && p.replace(/\/+/g, '/') === '/') throw new FsError('EBUSY', 'rmdir', p);
      await this.mdc.rmdir(par.dir.fid, par.name);
    }));
  }

  async unlink(path: PathLike): Promise<void> {
    const p = pathArg(path, 'unlink');
    await this.core.lliteStats.counted('unlink', () => this.#call('unlink', p, async () => {
      const par = await this.#walker.parent(p, 'unlink');
      if (par.trailingSlash) {
        const a = await this.mdc.lookup(par.dir.fid, par.name);
        throw new FsError(isDir(a) ? 'EISDIR' : 'ENOTDIR', 'unlink', p);
      }
      // What the name led to, read before the unlink's early cancel drops it from the cache.
      const child = this.core.mdCache.childOf(par.dir.fid, par.name);
      const { orphan, destroyed } = await this.mdc.unlink(par.dir.fid, par.name);
      if (child !== undefined && !orphan) this.core.releaseObjectLocks(child, destroyed);
    }));
  }

  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    const from = pathArg(oldPath, 'rename');
    const to = pathArg(newPath, 'rename');
    await this.core.lliteStats.counted('rename', () => this.#call('rename', from, async () => {
      const a = await this.#walker.parent(from, 'rename');
      const b = await this.#walker.parent(to, 'rename');
      if (a.name === '.' || b.name === '.') throw new FsError('EBUSY', 'rename', from, to);
      if (a.trailingSlash || b.trailingSlash) {
        const s = await this.mdc.lookup(a.dir.fid, a.name);
        if (!isDir(s)) throw new FsError('ENOTDIR', 'rename', from, to);
      }
      await this.mdc.rename(a.dir.fid, a.name, b.dir.fid, b.name);
    }, to));
  }

  /** link(2): a new name for existingPath (a symlink itself, not what it points to). */
  async link(existingPath: PathLike, newPath: PathLike): Promise<void> {
    const from = pathArg(existingPath, 'link');
    const to = pathArg(newPath, 'link');
    await this.core.lliteStats.counted('link', () => this.#call('link', from, async () => {
      const a = (await this.#walker.resolve(from, false, 'link')).attr;
      const b = await this.#walker.parent(to, 'link');
      if (b.name === '.' || b.name === '..') throw new FsError('EEXIST', 'link', from, to);
      await this.mdc.link(a.fid, b.dir.fid, b.name);
    }, to));
  }

  async symlink(target: PathLike, path: PathLike, _type?: string | null): Promise<void> {
    const t = pathArg(target, 'symlink');
    const p = pathArg(path, 'symlink');
    await this.core.lliteStats.counted('symlink', () => this.#call('symlink', t, async () => {
      const b = await this.#walker.parent(p, 'symlink');
      if (b.name === '.' || b.name === '..') throw new FsError('EEXIST', 'symlink', t, p);
      await this.mdc.symlink(b.dir.fid, b.name, t);
    }, p));
  }

  async readlink(path: PathLike): Promise<string> {
    const p = pathArg(path, 'readlink');
    return this.#call('readlink', p, async () => {
      const a = (await this.#walker.resolve(p, false, 'readlink')).attr;
      if (!isLink(a)) throw new FsError('EINVAL', 'readlink', p);
      return this.mdc.readlink(a.fid);
    });
  }

  async realpath(path: PathLike): Promise<string> {
    const p = pathArg(path, 'realpath');
    return this.#call('realpath', p, async () => (await this.#walker.resolve(p, true, 'realpath')).path);
  }

  // ---- extended attributes ------------------------------------------------------------------

  async getxattr(path: PathLike, name: string): Promise<Buffer> {
    const p = pathArg(path, 'getxattr');
    return this.core.lliteStats.counted('getxattr', () => this.#call('getxattr', p, async () => this.mdc.getxattr((await this.#walker.resolve(p, true, 'getxattr')).attr.fid, name)));
  }

  /** setxattr(2); flags XATTR_CREATE (EEXIST if it exists) or XATTR_REPLACE (ENODATA if not). */
  async setxattr(path: PathLike, name: string, value: string | Uint8Array, flags = 0): Promise<void> {
    const p = pathArg(path, 'setxattr');
    await this.core.lliteStats.counted('setxattr', () => this.#call('setxattr', p, async () => {
      const v = typeof value === 'string' ? Buffer.from(value) : value;
      await this.mdc.setxattr((await this.#walker.resolve(p, true, 'setxattr')).attr.fid, name, v, flags);
    }));
  }

  async listxattr(path: PathLike): Promise<string[]> {
    const p = pathArg(path, 'listxattr');
    return this.core.lliteStats.counted('listxattr', () => this.#call('listxattr', p, async () => this.mdc.listxattr((await this.#walker.resolve(p, true, 'listxattr')).attr.fid)));
  }

  async removexattr(path: PathLike, name: string): Promise<void> {
    const p = pathArg(path, 'removexattr');
    await this.core.lliteStats.counted('removexattr', () => this.#call('removexattr', p, async () => this.mdc.removexattr((await this.#walker.resolve(p, true, 'removexattr')).attr.fid, name)));
  }

  // ---- the file system ----------------------------------------------------------------------

  /** statfs(2) as a Lustre client answers it: blocks from the OSTs, files from the MDT. */
  async statfs(path: PathLike = '/'): Promise<StatFs> {
    const p = pathArg(path, 'statfs');
    return this.core.lliteStats.counted('statfs', () => this.#call('statfs', p, async () => {
      await this.#walker.resolve(p, true, 'statfs');
      const mdt: MdtStatfs = await this.mdc.statfs();
      const osts = await Promise.all([...this.core.oscs.values()].map((o) => o.statfs()));
      const bsize = 4096;
      const sum = (f: (s: (typeof osts)[number]) => number): number => osts.reduce((n, s) => n + Math.floor((f(s) * s.bsize) / bsize), 0);
      return {
        type: LL_SUPER_MAGIC, bsize, blocks: sum((s) => s.blocks), bfree: sum((s) => s.bfree), bavail: sum((s) => s.bavail),
        files: mdt.objectsTotal, ffree: mdt.objectsFree,
      };
    }));
  }

  /** Open handles of the mount (every view's). */
  get openHandles(): number {
    return this.#handles.size;
  }

  /** Closes every open handle (sending dirty data) and disconnects; force: without flushing. */
  async umount(options: { force?: boolean } = {}): Promise<void> {
    if (this.core.closed) return;
    let failure: unknown;
    if (!options.force) {
      for (const h of [...this.#handles]) {
        await h.close().catch((err: unknown) => {
          failure ??= err;
        });
      }
    }
    await this.core.close(options.force === true);
    if (failure) throw toFsError(failure, 'umount', `/${this.fsname}`);
  }

  /** utimes by FID: the MDT's times, and a regular file's objects' (stat takes the latest of them). */
  async utimesFid(fid: string, attr: MdtAttr, atime: number, mtime: number): Promise<void> {
    const open = this.core.files.get(fid);
    if (open) await open.flush(); // a later flush would stamp its own mtime over these
    await this.mdc.setattr(fid, { atime, mtime });
    if (!isRegular(attr)) return;
    const layout = open ? open.layout : await this.core.layoutOf(this.mdc, fid);
    if (layout) await this.core.lov.setattr(layout, { atime, mtime });
  }
}
