// Deferred zeroing: how a data object's bytes become zeros without destroying data that a crash
// could still need.
//
// A punch, a truncate and a write or truncate that leaves a gap past the old size all make a
// range of the object read as zeros. Doing that to the data file at once would be unsafe: if
// the txg recording it is lost in a crash, the data the durable state still holds is gone.
// So the range is kept here, in memory, tagged with its txg, and:
//   - reads apply it (the bytes read as zeros at once: reads see every applied update);
//   - a later write subtracts its own range (the write is newer than the zeros);
//   - once the txg is durable, the remaining range is applied to the file (zeros written, or
//     the file truncated for a range that runs to the end), under the object's lock, and made
//     durable before any checkpoint covering that txg is written;
//   - replay rebuilds the same ranges from the records (apply.ts), with later writes
//     subtracted, and the OSD applies them to the files once replay ends. A data file is
//     always at least as new as the log, so replay never zeroes what a later txg wrote.
//     A checkpoint during replay cannot apply them yet (records after it may write over them):
//     it stores them in LevelDB (z: keys, keys.ts) and the next open starts from them.
// Bytes past an object's size are never visible (reads clamp to the size), so a range may run
// past it (end = Infinity: "everything from start on").

import type { Fid } from './fid.js';

export interface ZeroRange {
  start: number;
  end: number; // exclusive; Infinity for "to the end of the file"
  txg: number;
}

interface Held {
  fid: Fid;
  ranges: ZeroRange[];
}

export class PendingZeros {
  private byPath = new Map<string, Held>();

  get paths(): number {
    return this.byPath.size;
  }

  add(path: string, fid: Fid, start: number, end: number, txg: number): void {
    if (end <= start) return;
    const held = this.byPath.get(path) ?? { fid, ranges: [] };
    held.ranges.push({ start, end, txg });
    this.byPath.set(path, held);
  }

  /** [start, end) was written after every range held: no range covers it any more. */
  wrote(path: string, start: number, end: number): void {
    const held = this.byPath.get(path);
    if (!held || end <= start) return;
    const next: ZeroRange[] = [];
    for (const r of held.ranges) {
      if (r.end <= start || r.start >= end) next.push(r);
      else {
        if (r.start < start) next.push({ start: r.start, end: start, txg: r.txg });
        if (r.end > end) next.push({ start: end, end: r.end, txg: r.txg });
      }
    }
    if (next.length > 0) held.ranges = next;
    else this.byPath.delete(path);
  }

  /** Zeroes the parts of buf (the file's bytes at offset) that a held range covers. */
  mask(path: string, offset: number, buf: Buffer): void {
    const held = this.byPath.get(path);
    if (!held) return;
    const end = offset + buf.length;
    for (const r of held.ranges) {
      const a = Math.max(r.start, offset);
      const b = Math.min(r.end, end);
      if (a < b) buf.fill(0, a - offset, b - offset);
    }
  }

  /** Every file's ranges (to store them in a checkpoint during replay). */
  all(): [string, ZeroRange[]][] {
    return [...this.byPath].map(([path, held]) => [path, held.ranges]);
  }

  /** The file is going away: forget its ranges. */
  drop(path: string): void {
    this.byPath.delete(path);
  }

  /** Files holding ranges of txgs <= txg, with their object. */
  due(txg = Infinity): { path: string; fid: Fid }[] {
    const out = [];
    for (const [path, held] of this.byPath) if (held.ranges.some((r) => r.txg <= txg)) out.push({ path, fid: held.fid });
    return out;
  }

  /** The ranges of txgs <= txg held for path (read them and remove them under the object's lock). */
  rangesDue(path: string, txg = Infinity): ZeroRange[] {
    return (this.byPath.get(path)?.ranges ?? []).filter((r) => r.txg <= txg);
  }

  /** Forgets the ranges of txgs <= txg of path: they are in the file now. */
  applied(path: string, txg = Infinity): void {
    const held = this.byPath.get(path);
    if (!held) return;
    held.ranges = held.ranges.filter((r) => r.txg > txg);
    if (held.ranges.length === 0) this.byPath.delete(path);
  }
}
