// Object allocation for new files (Lustre's LOD with its QoS allocator): which OSTs a file's
// stripes go to, and which precreated object of each.
//
// Choice of OSTs: a stripe_offset >= 0 starts at that OST and takes the next ones in index
// order. Otherwise, while the OSTs' free space is balanced (the spread between the freest and
// the fullest is at most qosThresholdRr of the freest, Lustre's qos_threshold_rr of 17%), round
// robin: each file starts one OST further. When unbalanced, OSTs are drawn at random weighted by
// free bytes (without replacement), so fuller OSTs get fewer new objects. stripe_count -1 takes
// every usable OST; a count larger than the usable OSTs is cut to them, as Lustre does.
//
// Objects: each OST's OSP hands out objects it precreated; the last one used per OST is written
// in the create's transaction (xattr 'ost.<index>' of 'lov_objid', Lustre's lov_objids), under a
// lock per OST so that the values are written in the order handed out. After a crash the OSP
// asks the OST to destroy every object above it (delorphan): none is left orphaned.
import { fid, fidToString, parseFid, type Fid, type Osd, type Tx } from '../../osd/index.js';
import { mdtError } from './errors.js';
import type { FileLayout, StripeObject } from './layout.js';
import type { LockMap } from './locks.js';
import type { LayoutSpec } from './protocol.js';

/** What the allocator needs of one OST (implemented by the OSP). */
export interface OstSource {
  readonly index: number;
  /** Connected, precreating, not full. */
  usable(): boolean;
  bytesFree(): number;
  /** Precreated objects not handed out yet. */
  available(): number;
  /** The next precreated object; only when available() > 0. */
  take(): Fid;
  /** Resolves when an object is available, or rejects (ENOSPC) by the deadline. */
  waitAvailable(timeoutMs: number): Promise<void>;
  /** Destroys an object on the OST (ENOENT counts as done); `committed` settles once the OST committed it. */
  destroy(object: Fid): Promise<void | { committed: Promise<void> }>;
  /** A replayed create used this object: never hand it (or any below it) out. */
  adopt?(object: Fid): void;
}

export interface Candidate {
  index: number;
  bytesFree: number;
}

export interface ChooseOptions {
  count: number;
  offset: number;
  rrStart: number;
  qosThresholdRr: number;
  random: () => number;
}

/** The OST indexes for one file (pure: the tests drive it directly). */
export function chooseOsts(cands: readonly Candidate[], o: ChooseOptions): number[] {
  const sorted = [...cands].sort((a, b) => a.index - b.index);
  const n = sorted.length;
  if (n === 0) return [];
  const count = o.count === -1 ? n : Math.min(o.count, n);
  if (o.offset >= 0) {
    let start = sorted.findIndex((c) => c.index >= o.offset);
    if (start < 0) start = 0;
    return Array.from({ length: count }, (_, i) => sorted[(start + i) % n]!.index);
  }
  const free = sorted.map((c) => c.bytesFree);
  const max = Math.max(...free);
  const min = Math.min(...free);
  if (max === 0 || (max - min) / max <= o.qosThresholdRr) {
    const start = ((o.rrStart % n) + n) % n;
    return Array.from({ length: count }, (_, i) => sorted[(start + i) % n]!.index);
  }
  const pool = [...sorted];
  const out: number[] = [];
  while (out.length < count) {
    const total = pool.reduce((s, c) => s + c.bytesFree, 0);
    let x = o.random() * total;
    let k = pool.findIndex((c) => (x -= c.bytesFree) < 0);
    if (k < 0) k = pool.length - 1;
    out.push(pool[k]!.index);
    pool.splice(k, 1);
  }
  return out;
}

export interface LodConfig {
  osd: Osd;
  objidFid: Fid;
  locks: LockMap;
  qosThresholdRr?: number;
  /** How long a create waits for an OST to precreate before ENOSPC. */
  precreateWaitMs?: number;
  random?: () => number;
}

export class Lod {
  readonly targets = new Map<number, OstSource>();
  #rr = 0;
  readonly #c: Required<LodConfig>;

  constructor(cfg: LodConfig) {
    this.#c = { qosThresholdRr: 0.17, precreateWaitMs: 10_000, random: Math.random, ...cfg };
  }

  /** The last object used on each OST, as the last commit left it (for the OSP's delorphan). */
  async lastUsed(): Promise<Map<number, Fid>> {
    const out = new Map<number, Fid>();
    for (const name of await this.#c.osd.xattrList(this.#c.objidFid)) {
      if (!name.startsWith('ost.')) continue;
      out.set(Number(name.slice(4)), parseFid((await this.#c.osd.xattrGet(this.#c.objidFid, name)).toString()));
    }
    return out;
  }

  /**
   * After recovery: the objects between the last one used at the start (`lastUsed`, what was
   * committed) and the highest one a replay adopted that no replay adopted. A create that
   * took them ran before the crash and was lost with it (its client resent it and got others):
   * nothing references them, and the OSP's orphan cleanup keeps what lies below lov_objid.
   */
  lostInRecovery(lastUsed: ReadonlyMap<number, Fid>): StripeObject[] {
    const out: StripeObject[] = [];
    for (const [index, { seq, oids }] of this.#adopted) {
      const from = lastUsed.get(index)?.oid ?? 0;
      let top = 0;
      for (const oid of oids) if (oid > top) top = oid; // (a spread of a large set would overflow the stack)
      for (let oid = from + 1; oid < top; oid++) if (!oids.has(oid)) out.push({ ostIndex: index, fid: fid(seq, oid) });
    }
    this.#adopted.clear();
    return out;
  }

  add(target: OstSource): void {
    this.targets.set(target.index, target);
  }

  /** Objects replayed creates adopted, by OST index (see lostInRecovery). */
  readonly #adopted = new Map<number, { seq: number; oids: Set<number> }>();

  /**
   * A replayed create's objects (recovery): recorded as used in tx, as they were before the
   * restart, so that the OSP's orphan cleanup keeps them and no later create gets them.
   */
  async adopt(tx: Tx, layout: FileLayout): Promise<void> {
    for (const o of layout.objects) {
      let set = this.#adopted.get(o.ostIndex);
      if (!set) this.#adopted.set(o.ostIndex, (set = { seq: o.fid.seq, oids: new Set() }));
      set.oids.add(o.fid.oid);
      const release = await this.#c.locks.acquire(`lod:objid:${o.ostIndex}`);
      try {
        const name = `ost.${o.ostIndex}`;
        const stored = await this.#c.osd.xattrFind(this.#c.objidFid, name);
        const last = stored && parseFid(stored.toString());
        if (!last || o.fid.oid > last.oid) await tx.xattrSet(this.#c.objidFid, name, Buffer.from(fidToString(o.fid)));
        this.targets.get(o.ostIndex)?.adopt?.(o.fid);
      } finally {
        release();
      }
    }
  }

  /**
   * Objects for a new file striped as `spec` (resolved: no 0 fields), recorded in tx.
   * undefined when the file system has no OST at all (a file without objects).
   */
  async allocate(tx: Tx, fileFid: Fid, spec: LayoutSpec): Promise<FileLayout | undefined> {
    if (this.targets.size === 0) return undefined;
    let usable = [...this.targets.values()].filter((t) => t.usable());
    if (usable.length === 0) {
      // None usable yet (just started, precreating): wait for any, as osp_precreate_reserve does.
      await Promise.any([...this.targets.values()].map((t) => t.waitAvailable(this.#c.precreateWaitMs))).catch(() => {
        throw mdtError('ENOSPC', 'no OST can take new objects');
      });
      usable = [...this.targets.values()].filter((t) => t.usable());
    }
    const chosen = chooseOsts(usable.map((t) => ({ index: t.index, bytesFree: t.bytesFree() })), {
      count: spec.stripeCount, offset: spec.stripeOffset, rrStart: this.#rr++, qosThresholdRr: this.#c.qosThresholdRr, random: this.#c.random,
    });
    if (chosen.length === 0) throw mdtError('ENOSPC', 'no OST can take new objects');
    const objects: StripeObject[] = [];
    for (const index of chosen) objects.push({ ostIndex: index, fid: await this.#take(tx, this.targets.get(index)!) });
    return { fid: fileFid, stripeSize: spec.stripeSize, objects };
  }

  async #take(tx: Tx, t: OstSource): Promise<Fid> {
    const release = await this.#c.locks.acquire(`lod:objid:${t.index}`);
    try {
      if (t.available() === 0) {
        try {
          await t.waitAvailable(this.#c.precreateWaitMs);
        } catch {
          throw mdtError('ENOSPC', `OST${t.index.toString(16).padStart(4, '0')} has no precreated object`);
        }
      }
      // Invariant: the OSP never hands an object out twice; the xattr follows hand-out order.
      const object = t.take();
      await tx.xattrSet(this.#c.objidFid, `ost.${t.index}`, Buffer.from(fidToString(object)));
      return object;
    } finally {
      release();
    }
  }
}
