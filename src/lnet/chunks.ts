// The bytes a socket has delivered and no one has consumed yet, kept as the chunks they came
// in. Fixed-size records (headers) are read as one view (copied only when they straddle two
// chunks); payloads are taken as slices of the chunks, never copied.

const EMPTY = Buffer.alloc(0);

export class ChunkQueue {
  private chunks: Buffer[] = [];
  private head = 0;      // index of the first chunk not wholly consumed
  private offset = 0;    // bytes consumed of chunks[head]
  private available = 0;
  private readonly scratch: Buffer;

  constructor(scratchBytes: number) {
    this.scratch = Buffer.allocUnsafe(scratchBytes);
  }

  get length(): number { return this.available; }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.available += chunk.length;
  }

  /**
   * A view of the next n bytes (n <= scratch size) without consuming them; valid until the
   * next call on this queue. The caller has checked that n bytes are available.
   */
  peek(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    let copied = 0;
    let i = this.head;
    let off = this.offset;
    while (copied < n) {
      const c = this.chunks[i]!;
      const take = Math.min(c.length - off, n - copied);
      c.copy(this.scratch, copied, off, off + take);
      copied += take;
      i++;
      off = 0;
    }
    return this.scratch.subarray(0, n);
  }

  /** Consumes up to n bytes, appending them as slices to `out` when given; returns how many. */
  take(n: number, out: Buffer[] | null): number {
    let left = Math.min(n, this.available);
    const took = left;
    while (left > 0) {
      const c = this.chunks[this.head]!;
      const avail = c.length - this.offset;
      const step = Math.min(avail, left);
      if (out) out.push(this.offset === 0 && step === c.length ? c : c.subarray(this.offset, this.offset + step));
      left -= step;
      if (step === avail) {
        // Drop the queue's reference at once: a consumed chunk kept here would outlive young
        // collections, and socket chunks promoted that way cost the process major GCs.
        this.chunks[this.head++] = EMPTY;
        this.offset = 0;
      } else {
        this.offset += step;
      }
    }
    this.available -= took;
    if (this.head > 64 || this.head === this.chunks.length) this.compact();
    return took;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.available = 0;
  }

  private compact(): void {
    if (this.head === this.chunks.length) { this.chunks.length = 0; } else { this.chunks = this.chunks.slice(this.head); }
    this.head = 0;
  }
}
