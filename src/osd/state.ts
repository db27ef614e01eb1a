// The materialized state as layers over LevelDB. A read looks, newest first, at:
//   1. pending: one layer per txg not yet durable (newest txg first)
//   2. durable: changes of durable txgs not yet checkpointed
//   3. frozen: the durable layer a checkpoint is writing to LevelDB right now
//   4. LevelDB (keys.ts)
// A layer maps a key to its new value, or to null (a tombstone hiding an older value).
// Invariant: every memory check of one read happens in one synchronous step, and a checkpoint
// clears `frozen` only after its batch is in LevelDB, bumping `epoch`; a range read that went
// to LevelDB retries if `epoch` moved, so no key is ever missed between the layers.

import assert from 'node:assert/strict';
import type { ClassicLevel } from 'classic-level';
import { COUNTER, compareKeys, decodeValue, encodeValue, ownerPrefix, prefixEnd, valueBytes, type StateValue } from './keys.js';

export type Db = ClassicLevel<string, Uint8Array>;

export class Layer {
  readonly map = new Map<string, StateValue | null>();
  /** Keys of x: and i: entries grouped by their owner prefix, for range reads. */
  readonly owners = new Map<string, Set<string>>();
  bytes = 0;

  set(key: string, value: StateValue | null): void {
    const prev = this.map.get(key);
    if (prev !== undefined) this.bytes -= valueBytes(key, prev);
    else {
      const owner = ownerPrefix(key);
      if (owner !== undefined) {
        let set = this.owners.get(owner);
        if (!set) this.owners.set(owner, (set = new Set()));
        set.add(key);
      }
    }
    this.map.set(key, value);
    this.bytes += valueBytes(key, value);
  }

  get keys(): number {
    return this.map.size;
  }

  /** Copies every change of `newer` over this layer. */
  absorb(newer: Layer): void {
    for (const [k, v] of newer.map) this.set(k, v);
  }
}

/** What apply() sees: reads through every layer (synchronously: see get()), writes into one. */
export interface StateView {
  get(key: string): StateValue | undefined;
  put(key: string, value: StateValue): void;
  del(key: string): void;
}

export class LayeredState {
  readonly db: Db;
  /** Ascending by txg. */
  private pending: { txg: number; layer: Layer }[] = [];
  durable = new Layer();
  frozen: Layer | null = null;
  epoch = 0;

  constructor(db: Db) {
    this.db = db;
  }

  /** The layer of a live txg, created on first use. */
  pendingLayer(txg: number): Layer {
    const last = this.pending[this.pending.length - 1];
    if (last && last.txg === txg) return last.layer;
    const found = this.pending.find((p) => p.txg === txg);
    if (found) return found.layer;
    // Invariant: txgs open in increasing order, so a new pending layer is the newest.
    assert(!last || last.txg < txg, `pending layer for txg ${txg} after txg ${last?.txg}`);
    const layer = new Layer();
    this.pending.push({ txg, layer });
    return layer;
  }

  /** Moves the changes of every txg <= txg from pending to durable (txg is durable). */
  promote(txg: number): void {
    while (this.pending.length > 0 && this.pending[0]!.txg <= txg) this.durable.absorb(this.pending.shift()!.layer);
  }

  get pendingBytes(): number {
    return this.pending.reduce((sum, p) => sum + p.layer.bytes, 0);
  }

  private *layersNewestFirst(): Generator<Layer> {
    for (let i = this.pending.length - 1; i >= 0; i--) yield this.pending[i]!.layer;
    yield this.durable;
    if (this.frozen) yield this.frozen;
  }

  /** Synchronous lookup in memory: undefined if no layer has the key, null for a tombstone. */
  memGet(key: string): StateValue | null | undefined {
    // The same walk as layersNewestFirst, without a generator: this runs for every read.
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const v = this.pending[i]!.layer.map.get(key);
      if (v !== undefined) return v;
    }
    const d = this.durable.map.get(key);
    if (d !== undefined) return d;
    return this.frozen ? this.frozen.map.get(key) : undefined;
  }

  async get(key: string): Promise<StateValue | undefined> {
    return this.getSync(key);
  }

  /** A point read through every layer, then LevelDB, in one synchronous step. */
  getSync(key: string): StateValue | undefined {
    const m = this.memGet(key);
    if (m !== undefined) return m === null ? undefined : m;
    // getSync: a point read served by LevelDB's caches costs microseconds, far less than the
    // thread-pool round trip of get() (measured: creates ran 2-3 times faster). A cold read
    // blocks the event loop for one disk read.
    const bytes = this.db.getSync(key);
    return bytes === undefined ? undefined : decodeValue(key, bytes);
  }

  view(layer: Layer): StateView {
    return {
      get: (key) => this.getSync(key),
      put: (key, value) => layer.set(key, value),
      del: (key) => layer.set(key, null),
    };
  }

  /**
   * Up to `limit` live entries whose key starts with `prefix` and sorts after `after` (a full
   * key), in LevelDB order, merged over every layer. `owner`: the o: key of the object owning
   * the prefix; when LevelDB does not hold it, LevelDB holds none of the object's x: and i:
   * keys either (a checkpoint writes an object's creation and its keys, or its destruction and
   * their deletion, in one batch), so the layers alone answer, without an iterator: an object
   * created since the last checkpoint (a destroy soon after a create, a new directory) costs
   * no LevelDB range read and no turn through its thread pool.
   */
  async list(prefix: string, after: string | undefined, limit: number, owner?: string): Promise<{ key: string; value: StateValue }[]> {
    const out: { key: string; value: StateValue }[] = [];
    const end = prefixEnd(prefix);
    let cursor = after;
    while (out.length < limit) {
      const batch = Math.min(limit - out.length, 1024) + 16;
      let rows: [string, Uint8Array][];
      // Invariant: the getSync and the walk of the layers below run in one synchronous step.
      if (owner !== undefined && this.db.getSync(owner) === undefined) rows = [];
      else {
        const epoch = this.epoch;
        rows = await this.db.iterator({ gt: cursor ?? prefix, lt: end, limit: batch }).all();
        if (epoch !== this.epoch) continue; // a checkpoint landed meanwhile: read again
      }
      const exhausted = rows.length < batch;
      const bound = exhausted ? undefined : rows[rows.length - 1]![0];
      const fromDb = new Map(rows);
      const keys = new Set(fromDb.keys());
      for (const layer of this.layersNewestFirst()) {
        for (const k of layer.owners.get(prefix) ?? []) {
          if (keys.has(k)) continue;
          // Not among LevelDB's rows of this range and deleted in memory: it hides nothing, so
          // it is left out before the sort (an index whose entries come and go between
          // checkpoints, as the unlink llog's, is otherwise sorted whole at every list).
          if (this.memGet(k) === null) continue;
          if ((cursor === undefined || compareKeys(k, cursor) > 0) && (bound === undefined || compareKeys(k, bound) <= 0)) keys.add(k);
        }
      }
      for (const key of [...keys].sort(compareKeys)) {
        cursor = key;
        const m = this.memGet(key);
        const value = m !== undefined ? m : decodeValue(key, fromDb.get(key)!);
        if (value === null) continue;
        out.push({ key, value });
        if (out.length >= limit) return out;
      }
      if (exhausted) break;
    }
    return out;
  }

  /** Starts a checkpoint: the durable layer becomes frozen. Synchronous. */
  freeze(): Layer {
    // Invariant: one checkpoint at a time.
    assert(this.frozen === null, 'a checkpoint is already running');
    this.frozen = this.durable;
    this.durable = new Layer();
    return this.frozen;
  }

  /** Writes the frozen layer and the txg it reflects to LevelDB in one synced batch. */
  async writeFrozen(txg: number, clean = false, extra: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = []): Promise<void> {
    const frozen = this.frozen;
    assert(frozen !== null, 'no checkpoint to write');
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [];
    for (const [key, value] of frozen.map) {
      ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value: encodeValue(key, value) });
    }
    ops.push({ type: 'put', key: COUNTER.checkpointTxg, value: encodeValue(COUNTER.checkpointTxg, txg) });
    if (clean) ops.push({ type: 'put', key: COUNTER.clean, value: encodeValue(COUNTER.clean, 1) });
    ops.push(...extra);
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      // Nothing was written: fold the frozen changes back under the newer durable ones.
      frozen.absorb(this.durable);
      this.durable = frozen;
      this.frozen = null;
      throw err;
    }
    this.frozen = null;
    this.epoch++;
  }
}
