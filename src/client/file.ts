// One open regular file of a mount (shared by every handle of the mount open on its FID, so
// that what one handle wrote, another reads): its layout, its dirty data and the flusher that
// sends it to the OSTs through the LOV.
//
// Writes are buffered: they go into DirtyExtents and the write returns. A flush sends a batch
// (every dirty extent at that moment, as one vector write per stripe, the stripes in parallel,
// each OSC keeping at most max_rpcs_in_flight BRW RPCs on the wire) and stamps mtime and
// ctime on the objects written, as a Lustre client's BRW carries them. Batches of one file run
// one after another, so a later write of a range never reaches an OST before an earlier one.
// The stamp (an OST_SETATTR per object) runs beside the next batch, never more than one
// round at once per file; flush() waits for it. Flushes start when the file holds a batch's
// worth (stripes x brw_size x RPCs in flight, at most half of max_dirty_mb), and on sync,
// close, a read, a stat or a truncate of the file.
//
// Bounds: a writer waits while its file holds more than max_dirty_mb dirty bytes (counting
// the batch on the wire), and while the mount's dirty budget is spent (ByteBudget; spending it
// makes every file flush). An error of a background flush (the data is lost) is reported by
// the file's next write, sync or close, as Linux reports a failed writeback.
//
// Extent locks (when the OSTs serve them): a write is buffered under a PW lock on the object
// range of each stripe it touches, a read from the OSTs is made under a PR lock (a PW serves
// too), both matched from the OSC's lock cache when held, taken in stripe order (so that two
// clients never wait for each other's locks). Locks outlive the call: the dirty data stays
// covered until the lock's blocking callback, whose revoke (revoke()) writes it back and drops
// what was read (read-ahead windows, through `generation`) before the cancel. An O_APPEND
// write holds PW [0, EOF] on every stripe while it finds the end of the file and buffers its
// data, so appends from several clients never overlap.
import type { FileLayout } from '../services/mdt/layout.js';
import { LockMode, LockType, OBD_OBJECT_EOF, type CachedLock } from '../ldlm/index.js';
import type { ByteBudget } from './budget.js';
import { DirtyExtents, dirtyBufferPool, type TakenExtent } from './extents.js';
import { objectResId, type ClientNamespace } from './locks.js';
import { mapExtent, type Lov, type Raid0Layout } from './lov.js';
import type { WriteExtent } from './osc.js';
import type { ClientTunables } from './params.js';
import type { DataAttrs } from './stats.js';

const MiB = 1024 * 1024;

export interface FileContext {
  lov: Lov;
  tunables(): Readonly<ClientTunables>;
  /** The mount's dirty bytes. */
  dirty: ByteBudget;
  /** Bytes of one BRW RPC. */
  brwBytes: number;
  /** The lock namespace of an OST's OSC (undefined: no locks are taken). */
  extentLocks?(ostIndex: number): ClientNamespace | undefined;
}

type Mode = typeof LockMode.PR | typeof LockMode.PW;
const noRelease = (): void => {};

/** The MDT's layout of a file as the LOV takes it. */
export function raid0Of(l: FileLayout): Raid0Layout | undefined {
  if (l.objects.length === 0) return undefined;
  return {
    pattern: 'raid0', stripeSize: l.stripeSize, stripeCount: l.objects.length, stripeOffset: l.objects[0]!.ostIndex,
    objects: l.objects.map((o) => ({ ostIndex: o.ostIndex, seq: o.fid.seq, oid: o.fid.oid })),
  };
}

const nowSeconds = (): number => Date.now() / 1000;

/** Write-back batches of one file on the wire at once (see FileObject.#loop). */
const BATCHES_IN_FLIGHT_MAX = 2;

/** The file range extents (in file order) span. */
function spanOf(extents: readonly WriteExtent[]): { start: number; end: number } {
  const last = extents[extents.length - 1]!;
  return { start: extents[0]!.offset, end: last.offset + last.data.length };
}

/**
 * Where a read stands with its locks, for a caller that must know whether it may wait for the
 * read (llite: the kernel holds the read's pages locked meanwhile). 'start': not at its locks
 * yet; 'locking': waiting for a lock (an enqueue on the wire), so whatever it reads comes from
 * after every conflicting change; 'locked': it holds all it needs, and waits for no one.
 */
export interface LockProgress { phase: 'start' | 'locking' | 'locked' }

export class FileObject {
  /** Handles of the mount open on this file. */
  opens = 0;
  /** Bumped by every change of the file's data made here (read-ahead drops what it read before). */
  generation = 0;
  readonly #dirty = new DirtyExtents();
  #inFlightBytes = 0;
  #running: Promise<void> | undefined;
  /** Batches on the wire, with the file range each spans. */
  readonly #batches = new Map<Promise<void>, { start: number; end: number }>();
  /** Wakes the write-back loop while it waits for a batch (more is dirty, or a flush began). */
  #wakeLoop: (() => void) | undefined;
  #flushAll = false;
  #batchWaiters: Array<() => void> = [];
  #error: unknown;
  #stamping: Promise<void> | undefined;
  /** The end of the file as appends here know it (undefined: not asked yet). */
  #endHint: number | undefined;
  #endFetch: Promise<void> | undefined;
  readonly #stampStripes = new Set<number>();
  /** Writes of the file take their locks one at a time (as a kernel's inode lock orders them). */
  #writeGate: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: FileContext,
    readonly fid: string,
    public layout: Raid0Layout | undefined,
  ) {}

  /** A new open of the file here: what appends knew of its end is asked again (nothing kept across opens). */
  opened(): void {
    this.opens++;
    this.#endHint = undefined;
  }

  /** Dirty bytes: held here and on the wire. */
  get dirtyBytes(): number {
    return this.#dirty.bytes + this.#inFlightBytes;
  }

  #perFileBytes(): number {
    return this.ctx.tunables().maxDirtyMb * MiB;
  }

  #threshold(): number {
    const t = this.ctx.tunables();
    const batch = (this.layout?.stripeCount ?? 1) * this.ctx.brwBytes * t.maxRpcsInFlight;
    // Never above max_dirty_mb: a file may not hold a whole RPC's worth (4 MiB) when the bound
    // is set lower, and its writes would then wait for a flush nothing starts.
    return Math.min(this.#perFileBytes(), Math.max(this.ctx.brwBytes, Math.min(batch, this.#perFileBytes() / 2)));
  }

  /**
   * Extent locks of `mode` on the object range of each stripe that file range [offset,
   * offset + length) touches (every whole object with `whole`), one stripe after another;
   * resolves with their release. `progress` follows the caller through it (LockProgress).
   */
  async #lock(mode: Mode, offset: number, length: number, whole = false, progress?: LockProgress): Promise<() => void> {
    const layout = this.layout;
    if (!layout || !this.ctx.extentLocks) {
      if (progress) progress.phase = 'locked';
      return noRelease;
    }
    const ranges = new Map<number, { start: number; end: number }>();
    if (whole) for (let i = 0; i < layout.stripeCount; i++) ranges.set(i, { start: 0, end: -1 });
    else {
      for (const p of mapExtent(layout, offset, Math.max(1, length))) {
        const r = ranges.get(p.stripe);
        const end = p.objectOffset + p.length - 1;
        if (!r) ranges.set(p.stripe, { start: p.objectOffset, end });
        else r.end = Math.max(r.end, end);
      }
    }
    const held: Array<{ ns: ClientNamespace; lock: CachedLock }> = [];
    const release = (): void => {
      for (const h of held.splice(0)) h.ns.release(h.lock, mode);
    };
    if (progress) progress.phase = 'locking';
    try {
      for (const stripe of [...ranges.keys()].sort((a, b) => a - b)) {
        const o = layout.objects[stripe]!;
        const ns = this.ctx.extentLocks(o.ostIndex);
        if (!ns?.supported) continue;
        const r = ranges.get(stripe)!;
        const extent = { start: BigInt(r.start), end: r.end < 0 ? OBD_OBJECT_EOF : BigInt(r.end) };
        const lock = await ns.lock(objectResId(o), LockType.EXTENT, mode, { extent });
        if (lock) held.push({ ns, lock });
      }
      if (progress) progress.phase = 'locked';
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * Runs fn after the writes before it (one writer at a time per file): each holds its locks
   * only for its own call, and many writers each waiting for a lock would take every request
   * slot of the OSC, which the lock's holder (this client, writing back) needs.
   */
  async #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const before = this.#writeGate;
    let done!: () => void;
    this.#writeGate = new Promise<void>((r) => (done = r));
    await before;
    try {
      return await fn();
    } finally {
      done();
    }
  }

  /** Buffers a write (data is copied); waits while the file's or the mount's dirty bound is reached. */
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#throwError();
    if (data.length === 0) return;
    const n = data.length;
    await this.ctx.dirty.reserve(n);
    await this.#serialized(async () => {
      let release: () => void;
      try {
        release = await this.#lock(LockMode.PW, offset, n);
      } catch (err) {
        this.ctx.dirty.release(n);
        throw err;
      }
      try {
        this.#buffer(offset, data);
      } finally {
        release();
      }
    });
    await this.#afterWrite();
  }

  /** An O_APPEND write: at the end of the file as every client knows it; resolves with where it went. */
  async append(data: Uint8Array): Promise<number> {
    this.#throwError();
    const n = data.length;
    await this.ctx.dirty.reserve(n);
    const at = await this.#serialized(async () => {
      let release: () => void;
      try {
        release = await this.#lock(LockMode.PW, 0, 0, true);
      } catch (err) {
        this.ctx.dirty.release(n);
        throw err;
      }
      try {
        const end = await this.appendAt(n);
        if (n > 0) this.#buffer(end, data);
        return end;
      } catch (err) {
        this.ctx.dirty.release(n);
        throw err;
      } finally {
        release();
      }
    });
    await this.#afterWrite();
    return at;
  }

  /** Puts reserved bytes into the dirty extents (under the write's locks). */
  #buffer(offset: number, data: Uint8Array): void {
    const n = data.length;
    const before = this.#dirty.bytes;
    this.#dirty.put(offset, data);
    const added = this.#dirty.bytes - before;
    if (added < n) this.ctx.dirty.release(n - added);
    this.generation++;
    if (this.#endHint !== undefined) this.#endHint = Math.max(this.#endHint, offset + n);
  }

  async #afterWrite(): Promise<void> {
    if (this.#dirty.bytes >= this.#threshold()) this.#kick(false);
    while (this.dirtyBytes > this.#perFileBytes() && this.#running) await this.#nextBatch();
  }

  /**
   * A lock on the file's data goes (blocking callback, LRU, eviction): with writeBack, every
   * dirty byte is sent first (an error stays for the next write, sync or close to report);
   * what was read ahead is dropped, and what appends knew of the end is asked again.
   */
  async revoke(writeBack: boolean, dropCache = true): Promise<void> {
    if (writeBack) await this.writeBack();
    if (!dropCache) return;
    this.generation++;
    this.#endHint = undefined;
  }

  /** Sends every dirty byte and waits for it, without taking the error of a failed flush (that is the application's). */
  async writeBack(): Promise<void> {
    while (this.#dirty.bytes > 0 || this.#running || this.#stamping) {
      this.#kick(true);
      await this.#running;
      await this.#stamping;
      if (this.#error !== undefined) return;
    }
  }

  /** Starts sending every dirty byte (without waiting): the mount's answer to budget pressure. */
  kickAll(): void {
    if (this.#dirty.bytes > 0) this.#kick(true);
  }

  /** Sends every dirty byte and waits for the OSTs to acknowledge it; throws a failed flush's error. */
  async flush(): Promise<void> {
    while (this.#dirty.bytes > 0 || this.#running || this.#stamping) {
      this.#kick(true);
      await this.#running;
      await this.#stamping;
    }
    this.#throwError();
  }

  #throwError(): void {
    if (this.#error === undefined) return;
    const err = this.#error;
    this.#error = undefined;
    throw err;
  }

  #nextBatch(): Promise<void> {
    return new Promise((r) => this.#batchWaiters.push(r));
  }

  #kick(all: boolean): void {
    if (all) this.#flushAll = true;
    if (!this.layout) return;
    if (this.#running) {
      this.#wakeLoop?.();
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
      this.#wakeBatchWaiters(); // a writer that saw the loop just before it ended looks again
    });
  }

  /**
   * Sends batches while enough is dirty (or all of it, flushing), BATCHES_IN_FLIGHT_MAX at
   * once: the next batch is taken while the one before is on the wire, so that the OSCs' RPC
   * slots never run dry between batches (one batch at a time, the last RPCs of each ran
   * alone while the writer waited). A batch overlapping one on the wire waits for it: two
   * writes of the same bytes reach the OSTs in the order they were made.
   */
  async #loop(): Promise<void> {
    for (;;) {
      const want = this.#dirty.bytes > 0 && (this.#flushAll || this.#dirty.bytes >= this.#threshold());
      if (want && this.#batches.size < BATCHES_IN_FLIGHT_MAX) {
        const extents = this.#dirty.take();
        const span = spanOf(extents);
        const before = [...this.#batches].filter(([, s]) => s.start < span.end && span.start < s.end).map(([p]) => p);
        const p = this.#batch(extents, before);
        this.#batches.set(p, span);
        void p.finally(() => this.#batches.delete(p));
        continue;
      }
      if (this.#batches.size === 0) break;
      await new Promise<void>((resolve) => {
        this.#wakeLoop = resolve;
        for (const p of this.#batches.keys()) void p.then(resolve);
      });
      this.#wakeLoop = undefined;
    }
    this.#flushAll = false;
  }

  async #batch(extents: TakenExtent[], after: Array<Promise<void>>): Promise<void> {
    const layout = this.layout!;
    const bytes = extents.reduce((s, e) => s + e.data.length, 0);
    this.#inFlightBytes += bytes;
    try {
      if (after.length > 0) await Promise.all(after);
      const stripes = await this.ctx.lov.writev(layout, extents);
      for (const s of stripes) this.#stampStripes.add(s);
      this.#stamp();
      // Pool buffers go back once the OSTs committed them (until then the imports keep the
      // bulks for replay); a failed batch's are left to the garbage collector.
      const pooled = extents.flatMap((e) => (e.pooled ? [e.pooled] : []));
      if (pooled.length > 0) {
        this.ctx.lov.afterCommit(layout, stripes, () => {
          for (const b of pooled) dirtyBufferPool.put(b);
        });
      }
    } catch (err) {
      this.#error ??= err;
    } finally {
      this.#inFlightBytes -= bytes;
      this.ctx.dirty.release(bytes);
      this.#wakeBatchWaiters();
    }
  }

  #wakeBatchWaiters(): void {
    const waiters = this.#batchWaiters;
    this.#batchWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Stamps mtime and ctime on the objects written, off the write path: at most one OST_SETATTR
   * round per file on the wire, the stripes written meanwhile stamped by the next round.
   */
  #stamp(): void {
    if (this.#stamping || this.#stampStripes.size === 0 || !this.layout) return;
    const stripes = [...this.#stampStripes];
    this.#stampStripes.clear();
    const now = nowSeconds();
    this.#stamping = this.ctx.lov.setattr(this.layout, { mtime: now, ctime: now }, stripes).catch((err: unknown) => {
      this.#error ??= err;
    }).finally(() => {
      this.#stamping = undefined;
      this.#stamp();
    });
  }

  /** Reads up to length bytes at offset from the OSTs (under PR locks), after sending what is dirty. */
  async read(offset: number, length: number, progress?: LockProgress): Promise<Buffer> {
    const pieces = await this.readPieces(offset, length, progress);
    if (pieces.length === 1) return pieces[0]!;
    return pieces.length === 0 ? Buffer.alloc(0) : Buffer.concat(pieces);
  }

  /** read() as buffers back to back (the bulks as they arrived, not copied into one). */
  async readPieces(offset: number, length: number, progress?: LockProgress): Promise<Buffer[]> {
    if (this.dirtyBytes > 0) await this.flush();
    if (!this.layout || length === 0) {
      if (progress) progress.phase = 'locked';
      return [];
    }
    const release = await this.#lock(LockMode.PR, offset, length, false, progress);
    try {
      return await this.ctx.lov.readPieces(this.layout, offset, length);
    } finally {
      release();
    }
  }

  /** Size, blocks and times from the OST objects (after sending what is dirty). */
  async dataAttrs(opts: { locked?: boolean } = {}): Promise<DataAttrs | undefined> {
    if (this.dirtyBytes > 0) await this.flush();
    if (!this.layout) return undefined;
    // Under PR locks on every object: a client holding dirty data under its PW lock writes it
    // back first, so the OSTs' sizes and times count it. A caller holding PW [0, EOF] already
    // (an append) takes none: its own lock may be waiting to be cancelled, and a new one
    // would wait for that cancel, which waits for the caller.
    const release = opts.locked ? noRelease : await this.#lock(LockMode.PR, 0, 0, true);
    try {
      return await this.ctx.lov.getattr(this.layout);
    } finally {
      release();
    }
  }

  async size(): Promise<number> {
    return (await this.dataAttrs())?.size ?? 0;
  }

  /**
   * Where an O_APPEND write of n bytes goes: the end of the file, which is then n bytes further
   * (taken at once, so that appends through the mount never overlap). Called under PW [0, EOF]
   * on every stripe (append()): the end is asked of the OSTs once and followed from then on,
   * until a lock of the file goes (revoke() forgets it: another client may write then).
   * Without locks (targets that serve none) what another client appends meanwhile is not seen
   * until the file is opened again.
   */
  async appendAt(n: number): Promise<number> {
    while (this.#endHint === undefined) {
      this.#endFetch ??= this.dataAttrs({ locked: true }).then((attrs) => attrs?.size ?? 0).then((size) => {
        this.#endHint ??= size;
      }).finally(() => {
        this.#endFetch = undefined;
      });
      await this.#endFetch;
    }
    const at = this.#endHint;
    this.#endHint += n;
    return at;
  }

  /** truncate(2): dirty bytes past size are dropped, the rest sent, then every object cut to its share. */
  async truncate(size: number): Promise<void> {
    const before = this.#dirty.bytes;
    this.#dirty.truncate(size);
    if (before > this.#dirty.bytes) this.ctx.dirty.release(before - this.#dirty.bytes);
    await this.flush();
    this.generation++;
    this.#endHint = undefined;
    if (!this.layout) return;
    try {
      await this.ctx.lov.truncate(this.layout, size);
      const now = nowSeconds();
      await this.ctx.lov.setattr(this.layout, { mtime: now, ctime: now });
    } finally {
      this.#endHint = undefined; // an append that asked meanwhile may have seen the old end
    }
  }

  /** fsync(2): dirty data sent, then every object made durable by its OST. */
  async sync(): Promise<void> {
    await this.flush();
    if (this.layout) await this.ctx.lov.sync(this.layout);
  }
}
