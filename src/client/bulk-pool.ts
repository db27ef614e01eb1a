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
// Buffers come back a txg at a time (an OST commits up to its dirty limit, 64 MiB, at once,
// and two OSTs may commit together), and each one dropped then is a new allocation a moment
// later: with 64 at most, a stream of 1 MiB writes through FUSE still allocated a third to
// two thirds of its buffers (bench:fs, 1 GiB, stripe count 1 / 2). So the pool keeps up to 256
// (what is in flight and uncommitted already takes that much), and gives back to the GC all
// but POOL_IDLE_KEEP of them once none was taken for POOL_IDLE_MS: an idle mount holds no
// more than a few.
import assert from 'node:assert/strict';

export const POOL_BUFFERS_MAX = 256;
/** Buffers the pool keeps once idle. */
export const POOL_IDLE_KEEP = 8;
/** How long without a get() makes the pool idle. */
export const POOL_IDLE_MS = 2_000;

export class BufferPool {
  readonly #free: Buffer[] = [];
  /** Buffers handed out and given back (for tests and stats); trimmed: dropped once the pool was idle. */
  readonly counters = { allocated: 0, reused: 0, returned: 0, dropped: 0, trimmed: 0 };
  #lastGetMs = 0;
  #trimTimer: NodeJS.Timeout | undefined;

  constructor(readonly bytes: number, readonly max = POOL_BUFFERS_MAX, readonly idleMs = POOL_IDLE_MS) {}

  /** A buffer of `bytes` bytes (its contents undefined). */
  get(): Buffer {
    this.#lastGetMs = performance.now();
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
    if (this.#free.length > POOL_IDLE_KEEP) this.#armTrim(this.idleMs);
  }

  /** Drops all but POOL_IDLE_KEEP free buffers once no get() came for idleMs (unref'd: it keeps no process alive). */
  #armTrim(delayMs: number): void {
    if (this.#trimTimer) return;
    this.#trimTimer = setTimeout(() => {
      this.#trimTimer = undefined;
      const idleFor = performance.now() - this.#lastGetMs;
      if (idleFor < this.idleMs) {
        if (this.#free.length > POOL_IDLE_KEEP) this.#armTrim(this.idleMs - idleFor);
        return;
      }
      this.counters.trimmed += this.#free.splice(POOL_IDLE_KEEP).length;
    }, delayMs);
    this.#trimTimer.unref();
  }

  get free(): number {
    return this.#free.length;
  }
}
