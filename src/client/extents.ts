// Dirty extents of one file: bytes written by the application and not yet sent to the OSTs,
// kept sorted and never overlapping (a later write replaces the overlapped bytes of earlier
// ones). Small writes that continue the previous extent are copied into its buffer, which grows
// by doubling up to EXTENT_BYTES_MAX, so that a stream of 4 KiB writes leaves a few large
// extents, not thousands of small ones.
//
// A write of exactly EXTENT_BYTES_MAX bytes (FUSE's and the benchmarks' 1 MiB writes) is copied
// into a buffer of the pool (bulk-pool.ts); take() hands out such a buffer as `pooled` when its
// extent is still its only user, for the caller to give back once the OSTs committed it. A
// pooled buffer that gets shared (an overwrite splits its extent) is never given back.
//
// Invariant: for consecutive extents a, b: a.offset + a.length <= b.offset; every length > 0.
import assert from 'node:assert/strict';
import { BufferPool } from './bulk-pool.js';

/** The largest buffer one extent grows to (one BRW's worth). */
export const EXTENT_BYTES_MAX = 1024 * 1024;

/** The process's pool of EXTENT_BYTES_MAX buffers for dirty data. */
export const dirtyBufferPool = new BufferPool(EXTENT_BYTES_MAX);

/** An extent taken to be sent: its bytes, and its pool buffer when it may be given back after. */
export interface TakenExtent {
  offset: number;
  data: Buffer;
  pooled?: Buffer;
}

interface Extent {
  offset: number;
  /** Backing buffer; the extent's bytes are buf[0, length). */
  buf: Buffer;
  length: number;
  /** Whether buf's bytes past length are this extent's alone (a split shares its buffer). */
  owned: boolean;
  /** buf is a whole pool buffer used by this extent alone. */
  pooled?: boolean;
}

export class DirtyExtents {
  #list: Extent[] = [];
  #bytes = 0;

  constructor(private readonly pool: BufferPool | undefined = dirtyBufferPool) {}

  /** Dirty bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get count(): number {
    return this.#list.length;
  }

  /** The end of the last dirty byte (0 when clean). */
  get end(): number {
    const last = this.#list[this.#list.length - 1];
    return last ? last.offset + last.length : 0;
  }

  /** Index of the first extent ending after `offset`. */
  #firstEndingAfter(offset: number): number {
    let lo = 0;
    let hi = this.#list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.#list[mid]!;
      if (e.offset + e.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Records a write of `data` (copied) at offset. */
  put(offset: number, data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    const end = offset + n;
    const i = this.#firstEndingAfter(offset);
    const prev = this.#list[i - 1];
    // The common case: a write continuing the extent before it, with nothing after it overlapped.
    if (prev && prev.offset + prev.length === offset && (i === this.#list.length || this.#list[i]!.offset >= end)) {
      if (this.#grow(prev, n)) {
        prev.buf.set(data, prev.length);
        prev.length += n;
        this.#bytes += n;
        return;
      }
    }
    let j = i;
    const replaced: Extent[] = [];
    while (j < this.#list.length && this.#list[j]!.offset < end) replaced.push(this.#list[j++]!);
    const fresh: Extent[] = [];
    const first = replaced[0];
    if (first && first.offset < offset) fresh.push({ offset: first.offset, buf: first.buf, length: offset - first.offset, owned: false });
    fresh.push(this.#fresh(offset, data));
    const last = replaced[replaced.length - 1];
    if (last && last.offset + last.length > end) {
      const from = end - last.offset;
      fresh.push({ offset: end, buf: last.buf.subarray(from, last.length), length: last.length - from, owned: false });
    }
    for (const e of replaced) this.#bytes -= e.length;
    for (const e of fresh) this.#bytes += e.length;
    this.#list.splice(i, replaced.length, ...fresh);
  }

  /** A new extent holding a copy of data: in a pool buffer when it fills one. */
  #fresh(offset: number, data: Uint8Array): Extent {
    if (this.pool && data.length === this.pool.bytes) {
      const buf = this.pool.get();
      buf.set(data);
      return { offset, buf, length: data.length, owned: false, pooled: true };
    }
    return { offset, buf: Buffer.from(data), length: data.length, owned: false };
  }

  /** Makes room for n more bytes in e's buffer (doubling, up to EXTENT_BYTES_MAX); false if it may not grow. */
  #grow(e: Extent, n: number): boolean {
    if (e.owned && e.buf.length - e.length >= n) return true;
    const want = e.length + n;
    if (want > EXTENT_BYTES_MAX) return false;
    const buf = Buffer.allocUnsafe(Math.min(EXTENT_BYTES_MAX, Math.max(want, 2 * e.length, 64 * 1024)));
    e.buf.copy(buf, 0, 0, e.length);
    e.buf = buf;
    e.owned = true;
    e.pooled = false;
    return true;
  }

  /** Drops dirty bytes at and past size (a truncate). */
  truncate(size: number): void {
    const i = this.#firstEndingAfter(size);
    const cut = this.#list.splice(i);
    for (const e of cut) this.#bytes -= e.length;
    const head = cut[0];
    if (head && head.offset < size) {
      const keep = { offset: head.offset, buf: head.buf, length: size - head.offset, owned: false };
      this.#list.push(keep);
      this.#bytes += keep.length;
    }
  }

  /** Removes and returns every extent, in file order. */
  take(): TakenExtent[] {
    const out = this.#list.map((e): TakenExtent => (e.pooled && e.length === e.buf.length
      ? { offset: e.offset, data: e.buf, pooled: e.buf }
      : { offset: e.offset, data: e.buf.subarray(0, e.length) }));
    assert.equal(out.reduce((s, e) => s + e.data.length, 0), this.#bytes, 'dirty byte count matches the extents');
    this.#list = [];
    this.#bytes = 0;
    return out;
  }
}
