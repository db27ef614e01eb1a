// Transactions: declare, start, updates, stop. Each update validates against the current state
// (reads see every applied update, committed or not), does its data-file work, then becomes a
// semantic Update that is applied at once (apply.ts) and kept for the tx's log entry. A failed
// update throws an OsdError and applies nothing. Updates of one object run one at a time
// (a per-object lock); the apply step itself is one synchronous step. An update with no I/O to
// wait for (xattrs, index entries, attributes without a size change: most of a metadata
// server's) checks and applies in one synchronous step too, without the lock when nobody holds
// it: nothing can interleave with it.

import assert from 'node:assert/strict';
import type { TxgHold } from '../log/index.js';
import { OsdError } from './errors.js';
import { checkFid, fidEquals, fidKey, fidToString, ROOT_INDEX_FID, type Fid } from './fid.js';
import { indexKey, indexPrefix, NAME_MAX_BYTES, objectKey, xattrKey, xattrPrefix, XATTR_VALUE_MAX_BYTES } from './keys.js';
import {
  isDataType, isIndexType, MAX_FILE_BYTES, OBJECT_TYPES, SETTABLE_ATTRS,
  type IndexValue, type ObjectAttrs, type ObjectType, type SettableAttrs, type Update,
} from './types.js';
import type { TxHost } from './host.js';

type Unnumbered<U> = U extends unknown ? Omit<U, 'n'> : never;
export type UpdateBody = Unnumbered<Update>;

export interface CreateAttrs extends SettableAttrs {
  type: ObjectType;
}

export interface XattrSetFlags {
  /** Fail with EEXIST if the xattr exists. */
  create?: boolean;
  /** Fail with ENODATA if the xattr does not exist. */
  replace?: boolean;
}

export function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > NAME_MAX_BYTES) {
    throw new OsdError('EINVAL', `${what} must be a string of 1 to ${NAME_MAX_BYTES} bytes`);
  }
  return name;
}

function checkType(type: unknown): ObjectType {
  if (!(OBJECT_TYPES as readonly unknown[]).includes(type)) {
    throw new OsdError('EINVAL', `object type must be one of ${OBJECT_TYPES.join(', ')}, not ${String(type)}`);
  }
  return type as ObjectType;
}

function checkBytes(n: unknown, what: string): number {
  if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > MAX_FILE_BYTES) {
    throw new OsdError(Number.isSafeInteger(n) && (n as number) > 0 ? 'EFBIG' : 'EINVAL', `${what} must be an integer in [0, 2^52], not ${String(n)}`);
  }
  return n as number;
}

/** Validates caller-given attributes: only settable ones, each a finite number. */
export function checkAttrs(attrs: object, allowType: boolean): SettableAttrs {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'type' && allowType) continue;
    if (!(SETTABLE_ATTRS as readonly string[]).includes(k)) throw new OsdError('EINVAL', `attribute ${k} cannot be set`);
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new OsdError('EINVAL', `attribute ${k} must be a finite number`);
    if (k === 'size') checkBytes(v, 'size');
    else if (k === 'mode' && (!Number.isInteger(v) || v < 0 || v > 0o7777)) throw new OsdError('EINVAL', 'mode holds permission bits only (0 to 07777)');
    else if (k !== 'atime' && k !== 'mtime' && k !== 'ctime' && (!Number.isSafeInteger(v) || v < 0)) throw new OsdError('EINVAL', `attribute ${k} must be a non-negative integer`);
    out[k] = v;
  }
  return out as SettableAttrs;
}

export class Tx {
  #host: TxHost;
  #hold: TxgHold | undefined;
  #state: 'new' | 'started' | 'stopped' = 'new';
  #updates: Update[] = [];
  #annotation: Record<string, unknown> | undefined;
  #inflight = 0;
  #declaredBytes = 0;
  #declaredObjects = 0;
  /** Bytes this tx wrote to data files: they count towards its txg's dirty limit. */
  #dataBytes = 0;

  constructor(host: TxHost) {
    this.#host = host;
  }

  /** The txg this transaction joined (after start). */
  get txg(): number {
    assert(this.#hold, 'tx not started');
    return this.#hold.txg;
  }

  /** The updates applied so far (what the log entry will hold). */
  get updates(): readonly Update[] {
    return this.#updates;
  }

  // Declarations: what the tx will need. start() refuses with ENOSPC if the device cannot hold
  // it; they are a check, not a reservation.
  declareCreate(_fid: Fid): this {
    this.#declaredObjects++;
    return this;
  }
  declareWrite(_fid: Fid, bytes: number): this {
    this.#declaredBytes += checkBytes(bytes, 'declared bytes');
    return this;
  }
  declareDestroy(_fid: Fid): this {
    return this;
  }
  declareAttrSet(_fid: Fid): this {
    return this;
  }
  declareXattrSet(_fid: Fid, bytes = 0): this {
    this.#declaredBytes += checkBytes(bytes, 'declared bytes');
    return this;
  }
  declarePunch(_fid: Fid): this {
    return this;
  }
  declareIndexInsert(_index: Fid): this {
    return this;
  }
  declareIndexDelete(_index: Fid): this {
    return this;
  }

  /**
   * Joins the open txg. Waits first if checkpoints lag far behind (bounded memory), then until
   * every transaction of earlier txgs has stopped, so that updates apply in txg order, the
   * order replay applies them. As with the DMU's dmu_tx_assign(), do not hold across start()
   * a lock that a started transaction may wait for.
   */
  async start(): Promise<void> {
    assert(this.#state === 'new', `tx.start() in state ${this.#state}`);
    this.#state = 'started';
    try {
      await this.#host.admit(this.#declaredBytes, this.#declaredObjects);
      this.#hold = this.#host.hold();
    } catch (err) {
      this.#state = 'stopped'; // a tx whose start failed is over: it holds nothing
      throw err;
    }
    await this.#host.joined(this.#hold.txg);
  }

  /** Opaque information from upper layers (transno, client uuid, operation), kept in the log entry. */
  annotate(info: Record<string, unknown>): this {
    this.#annotation = { ...this.#annotation, ...info };
    return this;
  }

  /**
   * Ends the tx: its entry joins its txg. onCommit(txg) runs once the txg is durable, in txg
   * order. Every update must have finished (awaited) before stop.
   */
  stop(onCommit?: (txg: number) => void): { txg: number } {
    assert(this.#state === 'started' && this.#hold, `tx.stop() in state ${this.#state}`);
    // Invariant: an update still running would land after its entry left for the log.
    assert(this.#inflight === 0, 'tx.stop() while an update is still running');
    this.#state = 'stopped';
    this.#host.left(this.#hold.txg);
    const entry = this.#annotation ? { updates: this.#updates, tx: this.#annotation } : { updates: this.#updates };
    this.#hold.release(entry, onCommit, this.#dataBytes);
    return { txg: this.#hold.txg };
  }

  /** Runs an update holding the lock of its object (or of one name in an index). */
  private async run<T>(fid: Fid, fn: (fidText: string) => Promise<T>, name?: string): Promise<T> {
    assert(this.#state === 'started' && this.#hold, `tx update in state ${this.#state}`);
    this.#host.assertOpen();
    this.#inflight++;
    try {
      return await this.#host.withLock(name === undefined ? fidKey(fid) : indexKey(fid, name), () => fn(fidToString(fid)));
    } finally {
      this.#inflight--;
    }
  }

  /**
   * Runs an update whose work is synchronous: at once when no update holds its lock (nothing
   * can interleave with it), else behind those that do, as run() would.
   */
  private runSync(fid: Fid, fn: (fidText: string) => void, name?: string): Promise<void> | undefined {
    assert(this.#state === 'started' && this.#hold, `tx update in state ${this.#state}`);
    this.#host.assertOpen();
    if (this.#host.locked(name === undefined ? fidKey(fid) : indexKey(fid, name))) return this.run(fid, async (fidText) => fn(fidText), name);
    fn(fidToString(fid));
    return undefined;
  }

  /** Applies the update `build` makes from the object's attributes as they are at apply time. */
  private apply(fid: Fid, build: (current: ObjectAttrs) => UpdateBody, create = false): void {
    this.#updates.push(this.#host.applyLive(this.txg, fid, build, create));
  }

  private existing(fid: Fid): ObjectAttrs {
    const a = this.#host.attrsNow(fid);
    if (!a) throw new OsdError('ENOENT', `no object ${fidToString(fid)}`);
    return a;
  }

  private dataObject(fid: Fid): ObjectAttrs {
    const a = this.existing(fid);
    if (!isDataType(a.type)) throw new OsdError(isIndexType(a.type) ? 'EISDIR' : 'EINVAL', `${fidToString(fid)} is a ${a.type} object, which holds no data`);
    assert(a.gen !== undefined, `data object ${fidToString(fid)} without a generation`);
    return a;
  }

  private indexObject(fid: Fid): ObjectAttrs {
    const a = this.existing(fid);
    if (!isIndexType(a.type)) throw new OsdError('ENOTDIR', `${fidToString(fid)} is a ${a.type} object, not an index`);
    return a;
  }

  async create(fid: Fid, attrs: CreateAttrs): Promise<void> {
    checkFid(fid);
    const type = checkType(attrs?.type);
    const given = checkAttrs(attrs, true);
    const body = (fidText: string): void => {
      const now = this.#host.nowSeconds();
      const full: ObjectAttrs = {
        type, mode: type === 'dir' || type === 'idx' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, blocks: 0,
        atime: now, mtime: now, ctime: now, nlink: type === 'dir' ? 2 : 1, flags: 0, ...given, version: 1,
      };
      this.apply(fid, () => {
        if (isDataType(type)) full.gen = this.#host.nextGen();
        return { op: 'create', fid: fidText, attrs: full };
      }, true);
    };
    const absent = (fidText: string): void => {
      if (this.#host.attrsNow(fid)) throw new OsdError('EEXIST', `object ${fidText} exists`);
      this.#host.checkObjects();
    };
    if (!given.size) return this.runSync(fid, (fidText) => { absent(fidText); body(fidText); });
    await this.run(fid, async (fidText) => {
      absent(fidText);
      await this.#host.checkSpace(isDataType(type) ? given.size! : 0);
      body(fidText);
    });
  }

  async destroy(fid: Fid): Promise<void> {
    checkFid(fid);
    if (fidEquals(fid, ROOT_INDEX_FID)) throw new OsdError('EINVAL', 'the root index cannot be destroyed');
    await this.run(fid, async (fidText) => {
      const a = this.existing(fid);
      const owner = objectKey(fid);
      if (isIndexType(a.type) && (await this.#host.state.list(indexPrefix(fid), undefined, 1, owner)).length > 0) {
        throw new OsdError('ENOTEMPTY', `index ${fidText} still holds entries`);
      }
      const prefix = xattrPrefix(fid);
      const xattrs = (await this.#host.state.list(prefix, undefined, Infinity, owner)).map((r) => r.key.slice(prefix.length));
      this.apply(fid, () => (a.gen === undefined ? { op: 'destroy', fid: fidText, xattrs } : { op: 'destroy', fid: fidText, xattrs, gen: a.gen }));
    });
  }

  async attrSet(fid: Fid, attrs: SettableAttrs): Promise<void> {
    checkFid(fid);
    const changes: Partial<ObjectAttrs> = checkAttrs(attrs ?? {}, false);
    const set = (fidText: string): void => this.apply(fid, (cur) => ({ op: 'attr_set', fid: fidText, attrs: changes, version: cur.version + 1 }));
    if (changes.size === undefined) return this.runSync(fid, (fidText) => { this.existing(fid); set(fidText); });
    await this.run(fid, async (fidText) => {
      const a = this.existing(fid);
      if (isDataType(a.type) && changes.size !== a.size) changes.blocks = await this.resize(a, changes.size!);
      set(fidText);
    });
  }

  /** Truncate semantics for data objects (apply defers the zeroing): returns the new blocks. */
  private async resize(a: ObjectAttrs, size: number): Promise<number> {
    if (size > a.size) await this.#host.checkSpace(size - a.size);
    return a.blocks;
  }

  async xattrSet(fid: Fid, name: string, value: Uint8Array, flags: XattrSetFlags = {}): Promise<void> {
    checkFid(fid);
    checkName(name, 'xattr name');
    if (!(value instanceof Uint8Array) || value.byteLength > XATTR_VALUE_MAX_BYTES) {
      throw new OsdError('EINVAL', `xattr value must be bytes, at most ${XATTR_VALUE_MAX_BYTES}`);
    }
    const copy = Buffer.from(value);
    return this.runSync(fid, (fidText) => {
      this.existing(fid);
      const exists = this.#host.state.getSync(xattrKey(fid, name)) !== undefined;
      if (flags.create && exists) throw new OsdError('EEXIST', `xattr ${name} of ${fidText} exists`);
      if (flags.replace && !exists) throw new OsdError('ENODATA', `no xattr ${name} on ${fidText}`);
      this.apply(fid, (cur) => ({ op: 'xattr_set', fid: fidText, name, value: copy, version: cur.version + 1 }));
    });
  }

  async xattrDel(fid: Fid, name: string): Promise<void> {
    checkFid(fid);
    checkName(name, 'xattr name');
    return this.runSync(fid, (fidText) => {
      this.existing(fid);
      if (this.#host.state.getSync(xattrKey(fid, name)) === undefined) throw new OsdError('ENODATA', `no xattr ${name} on ${fidText}`);
      this.apply(fid, (cur) => ({ op: 'xattr_del', fid: fidText, name, version: cur.version + 1 }));
    });
  }

  /** Writes data at offset: bytes, or pieces written back to back (a bulk as it arrived, not joined). */
  async write(fid: Fid, offset: number, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    checkFid(fid);
    checkBytes(offset, 'offset');
    const pieces = data instanceof Uint8Array ? [data] : data;
    let length = 0;
    for (const p of pieces) {
      if (!(p instanceof Uint8Array)) throw new OsdError('EINVAL', 'write data must be bytes');
      length += p.byteLength;
    }
    const end = checkBytes(offset + length, 'end of write');
    await this.run(fid, async (fidText) => {
      const a = this.dataObject(fid);
      if (end > a.size) await this.#host.checkSpace(end - a.size);
      const path = this.#host.data.path(fid, a.gen!);
      const blocks = await this.#host.data.write(path, offset, pieces, this.txg, a.size);
      this.#dataBytes += length;
      const size = Math.max(a.size, end);
      this.apply(fid, (cur) => ({ op: 'write', fid: fidText, offset, length, size, blocks, version: cur.version + 1 }));
    });
  }

  /**
   * Punches [start, end) to zeros within the current size, or with no end, truncates: the
   * size becomes start (growing or shrinking; growth reads as zeros).
   */
  async punch(fid: Fid, start: number, end?: number): Promise<void> {
    checkFid(fid);
    checkBytes(start, 'punch start');
    if (end !== undefined && checkBytes(end, 'punch end') < start) throw new OsdError('EINVAL', 'punch end before start');
    await this.run(fid, async (fidText) => {
      const a = this.dataObject(fid);
      // The file is not touched now: the zeros wait for the txg to be durable (zeroing.ts).
      const blocks = end === undefined ? await this.resize(a, start) : a.blocks;
      const size = end === undefined ? start : a.size;
      this.apply(fid, (cur) => ({ op: 'punch', fid: fidText, start, end: end ?? null, size, blocks, version: cur.version + 1 }));
    });
  }

  async indexInsert(index: Fid, name: string, value: IndexValue): Promise<void> {
    checkFid(index);
    checkName(name, 'index name');
    checkFid(value?.fid);
    const type = checkType(value.type);
    return this.runSync(index, (fidText) => {
      this.indexObject(index);
      if (this.#host.state.getSync(indexKey(index, name)) !== undefined) throw new OsdError('EEXIST', `${name} exists in index ${fidText}`);
      const v = { fid: fidToString(value.fid), type };
      this.apply(index, (cur) => ({ op: 'index_insert', fid: fidText, name, value: v, version: cur.version + 1 }));
    }, name);
  }

  async indexDelete(index: Fid, name: string): Promise<void> {
    checkFid(index);
    checkName(name, 'index name');
    return this.runSync(index, (fidText) => {
      this.indexObject(index);
      if (this.#host.state.getSync(indexKey(index, name)) === undefined) throw new OsdError('ENOENT', `no ${name} in index ${fidText}`);
      this.apply(index, (cur) => ({ op: 'index_delete', fid: fidText, name, version: cur.version + 1 }));
    }, name);
  }
}
