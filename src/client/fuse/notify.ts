// Notifications written to /dev/fuse from a thread of their own.
//
// A notification (wire.ts: unique 0, error = the notify code) is answered by the write() itself,
// and that write can block: FUSE_NOTIFY_INVAL_ENTRY takes the parent directory's lock, which the
// kernel holds while a LOOKUP, CREATE, MKDIR, UNLINK, RENAME, ... in that directory waits for our
// reply; FUSE_NOTIFY_INVAL_INODE locks the pages it drops, which a READ waiting for our reply
// holds, and under the writeback cache it first writes dirty pages back, as WRITE requests to us.
// Written on the session's thread, such a write would stop the very thread that has to answer:
// a deadlock. So the writes run in one worker thread, one after another, and each resolves a
// promise on the session's thread when the kernel has answered it. A notification that blocks
// then waits only for the reply that frees it, which the session's thread is free to write.
//
// The rule that remains for the file system: never wait for a notification (await its promise)
// inside the op of a request that the notification waits for (an INVAL_ENTRY of a name in the
// directory of a running LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR or RENAME;
// an INVAL_INODE of a file whose READ or WRITE is running; an INVAL_ENTRY of the name of a file
// whose SETATTR or RENAME is running). Fired from such an op without waiting, it completes once
// the op has answered; from outside any request (a lock callback from a server), it is always
// safe. Notifications also queue behind a blocked one: they are written in the order sent.
//
// The libuv pool is not used: a blocked write there would take one of the threads the ops' file
// IO runs on (reader.ts says why that matters).
import { Worker } from 'node:worker_threads';

/** Notifications sent and not yet answered by the kernel; more are refused (ENOBUFS). */
export const NOTIFY_QUEUE_MAX = 4096;

const WORKER_SOURCE = `
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const { writeSync } = require('node:fs');
parentPort.on('message', (m) => {
  let code = null;
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

interface Pending { resolve: (r: NotifyResult) => void }

export class Notifier {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly fd: number) {}

  /** Writes one whole notification (header included); resolves with the kernel's answer. ENOBUFS when too many wait. */
  send(message: Buffer): Promise<NotifyResult> {
    if (this.closed) return Promise.resolve('ENOTCONN');
    if (this.pending.size >= NOTIFY_QUEUE_MAX) return Promise.resolve('ENOBUFS');
    const id = this.nextId++;
    const done = new Promise<NotifyResult>((resolve) => this.pending.set(id, { resolve }));
    this.start().postMessage({ id, buf: message });
    return done;
  }

  /** Notifications still waiting for the kernel. */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * At the end of the connection: whatever still waits resolves ENOTCONN, and the thread goes.
   * Resolves once it has: only then may the fd be closed (a write still blocked in the kernel
   * returns as the connection ends).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.resolve('ENOTCONN');
    this.pending.clear();
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  /** Starts the thread ahead of the first notification (a thread's start may take long on a busy machine). */
  warm(): void {
    if (!this.closed) this.start();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd: this.fd } });
    // The mount keeps the process alive (reader.ts), not a notification on its way.
    w.unref();
    w.on('message', (m: { id: number; code: string | null }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      p.resolve(m.code);
    });
    const fail = (why: string): void => {
      for (const p of this.pending.values()) p.resolve(why);
      this.pending.clear();
      this.worker = undefined;
    };
    w.on('error', () => fail('EIO'));
    w.on('exit', () => { if (this.worker === w) fail('ENOTCONN'); });
    this.worker = w;
    return w;
  }
}
