// The OSD: objects by FID over the txg log (src/log) and LevelDB. Ties together the device
// (device.ts), the state layers (state.ts), the apply function (apply.ts), data files
// (data.ts) and transactions (tx.ts).
//
// Life of a txg's changes: a tx applies each update at once into the pending layer of its
// txg; the log's beforeSync(txg) fdatasyncs the data files that txg wrote; onSynced(txg)
// moves the txg's layer into the durable layer; when that grows past checkpointKeysMax or
// checkpointBytesMax, a background checkpoint (log.checkpoint) freezes it and writes it to
// LevelDB in one synced batch with the txg it reflects, and the log drops the segments it
// covers. Open reads that txg and replays the log after it through the same apply function.
//
// Data: writes go to the data files at once; zeros (punch, truncate, gaps) wait in memory
// until their txg is durable (zeroing.ts), then reach the files before any checkpoint covers
// that txg. Replay rebuilds the zeros of the txgs it replays. A clean close marks the device
// clean (m:clean); an open after an unclean shutdown also removes data files that no object
// owns (their create was in a txg the crash lost).
//
// Replay barrier (replayBarrier(), lctl replay_barrier): the log writes nothing after the
// barrier's txg (src/log/txg-log.ts), and since only onSynced moves changes into the durable
// layer, no checkpoint, zeroing or data-file removal reaches disk for a later txg either. A
// close under a barrier takes no checkpoint and leaves the device unclean, so the next open
// replays the log to the barrier and removes data files created after it: the device is then
// exactly as it was at the barrier, as after a crash. One thing is not held back: bytes a
// write puts into a data file go there at once, so an overwrite inside an object's old size
// (not a write beyond it, which the size hides, nor a create, whose file is removed) remains,
// as it does after any crash; clients replay such writes anyway.

import assert from 'node:assert/strict';
import { statfs as fsStatfs } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { TxgLog, readLog, type TxgHold, type TxgLogStats, type TxgLogTunables, type TxgRecord } from '../log/index.js';
import { applyUpdate, updatesOfEntries, type DataEffects } from './apply.js';
import { checkDevice, type CheckProblem, type CheckProgress } from './check.js';
import { DataFiles } from './data.js';
import type { IoCachePolicy } from './aligned.js';
import { devicePaths, formatDevice, readDevice, type DeviceInfo, type FormatOptions } from './device.js';
import { OsdDeviceError, OsdError } from './errors.js';
import { checkFid, fidKey, fidToString, parseFidKey, FID_KEY_LENGTH, type Fid } from './fid.js';
import { KeyedLock } from './lock.js';
import { COUNTER, decodeValue, encodeValue, kindEnd, kindStart, indexKey, indexPrefix, objectKey, toBuffer, xattrKey, xattrPrefix } from './keys.js';
import { LayeredState, type StateView } from './state.js';
import { listBases } from './base.js';
import { moveBase, retireDataFile } from './past.js';
import { PendingZeros } from './zeroing.js';
import { checkName, Tx, type UpdateBody } from './tx.js';
import { isDataType, isIndexType, type IndexEntry, type IndexValue, type ObjectAttrs, type Update } from './types.js';
import type { TxHost } from './host.js';

export interface OsdOptions extends Partial<TxgLogTunables> {
  /** Checkpoint once durable-but-not-checkpointed changes hold this many keys... */
  checkpointKeysMax?: number;
  /** ...or about this many bytes. New transactions wait at start() beyond 4 times either. */
  checkpointBytesMax?: number;
  /** Open data-file descriptors kept (LRU). */
  maxOpenFiles?: number;
  /** Which data IO goes around the page cache (aligned.ts; lctl set_param osd-*.*.read_cache_enable, ...). */
  ioCache?: Partial<IoCachePolicy>;
  /** Caps the device's bytes below the file system's (ENOSPC once data objects' sizes reach it). */
  capacityBytes?: number;
  /** Caps the number of objects (default: the file system's free inodes, for statfs only). */
  maxObjects?: number;
  /** Bytes of the file system kept free for the log and LevelDB. */
  reservedBytes?: number;
  /** How stale the cached free space may get before ENOSPC checks ask the file system again. */
  statfsIntervalMs?: number;
  clock?: () => number;
  warn?: (message: string) => void;
  /**
   * Opens the device read-only (a replayed copy mounted as a past file system): every update
   * of a transaction is refused with EROFS (a transaction that makes none, such as a reply
   * store's around a read, runs and logs nothing), and open and close write nothing to the
   * state. The log is still replayed into memory (a copy's log is empty).
   */
  readOnly?: boolean;
}

export interface OsdStatfs {
  bytesTotal: number;
  bytesFree: number;
  objectsTotal: number;
  objectsFree: number;
}

export interface OsdStats
  extends Pick<TxgLogStats, 'openTxg' | 'lastSyncedTxg' | 'checkpointTxg' | 'txgsSynced' | 'syncTimeTotalMs' | 'syncTimeMaxMs'> {
  label: string;
  uuid: string;
  /** The replay barrier's txg (0: none), and the txgs it kept from disk. */
  barrierTxg: number;
  txgsDiscarded: number;
  /** Log bytes of unsynced txgs plus data bytes written in them. */
  dirtyBytes: number;
  recordsReplayed: number;
  checkpoints: number;
  /** Changes awaiting a checkpoint, and the pending changes of unsynced txgs. */
  durableKeys: number;
  durableBytes: number;
  pendingBytes: number;
  objects: number;
  /** Sum of the sizes of data objects. */
  bytesUsed: number;
  /** As of the last statfs. */
  bytesTotal: number;
  bytesFree: number;
  openDataFiles: number;
}

export interface IndexPage {
  entries: IndexEntry[];
  /** Pass back to continue after the last entry; null when the index is exhausted. */
  cookie: string | null;
}

/**
 * Transaction starts admitted without yielding to the event loop while it has not turned: a
 * bound on how long updates on microtasks alone may hold off timers and I/O (a few ms).
 */
const ADMITS_PER_TURN_MAX = 16;

const DEFAULTS = {
  checkpointKeysMax: 100_000,
  checkpointBytesMax: 64 * 1024 * 1024,
  maxOpenFiles: 256,
  reservedBytes: 0,
  statfsIntervalMs: 1000,
};

export class Osd implements TxHost {
  readonly dir: string;
  readonly info: DeviceInfo;
  readonly state: LayeredState;
  readonly data: DataFiles;
  #log!: TxgLog;
  #opts: OsdOptions & typeof DEFAULTS;
  #clock: () => number;
  #warn: (message: string) => void;
  #locks = new KeyedLock();
  #n = new Map<number, number>();
  #closed = false;
  #checkpointing: Promise<void> | null = null;
  #removals = new Map<number, Array<string | { path: string; fid: Fid; gen: number }>>();
  /** The device keeps a replay window (it has a base, base.ts): destroyed data goes to the attic. */
  #keepsWindow = false;
  #removing = new Set<Promise<void>>();
  readonly zeros = new PendingZeros();
  #zeroing = new Set<Promise<void>>();
  #syncedTxg = 0;
  #checkpointTxg = 0;
  #checkpoints = 0;
  #recordsReplayed = 0;
  /** Transactions between start() and their hold (admit): close() lets them join first. */
  #admitting = 0;
  /** Transaction starts since the event loop last turned (#admit), and whether a turn is watched for. */
  #admitsSinceTurn = 0;
  #turnArmed = false;
  #logVerified = false;
  #closing = false;
  #zeroKeys = new Set<string>();
  #objects = 0;
  #bytesUsed = 0;
  #lastGen = 0;
  #fsFree = { atMs: -Infinity, bytes: 0, total: 0, grown: 0 };

  private constructor(dir: string, info: DeviceInfo, db: ClassicLevel<string, Uint8Array>, opts: OsdOptions) {
    this.dir = dir;
    this.info = info;
    this.state = new LayeredState(db);
    this.#opts = { ...DEFAULTS, ...opts };
    this.#clock = opts.clock ?? Date.now;
    this.#warn = opts.warn ?? (() => {});
    this.data = new DataFiles(devicePaths(dir).data, this.#opts.maxOpenFiles, { ioCache: this.#opts.ioCache, warn: (m) => this.#warn(`osd: ${m}`) });
  }

  /** Creates a device in `dir` (refusing an existing one unless reformat). */
  static format(dir: string, opts: FormatOptions = {}): Promise<DeviceInfo> {
    return formatDevice(dir, opts);
  }

  /** Opens a device, replaying the log after its checkpoint. Refusals change nothing. */
  static async open(dir: string, opts: OsdOptions = {}): Promise<Osd> {
    const info = await readDevice(dir);
    const paths = devicePaths(dir);
    const db = new ClassicLevel<string, Uint8Array>(paths.db, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false });
    try {
      await db.open();
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
      throw locked ? new OsdDeviceError('EBUSY', dir, `${dir} is already open`) : err;
    }
    const osd = new Osd(dir, info, db, opts);
    try {
      await osd.#start();
    } catch (err) {
      await osd.data.close().catch(() => {});
      await db.close().catch(() => {});
      throw err;
    }
    return osd;
  }

  async #start(): Promise<void> {
    this.#checkpointTxg = ((await this.state.get(COUNTER.checkpointTxg)) as number | undefined) ?? 0;
    const clean = (await this.state.get(COUNTER.clean)) === 1;
    await this.#loadZeros();
    this.#keepsWindow = (await listBases(this.dir)).length > 0;
    const o = this.#opts;
    this.#log = await TxgLog.open({
      dir: devicePaths(this.dir).log,
      checkpointTxg: this.#checkpointTxg,
      replay: (record) => this.#replay(record),
      beforeSync: (txg) => this.data.syncTxg(txg),
      onSynced: (txg) => this.#onSynced(txg),
      beforeTrim: (throughTxg) => moveBase(this.dir, throughTxg),
      warn: this.#warn,
      clock: this.#clock,
      ...(o.txgTimeoutMs !== undefined && { txgTimeoutMs: o.txgTimeoutMs }),
      ...(o.dirtyBytesMax !== undefined && { dirtyBytesMax: o.dirtyBytesMax }),
      ...(o.segmentBytesMax !== undefined && { segmentBytesMax: o.segmentBytesMax }),
      ...(o.retainMs !== undefined && { retainMs: o.retainMs }),
      ...(o.retainBytes !== undefined && { retainBytes: o.retainBytes }),
    });
    this.#syncedTxg = this.#log.lastSyncedTxg;
    this.#objects = ((await this.state.get(COUNTER.objects)) as number | undefined) ?? 0;
    this.#bytesUsed = ((await this.state.get(COUNTER.bytes)) as number | undefined) ?? 0;
    this.#lastGen = ((await this.state.get(COUNTER.lastGen)) as number | undefined) ?? 0;
    // The zeros of replayed txgs go to the files now (they are durable).
    await this.#applyZeros(Infinity);
    if (o.readOnly) {
      await this.statfs();
      return;
    }
    // After a crash, data files of objects whose create a lost txg held may remain: remove them.
    if (!clean) await this.#removeOrphanData();
    // Until the next clean close, an open must look for such files again. The stored zeros
    // are in the files now.
    await this.state.db.batch([
      { type: 'put', key: COUNTER.clean, value: encodeValue(COUNTER.clean, 0) },
      ...[...this.#zeroKeys].map((key) => ({ type: 'del' as const, key })),
    ], { sync: true });
    this.#zeroKeys.clear();
    await this.statfs();
  }

  /** Loads the zero ranges a checkpoint during an earlier replay stored (z: keys). */
  async #loadZeros(): Promise<void> {
    for await (const [key, value] of this.state.db.iterator({ gte: kindStart('z'), lt: kindEnd('z') })) {
      this.#zeroKeys.add(key);
      const rel = key.slice(2);
      const fid = parseFidKey(rel.slice(3, 3 + FID_KEY_LENGTH));
      if (!fid) throw new Error(`malformed zero-range key ${JSON.stringify(key)}`);
      const ranges = decodeValue(key, value) as unknown as [number, number | null][];
      for (const [start, end] of ranges) this.zeros.add(join(this.data.dir, rel), fid, start, end ?? Infinity, this.#checkpointTxg);
    }
  }

  /** The zero ranges held, as z: keys for a checkpoint during replay (replacing older ones). */
  #zeroOps(): ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] {
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [];
    const keep = new Set<string>();
    for (const [path, ranges] of this.zeros.all()) {
      const key = `z:${relative(this.data.dir, path)}`;
      keep.add(key);
      ops.push({ type: 'put', key, value: encodeValue(key, ranges.map((r) => [r.start, r.end === Infinity ? null : r.end]) as never) });
    }
    for (const key of this.#zeroKeys) if (!keep.has(key)) ops.push({ type: 'del', key });
    this.#zeroKeys = keep;
    return ops;
  }

  /** Removes data files no object owns (only after an unclean shutdown: a scan of data/). */
  async #removeOrphanData(): Promise<void> {
    const removed: string[] = [];
    for await (const { path, name } of this.data.files()) {
      const m = /^([0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{8})\.([0-9a-f]+)$/.exec(name);
      const fid = m ? parseFidKey(m[1]!) : undefined;
      if (!fid) continue; // not ours: check() reports it
      const a = await this.attrs(fid);
      if (a && a.gen === parseInt(m![2]!, 16) && isDataType(a.type)) continue;
      await this.data.remove(path);
      removed.push(name);
    }
    if (removed.length > 0) this.#warn(`osd: removed ${removed.length} data files of objects lost in a crash`);
  }

  /** Data effects of updates applied into the state, as of `txg`. */
  #effects(txg: number, removals: Promise<void>[] | null): DataEffects {
    return {
      zero: (fid, gen, start, end) => this.zeros.add(this.data.path(fid, gen), fid, start, end, txg),
      wrote: (fid, gen, start, end) => this.zeros.wrote(this.data.path(fid, gen), start, end),
      destroyed: (fid, gen) => {
        const path = this.data.path(fid, gen);
        this.zeros.drop(path);
        // At replay the destroy is durable: its file can go (a generation is never reused).
        // A device with a replay window keeps it in the attic instead (past.ts).
        const keep = this.#keepsDestroyedData();
        if (removals) removals.push(keep ? this.#retire(path, fid, gen) : this.data.remove(path));
        else this.removeDataWhenSynced(txg, path, keep ? { fid, gen } : undefined);
      },
    };
  }

  /**
   * Whether a destroyed object's data goes to the attic: only while a retention window is asked
   * for (txg_retain_ms or txg_retain_bytes). Without one, space is freed as soon as the destroy
   * is durable, and a past view inside the current segment shows such a file without its data.
   */
  #keepsDestroyedData(): boolean {
    if (!this.#keepsWindow) return false;
    // While the log is opened (its replay destroys objects too) the options hold the window.
    const t = this.#log ? this.#log.getTunables() : { retainMs: this.#opts.retainMs ?? 0, retainBytes: this.#opts.retainBytes ?? 0 };
    return t.retainMs > 0 || t.retainBytes > 0;
  }

  /** Applies the zeros of txgs <= txg to the data files, each under its object's lock. */
  async #applyZeros(txg: number): Promise<void> {
    for (const { path, fid } of this.zeros.due(txg)) {
      await this.#locks.with(fidKey(fid), async () => {
        const ranges = this.zeros.rangesDue(path, txg);
        if (ranges.length === 0) return;
        await this.data.applyZeros(path, ranges);
        this.zeros.applied(path, txg);
      });
    }
  }

  /** Waits for the zeros of txgs <= txg to be in the files, durably (before a checkpoint). */
  async #flushZeros(txg: number): Promise<void> {
    await Promise.all([...this.#zeroing]);
    await this.#applyZeros(txg);
  }

  async #replay(record: TxgRecord): Promise<void> {
    const where = `${record.file}@${record.offset} (txg ${record.txg})`;
    const view = this.state.view(this.state.durable);
    const removals: Promise<void>[] = [];
    const effects = this.#effects(record.txg, removals);
    for (const u of updatesOfEntries(record.entries, where)) applyUpdate(u, view, effects);
    await Promise.all(removals);
    this.#recordsReplayed++;
    this.#syncedTxg = record.txg;
    if (this.#overThreshold(1)) {
      // A checkpoint during replay changes LevelDB: first make sure the rest of the log reads
      // (a corrupt record throws LogCorruptError here), so a refused open changes nothing.
      if (!this.#logVerified) {
        for await (const _ of readLog(devicePaths(this.dir).log, { afterTxg: record.txg }));
        this.#logVerified = true;
      }
      this.state.freeze();
      await this.state.writeFrozen(record.txg, false, this.#zeroOps());
      this.#checkpointTxg = record.txg;
      this.#checkpoints++;
    }
  }

  #onSynced(txg: number): void {
    this.state.promote(txg);
    for (const t of this.#n.keys()) if (t <= txg) this.#n.delete(t);
    this.data.synced(txg);
    this.#syncedTxg = txg;
    if (this.zeros.paths > 0) {
      const p = this.#applyZeros(txg).catch((err) => this.#warn(`zeroing data of txg ${txg}: ${String(err)}`)).finally(() => this.#zeroing.delete(p));
      this.#zeroing.add(p);
    }
    for (const [t, paths] of this.#removals) {
      if (t > txg) continue;
      this.#removals.delete(t);
      for (const item of paths) {
        const path = typeof item === 'string' ? item : item.path;
        const p = (typeof item === 'string' ? this.data.remove(path) : this.#retire(path, item.fid, item.gen))
          .catch((err) => this.#warn(`removing ${path}: ${String(err)}`)).finally(() => this.#removing.delete(p));
        this.#removing.add(p);
      }
    }
    this.#maybeCheckpoint();
  }

  #overThreshold(factor: number): boolean {
    const d = this.state.durable;
    return d.keys > this.#opts.checkpointKeysMax * factor || d.bytes > this.#opts.checkpointBytesMax * factor;
  }

  #maybeCheckpoint(): void {
    if (this.#closed || this.#checkpointing || !this.#overThreshold(1)) return;
    this.#startCheckpoint().then(
      () => this.#maybeCheckpoint(),
      (err) => this.#warn(`checkpoint failed: ${String(err)}`),
    );
  }

  #startCheckpoint(): Promise<void> {
    if (this.#checkpointing) return this.#checkpointing;
    const p = (async () => {
      try {
        await this.#log.checkpoint(async (txg) => {
          // Invariant: the durable layer holds exactly the txgs up to the log's last synced one.
          assert.equal(txg, this.#syncedTxg, 'checkpoint txg differs from the last txg applied as durable');
          this.state.freeze();
          await this.#flushZeros(txg);
          await this.state.writeFrozen(txg, this.#closing);
          this.#checkpointTxg = txg;
          this.#checkpoints++;
        });
      } finally {
        this.#checkpointing = null;
      }
    })();
    this.#checkpointing = p;
    return p;
  }

  // ---- TxHost: what transactions use -------------------------------------------------------

  assertOpen(): void {
    if (this.#closed) throw new OsdDeviceError('ECLOSED', this.dir, `the OSD on ${this.dir} is closed`);
  }

  hold(): TxgHold {
    if (this.#opts.readOnly) {
      // A read-only device logs nothing: a transaction that made no update is done at once.
      const txg = this.#log.lastSyncedTxg;
      return { txg, release: (_entry, onCommit) => { if (onCommit) queueMicrotask(() => onCommit(txg)); } };
    }
    return this.#log.hold();
  }

  // Transactions started and not stopped, by txg. A txg quiesces while the next is open: a tx of
  // the open txg waits for those of the quiescing one, so no update of txg T ever applies after
  // one of T+1 (replay applies whole txgs in order; the layers read newest txg first).
  #active = new Map<number, number>();
  #waiters: { txg: number; resolve: () => void }[] = [];

  #earlierActive(txg: number): boolean {
    for (const t of this.#active.keys()) if (t < txg) return true;
    return false;
  }

  joined(txg: number): Promise<void> {
    this.#active.set(txg, (this.#active.get(txg) ?? 0) + 1);
    if (!this.#earlierActive(txg)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ txg, resolve }));
  }

  left(txg: number): void {
    const n = this.#active.get(txg)! - 1;
    if (n > 0) {
      this.#active.set(txg, n);
      return;
    }
    this.#active.delete(txg);
    const ready = this.#waiters.filter((w) => !this.#earlierActive(w.txg));
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  nowSeconds(): number {
    return Math.floor(this.#clock() / 1000);
  }

  async attrs(fid: Fid): Promise<ObjectAttrs | undefined> {
    return this.attrsNow(fid);
  }

  attrsNow(fid: Fid): ObjectAttrs | undefined {
    return this.state.getSync(objectKey(fid)) as ObjectAttrs | undefined;
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.with(key, fn);
  }

  locked(key: string): boolean {
    return this.#locks.held(key);
  }

  /** The view and data effects updates of the open txg apply through (made once per txg, not per update). */
  #live: { txg: number; view: StateView; effects: DataEffects } | undefined;

  applyLive(txg: number, fid: Fid, build: (current: ObjectAttrs) => UpdateBody, create = false): Update {
    if (this.#opts.readOnly) throw new OsdError('EROFS', `${this.dir} is mounted read-only`);
    // One synchronous step: no other update can apply between the read and the apply.
    const current = create ? undefined : this.attrsNow(fid);
    // An index entry's update holds the lock of its name only: its index may have gone.
    if (!current && !create) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const body = build(current as ObjectAttrs);
    const n = (this.#n.get(txg) ?? 0) + 1;
    this.#n.set(txg, n);
    const u = { n, ...body } as Update;
    const layer = this.state.pendingLayer(txg);
    if (this.#live?.txg !== txg) this.#live = { txg, view: this.state.view(layer), effects: this.#effects(txg, null) };
    applyUpdate(u, this.#live.view, this.#live.effects, fid);
    const objects = layer.map.get(COUNTER.objects);
    const bytes = layer.map.get(COUNTER.bytes);
    if (typeof objects === 'number') this.#objects = objects;
    if (typeof bytes === 'number') this.#bytesUsed = bytes;
    return u;
  }

  async admit(bytes: number, objects: number): Promise<void> {
    this.assertOpen();
    this.#admitting++;
    try {
      await this.#admit(bytes, objects);
    } finally {
      this.#admitting--;
    }
  }

  async #admit(bytes: number, objects: number): Promise<void> {
    // Point reads are synchronous (state.ts), so a busy producer could run on microtasks alone
    // and starve the txg timer and the sync's I/O: a tx start yields to the event loop when
    // ADMITS_PER_TURN_MAX starts went by since the loop last turned. Yielding at every start
    // cost each update a whole turn of a busy loop (0.3-3 ms measured in bench:fs's metadata
    // runs, several times the update's own CPU), for requests that arrived on a turn anyway.
    if (++this.#admitsSinceTurn > ADMITS_PER_TURN_MAX) await new Promise<void>((resolve) => setImmediate(resolve));
    this.#noteTurn();
    while (this.#overThreshold(4)) {
      this.#maybeCheckpoint();
      if (!this.#checkpointing) break;
      await this.#checkpointing.catch(() => {});
    }
    if (bytes > 0) await this.checkSpace(bytes);
    if (objects > 0 && this.#opts.maxObjects !== undefined && this.#objects + objects > this.#opts.maxObjects) {
      throw new OsdError('ENOSPC', `no room for ${objects} more objects (${this.#objects} of ${this.#opts.maxObjects})`);
    }
  }

  /** Resets #admitsSinceTurn when the event loop next reaches its check phase. */
  #noteTurn(): void {
    if (this.#turnArmed) return;
    this.#turnArmed = true;
    setImmediate(() => {
      this.#turnArmed = false;
      this.#admitsSinceTurn = 0;
    });
  }

  async checkSpace(bytes: number): Promise<void> {
    const cap = this.#opts.capacityBytes;
    if (cap !== undefined && this.#bytesUsed + bytes > cap) {
      throw new OsdError('ENOSPC', `no room for ${bytes} more bytes (${this.#bytesUsed} of ${cap} used)`);
    }
    if (this.#clock() - this.#fsFree.atMs > this.#opts.statfsIntervalMs) await this.statfs();
    if (this.#fsFree.bytes - this.#fsFree.grown - this.#opts.reservedBytes < bytes) {
      throw new OsdError('ENOSPC', `no room for ${bytes} more bytes on the file system of ${this.dir}`);
    }
    this.#fsFree.grown += bytes;
  }

  checkObjects(): void {
    const max = this.#opts.maxObjects;
    if (max !== undefined && this.#objects >= max) throw new OsdError('ENOSPC', `no room for more objects (${this.#objects} of ${max})`);
  }

  nextGen(): number {
    return ++this.#lastGen;
  }

  removeDataWhenSynced(txg: number, path: string, keep?: { fid: Fid; gen: number }): void {
    const list = this.#removals.get(txg) ?? [];
    list.push(keep ? { path, ...keep } : path);
    this.#removals.set(txg, list);
  }

  /** Moves a destroyed object's data file to the attic, closing its descriptor first. */
  async #retire(path: string, fid: Fid, gen: number): Promise<void> {
    await this.data.remove(path, { keep: true });
    await retireDataFile(this.dir, path, fid, gen);
  }

  // ---- Public API ----------------------------------------------------------------------------

  /** A new transaction: declare, await start(), updates, stop(). */
  begin(): Tx {
    this.assertOpen();
    return new Tx(this);
  }

  async exists(fid: Fid): Promise<boolean> {
    return (await this.attrs(checkFid(fid))) !== undefined;
  }

  /** The object's attributes (ENOENT if none). */
  async getAttrs(fid: Fid): Promise<ObjectAttrs> {
    const a = await this.attrs(checkFid(fid));
    if (!a) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const { gen: _gen, ...rest } = a;
    return rest;
  }

  /**
   * Up to `length` bytes at offset, clamped to the size; holes read as zeros. With `into`, the
   * bytes land in that buffer (at least `length` long) and the result is a view of it: the
   * caller's bulk buffer is filled without another copy or allocation.
   */
  async read(fid: Fid, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (into !== undefined && into.length < length) throw new OsdError('EINVAL', `read buffer of ${into.length} bytes is shorter than ${length}`);
    const a = await this.attrs(checkFid(fid));
    if (!a) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    if (!isDataType(a.type)) throw new OsdError(isIndexType(a.type) ? 'EISDIR' : 'EINVAL', `${fidToString(fid)} is a ${a.type} object, which holds no data`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new OsdError('EINVAL', 'read offset and length must be non-negative integers');
    }
    const n = Math.max(0, Math.min(length, a.size - offset));
    if (n === 0) return Buffer.alloc(0);
    const path = this.data.path(fid, a.gen!);
    const buf = await this.data.read(path, offset, n, into, a.size);
    this.zeros.mask(path, offset, buf);
    return buf;
  }

  async xattrGet(fid: Fid, name: string): Promise<Buffer> {
    const v = await this.xattrFind(fid, name);
    if (v === undefined) throw new OsdError('ENODATA', `no xattr ${name} on ${fidToString(fid)}`);
    return v;
  }

  /**
   * xattrGet's answer, or undefined where it throws ENODATA: for callers to whom an absent xattr
   * is an ordinary answer (a directory without a default layout), since an error object costs
   * its stack trace on every such read.
   */
  async xattrFind(fid: Fid, name: string): Promise<Buffer | undefined> {
    checkName(name, 'xattr name');
    if (!(await this.attrs(checkFid(fid)))) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const v = await this.state.get(xattrKey(fid, name));
    return v === undefined ? undefined : Buffer.from(toBuffer(v as Uint8Array));
  }

  async xattrList(fid: Fid): Promise<string[]> {
    if (!(await this.attrs(checkFid(fid)))) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const prefix = xattrPrefix(fid);
    return (await this.state.list(prefix, undefined, Infinity, objectKey(fid))).map((r) => r.key.slice(prefix.length));
  }

  async #index(index: Fid): Promise<void> {
    const a = await this.attrs(checkFid(index));
    if (!a) throw new OsdError('ENOENT', `no object ${fidToString(index)}`);
    if (!isIndexType(a.type)) throw new OsdError('ENOTDIR', `${fidToString(index)} is a ${a.type} object, not an index`);
  }

  /** The value of `name` in the index, or undefined. */
  async indexLookup(index: Fid, name: string): Promise<IndexValue | undefined> {
    checkName(name, 'index name');
    await this.#index(index);
    const v = (await this.state.get(indexKey(index, name))) as IndexValue | undefined;
    return v && { fid: { ...v.fid }, type: v.type };
  }

  /**
   * Entries of the index in name order (UTF-8 byte order), after `cookie` if given. A cookie
   * stays valid across inserts and deletes (it is a position in name order).
   */
  async indexList(index: Fid, opts: { cookie?: string | null; limit?: number } = {}): Promise<IndexPage> {
    const limit = opts.limit ?? 256;
    if (!Number.isInteger(limit) || limit < 1) throw new OsdError('EINVAL', 'index list limit must be a positive integer');
    if (opts.cookie !== undefined && opts.cookie !== null && typeof opts.cookie !== 'string') throw new OsdError('EINVAL', 'bad index cookie');
    await this.#index(index);
    const prefix = indexPrefix(index);
    const rows = await this.state.list(prefix, opts.cookie ? prefix + opts.cookie : undefined, limit, objectKey(index));
    const entries = rows.map((r) => {
      const v = r.value as IndexValue;
      return { name: r.key.slice(prefix.length), fid: { ...v.fid }, type: v.type };
    });
    return { entries, cookie: rows.length < limit ? null : entries[entries.length - 1]!.name };
  }

  async statfs(): Promise<OsdStatfs> {
    const s = await fsStatfs(this.dir);
    this.#fsFree = { atMs: this.#clock(), bytes: s.bavail * s.bsize, total: s.blocks * s.bsize, grown: 0 };
    let bytesTotal = this.#fsFree.total;
    let bytesFree = Math.max(0, this.#fsFree.bytes - this.#opts.reservedBytes);
    const cap = this.#opts.capacityBytes;
    if (cap !== undefined) {
      bytesTotal = Math.min(bytesTotal, cap);
      bytesFree = Math.max(0, Math.min(bytesFree, cap - this.#bytesUsed));
    }
    const max = this.#opts.maxObjects;
    return {
      bytesTotal,
      bytesFree,
      objectsTotal: max ?? s.files,
      objectsFree: max !== undefined ? Math.max(0, max - this.#objects) : s.ffree,
    };
  }

  /** The txg log's tunables (txg timeout, dirty limit, ...). */
  tunables(): TxgLogTunables {
    return this.#log.getTunables();
  }

  /** Changes txg log tunables of the open device (lctl set_param osd-*.*.txg_timeout). */
  tune(changes: Partial<TxgLogTunables>): void {
    this.#log.tune(changes);
  }

  stats(): OsdStats {
    const l = this.#log.stats();
    let dataDirty = 0;
    for (const b of this.data.dirtyBytes.values()) dataDirty += b;
    const cap = this.#opts.capacityBytes;
    return {
      label: this.info.label,
      uuid: this.info.uuid,
      openTxg: l.openTxg,
      lastSyncedTxg: l.lastSyncedTxg,
      checkpointTxg: this.#checkpointTxg,
      txgsSynced: l.txgsSynced,
      barrierTxg: l.barrierTxg,
      txgsDiscarded: l.txgsDiscarded,
      syncTimeTotalMs: l.syncTimeTotalMs,
      syncTimeMaxMs: l.syncTimeMaxMs,
      dirtyBytes: l.dirtyBytes + dataDirty,
      recordsReplayed: this.#recordsReplayed,
      checkpoints: this.#checkpoints,
      durableKeys: this.state.durable.keys,
      durableBytes: this.state.durable.bytes,
      pendingBytes: this.state.pendingBytes,
      objects: this.#objects,
      bytesUsed: this.#bytesUsed,
      bytesTotal: cap !== undefined ? Math.min(cap, this.#fsFree.total) : this.#fsFree.total,
      bytesFree: cap !== undefined ? Math.max(0, Math.min(cap - this.#bytesUsed, this.#fsFree.bytes)) : this.#fsFree.bytes,
      openDataFiles: this.data.openFiles,
    };
  }

  /** Opened read-only (a past view): every transaction fails with EROFS. */
  get readOnly(): boolean {
    return this.#opts.readOnly === true;
  }

  get lastSyncedTxg(): number {
    return this.#log.lastSyncedTxg;
  }

  /** Resolves once txg is durable; hurry (the default) closes it now if it is still open. */
  waitSynced(txg: number, hurry = true): Promise<void> {
    return this.#log.waitSynced(txg, hurry);
  }

  sync(): Promise<number> {
    return this.#log.sync();
  }

  /**
   * Sets a replay barrier (Lustre's replay_barrier): syncs, then nothing after the returned
   * txg becomes durable by any path until the device is closed; updates still apply in memory
   * and their transactions stop, but their commit callbacks never run. A crash or a close
   * loses them. See the top of this file.
   */
  replayBarrier(): Promise<number> {
    this.assertOpen();
    return this.#log.barrier();
  }

  /** The replay barrier's txg, or null when none is set. */
  get barrierTxg(): number | null {
    return this.#log.barrierTxg;
  }

  /** Checkpoints now (after any running one); resolves with the txg LevelDB now reflects. */
  async checkpoint(): Promise<number> {
    this.assertOpen();
    while (this.#checkpointing) await this.#checkpointing.catch(() => {});
    await this.#startCheckpoint();
    return this.#checkpointTxg;
  }

  /**
   * Checks the device's consistency (see check.ts). Syncs and checkpoints first, then scans
   * LevelDB and the data folder: run it on a quiet device, updates made meanwhile may show up
   * as problems.
   */
  async check(onProgress?: CheckProgress): Promise<CheckProblem[]> {
    await this.sync();
    await this.checkpoint();
    return checkDevice(this.state.db, this.data, onProgress);
  }

  /**
   * Syncs and (unless checkpoint is false) checkpoints, so the next open replays little; then
   * closes. Every transaction must have stopped.
   */
  async close(opts: { checkpoint?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    let error: unknown;
    // A transaction started just before close (its admit yields to the event loop) joins the
    // open txg and is synced with it rather than failing on a closed log. Under a replay
    // barrier, where close takes no checkpoint, nothing else would give it that time.
    while (this.#admitting > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      await this.#log.sync();
      while (this.#checkpointing) await this.#checkpointing.catch(() => {});
      // Under a replay barrier the device is left as a crash would leave it (no checkpoint, no
      // clean mark): the next open replays to the barrier and removes later files.
      if (opts.checkpoint !== false && !this.#opts.readOnly && this.#log.barrierTxg === null) {
        this.#closing = true; // this checkpoint marks the device clean
        await this.#startCheckpoint();
      }
    } catch (err) {
      error = err; // e.g. the log failed: still release the device, then report it
    }
    this.#closed = true;
    await this.#log.close().catch((err: unknown) => (error ??= err));
    await Promise.all([...this.#removing, ...this.#zeroing]);
    await this.data.close().catch((err: unknown) => (error ??= err));
    await this.state.db.close();
    if (error !== undefined) throw error;
  }
}
