// The OSC: a client's connection to one OST. Two imports, as Lustre's OSC has one obd import
// whose requests go to two portals: OST_REQUEST for metadata-like requests, OST_IO for BRW,
// punch and sync. It speaks the OST's wire protocol (services/ost/protocol.ts):
//   - precreate / delete orphans (for the MDT's OSP), destroy, getattr, setattr, punch, sync,
//     statfs;
//   - bulk IO: a write or read is cut into RPCs of at most brwSize bytes (and OST_MAX_NIOBUFS
//     ranges), with maxRpcsInFlight of them on the wire at once; each bulk is checksummed here
//     (crc32c by default, adler32 or none) in the shared worker pool and verified by the OST; a
//     write the OST refused for a bad checksum (-EAGAIN) is resent, as a new request, up to
//     resendMax times; a read whose bulk does not match the OST's checksum is read again;
//   - grants: the OSC asks for grant when it connects and with each write, counts a write
//     against its grant when the grant covers it (OBD_BRW_FROM_GRANT), gives it back at
//     disconnect. A write the grant does not cover is checked by the OST against free space
//     and may fail with ENOSPC; nothing of a refused write is written.
import { LNET_PID_LUSTRE } from '../lnet/index.js';
import { Import, Opcode, targetProfiles, type ImportConfig, type Network, type Reply } from '../ptlrpc/index.js';
import {
  ChecksumPool, CksumType, cksumTypeOf, decodeBody, encodeBody, OST_BRW_MAX_BYTES, OST_IO_SLOTS, OST_MAX_NIOBUFS, replyAttrs, replyNumber, statfsReply, statfsRequest,
  type CksumName, type Niobuf, type ObdAttrs, type ObdStatfs, type OstObjectId, type SettableObdAttrs,
} from '../services/ost/index.js';

export interface OscFailLoc {
  /** Corrupt this write's bulk after its checksum was computed (OBD_FAIL_OSC_CHECKSUM_SEND). */
  corruptWriteBulk?(id: OstObjectId, attempt: number): boolean;
}

export interface OscOptions {
  /** The OST's NID ('127.0.0.3@tcp'); its pid is Lustre's unless given. */
  nid: string;
  pid?: number;
  targetUuid: string;
  clientUuid: string;
  /** BRW RPCs on the wire at once (Lustre's max_rpcs_in_flight). */
  maxRpcsInFlight?: number;
  /** Bytes per BRW RPC (Lustre's brw_size; at most OST_BRW_MAX_BYTES). */
  brwSize?: number;
  checksum?: CksumName;
  /** Grant the OSC tries to hold (default: 2 RPCs' worth per RPC in flight). */
  grantTarget?: number;
  /** Resends of a BRW whose bulk arrived corrupted. */
  resendMax?: number;
  /** Limits of the two imports (timeouts in tests). */
  importOptions?: Partial<ImportConfig>;
  failLoc?: OscFailLoc;
}

export interface OscCounters {
  writeRpcs: number;
  readRpcs: number;
  bytesWritten: number;
  bytesRead: number;
  writesFromGrant: number;
  cksumResends: number;
  readCksumRetries: number;
  /** Reads sent again because their reply came without all of its bulk. */
  readBulkRetries: number;
}

/** One range of a vector write: data for the object at offset. */
export interface WriteExtent {
  offset: number;
  data: Buffer;
}

/** afterCommit() callbacks waiting at once, per OSC. */
const COMMIT_WAITERS_MAX = 1024;

interface Chunk {
  niobufs: Niobuf[];
  buffers: Buffer[];
  bytes: number;
}

/** A FIFO counting semaphore: bounds the BRW RPCs being prepared or on the wire. */
class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async with<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiters.push(r));
    try {
      return await fn();
    } finally {
      if (this.#free < 0) this.#free++; // shrunk while busy: this slot goes away
      else {
        const next = this.#waiters.shift();
        if (next) next();
        else this.#free++;
      }
    }
  }
  /** Changes the number of slots; those in use when it shrinks go away as they are released. */
  resize(from: number, to: number): void {
    this.#free += to - from;
    while (this.#free > 0 && this.#waiters.length > 0) {
      this.#free--;
      this.#waiters.shift()!();
    }
  }
}

export class Osc {
  readonly counters: OscCounters = {
    writeRpcs: 0, readRpcs: 0, bytesWritten: 0, bytesRead: 0, writesFromGrant: 0, cksumResends: 0, readCksumRetries: 0, readBulkRetries: 0,
  };
  readonly targetUuid: string;
  readonly failLoc: OscFailLoc;
  readonly #imp: Import;
  readonly #io: Import;
  readonly #pool: ChecksumPool;
  readonly #cksum: CksumType;
  readonly #brwSize: number;
  readonly #grantTarget: number;
  readonly #resendMax: number;
  readonly #slots: Slots;
  #maxRpcsInFlight: number;
  #grant = 0;
  #closed = false;
  /** The highest transno of a write answered so far. */
  #maxWriteTransno = 0n;
  /** afterCommit() callbacks, in transno order. */
  readonly #commitWaiters: Array<{ transno: bigint; fn: () => void }> = [];

  private constructor(imp: Import, io: Import, pool: ChecksumPool, o: OscOptions) {
    this.#imp = imp;
    this.#io = io;
    this.#pool = pool;
    this.targetUuid = o.targetUuid;
    this.failLoc = o.failLoc ?? {};
    this.#cksum = cksumTypeOf[o.checksum ?? 'crc32c'];
    this.#brwSize = Math.min(OST_BRW_MAX_BYTES, o.brwSize ?? 1024 * 1024);
    const inFlight = o.maxRpcsInFlight ?? 8;
    this.#grantTarget = o.grantTarget ?? 2 * this.#brwSize * inFlight;
    this.#resendMax = o.resendMax ?? 10;
    this.#slots = new Slots(inFlight);
    this.#maxRpcsInFlight = inFlight;
  }

  /** BRW RPCs on the wire at once (Lustre's max_rpcs_in_flight); settable while running. */
  get maxRpcsInFlight(): number {
    return this.#maxRpcsInFlight;
  }

  set maxRpcsInFlight(n: number) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`max_rpcs_in_flight must be a positive integer, not ${n}`);
    this.#slots.resize(this.#maxRpcsInFlight, n);
    this.#maxRpcsInFlight = n;
  }

  /** Connects both imports and asks for an initial grant. */
  static async connect(ni: Network, o: OscOptions): Promise<Osc> {
    if (o.brwSize !== undefined && (!Number.isSafeInteger(o.brwSize) || o.brwSize < 4096 || o.brwSize > OST_BRW_MAX_BYTES)) {
      throw new RangeError(`brwSize must be 4096 to ${OST_BRW_MAX_BYTES} bytes`);
    }
    const base = {
      target: { nid: o.nid, pid: o.pid ?? LNET_PID_LUSTRE }, targetUuid: o.targetUuid, clientUuid: o.clientUuid,
      // Writes are executed once (each holds a slot): as many slots as RPCs may be in flight.
      maxRpcsInFlight: o.maxRpcsInFlight ?? 8, maxModRpcs: OST_IO_SLOTS, maxReplyBytes: 64 * 1024, ...o.importOptions,
    };
    const imp = await Import.connect(ni, { ...targetProfiles.ost, ...base });
    let io: Import;
    try {
      io = await Import.connect(ni, { ...targetProfiles.ostIo, ...base });
    } catch (err) {
      await imp.disconnect();
      throw err;
    }
    const osc = new Osc(imp, io, ChecksumPool.acquire(), o);
    try {
      await osc.#askGrant(osc.#grantTarget, 0);
    } catch (err) {
      await osc.disconnect();
      throw err;
    }
    return osc;
  }

  /** Bytes of grant held (what writes may use without the OST checking free space). */
  get grant(): number {
    return this.#grant;
  }

  get imports(): { ost: Import; io: Import } {
    return { ost: this.#imp, io: this.#io };
  }

  /**
   * Calls fn once every write this OSC has had answered so far is committed by the OST (the I/O
   * import's last_committed reaches them): their bulks are then no longer kept for replay.
   * Checked as replies arrive; at most COMMIT_WAITERS_MAX wait (the oldest is dropped, never
   * called, beyond that).
   */
  afterCommit(fn: () => void): void {
    const transno = this.#maxWriteTransno;
    if (transno <= this.#io.lastCommitted) {
      queueMicrotask(fn);
      return;
    }
    if (this.#commitWaiters.length >= COMMIT_WAITERS_MAX) this.#commitWaiters.shift();
    this.#commitWaiters.push({ transno, fn });
  }

  #checkCommitted(): void {
    const committed = this.#io.lastCommitted;
    while (this.#commitWaiters.length > 0 && this.#commitWaiters[0]!.transno <= committed) this.#commitWaiters.shift()!.fn();
  }

  /** Gives the grant back and disconnects. */
  async disconnect(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#grant > 0 && this.#imp.state === 'full') await this.#askGrant(0, this.#grant).catch(() => undefined);
    await Promise.all([this.#imp.disconnect(), this.#io.disconnect()]);
    await ChecksumPool.release(this.#pool);
  }

  async #askGrant(want: number, release: number): Promise<void> {
    const body = await this.#call(this.#imp, Opcode.OST_SET_INFO, { key: 'grant', want, release });
    this.#grant = Math.max(0, this.#grant - release) + replyNumber(body, 'grant');
  }

  async #call(imp: Import, opcode: number, body: object, modifying = false): Promise<Record<string, unknown>> {
    const reply = await imp.request(opcode, [encodeBody(body)], { modifying });
    if (imp === this.#io) this.#checkCommitted();
    return decodeBody(reply.buffers, `reply to opcode ${opcode}`);
  }

  // ---- Objects -----------------------------------------------------------------------------

  /** OST_CREATE: precreates objects up to lastId in seq; resolves with the last one created. */
  async precreate(seq: number, lastId: number): Promise<number> {
    return replyNumber(await this.#call(this.#imp, Opcode.OST_CREATE, { seq, lastId }, true), 'lastId');
  }

  /** OST_CREATE with delorphan: objects above lastUsed are destroyed; resolves with the new last id. */
  async deleteOrphans(seq: number, lastUsed: number): Promise<number> {
    return replyNumber(await this.#call(this.#imp, Opcode.OST_CREATE, { seq, lastId: lastUsed, delorphan: true }, true), 'lastId');
  }

  async destroy(id: OstObjectId): Promise<void> {
    await this.#call(this.#imp, Opcode.OST_DESTROY, { seq: id.seq, oid: id.oid }, true);
  }

  async getattr(id: OstObjectId): Promise<ObdAttrs> {
    return replyAttrs(await this.#call(this.#imp, Opcode.OST_GETATTR, { seq: id.seq, oid: id.oid }));
  }

  async setattr(id: OstObjectId, attrs: SettableObdAttrs): Promise<ObdAttrs> {
    return replyAttrs(await this.#call(this.#imp, Opcode.OST_SETATTR, { seq: id.seq, oid: id.oid, attrs }, true));
  }

  /** OST_PUNCH: [start, end) reads zeros; with no end, truncates the object to start. */
  async punch(id: OstObjectId, start: number, end?: number): Promise<ObdAttrs> {
    return replyAttrs(await this.#call(this.#io, Opcode.OST_PUNCH, { seq: id.seq, oid: id.oid, start, end: end ?? null }, true));
  }

  truncate(id: OstObjectId, size: number): Promise<ObdAttrs> {
    return this.punch(id, size);
  }

  /** OST_SYNC: what the OST applied so far is durable when this resolves. */
  async sync(id?: OstObjectId): Promise<void> {
    await this.#call(this.#io, Opcode.OST_SYNC, id ? { seq: id.seq, oid: id.oid } : {});
  }

  async statfs(): Promise<ObdStatfs> {
    return statfsReply((await this.#imp.request(Opcode.OST_STATFS, statfsRequest())).buffers);
  }

  // ---- Bulk IO -----------------------------------------------------------------------------

  write(id: OstObjectId, offset: number, data: Buffer): Promise<ObdAttrs | undefined> {
    return this.writev(id, [{ offset, data }]);
  }

  /** Writes the extents (any order, not overlapping); resolves with the object's attrs after. */
  async writev(id: OstObjectId, extents: readonly WriteExtent[]): Promise<ObdAttrs | undefined> {
    const chunks = this.#chunks(extents);
    const results = await Promise.all(chunks.map((c) => this.#slots.with(() => this.#writeRpc(id, c))));
    let last: ObdAttrs | undefined;
    for (const a of results) if (!last || a.version > last.version) last = a;
    return last;
  }

  /** Cuts sorted extents into RPCs: at most brwSize bytes and OST_MAX_NIOBUFS ranges each. */
  #chunks(extents: readonly WriteExtent[]): Chunk[] {
    const sorted = extents.filter((e) => e.data.length > 0).sort((a, b) => a.offset - b.offset);
    const chunks: Chunk[] = [];
    let cur: Chunk = { niobufs: [], buffers: [], bytes: 0 };
    let prevEnd = -1;
    for (const e of sorted) {
      if (e.offset < prevEnd) throw new RangeError(`write extents overlap at offset ${e.offset}`);
      let at = 0;
      while (at < e.data.length) {
        if (cur.bytes === this.#brwSize) {
          chunks.push(cur);
          cur = { niobufs: [], buffers: [], bytes: 0 };
        }
        const n = Math.min(e.data.length - at, this.#brwSize - cur.bytes);
        const offset = e.offset + at;
        const lastNb = cur.niobufs[cur.niobufs.length - 1];
        if (lastNb && lastNb[0] + lastNb[1] === offset) lastNb[1] += n;
        else {
          if (cur.niobufs.length === OST_MAX_NIOBUFS) {
            chunks.push(cur);
            cur = { niobufs: [], buffers: [], bytes: 0 };
          }
          cur.niobufs.push([offset, n]);
        }
        cur.buffers.push(e.data.subarray(at, at + n));
        cur.bytes += n;
        at += n;
      }
      prevEnd = e.offset + e.data.length;
    }
    if (cur.bytes > 0) chunks.push(cur);
    return chunks;
  }

  async #writeRpc(id: OstObjectId, c: Chunk): Promise<ObdAttrs> {
    const cksum = await this.#pool.checksum(this.#cksum, c.buffers);
    for (let attempt = 0; ; attempt++) {
      let bulk = c.buffers;
      if (this.failLoc.corruptWriteBulk?.(id, attempt)) {
        bulk = c.buffers.map((b) => Buffer.from(b));
        bulk[0]![0] ^= 0xff;
      }
      const fromGrant = this.#grant >= c.bytes;
      if (fromGrant) this.#grant -= c.bytes;
      const want = Math.max(0, this.#grantTarget - this.#grant);
      let reply: Reply;
      try {
        this.counters.writeRpcs++;
        reply = await this.#io.request(Opcode.OST_WRITE, [encodeBody({
          seq: id.seq, oid: id.oid, niobufs: c.niobufs, cksumType: this.#cksum, cksum, fromGrant, want,
        })], { bulkWrite: bulk, modifying: true });
      } catch (err) {
        if (fromGrant) this.#grant += c.bytes;
        if ((err as { code?: string }).code === 'EAGAIN' && attempt < this.#resendMax) {
          this.counters.cksumResends++;
          continue;
        }
        throw err;
      }
      if (reply.transno > this.#maxWriteTransno) this.#maxWriteTransno = reply.transno;
      this.#checkCommitted();
      const body = decodeBody(reply.buffers, 'OST_WRITE reply');
      this.#grant += replyNumber(body, 'grant');
      if (fromGrant) this.counters.writesFromGrant++;
      this.counters.bytesWritten += c.bytes;
      return replyAttrs(body);
    }
  }

  /**
   * Reads up to `length` bytes at offset: the bytes within the object's size (shorter at its
   * end, empty past it); holes read as zeros.
   */
  async read(id: OstObjectId, offset: number, length: number): Promise<Buffer> {
    const pieces = await this.readPieces(id, offset, length);
    if (pieces.length === 1) return pieces[0]!;
    return pieces.length === 0 ? Buffer.alloc(0) : Buffer.concat(pieces);
  }

  /**
   * read() as the buffers the bulks arrived in, back to back, with no copy: LNet hands each
   * reply's bulk over as buffers of its own (never reused), so they are the caller's. A hole
   * between data (an RPC short of a later one that got bytes) is a buffer of zeros.
   */
  async readPieces(id: OstObjectId, offset: number, length: number): Promise<Buffer[]> {
    const rpcs: Array<Promise<Buffer[]>> = [];
    const lengths: number[] = [];
    for (let at = 0; at < length; at += this.#brwSize) {
      const n = Math.min(this.#brwSize, length - at);
      lengths.push(n);
      rpcs.push(this.#slots.with(() => this.#readRpc(id, offset + at, n)));
    }
    const bulks = await Promise.all(rpcs);
    // The object ends in the last RPC that got anything: RPCs before it that came back short
    // ran into holes (zeros); after it there is nothing.
    let last = -1;
    for (let i = 0; i < bulks.length; i++) if (bulks[i]!.length > 0) last = i;
    const out: Buffer[] = [];
    for (let i = 0; i <= last; i++) {
      let got = 0;
      for (const b of bulks[i]!) {
        if (b.length > 0) out.push(b);
        got += b.length;
      }
      if (i < last && got < lengths[i]!) out.push(Buffer.alloc(lengths[i]! - got));
    }
    return out;
  }

  /** One OST_READ; resolves with its bulk (the bytes it got, checksum verified; none past the object's end). */
  async #readRpc(id: OstObjectId, offset: number, length: number): Promise<Buffer[]> {
    for (let attempt = 0; ; attempt++) {
      this.counters.readRpcs++;
      const reply = await this.#io.request(Opcode.OST_READ, [encodeBody({
        seq: id.seq, oid: id.oid, niobufs: [[offset, length]], cksumType: this.#cksum,
      })], { bulkRead: length });
      this.#checkCommitted();
      const body = decodeBody(reply.buffers, 'OST_READ reply');
      const lengths = body.lengths;
      if (!Array.isArray(lengths) || lengths.length !== 1 || !Number.isSafeInteger(lengths[0]) || lengths[0] < 0 || lengths[0] > length) {
        throw new TypeError('OST_READ reply with bad lengths');
      }
      const got = lengths[0] as number;
      const bulk = got > 0 ? reply.bulk ?? [] : [];
      let received = 0;
      for (const b of bulk) received += b.length;
      if (received !== got) {
        // The reply overtook its bulk (the OST sent both; LNet may deliver a small message
        // before a large one): the data is not here, so read again, as for a bad checksum.
        if (attempt >= this.#resendMax) throw Object.assign(new Error(`OST_READ: ${received} bulk bytes for a reply of ${got}`), { code: 'EIO' });
        this.counters.readBulkRetries++;
        continue;
      }
      if (this.#cksum !== CksumType.NONE && got > 0 && (await this.#pool.checksum(this.#cksum, bulk)) !== replyNumber(body, 'cksum')) {
        if (attempt >= this.#resendMax) throw Object.assign(new Error(`OST_READ bulk checksum mismatch from ${this.targetUuid}`), { code: 'EIO' });
        this.counters.readCksumRetries++;
        continue;
      }
      this.counters.bytesRead += got;
      return bulk;
    }
  }
}
