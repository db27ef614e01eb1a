// Reading /dev/fuse without a native addon and without starving anyone.
//
// Two ways, one interface (Readers):
//
// On the session's own thread (startLoopReader, the default): /dev/fuse is pollable, so libuv
// can wait for it as for a socket. Node's net.Socket refuses a character device, so the fd is
// opened as a libuv pipe handle through Node's own `pipe_wrap` binding, reading into a buffer
// of ours (`useUserBuffer`: the kernel wants room for a whole request, max_write plus a page, in
// every read). A request is then read by the same event loop that answers it: no thread hop,
// no postMessage. Measured on this 2-core machine: a FUSE unlink 12-37% faster, its CPU down a
// fifth (bench/README.md). The binding is Node's internal API: when it is missing or refuses
// the fd, the session falls back to reader threads, said in the log (loopReaderUsable()).
//
// In worker threads (startReaders, `readers: N`): a read() of /dev/fuse blocks until the kernel
// has a request. Done through fs.read, each such read would hold one thread of libuv's pool (4
// threads unless UV_THREADPOOL_SIZE says more) for as long as the mount is idle, and the pool
// is also what the ops' own file IO runs on: two outstanding reads would leave two threads for
// all file IO, four would deadlock the mount. So these reads run in worker threads of their
// own, each looping on a blocking readSync into a buffer of its own, and post each request
// (copied to its exact length, the copy transferred, not cloned) to the session's thread. One
// reader already takes requests as fast as the kernel queues them; a second one measured no
// better for 1 MiB IO here and up to 2x worse for creates (one more thread to schedule per
// request). The option stays for machines with more cores.
//
// Slots (both ways): a request of at least SLOT_MIN_BYTES (a WRITE's data) is read straight
// into a slot and handed over as a view of it: no copy, and no new 1 MiB buffer per WRITE (each
// of which the session's heap had to account for and collect: GC was the largest CPU cost of
// FUSE writes). A slot is busy from the read until the session releases it, once the op is done
// with the request's bytes (not when a timed-out op was answered: it may still read them); a
// smaller request is copied out and the slot is kept. With every slot busy, a reader reads into
// a spare buffer and copies. The threads' slots are one SharedArrayBuffer; the loop's are
// allocated as first needed, so a mount that never writes holds one buffer (two once it spins).
//
// Spinning (the loop's only, poll()): the session may ask for the next request at once rather
// than wait for libuv to wake the thread (session.ts, spin()). poll() then reads the fd, which
// libuv made non-blocking, with readSync until a request comes or its time is up; it reads into
// a slot of its own, never the buffer the handle reads into, and hands the request over as the
// handle's reads do (a WRITE's data stays in that slot, which poll() then replaces).
//
// Back-pressure: a reader takes a credit before each read; the session gives the credit back
// when the request is answered (or abandoned at its timeout). So at most maxInFlight requests
// are ever inside the session, and the rest wait in the kernel's queue. The loop stops reading
// (readStop) at no credit and starts again at the next; the threads wait on a shared counter.
//
// The end: a read fails ENODEV once the connection is gone (unmounted or aborted); the readers
// then report it. EINTR, EAGAIN and ENOENT (the request was interrupted before we read it) are
// retried. The threads start before mount(8) and retry EPERM (not mounted yet) every 5 ms until
// the session says stop.
//
// The loop polls only once the fd is mounted (begin()): Linux attaches a poller to the
// connection's request queue when it first polls, and an unmounted /dev/fuse has no queue yet.
// A poll set up before mount(8) therefore never wakes again once it has seen no request: a
// mount hung after its INIT that way while this was written. So the loop never sees EPERM.
//
// The fd is closed by Readers.close(), once the session's notifier threads are done with it: the
// loop's handle owns it by then (closing the handle closes the fd).
//
// Either way a mounted session keeps its process alive, as a FUSE daemon must (the mount point
// would fail ENOTCONN without it): the loop's handle is referenced while it reads (and while it
// waits for credits, the requests in flight hold what they wait on), the threads are.
import { closeSync, readSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';
import { withoutStackTraces } from '../../log/index.js';

/** Reader threads by default: none, the session's own thread reads (startLoopReader). */
export const READERS_DEFAULT = 0;

/** Index of the credit counter and of the stop flag in the shared Int32Array; then one busy flag per slot. */
const CREDITS = 0;
const STOP = 1;
const SLOT_FLAGS = 2;
/** Slots of the readers (bufferBytes each: up to 16 MiB for 1 MiB writes). */
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
  /** Where the requests are read: 'loop' (the session's thread) or 'threads'. */
  readonly kind: 'loop' | 'threads';
  /** The fd is mounted: reading may start (the threads started at once, and retry until mounted). */
  begin(): void;
  /** Gives back one credit: a request was answered or abandoned. */
  credit(): void;
  /** Asks the readers to stop (a reader thread blocked in read stays until the kernel answers). */
  stop(): void;
  /** Resolves when every reader has ended, with the reason of the first (an errno's code, or 'stopped'). */
  ended: Promise<string>;
  /** Closes the fd, once `ended` has resolved and nothing else writes to it. */
  close(): void;
  /**
   * The loop's only: reads a request now if the kernel has one, trying for up to budgetMs
   * (spinning, the thread kept busy) before giving up to the event loop's wait; the request
   * goes to onRequest as any other. True when one was read.
   */
  poll?(budgetMs: number): boolean;
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
    kind: 'threads',
    begin: () => {},
    credit: () => { Atomics.add(state, CREDITS, 1); Atomics.notify(state, CREDITS, 1); },
    stop: () => { Atomics.store(state, STOP, 1); Atomics.notify(state, CREDITS); Atomics.notify(state, STOP); },
    ended,
    close: () => closeSync(fd),
  };
}

/** What this code uses of a handle of Node's internal `pipe_wrap` binding (libuv's uv_pipe_t). */
interface PipeHandle {
  open(fd: number): number;
  useUserBuffer(b: Buffer): void;
  readStart(): number;
  readStop(): number;
  close(): void;
  /** Called after each read; what it returns is the buffer of the next read. */
  onread: (() => Buffer) | null;
}

interface LoopBinding {
  newPipe(): PipeHandle;
  /** The last read's byte count or negative errno (stream_wrap's streamBaseState[kReadBytesOrError]). */
  lastRead(): number;
}

/** Node's bindings for reading a pollable fd on the event loop, or why they cannot be used. */
function loopBinding(): LoopBinding | string {
  try {
    const proc = process as unknown as { binding(name: string): unknown };
    const pipe = proc.binding('pipe_wrap') as { Pipe?: new (type: number) => PipeHandle; constants?: { SOCKET?: number } };
    const stream = proc.binding('stream_wrap') as { streamBaseState?: unknown; kReadBytesOrError?: unknown };
    const Pipe = pipe.Pipe;
    const type = pipe.constants?.SOCKET;
    const state = stream.streamBaseState;
    const index = stream.kReadBytesOrError;
    if (typeof Pipe !== 'function' || typeof type !== 'number' || typeof Pipe.prototype.useUserBuffer !== 'function') {
      return "Node's pipe_wrap binding has no Pipe with useUserBuffer";
    }
    if (!(state instanceof Int32Array) || typeof index !== 'number') return "Node's stream_wrap binding has no streamBaseState";
    return { newPipe: () => new Pipe(type), lastRead: () => state[index]! };
  } catch (err) {
    return `process.binding failed: ${(err as Error).message}`;
  }
}

const UV_EOF = -4095;
const { ENOENT, EINTR, ENOTCONN } = osConstants.errno;
/** The read errors the loop retries (at once); any other ends it. */
const RETRIED = new Set([-ENOENT, -EINTR]);

/**
 * Reads /dev/fuse on this thread's event loop (see the top of this file), from begin() on, once
 * the fd is mounted. Returns why not when Node's bindings are missing or refuse the fd; the fd
 * is then untouched.
 */
export function startLoopReader(fd: number, opts: { bufferBytes: number; maxInFlight: number; slots?: number; onRequest: OnRequest }): Readers | string {
  const binding = loopBinding();
  if (typeof binding === 'string') return binding;
  const handle = binding.newPipe();
  const rc = handle.open(fd);
  if (rc !== 0) {
    handle.close();
    return `libuv cannot poll /dev/fuse: ${getSystemErrorName(rc)}`;
  }
  const slotCount = opts.slots ?? SLOTS_DEFAULT;
  const slots: Buffer[] = [];
  const free: number[] = [];
  const releases: Array<() => void> = [];
  let spare: Buffer | undefined;
  /** The buffer the handle reads into, and its slot (-1: the spare, allocated once every slot was busy). */
  let current!: Buffer;
  let currentSlot = -1;
  /** A free slot (made when fewer than slotCount exist); undefined when every one is busy. */
  const acquire = (): number | undefined => {
    let i = free.pop();
    if (i === undefined && slots.length < slotCount) {
      i = slots.length;
      slots.push(Buffer.allocUnsafeSlow(opts.bufferBytes));
      const slot = i;
      releases.push(() => { free.push(slot); });
    }
    return i;
  };
  const takeSlot = (): void => {
    const i = acquire();
    if (i === undefined) { current = spare ??= Buffer.allocUnsafeSlow(opts.bufferBytes); currentSlot = -1; } else { current = slots[i]!; currentSlot = i; }
  };
  takeSlot();
  /** The slot poll() reads into, kept while what it reads is copied out. */
  let pollSlot: number | undefined;

  let credits = opts.maxInFlight;
  let begun = false;
  let reading = false;
  let done = false;
  let retry: NodeJS.Timeout | undefined;
  let resolveEnded!: (r: string) => void;
  const ended = new Promise<string>((r) => { resolveEnded = r; });
  const end = (reason: string): void => {
    if (done) return;
    done = true;
    clearTimeout(retry);
    retry = undefined;
    if (reading) handle.readStop();
    reading = false;
    resolveEnded(reason);
  };
  const start = (): void => {
    if (!begun || done || reading || retry || credits <= 0) return;
    // After a failed read libuv takes the handle for closed (ENOTCONN): opening the same fd again makes it readable.
    let r = handle.readStart();
    if (r === -ENOTCONN) r = handle.open(fd) || handle.readStart();
    if (r !== 0) { end(getSystemErrorName(r)); return; }
    reading = true;
  };

  /** The request of n bytes read into slot `slot`'s buffer (-1: `buf`, the spare): a view of the slot from SLOT_MIN_BYTES on, else a copy. */
  const request = (buf: Buffer, slot: number, n: number): { b: Buffer; release: () => void; kept: boolean } => {
    if (slot >= 0 && n >= SLOT_MIN_BYTES) return { b: buf.subarray(0, n), release: releases[slot]!, kept: true };
    const b = Buffer.allocUnsafe(n);
    buf.copy(b, 0, 0, n);
    return { b, release: noRelease, kept: false };
  };
  const deliver = (b: Buffer, release: () => void): void => {
    if (--credits <= 0) { handle.readStop(); reading = false; }
    opts.onRequest(b, release);
  };
  /**
   * Spin-reads (see Readers.poll): non-blocking reads of the fd, which libuv made non-blocking,
   * into a slot of its own (never `current`, which the handle reads into), until a request or
   * budgetMs. Each EAGAIN is a thrown Error: made without a stack trace, about a microsecond.
   */
  const poll = (budgetMs: number): boolean => {
    if (!begun || done || !reading || credits <= 0) return false;
    pollSlot ??= acquire();
    if (pollSlot === undefined) return false;
    const buf = slots[pollSlot]!;
    const until = performance.now() + budgetMs;
    const n = withoutStackTraces(() => {
      for (;;) {
        try {
          return readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // Anything but "nothing yet" (ENODEV once unmounted, ENOENT for an interrupted
          // request) is left to the handle's next read, which reports it as ever.
          if ((code !== 'EAGAIN' && code !== 'EINTR') || performance.now() >= until) return 0;
        }
      }
    });
    if (n <= 0) return false;
    const r = request(buf, pollSlot, n);
    if (r.kept) pollSlot = undefined;
    deliver(r.b, r.release);
    return true;
  };

  handle.onread = (): Buffer => {
    const n = binding.lastRead();
    if (n > 0) {
      const r = request(current, currentSlot, n);
      if (r.kept || currentSlot < 0) takeSlot();
      deliver(r.b, r.release);
      return current;
    }
    if (n === 0) return current; // EAGAIN: libuv waits for the next request itself.
    // A failed read has stopped the handle.
    reading = false;
    if (n === UV_EOF) end('EOF');
    else if (!RETRIED.has(n)) end(getSystemErrorName(n));
    else if (!done) retry = setTimeout(() => { retry = undefined; start(); }, 0);
    return current;
  };
  handle.useUserBuffer(current);
  return {
    kind: 'loop',
    begin: () => { begun = true; start(); },
    credit: () => { credits++; start(); },
    stop: () => end('stopped'),
    ended,
    close: () => handle.close(),
    poll,
  };
}
