// llite: the client file system as the FUSE kernel sees it (Lustre's llite is the VFS glue of its
// client). FUSE names inodes by nodeid; each nodeid stands for one FID, so a rename never
// changes what a nodeid means. Namespace calls go to the MDT through the MDC by FID, file data
// through the mount's file handles (LOV over the OSCs), as the same caller the kernel names.
//
// Caching follows the locks (when the targets serve them): the kernel's page cache of a file is
// kept across opens while its data is read and written under the OSCs' extent locks; a name
// (dentry) is kept while the MDC holds its child's LOOKUP lock (md-cache.ts); and every lock
// that goes (blocking callback, LRU, eviction) drops what it vouched for: the mount's
// invalidations (MountCore.onInvalidate) become FUSE_NOTIFY_INVAL_INODE / INVAL_ENTRY, and the
// lock goes back once the kernel dropped the attributes, the pages and the names. Except: a
// running request that holds the kernel's lock an invalidation needs (a READ or WRITE of the
// file: its pages; a LOOKUP, READDIR or change of a name in the directory: the directory) may
// itself wait for a lock that waits for ours (notify.ts). Then a name's invalidation is not
// waited for; a READ waiting for a lock needs its pages dropped not at all (it reads after the
// change), and the pages of a READ or WRITE that may wait get a notification of their own,
// waited for only until the kernel has it, while the pages around them are dropped as ever
// (#dropPages). Waiting matters: each INVAL_INODE makes the kernel discard the attributes of
// any GETATTR already sent, and a read would then go by the old size (a read past the old end
// of a file the other mount had just extended returned 0 bytes); a page dropped late is read
// stale meanwhile; a name dropped late would be found after the other mount's rename. Reads
// check the size first (FUSE_AUTO_INVAL_DATA) unless the attributes have a validity, which
// they get only while this mount's extent locks cover the whole file. Without locks nothing is
// cached across calls: entries and attributes have no validity and the page cache is dropped
// at each open.
//
// Application locks (getlk, setlk): fcntl and flock() locks are FLOCK locks of the MDT on the
// file's FID, owned by the kernel's lock owner (a process for POSIX locks, an open file for
// flock()), as Lustre's ll_file_flock takes them: a lock is an enqueue of PR (read) or PW
// (write), an unlock an enqueue of NL, F_GETLK an enqueue with TEST_LOCK, F_SETLK one with
// BLOCK_NOWAIT. The MDT keeps each owner's ranges (merging and splitting); the client
// remembers only which owners may hold something on a file, so that the unlock every close()
// sends costs nothing when they hold nothing.
//
// llite.*.stats: the calls that go beside the mount's FileSystem (namespace changes by FID,
// attributes, directories, xattrs, locks) are counted here, each once it succeeded; those that
// go through it (open, create, statfs) or through a file handle (read, write, fsync, release,
// a getattr or truncate with a handle) are counted there, not here.
import { OutcomeError } from '../log/index.js';
import { parseFid } from '../osd/index.js';
import { bsdFlockPolicy, hasFlag, LockFlag, LockMode, LockType, OBD_OBJECT_EOF, resIdOfFid } from '../ldlm/index.js';
import type { MdtAttr } from '../services/mdt/protocol.js';
import { S_ISGID, S_ISUID, suidGidKilled } from '../services/mdt/perm.js';
import { FileObject, type LockProgress } from './file.js';
import type { FileSystem } from './fs.js';
import type { FileHandle } from './handle.js';
import {
  FUSE_ROOT_ID, OFFSET_MAX, WriteFlag, type AttrReply, type Dirent, type Entry, type FileLock, type FuseOps, type OpenReply, type RequestContext,
  type SetattrChanges, type SetlkOptions, type Statfs,
} from './fuse/index.js';
import { OpenFlag } from './flags.js';
import type { LliteStats } from './lproc.js';
import type { Invalidation } from './mount.js';
import { fidFlatten32, Stats, type DataAttrs } from './stats.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const TYPE_BITS: Record<string, number> = { reg: 0o100000, dir: 0o040000, lnk: 0o120000, chr: 0o020000, blk: 0o060000, fifo: 0o010000, sock: 0o140000, idx: 0 };
/** Directory entries fetched from the MDT per readdir page. */
const DIR_PAGE_BYTES = 64 * 1024;
/** Views of the mount per caller kept at once (uid:gid); older ones are dropped. */
const VIEWS_MAX = 64;
/** Lock owners remembered as possibly holding application locks (beyond it, close always asks the MDT). */
const LOCK_OWNERS_MAX = 65536;
/**
 * How long the kernel may keep an entry or attributes that a lock vouches for: the lock's
 * revocation tells the kernel at once; this bounds what a lost notification could leave.
 */
export const LOCKED_VALIDITY_MS = 30_000;
/**
 * Whether the kernel keeps a file's pages across opens while extent locks cover them. It was
 * off while a lock could go back before the kernel had dropped its pages (a new open on one
 * mount read pages from before the other mount's overwrite): a lock now goes once they are
 * dropped (#invalidate), except the pages of a READ or WRITE of the file running here at that
 * moment, which go once it is answered (#dropPages).
 */
const KEEP_CACHE_UNDER_LOCKS = true;
/**
 * The largest folio the kernel may lock for a WRITE (large folios): a WRITE's byte range is
 * widened to it, as its pages may lie beyond the bytes written.
 */
const FOLIO_SPAN_MAX = 2 * 1024 * 1024;
/**
 * File capabilities, which Lustre's llite does not keep (b15587): a getxattr of them is ENODATA
 * without a request, a setxattr or removexattr of them does nothing. The kernel asks for this
 * xattr before every write to a file (file_remove_privs: FUSE never marks an inode as having no
 * security xattrs), and each such GETXATTR cost an MDT request, about 500 us beside a 1 MiB
 * WRITE's 1,350.
 */
const CAPABILITY_XATTR = 'security.capability';
/** Names remembered per inode for entry invalidations (a file with more links: the rest age out). */
const NAMES_PER_NODE_MAX = 8;

/** What llite needs of its FUSE session: the kernel's cache invalidations. */
export interface KernelCache {
  /** `entered`: called as the kernel is handed the notification (FuseSession.invalInode). */
  invalInode(nodeid: number, offset?: number, length?: number, entered?: () => void): Promise<boolean>;
  invalEntry(parent: number, name: string): Promise<boolean>;
  /**
   * Attributes dropped at once, for a directory or a file the kernel holds for a running
   * request (FuseSession.invalAttrsNow); without it, invalInode(nodeid, -1).
   */
  invalAttrsNow?(nodeid: number): boolean;
}

/** Bytes [start, end) of a file. */
interface PageRange { start: number; end: number }
/** A READ or WRITE running (#io): its pages, and for a READ where it stands with its locks. */
interface IoRange extends PageRange { read?: LockProgress }
interface Node { fid: string; lookups: number; names?: Array<{ parent: number; name: string }>; dir?: boolean }
interface DirHandle { fid: string; base: number; entries: Dirent[]; cookie: string | null; end: boolean }

const nsOf = (seconds: number): bigint => BigInt(Math.round(seconds * 1e6)) * 1000n;
const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e3)) * 1000n;
const inoOf = (fid: string): number => fidFlatten32(parseFid(fid));

function attrOf(s: Stats): AttrReply['attr'] {
  return {
    ino: s.ino, mode: s.mode, nlink: s.nlink, uid: s.uid, gid: s.gid, rdev: s.rdev, size: s.size,
    blocks: s.blocks, blksize: s.blksize, atimeNs: msToNs(s.atimeMs), mtimeNs: msToNs(s.mtimeMs), ctimeNs: msToNs(s.ctimeMs),
  };
}

/** An errno answer to the kernel (ENODATA for every write's security.capability, EBADF, ESTALE): no stack trace. */
function error(code: string, message: string): Error {
  return Object.assign(new OutcomeError(message, true), { code });
}

/** Counts one more holder of `key` in `counts`. */
function countUp<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Counts one holder of `key` fewer in `counts`, forgetting it at none. */
function countDown<K>(counts: Map<K, number>, key: K): void {
  const n = counts.get(key)! - 1;
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}

export class Llite implements FuseOps {
  readonly #fs: FileSystem;
  readonly #nodes = new Map<number, Node>([[FUSE_ROOT_ID, { fid: '', lookups: 1, dir: true }]]);
  readonly #nodeOfFid = new Map<string, number>();
  readonly #files = new Map<number, FileHandle>();
  /** Open files whose writes bypass the kernel's page cache (FOPEN_DIRECT_IO; #opened). */
  readonly #direct = new Set<number>();
  /** Open files whose reads and writes go through the kernel's page cache, by FID. */
  readonly #cachedOpens = new Map<string, number>();
  readonly #dirs = new Map<number, DirHandle>();
  readonly #views = new Map<string, FileSystem>();
  /** Owners that may hold application locks, by `${nodeid}:${owner}`. */
  readonly #lockOwners = new Set<string>();
  /**
   * Requests running that hold a directory's lock in the kernel, by the directory's nodeid: a
   * LOOKUP, READDIR or change of a name in it. A name's invalidation needs that lock
   * (notify.ts), so none is waited for meanwhile. (READs and WRITEs are in #io.)
   */
  readonly #holding = new Map<number, number>();
  /**
   * Files the kernel holds a reference to while a request of this mount runs (an UNLINK's
   * child, through its dentry), by nodeid: their attribute invalidations cannot wait for
   * anything (no eviction can start under that reference) and are written at once, as a
   * directory's are (#invalidate).
   */
  readonly #pinned = new Map<number, number>();
  /**
   * Names an UNLINK or RMDIR of this mount is removing, by `${parent}/${name}`: true once the
   * child's lock went meanwhile (its early cancel) and the name's invalidation was held back.
   * Sent at once, it would only wait for the request's answer (the kernel holds the directory)
   * to find the name gone: the kernel drops it itself when the request succeeds. After a
   * failure the held-back invalidation is sent (6.x kernels drop the name on ENOENT too, older
   * ones do not).
   */
  readonly #unlinking = new Map<string, boolean>();
  /**
   * The children of those UNLINKs and RMDIRs, by nodeid: true once their attributes' invalidation
   * was held back (the early cancel of the child's lock). A request that removes the child's last
   * name leaves nothing for those attributes to describe, and the kernel bumps the inode's
   * attr_version and drops its nlink itself: the notification (a write to /dev/fuse, about 25 us
   * of this thread per unlink) is then not sent. Otherwise (a name left, an orphan still open,
   * a failure) it is, once the answer is known.
   */
  readonly #removingChild = new Map<number, boolean>();
  /** Invalidations waiting for a nodeid, to stop waiting when a request holding it starts. */
  readonly #holdWaiters = new Map<number, Set<() => void>>();
  /** READs and WRITEs running, by nodeid: the byte ranges whose pages the kernel holds locked for them. */
  readonly #io = new Map<number, Set<IoRange>>();
  /** Page invalidations under way, by nodeid, told of each READ or WRITE that starts (#dropPages). */
  readonly #ioStarts = new Map<number, Set<(range: PageRange) => void>>();
  #kernel: KernelCache | undefined;
  /**
   * Whether a file opened write-only (and not O_APPEND) bypasses the kernel's page cache
   * (FOPEN_DIRECT_IO; llite.*.fuse_direct_write). See #opened.
   */
  directWrite = true;
  #nextNodeid = FUSE_ROOT_ID + 1;
  #nextFh = 1;

  get #stats(): LliteStats {
    return this.#fs.core.lliteStats;
  }

  constructor(fs: FileSystem) {
    this.#fs = fs;
    const root = fs.core.rootFid;
    this.#nodes.get(FUSE_ROOT_ID)!.fid = root;
    this.#nodeOfFid.set(root, FUSE_ROOT_ID);
    fs.core.onInvalidate((what) => this.#invalidate(what));
  }

  /** The FUSE session serving these ops: lock revocations reach the kernel's caches from now on. */
  attach(kernel: KernelCache): void {
    this.#kernel = kernel;
  }

  /**
   * Tells the kernel what a lock's going made stale. Resolves once it dropped the attributes
   * (an attribute-only invalidation waits for nothing), the pages (#dropPages says which may
   * go later) and the names; but a name's invalidation is not waited for while a request of
   * this mount holds the directory's lock in the kernel (#holding: one running, or starting
   * meanwhile), since it may wait for the very lock going back (notify.ts).
   */
  #invalidate(what: Invalidation): Promise<void> | undefined {
    const kernel = this.#kernel;
    const nodeid = this.#nodeOfFid.get(what.fid);
    if (!kernel || nodeid === undefined) return undefined;
    const settled = (p: Promise<unknown>): Promise<void> => p.then(() => undefined, () => undefined);
    const node = this.#nodes.get(nodeid);
    const waits: Promise<void>[] = [];
    if (what.kind === 'attr' && this.#removingChild.has(nodeid)) this.#removingChild.set(nodeid, true);
    else if ((node?.dir || this.#pinned.has(nodeid)) && kernel.invalAttrsNow && what.kind === 'attr') {
      this.#dropAttrsNow(nodeid);
    } else waits.push(settled(kernel.invalInode(nodeid, -1, 0)));
    if (what.kind === 'data') waits.push(this.#dropPages(kernel, nodeid));
    if (what.kind === 'attr' && what.lookup) {
      for (const n of node?.names?.splice(0) ?? []) {
        const key = `${n.parent}/${n.name}`;
        if (this.#unlinking.has(key)) this.#unlinking.set(key, true);
        else waits.push(this.#untilHeld(n.parent, settled(kernel.invalEntry(n.parent, n.name))));
      }
    }
    if (waits.length === 0) return undefined;
    return Promise.all(waits).then(() => undefined);
  }

  /**
   * Drops the kernel's attributes of a directory, or of a file it holds for a request running
   * here, at once from this thread (FuseSession.invalAttrsNow); from a thread without it.
   */
  #dropAttrsNow(nodeid: number): void {
    const kernel = this.#kernel;
    if (!kernel?.invalAttrsNow) {
      void kernel?.invalInode(nodeid, -1, 0).catch(() => undefined);
      return;
    }
    try {
      kernel.invalAttrsNow(nodeid);
    } catch {
      // refused (a malformed notification): swallowed as invalInode's failures are
    }
  }

  /** Resolves when `done` does, or sooner when a request holding `nodeid` (#holding) runs or starts. */
  #untilHeld(nodeid: number, done: Promise<void>): Promise<void> {
    if (this.#holding.has(nodeid)) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.#holdWaiters.get(nodeid);
      if (!waiters) this.#holdWaiters.set(nodeid, (waiters = new Set()));
      waiters.add(resolve);
      void done.then(() => {
        const now = this.#holdWaiters.get(nodeid);
        if (now?.delete(resolve) && now.size === 0) this.#holdWaiters.delete(nodeid);
        resolve();
      });
    });
  }

  /**
   * Drops the kernel's cached pages of a file. The kernel drops them in order and waits at each
   * page a READ or WRITE has locked until that request is answered, which may be never while
   * the lock going back is not (the request may wait for a lock that waits for ours). So the
   * ranges of this mount's READs and WRITEs of the file (#io) get notifications of their own,
   * and the gaps between them others, each waited for until done, except:
   * - a READ waiting for a lock (LockProgress 'locking') gets none: whatever it reads comes from
   *   after the change this lock makes way for (a new lock of its own, granted after the
   *   change, or one that a later callback revokes in turn). Its range is in no gap either.
   * - a request whose state is not known ('start': not at its locks yet; a WRITE; a READ
   *   served from a read-ahead window) gets one waited for only until the kernel has it (its
   *   attr_version bump made: none may come after the lock went back, or the kernel would
   *   discard the attributes of a GETATTR sent before it, and read by the old size; the pages
   *   go once the request is answered).
   * A request that starts inside a gap meanwhile (the kernel locked its pages before we saw
   * it) splits the gap: its notification is then waited for until entered, and the parts of
   * the gap around the request get notifications of their own.
   */
  #dropPages(kernel: KernelCache, nodeid: number): Promise<void> {
    return new Promise((resolve) => {
      const starts = this.#ioStarts.get(nodeid) ?? new Set<(range: PageRange) => void>();
      this.#ioStarts.set(nodeid, starts);
      let outstanding = 0;
      const finish = (): void => {
        if (--outstanding > 0) return;
        if (starts.size === 0 && this.#ioStarts.get(nodeid) === starts) this.#ioStarts.delete(nodeid);
        resolve();
      };
      /** One notification for [start, end) (end undefined: to the end of the file). */
      const send = (start: number, end: number | undefined, held: boolean): void => {
        if (end !== undefined && end <= start) return;
        outstanding++;
        let entered!: () => void;
        const handed = new Promise<void>((r) => (entered = r));
        const done = kernel.invalInode(nodeid, start, end === undefined ? 0 : end - start, entered).then(() => undefined, () => undefined);
        const untilEntered = (): void => void Promise.race([done, handed]).then(finish);
        if (held) return untilEntered();
        let split = false;
        const watcher = (r: PageRange): void => {
          if (r.end <= start || (end !== undefined && r.start >= end)) return;
          split = true;
          starts.delete(watcher);
          send(start, r.start, false);
          send(r.end, end, false);
          untilEntered();
        };
        starts.add(watcher);
        void done.then(() => {
          if (split) return;
          starts.delete(watcher);
          finish();
        });
      };
      const running = [...(this.#io.get(nodeid) ?? [])].sort((a, b) => a.start - b.start);
      let at = 0;
      for (const r of running) {
        send(at, r.start, false);
        at = Math.max(at, r.end);
      }
      send(at, undefined, false);
      for (const r of running) {
        // A READ waiting for a lock reads after the change that called this one back: its pages
        // get fresh data, and need nothing from us. One that holds its locks waits for no one.
        if (r.read?.phase === 'locking') continue;
        send(r.start, r.end, r.read?.phase !== 'locked');
      }
    });
  }

  /** Runs a READ or WRITE of `nodeid` whose pages in `range` the kernel holds locked meanwhile (#io). */
  async #doingIo<T>(nodeid: number, range: IoRange, op: () => Promise<T>): Promise<T> {
    let running = this.#io.get(nodeid);
    if (!running) this.#io.set(nodeid, (running = new Set()));
    running.add(range);
    for (const w of [...(this.#ioStarts.get(nodeid) ?? [])]) w(range);
    try {
      return await op();
    } finally {
      running.delete(range);
      if (running.size === 0 && this.#io.get(nodeid) === running) this.#io.delete(nodeid);
    }
  }

  /** Runs a request that holds a kernel lock of each of `nodeids` meanwhile (#holding). */
  async #holds<T>(nodeids: number[], op: () => Promise<T>): Promise<T> {
    for (const nodeid of nodeids) {
      countUp(this.#holding, nodeid);
      const waiters = this.#holdWaiters.get(nodeid);
      if (waiters) {
        this.#holdWaiters.delete(nodeid);
        for (const w of waiters) w();
      }
    }
    try {
      return await op();
    } finally {
      for (const nodeid of nodeids) countDown(this.#holding, nodeid);
    }
  }

  /** Validity the kernel may give what `locked` attributes say (0 without locks behind all of it). */
  #validity(attr: MdtAttr, locked: boolean): number {
    if (!locked || !this.#kernel) return 0;
    if ((attr.mode & S_IFMT) !== S_IFREG) return LOCKED_VALIDITY_MS;
    // A regular file's size and times are the OSTs': another mount may change them without
    // touching the MDT, so the kernel keeps them only while extent locks here cover them all.
    return this.#fs.core.dataCovered(attr.fid) ? LOCKED_VALIDITY_MS : 0;
  }

  /** Open files and directories right now (the mount refuses a plain umount while any is). */
  get openCount(): number {
    return this.#files.size + this.#dirs.size;
  }

  // ---- nodeids ------------------------------------------------------------------------------

  #fid(nodeid: number): string {
    const n = this.#nodes.get(nodeid);
    if (!n) throw error('ESTALE', `nodeid ${nodeid} is not known (forgotten)`);
    return n.fid;
  }

  /** The caller's view: the MDT checks permissions for the uid and gid the kernel names. */
  #as(ctx: RequestContext): FileSystem {
    if (ctx.uid === 0 && ctx.gid === 0) return this.#fs;
    const key = `${ctx.uid}:${ctx.gid}`;
    let view = this.#views.get(key);
    if (!view) {
      if (this.#views.size >= VIEWS_MAX) this.#views.delete(this.#views.keys().next().value!);
      view = this.#fs.as({ uid: ctx.uid, gid: ctx.gid, groups: [] });
      this.#views.set(key, view);
    }
    return view;
  }

  async #entry(
    fs: FileSystem, attr: MdtAttr, named?: { parent: number; name: string; locked: boolean; entryValid?: boolean }, created = false, data?: DataAttrs,
  ): Promise<Entry> {
    let nodeid = this.#nodeOfFid.get(attr.fid);
    if (nodeid === undefined) {
      nodeid = this.#nextNodeid++;
      this.#nodes.set(nodeid, { fid: attr.fid, lookups: 0, dir: (attr.mode & S_IFMT) === S_IFDIR });
      this.#nodeOfFid.set(attr.fid, nodeid);
    }
    const node = this.#nodes.get(nodeid)!;
    node.lookups++;
    const stats = attrOf(data ? new Stats(attr, fs.core.dev, data) : await fs.statOf(attr, undefined, created));
    const validity = named ? this.#validity(attr, named.locked) : 0;
    if (named?.entryValid && this.#kernel) {
      node.names ??= [];
      if (!node.names.some((n) => n.parent === named.parent && n.name === named.name)) {
        if (node.names.length >= NAMES_PER_NODE_MAX) node.names.shift();
        node.names.push({ parent: named.parent, name: named.name });
      }
    }
    return { nodeid, attr: stats, entryTimeoutMs: named?.entryValid && this.#kernel ? LOCKED_VALIDITY_MS : 0, attrTimeoutMs: validity };
  }

  forget(nodeid: number, nlookup: number): void {
    if (nodeid === FUSE_ROOT_ID) return;
    const n = this.#nodes.get(nodeid);
    if (!n) return;
    n.lookups -= nlookup;
    if (n.lookups > 0) return;
    this.#nodes.delete(nodeid);
    if (this.#nodeOfFid.get(n.fid) === nodeid) this.#nodeOfFid.delete(n.fid);
  }

  // ---- attributes ---------------------------------------------------------------------------

  lookup(ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    return this.#holds([parent], async () => {
      const fs = this.#as(ctx);
      const r = await fs.core.mdCache.lookup(fs.mdc, this.#fid(parent), name);
      return this.#entry(fs, r.attr, { parent, name, locked: r.locked, entryValid: r.named === true });
    });
  }

  async getattr(ctx: RequestContext, nodeid: number, fh: number | undefined): Promise<AttrReply> {
    const h = fh !== undefined ? this.#files.get(fh) : undefined;
    if (h) return { attr: attrOf(await h.stat()), attrTimeoutMs: 0 }; // counted by the handle
    return this.#stats.counted('getattr', () => this.#attrReply(ctx, nodeid, undefined));
  }

  /** What a GETATTR answers, uncounted (a SETATTR answers it too). */
  async #attrReply(ctx: RequestContext, nodeid: number, h: FileHandle | undefined): Promise<AttrReply> {
    const fs = this.#as(ctx);
    if (h) return { attr: attrOf(await fs.statOf(await fs.getattr(h.attr.fid), h.file)), attrTimeoutMs: 0 };
    const r = await fs.core.mdCache.getattr(fs.mdc, this.#fid(nodeid));
    return { attr: attrOf(await fs.statOf(r.attr)), attrTimeoutMs: this.#validity(r.attr, r.locked) };
  }

  /**
   * Counted as Lustre's ll_setattr_raw counts: a truncate when the size changes (by the handle
   * when there is one), else a setattr.
   */
  async setattr(ctx: RequestContext, nodeid: number, c: SetattrChanges): Promise<AttrReply> {
    const start = performance.now();
    const fs = this.#as(ctx);
    const fid = this.#fid(nodeid);
    if (c.mode !== undefined && c.uid === undefined && c.gid === undefined && await this.#onlyKillsSuidGid(ctx, fs, fid, c.mode)) {
      await fs.mdc.setattr(fid, { killSuidGid: true });
    } else if (c.mode !== undefined || c.uid !== undefined || c.gid !== undefined) {
      await fs.mdc.setattr(fid, {
        ...(c.mode !== undefined && { mode: c.mode & 0o7777 }), ...(c.uid !== undefined && { uid: c.uid }), ...(c.gid !== undefined && { gid: c.gid }),
      });
    }
    if (c.size !== undefined) await this.#truncate(fs, fid, c.size, c.fh);
    if (c.atimeNs !== undefined || c.mtimeNs !== undefined) {
      const attr = await fs.mdc.getattr(fid);
      const seconds = (t: bigint | 'now' | undefined, old: number): number =>
        t === undefined ? old : t === 'now' ? Date.now() / 1000 : Number(t) / 1e9;
      await fs.utimesFid(fid, attr, seconds(c.atimeNs, attr.atime), seconds(c.mtimeNs, attr.mtime));
    }
    if (c.size === undefined) this.#stats.tally('setattr', start);
    return this.#attrReply(ctx, nodeid, c.fh !== undefined ? this.#files.get(c.fh) : undefined);
  }

  /**
   * Is a mode change the kernel's taking away of setuid and setgid before a cached write (or a
   * truncate) by a caller who does not own the file? The kernel itself refuses a chmod by
   * anyone but the owner (default_permissions), so a mode change from anyone else that reaches
   * llite is that one. Sent as a chmod, the MDT would refuse it, and the write would fail.
   */
  async #onlyKillsSuidGid(ctx: RequestContext, fs: FileSystem, fid: string, mode: number): Promise<boolean> {
    if (ctx.uid === 0) return false;
    const { attr } = await fs.core.mdCache.getattr(fs.mdc, fid);
    if (attr.uid === ctx.uid) return false;
    const old = attr.mode & 0o7777;
    const taken = old & ~(mode & 0o7777);
    return taken !== 0 && (taken & ~(S_ISUID | S_ISGID)) === 0 && ((mode & 0o7777) & ~old) === 0;
  }

  async #truncate(fs: FileSystem, fid: string, size: number, fh: number | undefined): Promise<void> {
    const h = fh !== undefined ? this.#files.get(fh) : undefined;
    if (h) {
      await h.truncate(size); // counted by the handle
      return;
    }
    const t = performance.now();
    const attr = await fs.mdc.getattr(fid);
    if ((attr.mode & S_IFMT) === S_IFDIR) throw error('EISDIR', 'truncate of a directory');
    if ((attr.mode & S_IFMT) !== S_IFREG) throw error('EINVAL', 'truncate of a file that is not regular');
    const open = fs.core.files.get(fid);
    await (open ?? new FileObject(fs.core.fileContext, fid, await fs.core.layoutOf(fs.mdc, fid))).truncate(size);
    this.#stats.tally('truncate', t);
  }

  readlink(ctx: RequestContext, nodeid: number): Promise<string> {
    return this.#as(ctx).mdc.readlink(this.#fid(nodeid));
  }

  // ---- namespace ----------------------------------------------------------------------------

  mknod(ctx: RequestContext, parent: number, name: string, mode: number, rdev: number, umask: number): Promise<Entry> {
    return this.#holds([parent], async () => {
      const t = performance.now();
      const fs = this.#as(ctx);
      const m = mode & ~umask;
      const attr = (m & S_IFMT) === S_IFREG || (m & S_IFMT) === 0
        ? await fs.mdc.create(this.#fid(parent), name, (m & 0o7777) | S_IFREG)
        : await fs.mdc.mknod(this.#fid(parent), name, m, rdev);
      this.#stats.tally('mknod', t);
      return this.#entry(fs, attr);
    });
  }

  mkdir(ctx: RequestContext, parent: number, name: string, mode: number, umask: number): Promise<Entry> {
    return this.#holds([parent], async () => {
      const t = performance.now();
      const fs = this.#as(ctx);
      const attr = await fs.mdc.mkdir(this.#fid(parent), name, mode & ~umask & 0o7777);
      this.#stats.tally('mkdir', t);
      return this.#entry(fs, attr);
    });
  }

  async unlink(ctx: RequestContext, parent: number, name: string): Promise<void> {
    await this.#stats.counted('unlink', () => this.#holds([parent], async () => {
      const fs = this.#as(ctx);
      const dir = this.#fid(parent);
      // What the name led to, read before the unlink's early cancel drops it from the cache.
      const child = fs.core.mdCache.childOf(dir, name);
      const reply = await this.#removing(parent, name, child, () => fs.mdc.unlink(dir, name), (r) => r.destroyed);
      if (child !== undefined && !reply.orphan) fs.core.releaseObjectLocks(child, reply.destroyed);
    }));
  }

  async rmdir(ctx: RequestContext, parent: number, name: string): Promise<void> {
    await this.#stats.counted('rmdir', () => this.#holds([parent], async () => {
      const fs = this.#as(ctx);
      const dir = this.#fid(parent);
      await this.#removing(parent, name, fs.core.mdCache.childOf(dir, name), () => fs.mdc.rmdir(dir, name), () => true);
    }));
  }

  /**
   * An UNLINK or RMDIR of `name` (whose child, when known, is `child`): while it runs, the
   * child is #pinned, the name is #unlinking and the child #removingChild (their invalidations
   * then cost no thread, or wait for the answer). After a failure the held-back invalidations
   * are sent; after a success, the child's attributes' only if `gone` says the child outlives it.
   */
  async #removing<T>(parent: number, name: string, child: string | undefined, op: () => Promise<T>, gone: (r: T) => boolean): Promise<T> {
    const pinned = child === undefined ? undefined : this.#nodeOfFid.get(child);
    if (pinned !== undefined) countUp(this.#pinned, pinned);
    const key = `${parent}/${name}`;
    const mine = !this.#unlinking.has(key);
    if (mine) this.#unlinking.set(key, false);
    const mineChild = pinned !== undefined && !this.#removingChild.has(pinned);
    if (mineChild) this.#removingChild.set(pinned, false);
    let outlives = true;
    try {
      const r = await op();
      outlives = !gone(r);
      return r;
    } catch (err) {
      if (mine && this.#unlinking.get(key)) void this.#kernel?.invalEntry(parent, name).catch(() => undefined);
      throw err;
    } finally {
      if (mine) this.#unlinking.delete(key);
      if (mineChild) {
        const held = this.#removingChild.get(pinned)!;
        this.#removingChild.delete(pinned);
        if (held && outlives) void this.#invalidate({ kind: 'attr', fid: child!, lookup: false });
      }
      if (pinned !== undefined) countDown(this.#pinned, pinned);
    }
  }

  symlink(ctx: RequestContext, parent: number, name: string, target: string): Promise<Entry> {
    return this.#holds([parent], async () => {
      const t = performance.now();
      const fs = this.#as(ctx);
      const attr = await fs.mdc.symlink(this.#fid(parent), name, target);
      this.#stats.tally('symlink', t);
      return this.#entry(fs, attr);
    });
  }

  async rename(ctx: RequestContext, parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void> {
    if (flags !== 0) throw error('EINVAL', `rename flags ${flags} (RENAME_NOREPLACE, RENAME_EXCHANGE) are not supported`);
    await this.#stats.counted('rename', () => this.#holds([parent, newParent], () => this.#as(ctx).mdc.rename(this.#fid(parent), name, this.#fid(newParent), newName)));
  }

  link(ctx: RequestContext, nodeid: number, newParent: number, newName: string): Promise<Entry> {
    return this.#holds([newParent], async () => {
      const t = performance.now();
      const fs = this.#as(ctx);
      const attr = await fs.mdc.link(this.#fid(nodeid), this.#fid(newParent), newName);
      this.#stats.tally('link', t);
      return this.#entry(fs, attr);
    });
  }

  // ---- files --------------------------------------------------------------------------------

  /**
   * A file opened. Opened write-only (and not O_APPEND), its WRITEs bypass the kernel's page
   * cache (FOPEN_DIRECT_IO, unless directWrite is off): without the writeback cache a write
   * goes to us at once anyway, but through the page cache the writer's thread first copies it
   * into new pages, which AUTO_INVAL_DATA drops at the next GETATTR (a new mtime), and asks for
   * security.capability (file_remove_privs) before every write. Direct, the kernel hands us
   * the writer's own pages: 1 MiB writes went from 290-440 to 970-1,200 MB/s with `dd` here.
   * A write-only descriptor cannot be mapped, and the kernel drops the pages the write covers
   * first (others' cached opens). An O_APPEND write stays cached: the kernel then asks for the
   * size before the write (another mount may have appended), which a direct write does not on
   * every kernel.
   */
  #opened(h: FileHandle, flags: number): OpenReply {
    const fh = this.#nextFh++;
    this.#files.set(fh, h);
    const keepCache = KEEP_CACHE_UNDER_LOCKS && this.#cachedUnderLocks(h);
    if (this.directWrite && (flags & OpenFlag.ACCMODE) === OpenFlag.WRONLY && !(flags & OpenFlag.APPEND)) {
      this.#direct.add(fh);
      return { fh, keepCache, directIo: true };
    }
    countUp(this.#cachedOpens, h.attr.fid);
    return { fh, keepCache };
  }

  /** Forgets an open file (its RELEASE, or a CREATE that failed once the file was open). */
  #forget(fh: number): FileHandle | undefined {
    const h = this.#files.get(fh);
    if (!h) return undefined;
    this.#files.delete(fh);
    if (!this.#direct.delete(fh)) countDown(this.#cachedOpens, h.attr.fid);
    return h;
  }

  /**
   * May the kernel keep what it cached of the file before this open? Only when every stripe's
   * OSC takes extent locks (each page then was read or written under a lock, and each lock
   * that went dropped the pages) and this llite is told of revocations.
   */
  #cachedUnderLocks(h: FileHandle): boolean {
    const layout = h.file?.layout;
    if (!this.#kernel || !layout) return false;
    return layout.objects.every((o) => this.#fs.core.oscNamespaces.get(o.ostIndex)?.active === true);
  }

  #file(fh: number): FileHandle {
    const h = this.#files.get(fh);
    if (!h) throw error('EBADF', `file handle ${fh} is not open`);
    return h;
  }

  async open(ctx: RequestContext, nodeid: number, flags: number): Promise<OpenReply> {
    return this.#opened(await this.#as(ctx).openFid(this.#fid(nodeid), flags), flags);
  }

  create(ctx: RequestContext, parent: number, name: string, mode: number, flags: number, umask: number): Promise<{ entry: Entry; open: OpenReply }> {
    return this.#holds([parent], () => this.#create(ctx, parent, name, mode, flags, umask));
  }

  async #create(ctx: RequestContext, parent: number, name: string, mode: number, flags: number, umask: number): Promise<{ entry: Entry; open: OpenReply }> {
    const fs = this.#as(ctx);
    const { handle: h, created } = await fs.createIn(this.#fid(parent), name, flags, mode & ~umask);
    const open = this.#opened(h, flags);
    try {
      if (created && this.#kernel) {
        // The new name and file's attributes under locks at once (an IT_LOOKUP intent by name,
        // whose lock on the child covers its name, attributes and permissions, and PR on its
        // objects, whose replies carry their LVBs): the entry and its attributes then have a
        // validity, so the kernel sends no GETATTR of the file before its open completes (an
        // enqueue and a getattr at the MDT, and a lock on each object, one after the other),
        // and a stat or unlink of the name right after the create needs no LOOKUP.
        const layout = h.file?.layout;
        const [md, data] = await Promise.all([
          fs.core.mdCache.lookupCreated(fs.mdc, this.#fid(parent), name, h.attr.fid).catch(() => undefined),
          layout ? fs.core.freshDataAttrs(layout).catch(() => undefined) : undefined,
        ]);
        if (md?.locked && (data || !layout)) {
          return { entry: await this.#entry(fs, md.attr, { parent, name, locked: true, entryValid: true }, true, data), open };
        }
      }
      // The MDT's open reply carries the file's attributes as they are after the create; a
      // file it created has new, empty objects: no glimpse of them (a lock and a getattr each).
      return { entry: await this.#entry(fs, h.attr, undefined, created), open };
    } catch (err) {
      this.#forget(open.fh);
      await h.close().catch(() => undefined);
      throw err;
    }
  }

  async read(_ctx: RequestContext, nodeid: number, fh: number, offset: number, size: number): Promise<Buffer> {
    // A view of the mount's cache, written to /dev/fuse as the reply (no copy into a new buffer).
    // A READ asks for whole folios: the kernel holds exactly these pages locked.
    const read: LockProgress = { phase: 'start' };
    return this.#doingIo(nodeid, { start: offset, end: offset + size, read }, () => this.#file(fh).readView(size, offset, read));
  }

  async write(ctx: RequestContext, nodeid: number, fh: number, offset: number, data: Buffer, writeFlags = 0): Promise<number> {
    const h = this.#file(fh);
    if (writeFlags & WriteFlag.KILL_SUIDGID) await this.#killSuidGid(ctx, nodeid, h.attr.fid);
    if (!this.#direct.has(fh)) {
      const range = { start: offset - (offset % FOLIO_SPAN_MAX), end: Math.ceil((offset + data.length) / FOLIO_SPAN_MAX) * FOLIO_SPAN_MAX };
      return (await this.#doingIo(nodeid, range, () => h.write(data, 0, data.length, offset))).bytesWritten;
    }
    // A direct WRITE holds no pages locked in the kernel (it is not in #io).
    const { bytesWritten } = await h.write(data, 0, data.length, offset);
    // The kernel dropped the pages of these bytes before sending the WRITE, but a READ through
    // a cached open of this mount may have read them back meanwhile, from before the write. The
    // answer waits for their invalidation (from a notify thread: that READ may hold them until
    // it is answered): the notification bumps the inode's attr_version, and arriving later it
    // made the kernel discard the attributes of the writer's next GETATTR, whose read then went
    // by an older size (fsx across two mounts, a read by the writer of 0 bytes of 1,563).
    if (bytesWritten > 0 && this.#cachedOpens.has(h.attr.fid)) await this.#kernel?.invalInode(nodeid, offset, bytesWritten).catch(() => undefined);
    return bytesWritten;
  }

  /**
   * A direct WRITE by a writer without CAP_FSETID (FUSE_WRITE_KILL_SUIDGID): the file loses its
   * setuid and setgid bits as the kernel's file_remove_privs takes them before a cached write.
   */
  async #killSuidGid(ctx: RequestContext, nodeid: number, fid: string): Promise<void> {
    const fs = this.#as(ctx);
    if (!suidGidKilled((await fs.core.mdCache.getattr(fs.mdc, fid)).attr.mode)) return;
    await fs.mdc.setattr(fid, { killSuidGid: true });
    this.#dropAttrsNow(nodeid);
  }

  /** close(2) of one descriptor: its dirty data goes to the OSTs, so another client reads it. */
  async flush(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    await this.#file(fh).file?.flush();
  }

  async release(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    const h = this.#forget(fh);
    if (!h) return;
    await h.close();
  }

  async fsync(_ctx: RequestContext, _nodeid: number, fh: number, datasync: boolean): Promise<void> {
    const h = this.#file(fh);
    await (datasync ? h.datasync() : h.sync());
  }

  // ---- directories --------------------------------------------------------------------------

  /** Counted as an open, and releasedir as a close, as Lustre's ll_dir_open and ll_dir_release do. */
  async opendir(ctx: RequestContext, nodeid: number): Promise<OpenReply> {
    const t = performance.now();
    const fid = this.#fid(nodeid);
    const attr = await this.#as(ctx).mdc.getattr(fid);
    if ((attr.mode & S_IFMT) !== S_IFDIR) throw error('ENOTDIR', `${fid} is not a directory`);
    const fh = this.#nextFh++;
    this.#dirs.set(fh, { fid, base: 0, entries: [], cookie: null, end: false });
    this.#stats.tally('open', t);
    return { fh };
  }

  /**
   * Entries from `offset`, the index of the next entry in the MDT's order ('.' and '..' first,
   * as the MDT lists them). Pages come from the MDT as they are needed and the ones passed are dropped, so a
   * directory of any size costs one page of memory; a seek back re-reads from the start.
   */
  readdir(ctx: RequestContext, nodeid: number, fh: number, offset: number, maxBytes: number): Promise<Dirent[]> {
    return this.#stats.counted('readdir', () => this.#holds([nodeid], () => this.#readdir(ctx, fh, offset, maxBytes)));
  }

  async #readdir(ctx: RequestContext, fh: number, offset: number, maxBytes: number): Promise<Dirent[]> {
    const d = this.#dirs.get(fh);
    if (!d) throw error('EBADF', `directory handle ${fh} is not open`);
    if (offset < d.base) Object.assign(d, { base: 0, entries: [], cookie: null, end: false });
    const wanted = Math.max(1, Math.floor(maxBytes / 32));
    while (!d.end && d.base + d.entries.length < offset + wanted) {
      const page = await this.#as(ctx).mdc.readdir(d.fid, d.cookie, DIR_PAGE_BYTES);
      for (const e of page.entries) {
        const index = d.base + d.entries.length;
        d.entries.push({ ino: inoOf(e.fid), name: e.name, type: TYPE_BITS[e.type] ?? 0, nextOffset: index + 1 });
      }
      d.cookie = page.cookie;
      d.end = page.end || page.cookie === null;
    }
    const drop = Math.min(offset - d.base, d.entries.length);
    if (drop > 0) {
      d.entries.splice(0, drop);
      d.base += drop;
    }
    return d.entries.slice(0, wanted);
  }

  async releasedir(_ctx: RequestContext, _nodeid: number, fh: number): Promise<void> {
    const t = performance.now();
    if (this.#dirs.delete(fh)) this.#stats.tally('close', t);
  }

  // ---- the rest -----------------------------------------------------------------------------

  async statfs(ctx: RequestContext): Promise<Statfs> {
    const s = await this.#as(ctx).statfs('/');
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, frsize: s.bsize, namelen: 255 };
  }

  async setxattr(ctx: RequestContext, nodeid: number, name: string, value: Buffer, flags: number): Promise<void> {
    if (name === CAPABILITY_XATTR) return;
    await this.#stats.counted('setxattr', () => this.#as(ctx).mdc.setxattr(this.#fid(nodeid), name, value, flags));
  }

  getxattr(ctx: RequestContext, nodeid: number, name: string): Promise<Buffer> {
    if (name === CAPABILITY_XATTR) return Promise.reject(error('ENODATA', `${name} is not kept (as Lustre's llite)`));
    return this.#stats.counted('getxattr', () => this.#as(ctx).mdc.getxattr(this.#fid(nodeid), name));
  }

  listxattr(ctx: RequestContext, nodeid: number): Promise<string[]> {
    return this.#stats.counted('listxattr', () => this.#as(ctx).mdc.listxattr(this.#fid(nodeid)));
  }

  async removexattr(ctx: RequestContext, nodeid: number, name: string): Promise<void> {
    if (name === CAPABILITY_XATTR) return;
    await this.#stats.counted('removexattr', () => this.#as(ctx).mdc.removexattr(this.#fid(nodeid), name));
  }

  // ---- application locks -------------------------------------------------------------------

  #flockNamespace() {
    const ns = this.#fs.core.mdcNamespace;
    if (!ns?.supported) throw error('ENOLCK', 'the MDT serves no locks');
    return ns;
  }

  #flockPolicy(lock: FileLock, owner: bigint, pid: number, flock: boolean) {
    if (flock) return { flock: bsdFlockPolicy(owner, pid) };
    return { flock: { start: lock.start, end: lock.end >= OFFSET_MAX ? OBD_OBJECT_EOF : lock.end, owner, pid } };
  }

  /** F_GETLK, F_SETLK(W), flock(): each counted as a flock, as ll_file_flock counts it. */
  getlk(ctx: RequestContext, nodeid: number, fh: number, owner: bigint, lock: FileLock): Promise<FileLock | null> {
    return this.#stats.counted('flock', () => this.#getlk(ctx, nodeid, fh, owner, lock));
  }

  async #getlk(ctx: RequestContext, nodeid: number, _fh: number, owner: bigint, lock: FileLock): Promise<FileLock | null> {
    const ns = this.#flockNamespace();
    const mode = lock.type === 'read' ? LockMode.PR : LockMode.PW;
    const r = await ns.enqueue({
      resId: resIdOfFid(parseFid(this.#fid(nodeid))), type: LockType.FLOCK, mode,
      policy: this.#flockPolicy(lock, owner, ctx.pid, false), flags: LockFlag.TEST_LOCK,
    });
    if (!r) throw error('ENOLCK', 'the MDT serves no locks');
    if (r.mode !== LockMode.PR && r.mode !== LockMode.PW) return null;
    const f = r.policy && 'flock' in r.policy ? r.policy.flock : undefined;
    if (!f) return null;
    // A holder in this client has a pid the kernel knows; one on another node has none here.
    const local = this.#lockOwners.has(`${nodeid}:${f.owner}`);
    return { start: f.start, end: f.end >= OFFSET_MAX ? OFFSET_MAX : f.end, type: r.mode === LockMode.PR ? 'read' : 'write', pid: local ? f.pid : 0 };
  }

  async setlk(ctx: RequestContext, nodeid: number, _fh: number, owner: bigint, lock: FileLock, opts: SetlkOptions): Promise<void> {
    const key = `${nodeid}:${owner}`;
    if (lock.type === 'unlock' && opts.close && !this.#lockOwners.has(key)) return; // nothing to unlock: no call
    const t = performance.now();
    const ns = this.#flockNamespace();
    const resId = resIdOfFid(parseFid(this.#fid(nodeid)));
    const policy = this.#flockPolicy(lock, owner, ctx.pid, opts.flock);
    if (lock.type === 'unlock') {
      const r = await ns.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.NL, policy });
      if (r) ns.ldlm.forgetLocal([r]);
      if (opts.close || (policy.flock.start === 0n && policy.flock.end === OBD_OBJECT_EOF)) this.#lockOwners.delete(key);
      this.#stats.tally('flock', t);
      return;
    }
    if (this.#lockOwners.size >= LOCK_OWNERS_MAX) this.#lockOwners.clear(); // closes then always ask the MDT
    this.#lockOwners.add(key);
    const mode = lock.type === 'read' ? LockMode.PR : LockMode.PW;
    const pending = ns.enqueue({ resId, type: LockType.FLOCK, mode, policy, flags: opts.wait ? 0 : LockFlag.BLOCK_NOWAIT });
    let interrupted = false;
    const onAbort = (): void => {
      // The waiter is withdrawn by an unlock of its range: its enqueue then completes with no mode.
      interrupted = true;
      void ns.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.NL, policy }).then((r) => r && ns.ldlm.forgetLocal([r]), () => undefined);
    };
    if (opts.wait) ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await pending;
      if (!r) throw error('ENOLCK', 'the MDT serves no locks');
      ns.ldlm.forgetLocal([r]);
      if (hasFlag(r.flags, LockFlag.FLOCK_DEADLOCK) && !interrupted) throw error('EDEADLK', 'waiting would deadlock');
      if (interrupted || r.mode !== mode) {
        // Granted just as the wait was interrupted: the lock goes again.
        if (r.mode === mode) await ns.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.NL, policy }).then((u) => u && ns.ldlm.forgetLocal([u]));
        throw error('EINTR', 'the wait for the lock was interrupted');
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
    this.#stats.tally('flock', t);
  }

  /** Closes what the kernel left open (an unmount while files were open). */
  async releaseAll(): Promise<void> {
    const files = [...this.#files.values()];
    this.#files.clear();
    this.#dirs.clear();
    await Promise.all(files.map((h) => h.close().catch(() => undefined)));
  }
}
