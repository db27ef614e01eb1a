// Reading /dev/fuse without a native addon and without starving anyone.
//
// A read() of /dev/fuse blocks until the kernel has a request. Done through fs.read, each such
// read would hold one thread of libuv's pool (4 threads unless UV_THREADPOOL_SIZE says more) for
// as long as the mount is idle, and the pool is also what the ops' own file IO runs on (the
// passthrough's fs/promises calls): two outstanding reads would leave two threads for all file
// IO, four would deadlock the mount. So the reads run in worker threads of their own, each
// looping on a blocking readSync into a buffer of its own, and post each request (copied to
// its exact length, the copy transferred, not cloned) to the session's thread. The pool stays
// whole for the ops; UV_THREADPOOL_SIZE still bounds how many of their file calls run at once.
//
// How many readers: READERS_DEFAULT = 1. One reader already takes requests as fast as the kernel
// queues them (it never waits for an op to finish: the ops run on the session's thread). A second
// one could read the next request while the first copies and posts, but on this 2-core machine
// it measured no better for 1 MiB IO and up to 2x worse for creates (one more thread to schedule
// per request); the option stays for machines with more cores.
//
// Slots: a request of at least SLOT_MIN_BYTES (a WRITE's data) is read straight into a slot of
// a SharedArrayBuffer shared with the session's thread, and handed over as a view of it: no
// copy, and no new 1 MiB buffer per WRITE (each of which the session's heap had to account for
// and collect: GC was the largest CPU cost of FUSE writes). A slot is busy from the read until
// the session releases it, once the op is done with the request's bytes (not when a timed-out
// op was answered: it may still read them); a smaller request is copied out and the slot is
// kept. With every slot busy, a reader reads into its own buffer and copies, as before.
//
// Back-pressure: readers take a credit (a shared counter, Atomics) before each read; the session
// gives the credit back when the request is answered (or abandoned at its timeout). So at most
// maxInFlight requests are ever inside the session, and the rest wait in the kernel's queue.
//
// The end: a read fails ENODEV once the connection is gone (unmounted or aborted); each reader
// then reports and exits. EINTR, EAGAIN and ENOENT (the request was interrupted before we read
// it) are retried. EPERM means the fd is not mounted yet: retried until the session says stop.
import { Worker } from 'node:worker_threads';

export const READERS_DEFAULT = 1;

/** Index of the credit counter and of the stop flag in the shared Int32Array; then one busy flag per slot. */
const CREDITS = 0;
const STOP = 1;
const SLOT_FLAGS = 2;
/** Slots of the readers (bufferBytes each: 16 MiB for 1 MiB writes). */
export const SLOTS_DEFAULT = 16;
/** Requests from this size on stay in their slot; smaller ones are copied out. */
const SLOT_MIN_BYTES = 64 * 1024;

const WORKER_SOURCE = `
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, bufferBytes, shared, slots } = workerData;
const state = new Int32Array(shared);
const own = Buffer.allocUnsafe(bufferBytes);
const slotCount = slots ? slots.byteLength / bufferBytes : 0;
function takeCredit() {
  for (;;) {
    if (Atomics.load(state, ${STOP}) !== 0) return false;
    const c = Atomics.load(state, ${CREDITS});
    if (c <= 0) { Atomics.wait(state, ${CREDITS}, c, 1000); continue; }
    if (Atomics.compareExchange(state, ${CREDITS}, c, c - 1) === c) return true;
  }
}
function takeSlot() {
  for (let i = 0; i < slotCount; i++) {
    if (Atomics.compareExchange(state, ${SLOT_FLAGS} + i, 0, 1) === 0) return i;
  }
  return -1;
}
function main() {
  for (;;) {
    if (!takeCredit()) return 'stopped';
    const slot = takeSlot();
    const buf = slot < 0 ? own : Buffer.from(slots, slot * bufferBytes, bufferBytes);
    let n;
    try {
      n = readSync(fd, buf, 0, bufferBytes, null);
    } catch (e) {
      if (slot >= 0) Atomics.store(state, ${SLOT_FLAGS} + slot, 0);
      Atomics.add(state, ${CREDITS}, 1);
      const code = e && e.code;
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue;
      if (code === 'EPERM') { Atomics.wait(state, ${STOP}, 0, 5); continue; }
      return code || String(e);
    }
    if (n === 0) {
      if (slot >= 0) Atomics.store(state, ${SLOT_FLAGS} + slot, 0);
      Atomics.add(state, ${CREDITS}, 1);
      return 'EOF';
    }
    if (slot >= 0 && n >= ${SLOT_MIN_BYTES}) {
      parentPort.postMessage({ slot, n });
      continue;
    }
    const out = new Uint8Array(n);
    out.set(buf.subarray(0, n));
    if (slot >= 0) Atomics.store(state, ${SLOT_FLAGS} + slot, 0);
    parentPort.postMessage(out, [out.buffer]);
  }
}
parentPort.postMessage({ end: main() });
`;

export interface Readers {
  /** Gives back one credit: a request was answered or abandoned. */
  credit(): void;
  /** Asks the readers to stop at their next credit (a reader blocked in read stays until the kernel answers). */
  stop(): void;
  /** Resolves when every reader has ended, with the reason of the first. */
  ended: Promise<string>;
}

/**
 * A request as read: its bytes, and release(), which the session calls once nothing reads them
 * any more (they may be a slot's, which the readers then reuse).
 */
export type OnRequest = (b: Buffer, release: () => void) => void;

const noRelease = (): void => {};

export function startReaders(fd: number, opts: { count: number; bufferBytes: number; maxInFlight: number; slots?: number; onRequest: OnRequest }): Readers {
  const slotCount = opts.slots ?? SLOTS_DEFAULT;
  const shared = new SharedArrayBuffer(4 * (SLOT_FLAGS + slotCount));
  const slots = slotCount > 0 ? new SharedArrayBuffer(slotCount * opts.bufferBytes) : undefined;
  const state = new Int32Array(shared);
  const releases = Array.from({ length: slotCount }, (_, i) => () => { Atomics.store(state, SLOT_FLAGS + i, 0); });
  state[CREDITS] = opts.maxInFlight;
  let firstReason: string | undefined;
  let live = opts.count;
  let resolveEnded!: (r: string) => void;
  const ended = new Promise<string>((r) => { resolveEnded = r; });
  for (let i = 0; i < opts.count; i++) {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, bufferBytes: opts.bufferBytes, shared, slots } });
    // Left referenced on purpose: a mounted session keeps its process alive, as a FUSE daemon
    // must (the mount point would fail ENOTCONN without it), until the connection ends.
    const done = (reason: string): void => {
      firstReason ??= reason;
      if (--live === 0) resolveEnded(firstReason);
    };
    let finished = false;
    w.on('message', (m: unknown) => {
      if (m instanceof Uint8Array) opts.onRequest(Buffer.from(m.buffer, m.byteOffset, m.byteLength), noRelease);
      else if (typeof (m as { slot?: unknown }).slot === 'number') {
        const { slot, n } = m as { slot: number; n: number };
        opts.onRequest(Buffer.from(slots!, slot * opts.bufferBytes, n), releases[slot]!);
      } else if (!finished) { finished = true; done(String((m as { end?: unknown }).end)); }
    });
    w.on('error', (e) => { if (!finished) { finished = true; done(`reader failed: ${e.message}`); } });
    w.on('exit', () => { if (!finished) { finished = true; done('reader exited'); } });
  }
  return {
    credit: () => { Atomics.add(state, CREDITS, 1); Atomics.notify(state, CREDITS, 1); },
    stop: () => { Atomics.store(state, STOP, 1); Atomics.notify(state, CREDITS); Atomics.notify(state, STOP); },
    ended,
  };
}
