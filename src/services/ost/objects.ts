// The OST's objects on the OSD, in sequences, as Lustre's O/<seq>/d*/<oid> directories:
//
//   ROOT_INDEX "O"        -> index, a local object of the target (localObject)
//   O "0x<seq in hex>"    -> index [seq:0x0:0x0]: oid 0 of a sequence is no data object; it is
//                            where Lustre keeps the sequence's LAST_ID
//   O/<seq> "<oid>"       -> the object [seq:oid:0] (decimal oid, as Lustre names them)
//   xattr "ost.last_id" of O/<seq>: u64 LE, the last precreated oid (Lustre's LAST_ID)
// The object itself is an OSD data object whose FID is its OST FID, so IO finds it without
// the index; the index lists a sequence's objects (orphan scans, accounting).
//
// Concurrency: updates of one sequence's bookkeeping (precreate, orphan destroy) hold the lock
// of the sequence; data updates hold the object's lock (ObjectLocks). A lock is taken after the
// OSD transaction started, never held across a start (see Tx.start).
import { fid, type Fid, type ObjectAttrs, type Osd, type Tx } from '../../osd/index.js';
import { Errno, statusError } from '../../ptlrpc/index.js';
import { localObject } from '../target/index.js';
import type { ObdAttrs, OstObjectId } from './protocol.js';

const LAST_ID = 'ost.last_id';

/** One lock per key, FIFO: a chain of promises. */
export class ObjectLocks {
  readonly #tails = new Map<string, Promise<void>>();

  async with<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

interface SeqState {
  index: Fid;
  lastId: number;
}

export function objectFid(id: OstObjectId): Fid {
  return fid(id.seq, id.oid);
}

export function obdAttrs(a: ObjectAttrs): ObdAttrs {
  return {
    size: a.size, blocks: a.blocks, atime: a.atime, mtime: a.mtime, ctime: a.ctime,
    mode: a.mode, uid: a.uid, gid: a.gid, version: a.version,
  };
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** An OsdError's errno name as the status a client gets. */
export function osdStatus(err: unknown): never {
  const code = (err as { code?: unknown })?.code;
  const errno = typeof code === 'string' ? (Errno as Record<string, number>)[code] : undefined;
  if (errno !== undefined && (err as Error).name === 'OsdError') throw statusError(-errno, (err as Error).message);
  throw err;
}

export class OstObjects {
  readonly locks = new ObjectLocks();
  readonly #osd: Osd;
  readonly #oIndex: Fid;
  readonly #seqs = new Map<number, SeqState>();

  private constructor(osd: Osd, oIndex: Fid) {
    this.#osd = osd;
    this.#oIndex = oIndex;
  }

  /** Opens (creating on first use) the O index and loads each sequence's last_id. */
  static async open(osd: Osd): Promise<OstObjects> {
    const objects = new OstObjects(osd, await localObject(osd, 'O', 'idx'));
    let cookie: string | null | undefined;
    do {
      const page = await osd.indexList(objects.#oIndex, { cookie, limit: 256 });
      for (const e of page.entries) {
        const lastId = Number((await osd.xattrGet(e.fid, LAST_ID)).readBigUInt64LE(0));
        objects.#seqs.set(parseInt(e.name, 16), { index: e.fid, lastId });
      }
      cookie = page.cookie;
    } while (cookie);
    return objects;
  }

  /** Sequences known, with their last precreated oid. */
  sequences(): Array<{ seq: number; lastId: number }> {
    return [...this.#seqs].map(([seq, s]) => ({ seq, lastId: s.lastId }));
  }

  lastId(seq: number): number {
    return this.#seqs.get(seq)?.lastId ?? 0;
  }

  /** The sequence's index object (undefined before its first precreate). */
  seqIndex(seq: number): Fid | undefined {
    return this.#seqs.get(seq)?.index;
  }

  async #ensureSeq(tx: Tx, seq: number): Promise<SeqState> {
    const known = this.#seqs.get(seq);
    if (known) return known;
    const index = fid(seq, 0);
    await tx.create(index, { type: 'idx' });
    await tx.xattrSet(index, LAST_ID, u64(0));
    await tx.indexInsert(this.#oIndex, `0x${seq.toString(16)}`, { fid: index, type: 'idx' });
    const state = { index, lastId: 0 };
    this.#seqs.set(seq, state);
    return state;
  }

  /**
   * Creates objects lastId+1 .. wanted (at most `max`) in tx; returns the last created. Stops
   * early when the device is out of objects, if at least one was created (the MDT asks again).
   */
  async precreate(tx: Tx, seq: number, wanted: number, max: number): Promise<number> {
    return this.locks.with(`seq:${seq}`, async () => {
      const s = await this.#ensureSeq(tx, seq).catch(osdStatus);
      const to = Math.min(wanted, s.lastId + max);
      let last = s.lastId;
      for (let oid = s.lastId + 1; oid <= to; oid++) {
        const f = fid(seq, oid);
        try {
          await tx.create(f, { type: 'reg', mode: 0o666 });
        } catch (err) {
          if (last > s.lastId) break;
          osdStatus(err);
        }
        await tx.indexInsert(s.index, String(oid), { fid: f, type: 'reg' }).catch(osdStatus);
        last = oid;
      }
      if (last !== s.lastId) {
        await tx.xattrSet(s.index, LAST_ID, u64(last)).catch(osdStatus);
        s.lastId = last;
      }
      return last;
    });
  }

  /**
   * The MDT last used `lastUsed`: the objects above it, up to last_id, are orphans, destroyed
   * in tx; last_id becomes lastUsed (Lustre's delete-orphans at the MDT's reconnect).
   */
  async deleteOrphans(tx: Tx, seq: number, lastUsed: number): Promise<number> {
    return this.locks.with(`seq:${seq}`, async () => {
      const s = this.#seqs.get(seq);
      if (!s) return 0;
      for (let oid = s.lastId; oid > lastUsed; oid--) await this.#destroyIn(tx, s, { seq, oid }, true);
      if (lastUsed < s.lastId) {
        await tx.xattrSet(s.index, LAST_ID, u64(lastUsed)).catch(osdStatus);
        s.lastId = lastUsed;
      }
      return s.lastId;
    });
  }

  /** Destroys one object and its index entry (ENOENT if it does not exist). */
  async destroy(tx: Tx, id: OstObjectId): Promise<void> {
    const s = this.#seqs.get(id.seq);
    if (!s) throw statusError(-Errno.ENOENT, `no object sequence 0x${id.seq.toString(16)}`);
    await this.locks.with(`obj:${id.seq}:${id.oid}`, () => this.#destroyIn(tx, s, id, false));
  }

  async #destroyIn(tx: Tx, s: SeqState, id: OstObjectId, missingOk: boolean): Promise<void> {
    try {
      await tx.destroy(objectFid(id));
    } catch (err) {
      if (missingOk && (err as { code?: string }).code === 'ENOENT') return;
      osdStatus(err);
    }
    await tx.indexDelete(s.index, String(id.oid)).catch((err: { code?: string }) => {
      if (err.code !== 'ENOENT') osdStatus(err);
    });
  }

  async attrs(id: OstObjectId): Promise<ObdAttrs> {
    return obdAttrs(await this.#osd.getAttrs(objectFid(id)).catch(osdStatus));
  }
}
