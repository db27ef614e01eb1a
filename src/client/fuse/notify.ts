// Notifications written to /dev/fuse from threads of their own.
//
// A notification (wire.ts: unique 0, error = the notify code) is answered by the write() itself,
// and that write can block: FUSE_NOTIFY_INVAL_ENTRY takes the parent directory's lock, which the
// kernel holds while a LOOKUP, CREATE, MKDIR, UNLINK, RENAME, ... in that directory waits for our
// reply; FUSE_NOTIFY_INVAL_INODE locks the pages it drops, which a READ waiting for our reply
// holds, and under the writeback cache it first writes dirty pages back, as WRITE requests to us.
// Written on the session's thread, such a write would stop the very thread that has to answer:
// a deadlock. So the writes run in worker threads, and each resolves a promise on the session's thread when the kernel has answered it. A notification that blocks
// then waits only for the reply that frees it, which the session's thread is free to write.
//
// The rule that remains for the file system: never wait for a notification (await its promise)
// inside the op of a request that the notification waits for (an INVAL_ENTRY of a name in the
// directory of a running LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR or RENAME;
// an INVAL_INODE of a file whose READ or WRITE is running; an INVAL_ENTRY of the name of a file
// whose SETATTR or RENAME is running). Fired from such an op without waiting, it completes once
// the op has answered; from outside any request (a lock callback from a server), it is always
// safe.
//
// A notification blocked in the kernel holds no other up: each is written by a thread that has
// nothing else outstanding, started as needed (NOTIFY_THREADS_MAX; beyond that they queue).
// That matters for INVAL_INODE: the kernel bumps the inode's attr_version as it enters, before
// it locks a page, and discards the attributes of every GETATTR or LOOKUP sent before the bump.
// Queued behind another notification blocked on a READ's pages, it would bump late: after the
// lock that cached the pages went back, another client changed the file, and a read here sent
// a GETATTR (which the kernel would then discard, reading by the old size). So a caller may
// ask to be told when its notification is being written (send's `entered`): from then on the
// bump is a system call's first steps away. Those steps must be quick: a thread just started
// took 36 ms to get there on a loaded machine, long enough for the lock to go back and the
// other client to write. So a notifier of such writes keeps spare threads started and idle
// (the session's of pages: NOTIFY_THREADS_SPARE), each having made one write already (to
// /dev/null: the code of the write path is compiled once it ran).
//
// The libuv pool is not used: a blocked write there would take one of the threads the ops' file
// IO runs on (reader.ts says why that matters).
import { Worker } from 'node:worker_threads';

/** Notifications sent and not yet answered by the kernel; more are refused (ENOBUFS). */
export const NOTIFY_QUEUE_MAX = 4096;
/** Threads writing notifications at most (one each while none is free; then they queue). */
export const NOTIFY_THREADS_MAX = 8;
/** Idle threads a notifier of page invalidations keeps started and warm (while fewer than NOTIFY_THREADS_MAX run). */
export const NOTIFY_THREADS_SPARE = 2;

const WORKER_SOURCE = `
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const { closeSync, openSync, writeSync } = require('node:fs');
try {
  const fd = openSync('/dev/null', 'w');
  writeSync(fd, Buffer.alloc(1));
  closeSync(fd);
} catch {}
parentPort.on('message', (m) => {
  let code = null;
  if (m.entered) parentPort.postMessage({ id: m.id, entered: true });
  try {
    writeSync(workerData.fd, m.buf);
  } catch (e) {
    code = (e && e.code) || String(e);
  }
  parentPort.postMessage({ id: m.id, code });
});
`;

/** What the kernel said of one notification: null when it was applied, else the errno name of the failed write. */
export type NotifyResult = string | null;

interface Pending { resolve: (r: NotifyResult) => void; entered?: () => void; thread: Thread }
interface Thread { worker: Worker; outstanding: number }

export class Notifier {
  private readonly threads: Thread[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  /** `spare`: idle threads kept started (0: one is started by warm(), more only when none is free). */
  constructor(private readonly fd: number, private readonly spare = 0) {}

  /**
   * Writes one whole notification (header included); resolves with the kernel's answer.
   * ENOBUFS when too many wait. `entered` is called as its thread starts the write (not at all
   * when it is refused before).
   */
  send(message: Buffer, entered?: () => void): Promise<NotifyResult> {
    if (this.closed) return Promise.resolve('ENOTCONN');
    if (this.pending.size >= NOTIFY_QUEUE_MAX) return Promise.resolve('ENOBUFS');
    const id = this.nextId++;
    const thread = this.thread();
    const done = new Promise<NotifyResult>((resolve) => this.pending.set(id, { resolve, entered, thread }));
    thread.worker.postMessage({ id, buf: message, entered: entered !== undefined });
    return done;
  }

  /** Notifications still waiting for the kernel. */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * At the end of the connection: whatever still waits resolves ENOTCONN, and the threads go.
   * Resolves once they have: only then may the fd be closed (a write still blocked in the
   * kernel returns as the connection ends).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.resolve('ENOTCONN');
    this.pending.clear();
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  /** Threads started and idle. */
  get idle(): number {
    return this.threads.filter((t) => t.outstanding === 0).length;
  }

  /** Starts the spare threads (at least one) ahead of the first notification (a thread's start may take long on a busy machine). */
  warm(): void {
    this.keepSpares(Math.max(1, this.spare));
  }

  private keepSpares(n: number): void {
    while (!this.closed && this.idle < n && this.threads.length < NOTIFY_THREADS_MAX) this.start();
  }

  /**
   * A thread with nothing outstanding (spares are started again behind it), a new one while
   * there may be more, else the least busy.
   */
  private thread(): Thread {
    const free = this.threads.find((t) => t.outstanding === 0);
    const chosen = free ?? (this.threads.length < NOTIFY_THREADS_MAX ? this.start() : this.threads.reduce((a, b) => (b.outstanding < a.outstanding ? b : a)));
    chosen.outstanding++;
    this.keepSpares(this.spare);
    return chosen;
  }

  private start(): Thread {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd: this.fd } });
    // The mount keeps the process alive (reader.ts), not a notification on its way.
    w.unref();
    const thread: Thread = { worker: w, outstanding: 0 };
    w.on('message', (m: { id: number; code?: string | null; entered?: boolean }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.entered) {
        p.entered?.();
        return;
      }
      this.pending.delete(m.id);
      thread.outstanding--;
      p.resolve(m.code ?? null);
    });
    const fail = (why: string): void => {
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      for (const [id, p] of this.pending) {
        if (p.thread !== thread) continue;
        this.pending.delete(id);
        p.resolve(why);
      }
    };
    w.on('error', () => fail('EIO'));
    w.on('exit', () => fail('ENOTCONN'));
    this.threads.push(thread);
    return thread;
  }
}
