// Portals and match entries: where an incoming PUT or GET lands.
//
// As in Lustre, each portal holds match entries in the order they were attached; a message
// takes the first one whose bits match ((entry.matchBits ^ bits) & ~entry.ignoreBits == 0)
// and whose MD does the operation (a sink takes PUTs, a source answers GETs). Entries that
// ignore no bit (ptlrpc's reply and bulk MDs, one per xid) are also kept in a hash by their
// bits so that thousands of them cost O(1) to match; order is kept across the two by a
// sequence number. A matched message too long for the MD is dropped, not truncated
// (Lustre's MDs without LNET_MD_TRUNCATE).
import { LNetError } from './errors.js';

export type MdSpec =
  | { kind: 'sink'; maxLength: number; once?: boolean }
  | { kind: 'source'; buffers: Buffer[]; once?: boolean };

export interface MdHandle { readonly id: bigint; unlink(): void }

export type MatchDrop = 'noMatch' | 'tooLong';

/** LNET_COOKIE_TYPE_MD: the low two bits of an MD's cookie say what kind of handle it is. */
const COOKIE_TYPE_MD = 1n;
const COOKIE_TYPE_BITS = 2n;

export class Md implements MdHandle {
  unlinked = false;
  constructor(
    readonly id: bigint,
    readonly seq: number,
    readonly portal: number,
    readonly matchBits: bigint,
    readonly ignoreBits: bigint,
    readonly spec: MdSpec,
    /** Bytes a source MD holds (0 for a sink). */
    readonly sourceLength: number,
    private readonly table: MatchTable,
  ) {}

  unlink(): void { this.table.unlink(this); }
}

/** An exact entry's bits hold one MD (nearly always: one per xid) or, past one, an array of them. */
interface Portal { exact: Map<bigint, Md | Md[]>; wild: Md[] }

export class MatchTable {
  private readonly portals = new Map<number, Portal>();
  private nextSeq = 0;
  private nextCookie = 1n;
  private count = 0;

  constructor(private readonly mdsMax: number) {}

  get size(): number { return this.count; }

  attach(portal: number, matchBits: bigint, ignoreBits: bigint, spec: MdSpec): Md {
    checkU32('portal', portal);
    checkU64('matchBits', matchBits);
    checkU64('ignoreBits', ignoreBits);
    let sourceLength = 0;
    if (spec.kind === 'sink') checkU32('maxLength', spec.maxLength);
    else if (spec.kind === 'source') {
      for (const b of spec.buffers) sourceLength += b.length;
      checkU32('source length', sourceLength);
    } else throw new LNetError('EINVAL', `unknown MD kind '${(spec as { kind: string }).kind}'`);
    if (this.count >= this.mdsMax) throw new LNetError('EAGAIN', `${this.count} MDs attached, the most allowed (mdsMax)`);
    const id = (this.nextCookie++ << COOKIE_TYPE_BITS) | COOKIE_TYPE_MD;
    const md = new Md(id, this.nextSeq++, portal, matchBits, ignoreBits, spec, sourceLength, this);
    let p = this.portals.get(portal);
    if (!p) { p = { exact: new Map(), wild: [] }; this.portals.set(portal, p); }
    if (ignoreBits === 0n) {
      const bucket = p.exact.get(matchBits);
      if (!bucket) p.exact.set(matchBits, md);
      else if (Array.isArray(bucket)) bucket.push(md);
      else p.exact.set(matchBits, [bucket, md]);
    } else {
      p.wild.push(md);
    }
    this.count++;
    return md;
  }

  unlink(md: Md): void {
    if (md.unlinked) return;
    md.unlinked = true;
    this.count--;
    const p = this.portals.get(md.portal);
    if (!p) return;
    if (md.ignoreBits === 0n) {
      const bucket = p.exact.get(md.matchBits);
      if (bucket === md) p.exact.delete(md.matchBits);
      else if (Array.isArray(bucket)) {
        const i = bucket.indexOf(md);
        if (i >= 0) bucket.splice(i, 1);
        if (bucket.length === 1) p.exact.set(md.matchBits, bucket[0]!);
      }
    } else {
      p.wild.splice(p.wild.indexOf(md), 1);
    }
  }

  /**
   * The MD an incoming PUT or GET lands in, or why it is dropped. A 'once' MD is unlinked here,
   * at match time, as Lustre does, so that a second message cannot take it while the first one's
   * payload is still arriving.
   */
  match(kind: 'sink' | 'source', portal: number, bits: bigint, offset: number, length: number): Md | MatchDrop {
    const p = this.portals.get(portal);
    if (!p) return 'noMatch';
    let best: Md | undefined;
    const bucket = p.exact.get(bits);
    if (bucket instanceof Md) {
      if (bucket.spec.kind === kind) best = bucket;
    } else if (bucket) {
      for (const md of bucket) if (md.spec.kind === kind) { best = md; break; }
    }
    for (const md of p.wild) {
      if (best && md.seq > best.seq) break;
      if (md.spec.kind === kind && ((md.matchBits ^ bits) & ~md.ignoreBits) === 0n) { best = md; break; }
    }
    if (!best) return 'noMatch';
    const room = best.spec.kind === 'sink' ? best.spec.maxLength : best.sourceLength;
    if (offset > room || length > room - offset) return 'tooLong';
    if (best.spec.once) this.unlink(best);
    return best;
  }

  clear(): void {
    for (const p of this.portals.values()) {
      for (const b of p.exact.values()) for (const md of Array.isArray(b) ? b : [b]) md.unlinked = true;
      for (const md of p.wild) md.unlinked = true;
    }
    this.portals.clear();
    this.count = 0;
  }
}

/** The slices of `buffers` covering [offset, offset + length), without copying. */
export function sliceBuffers(buffers: Buffer[], offset: number, length: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = offset;
  let left = length;
  for (const b of buffers) {
    if (left === 0) break;
    if (skip >= b.length) { skip -= b.length; continue; }
    const take = Math.min(b.length - skip, left);
    out.push(skip === 0 && take === b.length ? b : b.subarray(skip, skip + take));
    left -= take;
    skip = 0;
  }
  return out;
}

export function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new LNetError('EINVAL', `${what} ${v} is not a u32`);
}

export function checkU64(what: string, v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw new LNetError('EINVAL', `${what} ${String(v)} is not a u64`);
}
