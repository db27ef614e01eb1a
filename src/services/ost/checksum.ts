// Bulk checksums in a piscina worker pool, shared by every OST and OSC of the process.
//
// What was measured here (2 cores, Node 20, one 1 MiB buffer, figures in MiB/s):
//   crc32c in the main thread (@node-rs/crc32)              ~5,500
//   pool of 2, the Buffer cloned into the task              ~1,250  (the clone costs more than the crc)
//   pool of 2, copied into a SharedArrayBuffer first        ~3,800  (the copy alone runs at ~12,900)
//   pool of 2, SharedArrayBuffer, no copy                   ~5,300
//   adler32 in JavaScript, one thread                         ~500
// And in a whole server process (bench:fs, FUSE client, OSTs and OSD in one process), 1 MiB BRWs:
//   the pool's task post (piscina's postTask) plus the copy cost the main thread 0.6-0.8 ms per
//   MiB, against 0.08-0.10 ms for crc32c inline (@node-rs/crc32 uses the CPU's crc32
//   instruction: 10-12 GB/s here on one thread, chained over 64 KiB pieces as fast).
// So crc32c always runs inline: the pool costs the main thread more than the checksum it takes
// off it. adler32 (JavaScript, ~500 MiB/s) is the one worth a worker: a task never carries
// bytes: the pool copies the bulk (often several LNet chunks) into a SharedArrayBuffer arena
// and the worker reads it there. Below 16 KiB, where the task's round trip (15-30k empty
// tasks/s) costs more than the checksum itself, adler32 runs inline too.
//
// Limits: at most ARENAS_MAX arenas of OST_BRW_MAX_BYTES each; a checksum waits for a free
// arena beyond that. Two worker threads at most (a 2-core machine); they exit when idle.
import assert from 'node:assert/strict';
import { Piscina } from 'piscina';
import { checksumBytes, type ChecksumTask } from './checksum-algorithms.js';
import { CksumType, OST_BRW_MAX_BYTES } from './protocol.js';

export { adler32, checksumBytes } from './checksum-algorithms.js';

const ARENAS_MAX = 4;
const POOL_THREADS_MAX = 2;
const INLINE_MAX_BYTES: Record<CksumType, number> = { 0: Infinity, 1: Infinity, 2: 16 * 1024 };

export interface ChecksumStats {
  inline: number;
  pooled: number;
  bytes: number;
}

export class ChecksumPool {
  static #shared: ChecksumPool | undefined;
  static #users = 0;

  readonly stats: ChecksumStats = { inline: 0, pooled: 0, bytes: 0 };
  readonly #pool: Piscina;
  readonly #free: SharedArrayBuffer[] = [];
  readonly #waiters: Array<(sab: SharedArrayBuffer) => void> = [];
  #arenas = 0;

  private constructor() {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    this.#pool = new Piscina({
      filename: new URL(`./checksum-worker${ext}`, import.meta.url).href,
      minThreads: 0, maxThreads: POOL_THREADS_MAX, idleTimeout: 5_000, maxQueue: 64,
    });
  }

  /** The process's pool; release() it when done (the last release stops the workers). */
  static acquire(): ChecksumPool {
    ChecksumPool.#users++;
    ChecksumPool.#shared ??= new ChecksumPool();
    return ChecksumPool.#shared;
  }

  static async release(pool: ChecksumPool): Promise<void> {
    assert(pool === ChecksumPool.#shared && ChecksumPool.#users > 0, 'release of a pool not acquired');
    if (--ChecksumPool.#users > 0) return;
    ChecksumPool.#shared = undefined;
    await pool.#pool.destroy();
  }

  /** The checksum of the buffers back to back (0 for CksumType.NONE). */
  async checksum(type: CksumType, buffers: readonly Uint8Array[]): Promise<number> {
    let length = 0;
    for (const b of buffers) length += b.byteLength;
    this.stats.bytes += length;
    if (type === CksumType.NONE) return 0;
    if (length <= INLINE_MAX_BYTES[type] || length > OST_BRW_MAX_BYTES) {
      this.stats.inline++;
      return checksumBytes(type, ...buffers);
    }
    this.stats.pooled++;
    const sab = await this.#arena();
    try {
      const view = new Uint8Array(sab);
      let at = 0;
      for (const b of buffers) {
        view.set(b, at);
        at += b.byteLength;
      }
      const task: ChecksumTask = { type, sab, length };
      return (await this.#pool.run(task)) as number;
    } finally {
      this.#give(sab);
    }
  }

  #arena(): Promise<SharedArrayBuffer> {
    const sab = this.#free.pop();
    if (sab) return Promise.resolve(sab);
    if (this.#arenas < ARENAS_MAX) {
      this.#arenas++;
      return Promise.resolve(new SharedArrayBuffer(OST_BRW_MAX_BYTES));
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #give(sab: SharedArrayBuffer): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(sab);
    else this.#free.push(sab);
  }
}
