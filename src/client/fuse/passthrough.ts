// A FuseOps over a local directory: the reference adapter (the Lustre one maps nodeids to FIDs the
// same way this one maps them to paths) and what the tests and the benchmark mount.
//
// Nodeids: each inode the kernel has looked up gets a nodeid of its own, never reused, keyed by
// the backing (dev, ino); the table keeps its latest known path and its lookup count, and drops
// it when forget brings the count to zero. A rename rewrites the paths under the renamed name.
// A node whose path now names another inode (unlinked, renamed over) answers ENOENT, except
// through an open file handle, which keeps working as on a local file system.
//
// Known limits, on purpose: extended attributes live in memory (Node has no xattr calls), per
// backing inode, for the life of the object; mknod makes regular files only; lseek is left to
// the kernel's default. Modes arrive already masked with the caller's umask; when this process's
// own umask would take bits away from them, the new object is chmod'ed to the mode asked for
// (the process umask is read, never changed). Objects created by a caller other than root are
// chowned to it when this process runs as root.
import type { BigIntStats } from 'node:fs';
import { constants as fsc, readFileSync } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rename, rmdir, statfs, symlink, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Attr, AttrReply, ConnectionInfo, Dirent, Entry, FuseOps, OpenReply, RequestContext, SetattrChanges, Statfs } from './ops.js';
import { InitFlag } from './wire.js';
import { fuseError, RENAME_EXCHANGE, RENAME_NOREPLACE } from './ops.js';

interface Node { path: string; key: string; nlookup: number }

/** The access-mode bits of open flags (fcntl.h; Node does not export it). */
const O_ACCMODE = 3;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
/** readdir entries whose inode number is not looked up (as libfuse's FUSE_UNKNOWN_INO). */
const UNKNOWN_INO = 0xffffffff;
/** Entries handed to the session per READDIR at most (a 4 KiB answer holds about 100). */
const READDIR_BATCH = 512;

function keyOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

export function attrOf(st: BigIntStats): Attr {
  return {
    ino: st.ino, mode: Number(st.mode), nlink: Number(st.nlink), uid: Number(st.uid), gid: Number(st.gid),
    rdev: Number(st.rdev), size: Number(st.size), blocks: Number(st.blocks), blksize: Number(st.blksize),
    atimeNs: st.atimeNs, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs,
  };
}

function typeOf(d: { isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): number {
  if (d.isDirectory()) return fsc.S_IFDIR;
  if (d.isSymbolicLink()) return fsc.S_IFLNK;
  if (d.isFIFO()) return fsc.S_IFIFO;
  if (d.isSocket()) return fsc.S_IFSOCK;
  if (d.isCharacterDevice()) return fsc.S_IFCHR;
  if (d.isBlockDevice()) return fsc.S_IFBLK;
  return fsc.S_IFREG;
}

/** This process's umask, from /proc (process.umask() without an argument is deprecated). */
function readUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? parseInt(m[1]!, 8) : 0o022;
  } catch {
    return 0o022;
  }
}

function seconds(ns: bigint | 'now'): number {
  return ns === 'now' ? Date.now() / 1000 : Number(ns) / 1e9;
}

export class Passthrough implements FuseOps {
  private readonly nodes = new Map<number, Node>();
  private readonly byKey = new Map<string, number>();
  private readonly files = new Map<number, { f: FileHandle; nodeid: number }>();
  private readonly dirs = new Map<number, { path: string; entries: Dirent[] }>();
  private readonly xattrs = new Map<string, Map<string, Buffer>>();
  private nextNodeid = 2;
  private nextFh = 1;
  private readonly asRoot = process.getuid?.() === 0;
  private readonly processUmask = readUmask();

  constructor(readonly root: string) {
    this.nodes.set(1, { path: root, key: '', nlookup: 1 });
  }

  /** With the kernel's writeback cache, opens must allow the kernel's reads and leave appends to it. */
  private writeback = false;

  init(conn: ConnectionInfo): void {
    this.writeback = (conn.flags & InitFlag.WRITEBACK_CACHE) !== 0;
  }

  private openFlags(flags: number): number {
    if (!this.writeback) return flags;
    const rw = (flags & O_ACCMODE) === fsc.O_WRONLY ? (flags & ~O_ACCMODE) | fsc.O_RDWR : flags;
    return rw & ~fsc.O_APPEND;
  }

  /** Nodeids known right now (the root included): for tests of forget. */
  get nodeCount(): number { return this.nodes.size; }

  private node(nodeid: number): Node {
    const n = this.nodes.get(nodeid);
    if (!n) throw fuseError('ESTALE', `unknown nodeid ${nodeid}`);
    return n;
  }

  private file(fh: number): FileHandle {
    const f = this.files.get(fh);
    if (!f) throw fuseError('EBADF', `unknown fh ${fh}`);
    return f.f;
  }

  /** An open file of the node: how an unlinked, still open file is reached (fstat by path is not possible). */
  private openFileOf(nodeid: number): FileHandle | undefined {
    for (const o of this.files.values()) if (o.nodeid === nodeid) return o.f;
    return undefined;
  }

  /** lstat of the node's path, which must still name the node's inode. */
  private async stat(nodeid: number): Promise<BigIntStats> {
    const n = this.node(nodeid);
    const st = await lstat(n.path, { bigint: true });
    if (nodeid !== 1 && n.key !== '' && keyOf(st) !== n.key) throw fuseError('ENOENT', `${n.path} names another inode now`);
    if (nodeid === 1 && n.key === '') n.key = keyOf(st);
    return st;
  }

  private remember(st: BigIntStats, path: string): Entry {
    const key = keyOf(st);
    let nodeid = this.byKey.get(key);
    const known = nodeid === undefined ? undefined : this.nodes.get(nodeid);
    if (nodeid !== undefined && known) {
      known.nlookup++;
      known.path = path;
    } else {
      nodeid = this.nextNodeid++;
      this.nodes.set(nodeid, { path, key, nlookup: 1 });
      this.byKey.set(key, nodeid);
    }
    return { nodeid, attr: attrOf(st) };
  }

  private async created(ctx: RequestContext, path: string, mode?: number): Promise<Entry> {
    if (mode !== undefined && (mode & this.processUmask) !== 0) await chmod(path, mode & 0o7777);
    if (this.asRoot && (ctx.uid !== 0 || ctx.gid !== 0)) await lchown(path, ctx.uid, ctx.gid);
    return this.remember(await lstat(path, { bigint: true }), path);
  }

  private child(parent: number, name: string): string {
    return join(this.node(parent).path, name);
  }

  async lookup(_ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    const path = this.child(parent, name);
    return this.remember(await lstat(path, { bigint: true }), path);
  }

  forget(nodeid: number, nlookup: number): void {
    const n = this.nodes.get(nodeid);
    if (!n || nodeid === 1) return;
    n.nlookup -= nlookup;
    if (n.nlookup <= 0) {
      this.nodes.delete(nodeid);
      if (this.byKey.get(n.key) === nodeid) this.byKey.delete(n.key);
    }
  }

  async getattr(_ctx: RequestContext, nodeid: number, fh: number | undefined): Promise<AttrReply> {
    const f = fh === undefined ? undefined : this.files.get(fh)?.f;
    if (f) return { attr: attrOf(await f.stat({ bigint: true })) };
    try {
      return { attr: attrOf(await this.stat(nodeid)) };
    } catch (err) {
      const open = (err as { code?: string }).code === 'ENOENT' ? this.openFileOf(nodeid) : undefined;
      if (!open) throw err;
      return { attr: attrOf(await open.stat({ bigint: true })) };
    }
  }

  async setattr(_ctx: RequestContext, nodeid: number, c: SetattrChanges): Promise<AttrReply> {
    const path = this.node(nodeid).path;
    const f = c.fh === undefined ? undefined : this.files.get(c.fh)?.f;
    if (c.mode !== undefined) await (f ? f.chmod(c.mode & 0o7777) : chmod(path, c.mode & 0o7777));
    if (c.uid !== undefined || c.gid !== undefined) await lchown(path, c.uid ?? -1, c.gid ?? -1);
    if (c.size !== undefined) await (f ? f.truncate(c.size) : truncate(path, c.size));
    if (c.atimeNs !== undefined || c.mtimeNs !== undefined) {
      const st = await lstat(path, { bigint: true });
      await lutimes(path, seconds(c.atimeNs ?? st.atimeNs), seconds(c.mtimeNs ?? st.mtimeNs));
    }
    return { attr: attrOf(f ? await f.stat({ bigint: true }) : await this.stat(nodeid)) };
  }

  async readlink(_ctx: RequestContext, nodeid: number): Promise<string> {
    return readlink(this.node(nodeid).path);
  }

  async mknod(ctx: RequestContext, parent: number, name: string, mode: number): Promise<Entry> {
    if ((mode & fsc.S_IFMT) !== fsc.S_IFREG) throw fuseError('EPERM', 'the passthrough makes regular files only');
    const path = this.child(parent, name);
    await (await open(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode & 0o7777)).close();
    return this.created(ctx, path, mode);
  }

  async mkdir(ctx: RequestContext, parent: number, name: string, mode: number): Promise<Entry> {
    const path = this.child(parent, name);
    await mkdir(path, mode & 0o7777);
    return this.created(ctx, path, mode);
  }

  async unlink(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    await unlink(this.child(parent, name));
  }

  async rmdir(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    await rmdir(this.child(parent, name));
  }

  async symlink(ctx: RequestContext, parent: number, name: string, target: string): Promise<Entry> {
    const path = this.child(parent, name);
    await symlink(target, path);
    return this.created(ctx, path);
  }

  async rename(_ctx: RequestContext, parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void> {
    if (flags & RENAME_EXCHANGE) throw fuseError('EINVAL', 'RENAME_EXCHANGE is not supported');
    if (flags & ~RENAME_NOREPLACE) throw fuseError('EINVAL');
    const from = this.child(parent, name);
    const to = this.child(newParent, newName);
    if (flags & RENAME_NOREPLACE) {
      const exists = await lstat(to).then(() => true, () => false);
      if (exists) throw fuseError('EEXIST');
    }
    await rename(from, to);
    const prefix = `${from}/`;
    for (const n of this.nodes.values()) {
      if (n.path === from) n.path = to;
      else if (n.path.startsWith(prefix)) n.path = to + n.path.slice(from.length);
    }
  }

  async link(_ctx: RequestContext, nodeid: number, newParent: number, newName: string): Promise<Entry> {
    const path = this.child(newParent, newName);
    await link(this.node(nodeid).path, path);
    return this.remember(await lstat(path, { bigint: true }), path);
  }

  private keep(f: FileHandle, nodeid: number): OpenReply {
    const fh = this.nextFh++;
    this.files.set(fh, { f, nodeid });
    return { fh };
  }

  async open(_ctx: RequestContext, nodeid: number, flags: number): Promise<OpenReply> {
    return this.keep(await open(this.node(nodeid).path, this.openFlags(flags) & ~fsc.O_NOFOLLOW), nodeid);
  }

  async create(ctx: RequestContext, parent: number, name: string, mode: number, flags: number): Promise<{ entry: Entry; open: OpenReply }> {
    const path = this.child(parent, name);
    const f = await open(path, this.openFlags(flags) | fsc.O_CREAT, mode & 0o7777);
    try {
      const entry = await this.created(ctx, path, mode);
      return { entry, open: this.keep(f, entry.nodeid) };
    } catch (err) {
      await f.close();
      throw err;
    }
  }

  async read(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, size: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await this.file(fh).read(buf, got, size - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }

  async write(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, data: Buffer): Promise<number> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.file(fh).write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    return done;
  }

  async release(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    const f = this.files.get(fh);
    this.files.delete(fh);
    await f?.f.close();
  }

  async fsync(_ctx: RequestContext, _nodeid: number, fh: number, datasync: boolean): Promise<void> {
    const f = this.file(fh);
    await (datasync ? f.datasync() : f.sync());
  }

  async fallocate(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, length: number, mode: number): Promise<void> {
    if (mode !== 0) throw fuseError('EOPNOTSUPP');
    const f = this.file(fh);
    const st = await f.stat();
    if (offset + length > st.size) await f.truncate(offset + length);
  }

  private async listing(path: string): Promise<Dirent[]> {
    const found = await readdir(path, { withFileTypes: true });
    const dir = { ino: UNKNOWN_INO, type: fsc.S_IFDIR };
    const all = [{ ...dir, name: '.' }, { ...dir, name: '..' }, ...found.map((d) => ({ ino: UNKNOWN_INO, name: d.name, type: typeOf(d) }))];
    return all.map((e, i) => ({ ...e, nextOffset: i + 1 }));
  }

  async opendir(_ctx: RequestContext, nodeid: number): Promise<OpenReply> {
    const path = this.node(nodeid).path;
    const fh = this.nextFh++;
    this.dirs.set(fh, { path, entries: await this.listing(path) });
    return { fh };
  }

  async readdir(_ctx: RequestContext, _nodeid: number, fh: number, offset: number): Promise<Dirent[]> {
    const d = this.dirs.get(fh);
    if (!d) throw fuseError('EBADF');
    // A read from the start (rewinddir) sees the directory as it is now.
    if (offset === 0) d.entries = await this.listing(d.path);
    return d.entries.slice(offset, offset + READDIR_BATCH);
  }

  async releasedir(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    this.dirs.delete(fh);
  }

  async fsyncdir(): Promise<void> {}

  async statfs(): Promise<Statfs> {
    const s = await statfs(this.root);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  private async xattrsOf(nodeid: number, create: boolean): Promise<Map<string, Buffer> | undefined> {
    const key = keyOf(await this.stat(nodeid));
    let m = this.xattrs.get(key);
    if (!m && create) this.xattrs.set(key, (m = new Map()));
    return m;
  }

  async setxattr(_ctx: RequestContext, nodeid: number, name: string, value: Buffer, flags: number): Promise<void> {
    const m = (await this.xattrsOf(nodeid, true))!;
    if (flags & XATTR_CREATE && m.has(name)) throw fuseError('EEXIST');
    if (flags & XATTR_REPLACE && !m.has(name)) throw fuseError('ENODATA');
    m.set(name, value);
  }

  async getxattr(_ctx: RequestContext, nodeid: number, name: string): Promise<Buffer> {
    const v = (await this.xattrsOf(nodeid, false))?.get(name);
    if (!v) throw fuseError('ENODATA');
    return v;
  }

  async listxattr(_ctx: RequestContext, nodeid: number): Promise<string[]> {
    return [...((await this.xattrsOf(nodeid, false))?.keys() ?? [])];
  }

  async removexattr(_ctx: RequestContext, nodeid: number, name: string): Promise<void> {
    if (!(await this.xattrsOf(nodeid, false))?.delete(name)) throw fuseError('ENODATA');
  }

  async access(_ctx: RequestContext, nodeid: number): Promise<void> {
    await this.stat(nodeid);
  }

  /** Closes every file still open (after the session ended). */
  async destroy(): Promise<void> {
    const open = [...this.files.values()];
    this.files.clear();
    this.dirs.clear();
    await Promise.all(open.map((o) => o.f.close().catch(() => {})));
  }
}
