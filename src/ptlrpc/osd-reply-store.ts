// The ReplyStore on the OSD: each client's slot record is an xattr of one object (Lustre keeps
// them in last_rcvd / reply_data), written by the same OSD transaction as the update it
// answers, so that the txg log makes both durable together or neither. A record's transno is
// committed when its txg is: the OSD's commit callbacks run in txg order, so last_committed
// only grows and never passes a transno whose txg is not on disk.
//
// xattr "ptlrpc.reply.<client uuid>.<tag>", little-endian:
//   0 u32 magic 0x52504c59 ('RPLY')   4 u16 tag   6 u16 buffer count n
//   8 u64 xid   16 u64 transno   24 i32 status   28 u32 reserved (0)
//  32 u32 lengths[n], then the n reply buffers back to back.
// xattr "ptlrpc.last_transno": u64, the highest transno given as of the last time a client's
// records were forgotten, so that transnos keep growing after them. It is written only then:
// until a record is removed, the records themselves hold the highest transno (a slot's record
// is only ever replaced by a newer one), and open() takes the largest of all.
// xattr "ptlrpc.client.<client uuid>": u64, when the client first connected (ms since the
// epoch): the client slot of last_rcvd, removed when the client disconnects or is evicted.
import assert from 'node:assert/strict';
import type { Fid, Osd, Tx } from '../osd/index.js';
import type { ReplyRecord, ReplyStore, ReplyTransaction } from './reply-store.js';

const RECORD_MAGIC = 0x52504c59;
const PREFIX = 'ptlrpc.reply.';
const LAST_TRANSNO = 'ptlrpc.last_transno';
const CLIENT_PREFIX = 'ptlrpc.client.';
/** The OSD's xattr limit: a modifying request's reply must fit in it. */
export const MAX_RECORDED_REPLY_BYTES = 65536 - 64;

export interface OsdReplyTransaction extends ReplyTransaction {
  /** The OSD transaction, started: the handler does its updates in it (declarations are checks only). */
  readonly osdTx: Tx;
}

export class OsdReplyStore implements ReplyStore<OsdReplyTransaction> {
  readonly #osd: Osd;
  readonly #fid: Fid;
  readonly #records = new Map<string, Map<number, ReplyRecord>>();
  readonly #clients = new Set<string>();
  readonly #listeners = new Set<(lastCommitted: bigint) => void>();
  #lastTransno = 0n;
  #lastCommitted = 0n;

  private constructor(osd: Osd, fid: Fid) {
    this.#osd = osd;
    this.#fid = fid;
  }

  /** Opens the store kept in object `fid` (created on first use) and loads its records. */
  static async open(osd: Osd, fid: Fid): Promise<OsdReplyStore> {
    const store = new OsdReplyStore(osd, fid);
    if (!(await osd.exists(fid))) {
      const tx = osd.begin().declareCreate(fid);
      await tx.start();
      await tx.create(fid, { type: 'reg', mode: 0o600 });
      tx.stop();
      await osd.sync();
    }
    for (const name of await osd.xattrList(fid)) {
      const value = await osd.xattrGet(fid, name);
      if (name === LAST_TRANSNO) {
        if (value.length >= 8) store.#lastTransno = maxBig(store.#lastTransno, value.readBigUInt64LE(0));
      } else if (name.startsWith(PREFIX)) {
        const uuid = name.slice(PREFIX.length, name.lastIndexOf('.'));
        const record = decodeRecord(value);
        if (!record) continue;
        store.#slots(uuid).set(record.tag, record);
        store.#lastTransno = maxBig(store.#lastTransno, record.transno);
      } else if (name.startsWith(CLIENT_PREFIX)) {
        store.#clients.add(name.slice(CLIENT_PREFIX.length));
      }
    }
    // Whatever the log replayed is on disk.
    store.#lastCommitted = store.#lastTransno;
    return store;
  }

  lookup(clientUuid: string, tag: number): ReplyRecord | undefined {
    return this.#records.get(clientUuid)?.get(tag);
  }

  /** Every client recorded or with reply records: the clients a restarted target expects back. */
  clients(): string[] {
    return [...new Set([...this.#clients, ...this.#records.keys()])];
  }

  lastTransno(): bigint {
    return this.#lastTransno;
  }

  async addClient(clientUuid: string): Promise<void> {
    if (this.#clients.has(clientUuid)) return;
    const tx = this.#osd.begin().declareXattrSet(this.#fid, 64);
    await tx.start();
    const when = Buffer.alloc(8);
    when.writeBigUInt64LE(BigInt(Date.now()));
    try {
      await tx.xattrSet(this.#fid, `${CLIENT_PREFIX}${clientUuid}`, when);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EROFS') throw err;
      return;
    } finally {
      tx.stop();
    }
    await this.#osd.sync();
    // Known only once durable: a failed write is tried again at the client's next connect.
    this.#clients.add(clientUuid);
  }

  async begin(_clientUuid: string, replayed?: bigint): Promise<OsdReplyTransaction> {
    const osdTx = this.#osd.begin().declareXattrSet(this.#fid, 256);
    await osdTx.start();
    // Given after start: transno order then follows txg order, which last_committed relies on.
    // A replay brings its own (recovery runs replays one at a time, in transno order).
    const transno = replayed ?? this.#lastTransno + 1n;
    if (transno > this.#lastTransno) this.#lastTransno = transno;
    return { transno, osdTx };
  }

  async finish(tx: OsdReplyTransaction, clientUuid: string, record: ReplyRecord): Promise<void> {
    const value = encodeRecord(record);
    try {
      await tx.osdTx.xattrSet(this.#fid, `${PREFIX}${clientUuid}.${record.tag}`, value);
    } catch (err) {
      // A read-only target (a replayed copy) records no reply: only what changes nothing runs there.
      if ((err as { code?: unknown }).code !== 'EROFS') throw err;
    }
    tx.osdTx.annotate({ transno: tx.transno.toString(), xid: record.xid.toString() });
    this.#slots(clientUuid).set(record.tag, record);
    tx.osdTx.stop(() => this.#committed(tx.transno));
  }

  lastCommitted(): bigint {
    return this.#lastCommitted;
  }

  onCommit(listener: (lastCommitted: bigint) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async forget(clientUuid: string): Promise<void> {
    const slots = this.#records.get(clientUuid);
    const client = this.#clients.delete(clientUuid);
    if (!slots && !client) return;
    this.#records.delete(clientUuid);
    const tx = this.#osd.begin();
    await tx.start();
    const names = [...(slots?.keys() ?? [])].map((tag) => `${PREFIX}${clientUuid}.${tag}`);
    if (names.length > 0) {
      // The records going may hold the highest transno given: it stays on record.
      const last = Buffer.alloc(8);
      last.writeBigUInt64LE(this.#lastTransno);
      try {
        await tx.xattrSet(this.#fid, LAST_TRANSNO, last);
      } catch (err) {
        tx.stop();
        if ((err as { code?: unknown }).code === 'EROFS') return; // a read-only copy forgets nothing on disk
        throw err;
      }
    }
    if (client) names.push(`${CLIENT_PREFIX}${clientUuid}`);
    for (const name of names) {
      try {
        await tx.xattrDel(this.#fid, name);
      } catch {
        // Already gone: nothing to forget.
      }
    }
    tx.stop();
  }

  #slots(uuid: string): Map<number, ReplyRecord> {
    let slots = this.#records.get(uuid);
    if (!slots) this.#records.set(uuid, (slots = new Map()));
    return slots;
  }

  #committed(transno: bigint): void {
    if (transno <= this.#lastCommitted) return;
    this.#lastCommitted = transno;
    for (const l of this.#listeners) l(transno);
  }
}

export function encodeRecord(r: ReplyRecord): Buffer {
  const bytes = 32 + 4 * r.buffers.length + r.buffers.reduce((n, b) => n + b.length, 0);
  if (bytes > MAX_RECORDED_REPLY_BYTES) {
    throw new RangeError(`a modifying request's reply of ${bytes} bytes exceeds ${MAX_RECORDED_REPLY_BYTES}`);
  }
  const out = Buffer.alloc(bytes);
  out.writeUInt32LE(RECORD_MAGIC, 0);
  out.writeUInt16LE(r.tag, 4);
  out.writeUInt16LE(r.buffers.length, 6);
  out.writeBigUInt64LE(r.xid, 8);
  out.writeBigUInt64LE(r.transno, 16);
  out.writeInt32LE(r.status, 24);
  let offset = 32 + 4 * r.buffers.length;
  r.buffers.forEach((b, i) => {
    out.writeUInt32LE(b.length, 32 + 4 * i);
    b.copy(out, offset);
    offset += b.length;
  });
  assert.equal(offset, bytes);
  return out;
}

/** undefined for bytes that are not a record (written by a newer version, or damaged). */
export function decodeRecord(v: Buffer): ReplyRecord | undefined {
  if (v.length < 32 || v.readUInt32LE(0) !== RECORD_MAGIC) return undefined;
  const count = v.readUInt16LE(6);
  let offset = 32 + 4 * count;
  if (v.length < offset) return undefined;
  const buffers: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const len = v.readUInt32LE(32 + 4 * i);
    if (offset + len > v.length) return undefined;
    buffers.push(Buffer.from(v.subarray(offset, offset + len)));
    offset += len;
  }
  return { tag: v.readUInt16LE(4), xid: v.readBigUInt64LE(8), transno: v.readBigUInt64LE(16), status: v.readInt32LE(24), buffers };
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
