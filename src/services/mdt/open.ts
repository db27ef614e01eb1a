// Open files (Lustre's mdt_open / mdt_close and the PENDING directory). An open handle is a
// random cookie naming (client, FID, flags). An object whose last name goes while it is open
// becomes an orphan: nlink 0, an entry in PENDING (by FID), object and OST objects kept. Its
// last close destroys it (and logs its OST objects for destruction) in the close's transaction.
//
// Handles survive a restart: each is an entry of the 'open_handles' index, named
// "HANDLE:FLAGS:CLIENT" -> FID, inserted by the open's transaction and removed by the close's
// (where Lustre's clients replay their opens, here the committed ones are on disk and the
// uncommitted ones are replayed with the handle they had, so a client's handles stay valid
// across a server crash). At start the handles are loaded; those of clients recovery does not
// expect are closed, and so are those of clients it evicts; orphans nobody holds are destroyed.
import { randomBytes } from 'node:crypto';
import { fidKey, fidToString, type Fid, type Osd, type Tx } from '../../osd/index.js';
import { mdtError } from './errors.js';
import { withLocks } from './locks.js';
import type { Mdd } from './mdd.js';
import { checkPermission, MAY_READ, MAY_WRITE } from './perm.js';
import { OpenFlag, type Cred, type LayoutSpec, type MdtAttr } from './protocol.js';
import type { Reint } from './reint.js';
import { LOV_XATTR } from './layout.js';

/** Open handles per MDT at most (a limit on memory; beyond it open fails with EMFILE-like ENOSPC). */
export const OPEN_HANDLES_MAX = 1_000_000;
/** Handles' random bytes drawn at once: one call into the system's generator per this many opens, not one per open. */
const HANDLE_POOL = 256;
const HANDLE_BYTES = 8;

export interface OpenHandle {
  handle: string;
  client: string;
  fid: Fid;
  flags: number;
}

export class OpenTable {
  readonly #handles = new Map<string, OpenHandle>();
  readonly #counts = new Map<string, number>();
  /** Random bytes for the next handles (HANDLE_POOL of them), used from #poolAt on. */
  #pool = Buffer.alloc(0);
  #poolAt = 0;

  /** A new random handle: 16 hex digits. */
  #newHandle(): string {
    if (this.#poolAt >= this.#pool.length) {
      this.#pool = randomBytes(HANDLE_POOL * HANDLE_BYTES);
      this.#poolAt = 0;
    }
    const h = this.#pool.toString('hex', this.#poolAt, this.#poolAt + HANDLE_BYTES);
    this.#poolAt += HANDLE_BYTES;
    return h;
  }

  add(client: string, fid: Fid, flags: number, replayed?: string): OpenHandle {
    if (this.#handles.size >= OPEN_HANDLES_MAX) throw mdtError('ENOSPC', `${OPEN_HANDLES_MAX} files open`);
    let handle: string;
    if (replayed !== undefined) {
      if (!/^[0-9a-f]{16}$/.test(replayed)) throw mdtError('EPROTO', `a replayed open handle ${JSON.stringify(replayed)}`);
      const held = this.#handles.get(replayed);
      if (held) return held; // already on disk (its open committed): the replay changes nothing
      handle = replayed;
    } else {
      do handle = this.#newHandle();
      while (this.#handles.has(handle));
    }
    const h = { handle, client, fid, flags };
    this.#handles.set(handle, h);
    const k = fidKey(fid);
    this.#counts.set(k, (this.#counts.get(k) ?? 0) + 1);
    return h;
  }

  get(handle: string): OpenHandle | undefined {
    return this.#handles.get(handle);
  }

  /** Removes the handle; true when it was the object's last. */
  remove(h: OpenHandle): boolean {
    this.#handles.delete(h.handle);
    const k = fidKey(h.fid);
    const n = (this.#counts.get(k) ?? 1) - 1;
    if (n > 0) this.#counts.set(k, n);
    else this.#counts.delete(k);
    return n === 0;
  }

  isOpen(f: Fid): boolean {
    return this.#counts.has(fidKey(f));
  }

  ofClient(client: string): OpenHandle[] {
    return [...this.#handles.values()].filter((h) => h.client === client);
  }

  clients(): Set<string> {
    return new Set([...this.#handles.values()].map((h) => h.client));
  }

  get size(): number {
    return this.#handles.size;
  }
}

export interface OpenArgs {
  parent?: Fid | undefined;
  name?: string | undefined;
  fid?: Fid | undefined;
  flags: number;
  mode: number;
  layout?: LayoutSpec | undefined;
  /** A replay (recovery): the FID, layout and handle the open had. */
  replay?: { fid: Fid; layout?: Buffer | undefined; handle?: string | undefined } | undefined;
}

/** The 'open_handles' entry of a handle. */
function entryName(h: OpenHandle): string {
  return `${h.handle}:${h.flags}:${h.client}`;
}

export interface OpenResult {
  attr: MdtAttr;
  handle: string;
  created: boolean;
  layout: Buffer | undefined;
}

export class Opens {
  constructor(
    private readonly mdd: Mdd,
    private readonly reint: Reint,
    readonly table: OpenTable,
  ) {}

  async open(tx: Tx, client: string, cred: Cred, a: OpenArgs): Promise<OpenResult> {
    return withLocks(this.mdd.locks, async (locks) => {
      let target = a.fid;
      let created = false;
      if (!target) {
        await locks.lock(a.parent!);
        const e = await this.mdd.entry(a.parent!, a.name!).catch((err: unknown) => {
          throw (err as { code?: string }).code === 'ENOTDIR' ? mdtError('ENOTDIR', 'parent is not a directory') : err;
        });
        await this.mdd.dirAttrs(a.parent!);
        if (e) {
          if ((a.flags & OpenFlag.CREAT) && (a.flags & OpenFlag.EXCL)) throw mdtError('EEXIST', `${a.name} exists`);
          target = e.fid;
        } else {
          if (!(a.flags & OpenFlag.CREAT)) throw mdtError('ENOENT', `no ${a.name}`);
          const mode = (a.mode & 0o7777) | 0o100000;
          target = (await this.reint.createLocked(tx, cred, { parent: a.parent!, name: a.name!, mode, layout: a.layout, replay: a.replay })).fid;
          created = true;
        }
      }
      await locks.lock(target);
      const attrs = await this.mdd.attrs(target);
      if (!created) {
        if (attrs.type === 'lnk') throw mdtError('ELOOP', 'open of a symlink (the client follows links)');
        if ((a.flags & OpenFlag.DIRECTORY) && attrs.type !== 'dir') throw mdtError('ENOTDIR', 'O_DIRECTORY on a non-directory');
        const acc = a.flags & OpenFlag.ACCMODE;
        const write = acc === OpenFlag.WRONLY || acc === OpenFlag.RDWR || (a.flags & OpenFlag.TRUNC) !== 0;
        if (attrs.type === 'dir' && write) throw mdtError('EISDIR', 'a directory opened for writing');
        const mask = (acc === OpenFlag.WRONLY ? 0 : MAY_READ) | (write ? MAY_WRITE : 0);
        if (mask) checkPermission(attrs, cred, mask, `open ${fidToString(target)}`);
        if ((a.flags & OpenFlag.TRUNC) && attrs.type === 'reg') {
          const now = this.mdd.now();
          await tx.attrSet(target, { mtime: now, ctime: now });
        }
      }
      const known = a.replay?.handle !== undefined && this.table.get(a.replay.handle) !== undefined;
      const h = this.table.add(client, target, a.flags, a.replay?.handle);
      // (A read-only copy keeps its handles in memory only: it changes nothing.)
      if (!known && !this.mdd.osd.readOnly) await tx.indexInsert(this.mdd.openFid, entryName(h), { fid: target, type: attrs.type });
      return { attr: await this.mdd.getattr(target), handle: h.handle, created, layout: await this.mdd.xattr(target, LOV_XATTR) };
    });
  }

  /** Closes a handle; the last close of an orphan destroys it. */
  async close(tx: Tx, client: string, handle: string): Promise<void> {
    const h = this.table.get(handle);
    if (!h || h.client !== client) throw mdtError('EBADF', `no open handle ${handle}`);
    await withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(h.fid);
      if (!this.mdd.osd.readOnly) await tx.indexDelete(this.mdd.openFid, entryName(h));
      const last = this.table.remove(h);
      if (last) await this.#destroyIfOrphan(tx, h.fid);
    });
  }

  async #destroyIfOrphan(tx: Tx, f: Fid): Promise<void> {
    const name = fidKey(f);
    if (!(await this.mdd.osd.indexLookup(this.mdd.pendingFid, name))) return;
    await tx.indexDelete(this.mdd.pendingFid, name);
    await this.reint.destroyObject(tx, f);
    this.reint.kickIfDestroyed(tx, 'destroyed');
  }

  /** Closes every handle of a client gone (evicted), each in a transaction of its own. */
  async closeClient(osd: Osd, client: string): Promise<number> {
    const handles = this.table.ofClient(client);
    for (const h of handles) {
      const tx = osd.begin();
      await tx.start();
      try {
        await this.close(tx, client, h.handle);
      } finally {
        tx.stop();
      }
    }
    return handles.length;
  }

  /** At start: the handles on disk, back in the table. */
  async load(osd: Osd): Promise<number> {
    let n = 0;
    let cookie: string | null = null;
    do {
      const page = await osd.indexList(this.mdd.openFid, { cookie, limit: 256 });
      for (const e of page.entries) {
        const m = /^([0-9a-f]{16}):(\d+):(.+)$/.exec(e.name);
        if (!m) continue; // not an entry this version writes: left alone
        this.table.add(m[3]!, e.fid, Number(m[2]), m[1]!);
        n++;
      }
      cookie = page.cookie;
    } while (cookie !== null);
    return n;
  }

  /** At start: every orphan left in PENDING that no handle holds is destroyed. */
  async destroyOrphans(osd: Osd): Promise<number> {
    let n = 0;
    let cookie: string | null = null;
    for (;;) {
      const page = await osd.indexList(this.mdd.pendingFid, { cookie, limit: 128 });
      const gone = page.entries.filter((e) => !this.table.isOpen(e.fid));
      if (gone.length > 0) {
        const tx = osd.begin();
        await tx.start();
        try {
          for (const e of gone) {
            await tx.indexDelete(this.mdd.pendingFid, e.name);
            if (await osd.exists(e.fid)) await this.reint.destroyObject(tx, e.fid);
            n++;
          }
        } finally {
          tx.stop();
        }
        this.reint.kickIfDestroyed(tx, 'destroyed');
      }
      if (page.cookie === null) return n;
      cookie = page.cookie;
    }
  }
}
