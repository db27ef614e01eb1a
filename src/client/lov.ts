// The LOV: a file's data striped RAID0 over OST objects, each reached through its OST's OSC.
//
// Layout (as the MDT stores it, Lustre's lov_mds_md_v1): stripeSize bytes per stripe unit,
// stripeCount objects, stripeOffset the OST index of stripe 0 (informational here: the
// objects list names each stripe's OST), objects[i] = { ostIndex, seq, oid } of stripe i.
// File offset x lies in stripe unit u = floor(x / stripeSize), on stripe i = u mod stripeCount,
// at object offset floor(u / stripeCount) * stripeSize + x mod stripeSize. The bytes of one
// stripe inside a contiguous file range are contiguous in its object, so a read or write costs
// one object range per stripe, and the stripes run in parallel.
//
// Size: the file's size is the largest file offset any object's size reaches (Lustre's
// lov_stripe_size over a glimpse of every stripe); holes and short objects read as zeros.
import type { ObdAttrs, OstObjectId, SettableObdAttrs } from '../services/ost/index.js';
import type { Osc, WriteExtent } from './osc.js';

/** Lustre's LOV_MIN_STRIPE_SIZE: stripe sizes are multiples of it. */
export const LOV_MIN_STRIPE_SIZE = 65536;
export const LOV_MAX_STRIPE_COUNT = 2000;

export interface LovObject extends OstObjectId {
  ostIndex: number;
}

export interface Raid0Layout {
  pattern: 'raid0';
  stripeSize: number;
  stripeCount: number;
  stripeOffset: number;
  objects: LovObject[];
}

/** A piece of a file range inside one stripe unit. */
export interface StripePiece {
  stripe: number;
  fileOffset: number;
  objectOffset: number;
  length: number;
}

export class LovError extends Error {
  readonly code: 'EINVAL' | 'ENODEV';
  constructor(code: 'EINVAL' | 'ENODEV', message: string) {
    super(message);
    this.name = 'LovError';
    this.code = code;
  }
}

export function checkLayout(l: Raid0Layout): Raid0Layout {
  if (l.pattern !== 'raid0') throw new LovError('EINVAL', `layout pattern ${String(l.pattern)} is not raid0`);
  if (!Number.isSafeInteger(l.stripeSize) || l.stripeSize <= 0 || l.stripeSize % LOV_MIN_STRIPE_SIZE !== 0) {
    throw new LovError('EINVAL', `stripe size ${l.stripeSize} is not a positive multiple of ${LOV_MIN_STRIPE_SIZE}`);
  }
  if (!Number.isSafeInteger(l.stripeCount) || l.stripeCount < 1 || l.stripeCount > LOV_MAX_STRIPE_COUNT || l.objects.length !== l.stripeCount) {
    throw new LovError('EINVAL', `stripe count ${l.stripeCount} with ${l.objects.length} objects`);
  }
  return l;
}

/** The pieces of file range [offset, offset + length), one per stripe unit touched, in file order. */
export function mapExtent(l: Raid0Layout, offset: number, length: number): StripePiece[] {
  const ss = l.stripeSize;
  const out: StripePiece[] = [];
  for (let x = offset, end = offset + length; x < end;) {
    const unit = Math.floor(x / ss);
    const n = Math.min(end, (unit + 1) * ss) - x;
    out.push({ stripe: unit % l.stripeCount, fileOffset: x, objectOffset: Math.floor(unit / l.stripeCount) * ss + (x % ss), length: n });
    x += n;
  }
  return out;
}

/** The file size an object of `objectSize` bytes on stripe i implies (lov_stripe_size). */
export function fileSizeOfStripe(l: Raid0Layout, stripe: number, objectSize: number): number {
  if (objectSize === 0) return 0;
  const last = objectSize - 1;
  const row = Math.floor(last / l.stripeSize);
  return (row * l.stripeCount + stripe) * l.stripeSize + (last % l.stripeSize) + 1;
}

/** The size stripe i's object has in a file of `size` bytes (lov_size_to_stripe). */
export function stripeObjectSize(l: Raid0Layout, stripe: number, size: number): number {
  const rowBytes = l.stripeSize * l.stripeCount;
  const rows = Math.floor(size / rowBytes);
  const rem = size - rows * rowBytes;
  return rows * l.stripeSize + Math.min(l.stripeSize, Math.max(0, rem - stripe * l.stripeSize));
}

/** An object's bytes from `start` as buffers back to back, taken out again in increasing order. */
class ObjectBytes {
  #i = 0;
  /** Object offset of buffers[#i]. */
  #at: number;
  constructor(start: number, private readonly buffers: Buffer[]) {
    this.#at = start;
  }

  /** Pushes views of [offset, offset + length) onto out; zeros for what the object did not have. */
  take(offset: number, length: number, out: Buffer[]): void {
    const end = offset + length;
    let x = offset;
    while (x < end && this.#i < this.buffers.length) {
      const b = this.buffers[this.#i]!;
      const bEnd = this.#at + b.length;
      if (bEnd <= x) {
        this.#i++;
        this.#at = bEnd;
        continue;
      }
      const stop = Math.min(end, bEnd);
      out.push(b.subarray(x - this.#at, stop - this.#at));
      x = stop;
    }
    if (x < end) out.push(Buffer.alloc(end - x));
  }
}

export class Lov {
  readonly #osc: (ostIndex: number) => Osc | undefined;

  /** oscs: the OSC of each OST index (a map, or a lookup that follows config changes). */
  constructor(oscs: ReadonlyMap<number, Osc> | ((ostIndex: number) => Osc | undefined)) {
    this.#osc = typeof oscs === 'function' ? oscs : (i) => oscs.get(i);
  }

  #oscOf(o: LovObject): Osc {
    const osc = this.#osc(o.ostIndex);
    if (!osc) throw new LovError('ENODEV', `no OSC for OST index ${o.ostIndex}`);
    return osc;
  }

  /** Runs fn on every stripe touched, in parallel. */
  async #perStripe<T>(l: Raid0Layout, stripes: Iterable<number>, fn: (osc: Osc, o: LovObject, stripe: number) => Promise<T>): Promise<T[]> {
    return Promise.all([...stripes].map((i) => fn(this.#oscOf(l.objects[i]!), l.objects[i]!, i)));
  }

  async write(layout: Raid0Layout, offset: number, data: Buffer): Promise<void> {
    await this.writev(layout, [{ offset, data }]);
  }

  /** Writes file extents (not overlapping): one vector write per stripe touched, in parallel; resolves with the stripes written. */
  async writev(layout: Raid0Layout, extents: readonly WriteExtent[]): Promise<number[]> {
    const l = checkLayout(layout);
    const byStripe = new Map<number, WriteExtent[]>();
    for (const { offset, data } of extents) {
      for (const p of mapExtent(l, offset, data.length)) {
        const list = byStripe.get(p.stripe) ?? [];
        list.push({ offset: p.objectOffset, data: data.subarray(p.fileOffset - offset, p.fileOffset - offset + p.length) });
        byStripe.set(p.stripe, list);
      }
    }
    await this.#perStripe(l, byStripe.keys(), (osc, o, i) => osc.writev(o, byStripe.get(i)!));
    return [...byStripe.keys()];
  }

  /** Calls fn once the writes answered so far on the OSTs of these stripes are committed (Osc.afterCommit). */
  afterCommit(layout: Raid0Layout, stripes: readonly number[], fn: () => void): void {
    const oscs = new Set(stripes.map((i) => this.#oscOf(layout.objects[i]!)));
    let left = oscs.size;
    if (left === 0) {
      queueMicrotask(fn);
      return;
    }
    for (const osc of oscs) osc.afterCommit(() => { if (--left === 0) fn(); });
  }

  /** Sets attributes (times) on every object of the layout, or on the stripes given. */
  async setattr(layout: Raid0Layout, attrs: SettableObdAttrs, stripes?: Iterable<number>): Promise<void> {
    const l = checkLayout(layout);
    await this.#perStripe(l, stripes ?? l.objects.keys(), (osc, o) => osc.setattr(o, attrs));
  }

  /** Up to `length` bytes at offset, within the file's size; holes read as zeros. */
  async read(layout: Raid0Layout, offset: number, length: number): Promise<Buffer> {
    const pieces = await this.readPieces(layout, offset, length);
    if (pieces.length === 1) return pieces[0]!;
    return pieces.length === 0 ? Buffer.alloc(0) : Buffer.concat(pieces);
  }

  /**
   * read() as buffers back to back, in file order, without copying what the OSCs got: each
   * is (a view of) a bulk as it arrived, or zeros where an object had nothing.
   */
  async readPieces(layout: Raid0Layout, offset: number, length: number): Promise<Buffer[]> {
    const l = checkLayout(layout);
    const size = await this.size(l);
    const n = Math.max(0, Math.min(length, size - offset));
    if (n === 0) return [];
    const pieces = mapExtent(l, offset, n);
    const byStripe = new Map<number, StripePiece[]>();
    for (const p of pieces) {
      const list = byStripe.get(p.stripe) ?? [];
      list.push(p);
      byStripe.set(p.stripe, list);
    }
    // Each stripe's object range, read at once; then its bytes taken in file order.
    const got = new Map<number, ObjectBytes>();
    await this.#perStripe(l, byStripe.keys(), async (osc, o, i) => {
      const list = byStripe.get(i)!;
      const first = list[0]!.objectOffset;
      const last = list[list.length - 1]!;
      got.set(i, new ObjectBytes(first, await osc.readPieces(o, first, last.objectOffset + last.length - first)));
    });
    const out: Buffer[] = [];
    for (const p of pieces) got.get(p.stripe)!.take(p.objectOffset, p.length, out);
    return out;
  }

  /** Each stripe's object attributes (a glimpse of every stripe). */
  stripeAttrs(layout: Raid0Layout): Promise<ObdAttrs[]> {
    const l = checkLayout(layout);
    return this.#perStripe(l, l.objects.keys(), (osc, o) => osc.getattr(o));
  }

  /** The file's size: the largest any stripe's object implies. */
  async size(layout: Raid0Layout): Promise<number> {
    const attrs = await this.stripeAttrs(layout);
    return Math.max(0, ...attrs.map((a, i) => fileSizeOfStripe(layout, i, a.size)));
  }

  /** Size, blocks and the latest times over the stripes, as a client's stat shows them. */
  async getattr(layout: Raid0Layout): Promise<{ size: number; blocks: number; mtime: number; atime: number; ctime: number }> {
    const attrs = await this.stripeAttrs(layout);
    return {
      size: Math.max(0, ...attrs.map((a, i) => fileSizeOfStripe(layout, i, a.size))),
      blocks: attrs.reduce((n, a) => n + a.blocks, 0),
      mtime: Math.max(...attrs.map((a) => a.mtime)),
      atime: Math.max(...attrs.map((a) => a.atime)),
      ctime: Math.max(...attrs.map((a) => a.ctime)),
    };
  }

  /** Truncates (or extends) the file to size: each object to its share of it. */
  async truncate(layout: Raid0Layout, size: number): Promise<void> {
    const l = checkLayout(layout);
    await this.#perStripe(l, l.objects.keys(), (osc, o, i) => osc.truncate(o, stripeObjectSize(l, i, size)));
  }

  async sync(layout: Raid0Layout): Promise<void> {
    const l = checkLayout(layout);
    await this.#perStripe(l, l.objects.keys(), (osc, o) => osc.sync(o));
  }

  /** Destroys every object of the layout (an unlinked file's data). */
  async destroy(layout: Raid0Layout): Promise<void> {
    const l = checkLayout(layout);
    await this.#perStripe(l, l.objects.keys(), (osc, o) => osc.destroy(o));
  }
}
