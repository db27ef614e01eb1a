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

import assert from 'node:assert/strict';
import { statfs as fsStatfs } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { TxgLog, readLog, type TxgHold, type TxgLogTunables, type TxgRecord } from '../log/index.js';
import { applyUpdate, updatesOfEntries } from './apply.js';
import { checkDevice, type CheckProblem } from './check.js';
import { DataFiles } from './data.js';
import { devicePaths, formatDevice, readDevice, type DeviceInfo, type FormatOptions } from './device.js';
import { OsdDeviceError, OsdError } from './errors.js';
import { checkFid, fidKey, fidToString, parseFid, type Fid } from './fid.js';
import { KeyedLock, Mutex } from './lock.js';
import { COUNTER, indexKey, indexPrefix, objectKey, toBuffer, xattrKey, xattrPrefix } from './keys.js';
import { LayeredState } from './state.js';
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
}

export interface OsdStatfs {
  bytesTotal: number;
  bytesFree: number;
  objectsTotal: number;
  objectsFree: number;
}

export interface OsdStats {
  label: string;
  uuid: string;
  openTxg: number;
  lastSyncedTxg: number;
  checkpointTxg: number;
  txgsSynced: number;
  syncTimeTotalMs: number;
  syncTimeMaxMs: number;
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
  #applyLock = new Mutex();
  #n = new Map<number, number>();
  #closed = false;
  #checkpointing: Promise<void> | null = null;
  #removals = new Map<number, string[]>();
  #removing = new Set<Promise<void>>();
  #syncedTxg = 0;
  #checkpointTxg = 0;
  #checkpoints = 0;
  #recordsReplayed = 0;
  #logVerified = false;
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
    this.data = new DataFiles(devicePaths(dir).data, this.#opts.maxOpenFiles);
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
    const o = this.#opts;
    this.#log = await TxgLog.open({
      dir: devicePaths(this.dir).log,
      checkpointTxg: this.#checkpointTxg,
      replay: (record) => this.#replay(record),
      beforeSync: (txg) => this.data.syncTxg(txg),
      onSynced: (txg) => this.#onSynced(txg),
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
    await this.statfs();
  }

  async #replay(record: TxgRecord): Promise<void> {
    const where = `${record.file}@${record.offset} (txg ${record.txg})`;
    const view = this.state.view(this.state.durable);
    for (const u of updatesOfEntries(record.entries, where)) {
      await applyUpdate(u, view);
      // The destroy is durable: its data file can go (a generation is never reused).
      if (u.op === 'destroy' && u.gen !== undefined) await this.data.remove(this.data.path(parseFid(u.fid), u.gen));
    }
    this.#recordsReplayed++;
    this.#syncedTxg = record.txg;
    if (this.#overThreshold(1)) {
      // A checkpoint during replay changes LevelDB: first make sure the rest of the log reads
      // (a corrupt record throws LogCorruptError here), so a refused open changes nothing.
      if (!this.#logVerified) {
        for await (const _ of readLog(devicePaths(this.dir).log, { fromTxg: record.txg }));
        this.#logVerified = true;
      }
      this.state.freeze();
      await this.state.writeFrozen(record.txg);
      this.#checkpointTxg = record.txg;
      this.#checkpoints++;
    }
  }

  #onSynced(txg: number): void {
    this.state.promote(txg);
    this.data.synced(txg);
    this.#syncedTxg = txg;
    for (const [t, paths] of this.#removals) {
      if (t > txg) continue;
      this.#removals.delete(t);
      for (const path of paths) {
        const p = this.data.remove(path).catch((err) => this.#warn(`removing ${path}: ${String(err)}`)).finally(() => this.#removing.delete(p));
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
          await this.state.writeFrozen(txg);
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
    return this.#log.hold();
  }

  nowSeconds(): number {
    return Math.floor(this.#clock() / 1000);
  }

  async attrs(fid: Fid): Promise<ObjectAttrs | undefined> {
    return (await this.state.get(objectKey(fid))) as ObjectAttrs | undefined;
  }

  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.with(key, fn);
  }

  applyLive(txg: number, fid: Fid, build: (current: ObjectAttrs) => UpdateBody, create = false): Promise<Update> {
    return this.#applyLock.with(async () => {
      // A create was checked absent under its object's lock; others re-read under this lock.
      const current = create ? undefined : await this.attrs(fid);
      // An index entry's update holds the lock of its name only: its index may have gone.
      if (!current && !create) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
      const body = build(current as ObjectAttrs);
      const n = (this.#n.get(txg) ?? 0) + 1;
      this.#n.set(txg, n);
      const u = { n, ...body } as Update;
      await applyUpdate(u, this.state.view(this.state.pendingLayer(txg)));
      for (const t of this.#n.keys()) if (t < txg) this.#n.delete(t);
      const layer = this.state.pendingLayer(txg);
      const objects = layer.map.get(COUNTER.objects);
      const bytes = layer.map.get(COUNTER.bytes);
      if (typeof objects === 'number') this.#objects = objects;
      if (typeof bytes === 'number') this.#bytesUsed = bytes;
      return u;
    });
  }

  async admit(bytes: number, objects: number): Promise<void> {
    this.assertOpen();
    // Point reads are synchronous (state.ts), so a busy producer could run on microtasks alone
    // and starve the txg timer and the sync's I/O: every tx start yields to the event loop once.
    await new Promise<void>((resolve) => setImmediate(resolve));
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

  removeDataWhenSynced(txg: number, fid: Fid, gen: number): void {
    const list = this.#removals.get(txg) ?? [];
    list.push(this.data.path(fid, gen));
    this.#removals.set(txg, list);
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

  /** Up to `length` bytes at offset, clamped to the size; holes read as zeros. */
  async read(fid: Fid, offset: number, length: number): Promise<Buffer> {
    const a = await this.attrs(checkFid(fid));
    if (!a) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    if (!isDataType(a.type)) throw new OsdError(isIndexType(a.type) ? 'EISDIR' : 'EINVAL', `${fidToString(fid)} is a ${a.type} object, which holds no data`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new OsdError('EINVAL', 'read offset and length must be non-negative integers');
    }
    const n = Math.max(0, Math.min(length, a.size - offset));
    if (n === 0) return Buffer.alloc(0);
    return this.data.read(this.data.path(fid, a.gen!), offset, n);
  }

  async xattrGet(fid: Fid, name: string): Promise<Buffer> {
    checkName(name, 'xattr name');
    if (!(await this.attrs(checkFid(fid)))) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const v = await this.state.get(xattrKey(fid, name));
    if (v === undefined) throw new OsdError('ENODATA', `no xattr ${name} on ${fidToString(fid)}`);
    return Buffer.from(toBuffer(v as Uint8Array));
  }

  async xattrList(fid: Fid): Promise<string[]> {
    if (!(await this.attrs(checkFid(fid)))) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    const prefix = xattrPrefix(fid);
    return (await this.state.list(prefix, undefined, Infinity)).map((r) => r.key.slice(prefix.length));
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
    const rows = await this.state.list(prefix, opts.cookie ? prefix + opts.cookie : undefined, limit);
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

  get lastSyncedTxg(): number {
    return this.#log.lastSyncedTxg;
  }

  waitSynced(txg: number): Promise<void> {
    return this.#log.waitSynced(txg);
  }

  sync(): Promise<number> {
    return this.#log.sync();
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
  async check(): Promise<CheckProblem[]> {
    await this.sync();
    await this.checkpoint();
    return checkDevice(this.state.db, this.data);
  }

  /**
   * Syncs and (unless checkpoint is false) checkpoints, so the next open replays little; then
   * closes. Every transaction must have stopped.
   */
  async close(opts: { checkpoint?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    let error: unknown;
    try {
      await this.#log.sync();
      while (this.#checkpointing) await this.#checkpointing.catch(() => {});
      if (opts.checkpoint !== false) await this.#startCheckpoint();
    } catch (err) {
      error = err; // e.g. the log failed: still release the device, then report it
    }
    this.#closed = true;
    await this.#log.close().catch((err: unknown) => (error ??= err));
    await Promise.all([...this.#removing]);
    await this.data.close().catch((err: unknown) => (error ??= err));
    await this.state.db.close();
    if (error !== undefined) throw error;
  }
}
