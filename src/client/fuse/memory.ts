// A FuseOps that keeps everything in this process's memory: the FUSE layer's own floor. Mounted
// through the same FuseSession as llite, with nothing behind the session but a few Maps, it
// shows what the kernel's requests cost by themselves (bench/fuse.ts's "fuse memory" figures):
// a create there is the same five requests (LOOKUP, CREATE, FLUSH, RELEASE and the directory's
// GETATTR) as one through llite, with none of Lustre's work behind them.
//
// Names, attributes and data live as long as the mount; as everything here is this mount's own,
// entries and attributes are handed out with long timeouts (as llite does under its locks).
// Regular files and directories only (mknod, symlinks, links, xattrs and locks are not served:
// the kernel answers ENOSYS for them); permissions are the kernel's (default_permissions).
import { constants as fsc } from 'node:fs';
import type { Attr, AttrReply, Dirent, Entry, FuseOps, OpenReply, RequestContext, SetattrChanges, Statfs } from './ops.js';
import { fuseError, RENAME_NOREPLACE } from './ops.js';
import { FUSE_ROOT_ID } from './wire.js';

/** How long the kernel may keep names and attributes: nothing else changes them. */
const VALIDITY_MS = 30_000;
/** Data is kept in pieces of this size (a write covers any number of them). */
const CHUNK = 1 << 20;
/** Entries made per READDIR at most (a 4 KiB answer holds about 100; the kernel asks again from the last one's offset). */
const READDIR_BATCH = 512;

interface Inode {
  attr: Attr;
  /** Names in a directory, to nodeids. */
  children?: Map<string, number>;
  /** A regular file's data: CHUNK-sized pieces, undefined where never written (holes). */
  chunks?: Array<Buffer | undefined>;
  /** Kernel references (lookups not yet forgotten) and open handles: gone at 0 once unlinked. */
  nlookup: number;
  opens: number;
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

function isDir(n: Inode): boolean {
  return (n.attr.mode & fsc.S_IFMT) === fsc.S_IFDIR;
}

export class MemoryFs implements FuseOps {
  private readonly inodes = new Map<number, Inode>();
  private readonly files = new Map<number, number>();
  private nextNodeid = FUSE_ROOT_ID + 1;
  private nextFh = 1;

  constructor(owner: { uid: number; gid: number } = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }) {
    const t = nowNs();
    this.inodes.set(FUSE_ROOT_ID, {
      attr: { ino: FUSE_ROOT_ID, mode: fsc.S_IFDIR | 0o755, nlink: 2, uid: owner.uid, gid: owner.gid, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeNs: t, mtimeNs: t, ctimeNs: t },
      children: new Map(), nlookup: 1, opens: 0,
    });
  }

  /** Inodes alive right now (the root included): what forget and release leave. */
  get inodeCount(): number { return this.inodes.size; }

  private inode(nodeid: number): Inode {
    const n = this.inodes.get(nodeid);
    if (!n) throw fuseError('ESTALE', `unknown nodeid ${nodeid}`);
    return n;
  }

  private dir(nodeid: number): Map<string, number> {
    const n = this.inode(nodeid);
    if (!n.children) throw fuseError('ENOTDIR', `nodeid ${nodeid} is not a directory`);
    return n.children;
  }

  private entry(nodeid: number): Entry {
    const n = this.inode(nodeid);
    n.nlookup++;
    return { nodeid, attr: { ...n.attr }, entryTimeoutMs: VALIDITY_MS, attrTimeoutMs: VALIDITY_MS };
  }

  /** Drops an inode nothing refers to any more: no name, no kernel reference, no open handle. */
  private dropIfUnused(nodeid: number): void {
    const n = this.inodes.get(nodeid);
    if (n && nodeid !== FUSE_ROOT_ID && n.attr.nlink === 0 && n.nlookup <= 0 && n.opens === 0) this.inodes.delete(nodeid);
  }

  private touchDir(parent: Inode, nlinkDelta = 0): void {
    const t = nowNs();
    parent.attr.mtimeNs = t;
    parent.attr.ctimeNs = t;
    parent.attr.nlink += nlinkDelta;
    parent.attr.size = parent.children!.size;
  }

  private make(ctx: RequestContext, parent: number, name: string, mode: number): number {
    const children = this.dir(parent);
    if (children.has(name)) throw fuseError('EEXIST', `${name} exists`);
    const t = nowNs();
    const nodeid = this.nextNodeid++;
    const dir = (mode & fsc.S_IFMT) === fsc.S_IFDIR;
    this.inodes.set(nodeid, {
      attr: { ino: nodeid, mode, nlink: dir ? 2 : 1, uid: ctx.uid, gid: ctx.gid, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeNs: t, mtimeNs: t, ctimeNs: t },
      ...(dir ? { children: new Map<string, number>() } : { chunks: [] }),
      nlookup: 0, opens: 0,
    });
    children.set(name, nodeid);
    this.touchDir(this.inode(parent), dir ? 1 : 0);
    return nodeid;
  }

  async lookup(_ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    const nodeid = this.dir(parent).get(name);
    if (nodeid === undefined) throw fuseError('ENOENT', `no ${name}`);
    return this.entry(nodeid);
  }

  forget(nodeid: number, nlookup: number): void {
    const n = this.inodes.get(nodeid);
    if (!n || nodeid === FUSE_ROOT_ID) return;
    n.nlookup -= nlookup;
    this.dropIfUnused(nodeid);
  }

  async getattr(_ctx: RequestContext, nodeid: number): Promise<AttrReply> {
    return { attr: { ...this.inode(nodeid).attr }, attrTimeoutMs: VALIDITY_MS };
  }

  async setattr(_ctx: RequestContext, nodeid: number, c: SetattrChanges): Promise<AttrReply> {
    const n = this.inode(nodeid);
    const t = nowNs();
    if (c.size !== undefined) {
      if (isDir(n)) throw fuseError('EISDIR', 'truncate of a directory');
      this.resize(n, c.size);
      n.attr.mtimeNs = t;
    }
    if (c.mode !== undefined) n.attr.mode = (n.attr.mode & fsc.S_IFMT) | (c.mode & 0o7777);
    if (c.uid !== undefined) n.attr.uid = c.uid;
    if (c.gid !== undefined) n.attr.gid = c.gid;
    if (c.atimeNs !== undefined) n.attr.atimeNs = c.atimeNs === 'now' ? t : c.atimeNs;
    if (c.mtimeNs !== undefined) n.attr.mtimeNs = c.mtimeNs === 'now' ? t : c.mtimeNs;
    n.attr.ctimeNs = c.ctimeNs ?? t;
    return { attr: { ...n.attr }, attrTimeoutMs: VALIDITY_MS };
  }

  private resize(n: Inode, size: number): void {
    const chunks = n.chunks!;
    const keep = Math.ceil(size / CHUNK);
    chunks.length = Math.min(chunks.length, keep);
    const tail = size % CHUNK;
    const last = keep > 0 ? chunks[keep - 1] : undefined;
    if (tail !== 0 && last) last.fill(0, tail);
    n.attr.size = size;
    n.attr.blocks = chunks.reduce((s, c) => s + (c ? CHUNK / 512 : 0), 0);
  }

  async mkdir(ctx: RequestContext, parent: number, name: string, mode: number, umask: number): Promise<Entry> {
    return this.entry(this.make(ctx, parent, name, fsc.S_IFDIR | (mode & ~umask & 0o7777)));
  }

  async create(ctx: RequestContext, parent: number, name: string, mode: number, _flags: number, umask: number): Promise<{ entry: Entry; open: OpenReply }> {
    const nodeid = this.make(ctx, parent, name, fsc.S_IFREG | (mode & ~umask & 0o7777));
    const entry = this.entry(nodeid);
    return { entry, open: this.openNode(nodeid) };
  }

  private openNode(nodeid: number): OpenReply {
    this.inode(nodeid).opens++;
    const fh = this.nextFh++;
    this.files.set(fh, nodeid);
    return { fh };
  }

  async open(_ctx: RequestContext, nodeid: number): Promise<OpenReply> {
    if (isDir(this.inode(nodeid))) throw fuseError('EISDIR', 'open of a directory as a file');
    return this.openNode(nodeid);
  }

  private fileNode(fh: number): Inode {
    const nodeid = this.files.get(fh);
    if (nodeid === undefined) throw fuseError('EBADF', `unknown fh ${fh}`);
    return this.inode(nodeid);
  }

  async read(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, size: number): Promise<Buffer> {
    const n = this.fileNode(fh);
    const end = Math.min(n.attr.size, offset + size);
    if (end <= offset) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    for (let at = offset; at < end;) {
      const i = Math.floor(at / CHUNK);
      const within = at - i * CHUNK;
      const len = Math.min(CHUNK - within, end - at);
      n.chunks![i]?.copy(out, at - offset, within, within + len);
      at += len;
    }
    return out;
  }

  async write(_ctx: RequestContext, _nodeid: number, fh: number, offset: number, data: Buffer): Promise<number> {
    const n = this.fileNode(fh);
    const chunks = n.chunks!;
    for (let done = 0; done < data.length;) {
      const at = offset + done;
      const i = Math.floor(at / CHUNK);
      const within = at - i * CHUNK;
      const len = Math.min(CHUNK - within, data.length - done);
      if (!chunks[i]) {
        chunks[i] = Buffer.alloc(CHUNK);
        n.attr.blocks += CHUNK / 512;
      }
      data.copy(chunks[i]!, within, done, done + len);
      done += len;
    }
    const t = nowNs();
    n.attr.size = Math.max(n.attr.size, offset + data.length);
    n.attr.mtimeNs = t;
    n.attr.ctimeNs = t;
    return data.length;
  }

  async flush(): Promise<void> {}

  async fsync(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    this.fileNode(fh);
  }

  async release(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    const nodeid = this.files.get(fh);
    if (nodeid === undefined) return;
    this.files.delete(fh);
    const n = this.inodes.get(nodeid);
    if (n) n.opens--;
    this.dropIfUnused(nodeid);
  }

  private remove(parent: number, name: string, rmdir: boolean): void {
    const children = this.dir(parent);
    const nodeid = children.get(name);
    if (nodeid === undefined) throw fuseError('ENOENT', `no ${name}`);
    const n = this.inode(nodeid);
    if (rmdir && !isDir(n)) throw fuseError('ENOTDIR', `${name} is not a directory`);
    if (!rmdir && isDir(n)) throw fuseError('EISDIR', `${name} is a directory`);
    if (rmdir && n.children!.size > 0) throw fuseError('ENOTEMPTY', `${name} is not empty`);
    children.delete(name);
    n.attr.nlink = 0;
    n.attr.ctimeNs = nowNs();
    this.touchDir(this.inode(parent), rmdir ? -1 : 0);
    this.dropIfUnused(nodeid);
  }

  async unlink(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    this.remove(parent, name, false);
  }

  async rmdir(_ctx: RequestContext, parent: number, name: string): Promise<void> {
    this.remove(parent, name, true);
  }

  async rename(_ctx: RequestContext, parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void> {
    if (flags & ~RENAME_NOREPLACE) throw fuseError('EINVAL', `rename flags ${flags}`);
    const from = this.dir(parent);
    const to = this.dir(newParent);
    const nodeid = from.get(name);
    if (nodeid === undefined) throw fuseError('ENOENT', `no ${name}`);
    const over = to.get(newName);
    if (over === nodeid) return;
    if (over !== undefined) {
      if (flags & RENAME_NOREPLACE) throw fuseError('EEXIST', `${newName} exists`);
      const moving = isDir(this.inode(nodeid));
      const target = this.inode(over);
      if (moving && !isDir(target)) throw fuseError('ENOTDIR', `${newName} is not a directory`);
      if (!moving && isDir(target)) throw fuseError('EISDIR', `${newName} is a directory`);
      this.remove(newParent, newName, moving);
    }
    from.delete(name);
    to.set(newName, nodeid);
    const dir = isDir(this.inode(nodeid));
    this.touchDir(this.inode(parent), dir && parent !== newParent ? -1 : 0);
    this.touchDir(this.inode(newParent), dir && parent !== newParent ? 1 : 0);
    this.inode(nodeid).attr.ctimeNs = nowNs();
  }

  async opendir(_ctx: RequestContext, nodeid: number): Promise<OpenReply> {
    this.dir(nodeid);
    return { fh: 0 };
  }

  async readdir(_ctx: RequestContext, nodeid: number, _fh: number, offset: number): Promise<Dirent[]> {
    const children = this.dir(nodeid);
    const out: Dirent[] = [];
    // Offsets: 1 after '.', 2 after '..', 2 + i + 1 after the i-th name (in insertion order).
    if (offset < 1) out.push({ ino: nodeid, name: '.', type: fsc.S_IFDIR, nextOffset: 1 });
    if (offset < 2) out.push({ ino: nodeid, name: '..', type: fsc.S_IFDIR, nextOffset: 2 });
    let i = 0;
    for (const [name, child] of children) {
      if (out.length >= READDIR_BATCH) break;
      if (2 + i >= offset) out.push({ ino: child, name, type: this.inode(child).attr.mode & fsc.S_IFMT, nextOffset: 2 + i + 1 });
      i++;
    }
    return out;
  }

  async releasedir(): Promise<void> {}

  async statfs(): Promise<Statfs> {
    return { blocks: 0, bfree: 0, bavail: 0, files: this.inodes.size, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };
  }
}
