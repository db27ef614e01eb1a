// Buffers of one size, used again: a write's dirty data is copied into one (extents.ts), sent,
// and given back once the OSTs have committed the write, so that a stream of writes does not
// allocate a new 1 MiB buffer per MiB. Each such allocation counted towards V8's external
// memory, whose growth set off mark-compacts (bench:fs's FUSE writes: 100-200 per GiB, the
// largest CPU cost of the write path).
//
// When a buffer may come back: never while anything may read it. A write's bulk is kept by its
// import for replay until the OST's last_committed reaches the write's transno; so a buffer
// comes back only after every RPC that carried it was answered and is committed (Osc.afterCommit),
// and only if no other extent shares it (a split extent keeps its buffer to the garbage
// collector). A buffer that never comes back (a failed write, an eviction) is simply collected.
//
// Limits: at most POOL_BUFFERS_MAX buffers wait in the pool; more given back are dropped.
import assert from 'node:assert/strict';

export const POOL_BUFFERS_MAX = 64;

export class BufferPool {
  readonly #free: Buffer[] = [];
  /** Buffers handed out and given back (for tests and stats). */
  readonly counters = { allocated: 0, reused: 0, returned: 0, dropped: 0 };

  constructor(readonly bytes: number, readonly max = POOL_BUFFERS_MAX) {}

  /** A buffer of `bytes` bytes (its contents undefined). */
  get(): Buffer {
    const b = this.#free.pop();
    if (b) {
      this.counters.reused++;
      return b;
    }
    this.counters.allocated++;
    return Buffer.allocUnsafeSlow(this.bytes);
  }

  /** Gives back a buffer that get() returned and nothing reads or writes any more. */
  put(b: Buffer): void {
    assert(b.length === this.bytes && b.byteOffset === 0 && b.buffer.byteLength === this.bytes, 'a pool takes back only its own buffers');
    if (this.#free.length >= this.max) {
      this.counters.dropped++;
      return;
    }
    this.counters.returned++;
    this.#free.push(b);
  }

  get free(): number {
    return this.#free.length;
  }
}
