// A FUSE session: a mount point whose requests this process answers with a FuseOps, speaking
// the kernel protocol over /dev/fuse directly (no libfuse, no native addon).
//
// Life: open /dev/fuse -> mount(8) with it as fd 3 -> requests read on this thread's event loop
// (or by reader threads; reader.ts) -> INIT negotiated -> requests dispatched to the ops, at
// most maxInFlight at once -> a reply written for each (writev of header and body,
// synchronously: a reply write never blocks) -> unmount() runs umount(8) in a child -> the
// reads fail ENODEV -> the fd is closed, `closed` resolves.
//
// Every request gets an answer: the op's, its errno when it throws an Error with a Node errno
// `code`, EIO for anything else (logged), and EIO when it has not answered after opTimeoutMs,
// so a caller on the mount point never waits forever on an op that hangs.
//
// The process that serves a mount must never wait on it synchronously: no *Sync fs call on a
// path inside it, and no child spawned with its cwd inside it (libuv waits for the child's exec
// synchronously, and the child's chdir waits for this process to answer): both deadlock, and
// only an abort through fusectl (abort()) frees them.
//
// Locks: when the ops serve them (ops.ts), INIT offers FUSE_POSIX_LOCKS and FUSE_FLOCK_LOCKS. A
// SETLKW may wait as long as the lock is held elsewhere, so it has no op timeout and gives its
// credit back at once (a waiter must not keep out the unlock that would end its wait); at most
// maxLockWaiters wait at once, more are answered ENOLCK. It ends by the op: granted, or EINTR
// when the kernel interrupts it (the caller got a signal or was killed).
//
// Cache invalidation: invalInode() and invalEntry() write notifications (notify.ts says from
// where it is safe to wait for them).
//
// Spinning: after a reply that leaves the session empty, the thread reads for the next request
// itself for a while (spin()), rather than sleeping in epoll until the kernel wakes it.
import { spawnSync } from 'node:child_process';
import { openSync, readFileSync, writeFileSync, writeSync, writevSync } from 'node:fs';
import { availableParallelism, constants as osConstants } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import pino, { type Logger } from 'pino';
import { errnoOf, serve, type ReplyBody } from './dispatch.js';
import { abortConnection, fuseMountAt, mountFuse, umountFuse } from './mount.js';
import { NOTIFY_THREADS_SPARE, Notifier } from './notify.js';
import { fuseError, servesFlockLocks, servesPosixLocks, type ConnectionInfo, type FuseOps, type RequestContext } from './ops.js';
import { READERS_DEFAULT, startLoopReader, startReaders, type OnRequest, type Readers } from './reader.js';
import {
  BodyReader, FUSE_KERNEL_VERSION, FUSE_MINOR, FUSE_NAME_MAX, IN_HEADER_BYTES, InitFlag, OUT_HEADER_BYTES, Opcode,
  decodeInHeader, decodeInitIn, encodeError, encodeInitOut, encodeNotifyInvalEntry, encodeNotifyInvalInode, outHeader,
  type InHeader,
} from './wire.js';

const MiB = 1024 * 1024;
const PAGE_BYTES = 4096;
/** The largest WRITE, in pages: 1 MiB, as Lustre's RPCs (fs.fuse.max_pages_limit defaults to 256). */
const MAX_PAGES_LIMIT = 256;
/** INTERRUPTs kept for requests not seen yet (see onInterrupt); the oldest go first. */
const EARLY_INTERRUPTS_MAX = 256;
/** The longest spin for the next request after a reply (spinMs; see spin()), and the shortest. */
export const SPIN_MS_DEFAULT = 0.15;
const SPIN_MS_MIN = 0.02;
/** The weight of the newest gap in their running average (1/8). */
const SPIN_GAP_WEIGHT = 8;

/** The kernel's cap on a connection's max_pages, read as it mounts one (on kernels that have it; 256 fixed before). */
const MAX_PAGES_SYSCTL = '/proc/sys/fs/fuse/max_pages_limit';

/**
 * Raises fs.fuse.max_pages_limit to `pages` when it is lower and this process may (root); never
 * lowers it. Under the default (256), a direct WRITE of 1 MiB from a buffer that does not start
 * a page (malloc's and Node's large buffers start 16 bytes into one) spans 257 pages and came
 * as two requests, of 1,048,560 bytes and of 16: writes at 370 MiB/s, against 660-870 with one.
 */
function raiseMaxPagesLimit(pages: number, log: Logger): void {
  try {
    const now = Number(readFileSync(MAX_PAGES_SYSCTL, 'utf8'));
    if (!(now < pages)) return;
    writeFileSync(MAX_PAGES_SYSCTL, String(pages));
    log.info(`fuse: fs.fuse.max_pages_limit raised from ${now} to ${pages}`);
  } catch (err) {
    log.debug({ err }, 'fuse: fs.fuse.max_pages_limit not raised');
  }
}

/**
 * INIT can only lower the readahead below the kernel's default (128 KiB); the mount's
 * backing-device setting raises it, so that sequential reads reach the ops in large requests.
 */
function setReadahead(major: number, minor: number, bytes: number, log: Logger): void {
  try {
    writeFileSync(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(Math.floor(bytes / 1024)));
  } catch (err) {
    log.debug({ err }, 'fuse: read_ahead_kb not set');
  }
}

export interface DebugEvent {
  dir: 'request' | 'reply';
  unique: bigint;
  opcode: number;
  nodeid?: number;
  /** Reply: 0 or the errno answered. The opcode of a reply is 0 when the request was unreadable. */
  errno?: number;
  bytes: number;
}

export interface SessionOptions {
  /** The source shown by mount and df (default 'fusets'). */
  fsName?: string;
  /** The type shown as fuse.SUBTYPE (default 'fusets'). */
  subtype?: string;
  /** Largest WRITE the kernel sends (default and maximum 1 MiB). */
  maxWriteBytes?: number;
  /** Readahead the kernel may do (default 1 MiB). */
  maxReadaheadBytes?: number;
  /** Default validity of attributes and of names, when the ops do not choose (default 1000 ms). */
  attrTimeoutMs?: number;
  entryTimeoutMs?: number;
  /** Let other users than the mounting one in (mount -o allow_other; default false). */
  allowOther?: boolean;
  /** Let the kernel check permissions from the mode bits (default true). */
  defaultPermissions?: boolean;
  /** An op not answered after this long answers EIO (default 60 s). */
  opTimeoutMs?: number;
  /**
   * Let the kernel cache writes and send them later, in page-cache-sized batches
   * (FUSE_WRITEBACK_CACHE; default false). write(2) then returns before the ops see the data, and
   * the kernel keeps mtime and size itself: right for a single-client file system, not for one
   * that others change behind this mount. Ops that open files must then allow reads on
   * write-only opens and ignore O_APPEND (ConnectionInfo.flags tells them).
   */
  writebackCache?: boolean;
  /**
   * Let the kernel check a file's attributes before reading its cached pages and drop them when
   * they changed (FUSE_AUTO_INVAL_DATA; default true). A file system that drops the page cache
   * at every open (close-to-open) and answers no attributes with a validity turns it off: with
   * it, every read costs a GETATTR.
   */
  autoInvalData?: boolean;
  /** Requests inside the session at once (default 64); the rest wait in the kernel. */
  maxInFlight?: number;
  /**
   * After a reply that leaves no request in the session, keep reading /dev/fuse for up to this
   * long before the event loop waits for the next (see spin(); the loop reader only). Default
   * SPIN_MS_DEFAULT where there are two CPUs or more, else 0 (off: the spinning thread would hold
   * the CPU the application needs to send its next request).
   */
  spinMs?: number;
  /** SETLKW requests waiting for their lock at once, outside maxInFlight (default 4096); more are answered ENOLCK. */
  maxLockWaiters?: number;
  /**
   * Where requests are read (reader.ts): 0 (the default) on the session's own event loop, with
   * a reader thread when Node cannot poll /dev/fuse; N > 0 in N reader threads.
   */
  readers?: number;
  /** Limit on waiting for INIT after mount(8) succeeded (default 10 s). */
  initTimeoutMs?: number;
  logger?: Logger;
  /** Called for every request and reply (tests, tracing). */
  debug?: (e: DebugEvent) => void;
}

export interface SessionStats {
  requests: number;
  errors: number;
  timeouts: number;
  malformed: number;
  /** Ops abandoned at their timeout and not finished since. */
  abandoned: number;
  largestWriteBytes: number;
  /** INTERRUPTs that found their request still running (its signal was aborted). */
  interrupts: number;
  /** Spins after a reply (spin()), and those that read the next request. */
  spins: number;
  spinHits: number;
  /** SETLKW requests waiting now. */
  lockWaiters: number;
  /** Notifications the kernel applied, and those that found nothing cached (ENOENT). */
  invalidations: number;
  invalidationsUncached: number;
}

/** An op being served: its abort, and when it is answered EIO (performance.now() ms; none for a lock waiter). */
interface InFlight { abort: LazyAbort; deadline: number | undefined; expire: () => void }

/**
 * An op's AbortController, made only when the op looks at its signal or is aborted: few ever
 * are, and making one took about 8 us a request (3% of the session thread's time in a loop of
 * creates).
 */
class LazyAbort {
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason?: unknown): void {
    if (this.#controller) this.#controller.abort(reason);
    else if (!this.#aborted) {
      this.#aborted = true;
      this.#reason = reason;
    }
  }
}

export class FuseSession {
  readonly mountpoint: string;
  readonly stats: SessionStats = {
    requests: 0, errors: 0, timeouts: 0, malformed: 0, abandoned: 0, largestWriteBytes: 0, interrupts: 0, spins: 0, spinHits: 0, lockWaiters: 0,
    invalidations: 0, invalidationsUncached: 0,
  };
  /** Resolves when the kernel connection has ended and the fd is closed. */
  readonly closed: Promise<void>;
  conn: ConnectionInfo | undefined;
  connectionId: number | undefined;

  private fd: number;
  private fdOpen = true;
  private readers!: Readers;
  /** The longest spin for the next request after a reply (spin()); 0: none. */
  get spinMs(): number { return this.o.spinMs; }
  set spinMs(ms: number) { this.o.spinMs = ms; }
  /** Where this session reads its requests: 'loop' (its own thread) or 'threads'. */
  get readerKind(): Readers['kind'] { return this.readers.kind; }
  private readonly inFlight = new Map<bigint, InFlight>();
  /** When the last reply left no request in the session (undefined: one is in). */
  private idleSince: number | undefined;
  /** The gaps between such a reply and the next request, averaged (spin()). */
  private gapMs = 0;
  private spinQueued = false;
  /**
   * Answers the ops past their deadline: one timer for the session, looking every quarter of the
   * op timeout (1 s at most), rather than a timer set and cleared for every request (about 3 us
   * each, a request's largest fixed cost after its reply's write). An op thus gets EIO between
   * opTimeoutMs and a quarter more.
   */
  private sweeper: NodeJS.Timeout | undefined;
  private readonly earlyInterrupts = new Set<bigint>();
  private readonly notifier: Notifier;
  /**
   * Attribute-only INVAL_INODE (offset < 0) on a thread of their own: the kernel drops the
   * attributes without locking a page or a directory, so they never wait behind a notification
   * blocked on pages (the other thread's), and a caller may await them from anywhere.
   */
  private readonly attrNotifier: Notifier;
  /**
   * INVAL_INODE of pages on threads of a third pool: one blocked on a page waits for nothing of
   * the names' threads, and a page invalidation never queues behind a name's blocked on a
   * directory (llite waits for them while a lock goes back: until done when no READ or WRITE of
   * the file runs, else until entered; spare threads make `entered` close to the kernel's bump).
   */
  private readonly pageNotifier: Notifier;
  private readonly log: Logger;
  private readonly o: Required<Omit<SessionOptions, 'logger' | 'debug'>> & Pick<SessionOptions, 'debug'>;
  private initDone!: (err?: Error) => void;
  private readonly initialized: Promise<void>;
  private resolveClosed!: () => void;
  private destroyed = false;
  private readonly exitHandler = (): void => this.emergencyUnmount();

  /**
   * The pages a request may carry (INIT's max_pages): a WRITE's max_write bytes, and one page
   * more for a writer's buffer that does not start a page (a direct WRITE carries its pages).
   */
  private get maxPages(): number {
    return Math.ceil(this.o.maxWriteBytes / PAGE_BYTES) + 1;
  }

  private constructor(mountpoint: string, private readonly ops: FuseOps, opts: SessionOptions) {
    this.mountpoint = mountpoint;
    this.log = opts.logger ?? pino({ name: 'fuse', level: 'warn' });
    this.o = {
      fsName: opts.fsName ?? 'fusets', subtype: opts.subtype ?? 'fusets',
      maxWriteBytes: Math.min(opts.maxWriteBytes ?? MiB, MAX_PAGES_LIMIT * PAGE_BYTES),
      maxReadaheadBytes: opts.maxReadaheadBytes ?? MiB,
      attrTimeoutMs: opts.attrTimeoutMs ?? 1000, entryTimeoutMs: opts.entryTimeoutMs ?? 1000,
      allowOther: opts.allowOther ?? false, defaultPermissions: opts.defaultPermissions ?? true,
      opTimeoutMs: opts.opTimeoutMs ?? 60_000, maxInFlight: opts.maxInFlight ?? 64, maxLockWaiters: opts.maxLockWaiters ?? 4096,
      writebackCache: opts.writebackCache ?? false, autoInvalData: opts.autoInvalData ?? true,
      readers: opts.readers ?? READERS_DEFAULT, initTimeoutMs: opts.initTimeoutMs ?? 10_000, debug: opts.debug,
      spinMs: opts.spinMs ?? (availableParallelism() >= 2 ? SPIN_MS_DEFAULT : 0),
    };
    this.fd = openSync('/dev/fuse', 'r+');
    this.notifier = new Notifier(this.fd);
    this.attrNotifier = new Notifier(this.fd);
    this.pageNotifier = new Notifier(this.fd, NOTIFY_THREADS_SPARE);
    // Waited for while a lock is given back: their threads are up before the first one.
    this.attrNotifier.warm();
    this.pageNotifier.warm();
    this.initialized = new Promise((res, rej) => { this.initDone = (e) => (e ? rej(e) : res()); });
    this.initialized.catch(() => {});
    this.closed = new Promise((r) => { this.resolveClosed = r; });
  }

  /** Mounts `ops` at `mountpoint` (an existing directory) and resolves once INIT is answered. */
  static async mount(mountpoint: string, ops: FuseOps, opts: SessionOptions = {}): Promise<FuseSession> {
    const s = new FuseSession(resolvePath(mountpoint), ops, opts);
    await s.start();
    return s;
  }

  private async start(): Promise<void> {
    // The buffer holds the largest request: a WRITE header and body plus max_write of data.
    const bufferBytes = this.o.maxWriteBytes + PAGE_BYTES;
    const onRequest: OnRequest = (b, release) => this.onRequest(b, release);
    const loop = this.o.readers === 0 ? startLoopReader(this.fd, { bufferBytes, maxInFlight: this.o.maxInFlight, onRequest }) : undefined;
    if (typeof loop === 'string') this.log.warn({ reason: loop }, 'fuse requests read by a reader thread, not on the event loop');
    this.readers = typeof loop === 'object' ? loop : startReaders(this.fd, {
      count: Math.max(1, this.o.readers), bufferBytes, maxInFlight: this.o.maxInFlight, onRequest,
    });
    void this.readers.ended.then((reason) => this.onEnded(reason));
    raiseMaxPagesLimit(this.maxPages, this.log);
    try {
      await mountFuse({
        fd: this.fd, mountpoint: this.mountpoint, fsName: this.o.fsName, subtype: this.o.subtype,
        allowOther: this.o.allowOther, defaultPermissions: this.o.defaultPermissions, maxReadBytes: this.o.maxWriteBytes,
      });
    } catch (err) {
      // The fd is closed once the readers are gone (onEnded), never under a reader's read.
      this.readers.stop();
      await this.closed;
      throw err;
    }
    this.readers.begin();
    const m = fuseMountAt(this.mountpoint);
    if (m) this.connectionId = (m.major << 20) | m.minor;
    process.on('exit', this.exitHandler);
    const timer = setTimeout(() => this.initDone(new Error(`no FUSE INIT within ${this.o.initTimeoutMs} ms`)), this.o.initTimeoutMs);
    try {
      await this.initialized;
    } catch (err) {
      this.abort();
      await umountFuse(this.mountpoint, true).catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
    // After INIT, which applies min(kernel default, its answer) to the same setting.
    if (m) setReadahead(m.major, m.minor, this.o.maxReadaheadBytes, this.log);
  }

  /**
   * Unmounts with umount(8) in a child process; resolves when the session has ended. Throws
   * EBUSY while the mount is in use; lazy (umount -l) detaches it anyway, and the session then
   * ends when its last user has left.
   */
  async unmount(opts: { lazy?: boolean } = {}): Promise<void> {
    if (this.fdOpen && fuseMountAt(this.mountpoint)) await umountFuse(this.mountpoint, opts.lazy ?? false);
    await this.closed;
  }

  /** Aborts the connection (fusectl): everything waiting fails at once. The mount point stays until unmounted. */
  abort(): boolean {
    return this.connectionId !== undefined && abortConnection(this.connectionId);
  }

  /**
   * Drops what the kernel caches of a file (FUSE_NOTIFY_INVAL_INODE): its attributes, and its
   * cached pages from `offset` for `length` bytes (length 0: to the end of the file; offset < 0:
   * the attributes only). The next stat or read asks the ops again, even within the validity
   * they gave and for a file opened with keepCache. Resolves true when done, false when the
   * kernel had nothing of the file cached (or the session has ended): neither is an error.
   * Safe from anywhere, but see notify.ts before awaiting it inside an op. `entered` is called
   * as the notification is being written: the kernel's attr_version bump is then under way,
   * though dropping the pages may wait for a READ (notify.ts).
   */
  invalInode(nodeid: number, offset = 0, length = 0, entered?: () => void): Promise<boolean> {
    if (!Number.isSafeInteger(nodeid) || nodeid < 1 || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length)) {
      return Promise.reject(fuseError('EINVAL', `invalInode(${nodeid}, ${offset}, ${length}): not a nodeid and a range`));
    }
    return this.notify(encodeNotifyInvalInode(nodeid, offset, length), offset < 0 ? this.attrNotifier : this.pageNotifier, entered);
  }

  /**
   * Drops the attributes the kernel caches of an inode (FUSE_NOTIFY_INVAL_INODE, offset -1),
   * written at once from this thread: true when done, false when the kernel had not cached it
   * (or the session has ended). Only for a directory, or a file the kernel holds a reference to
   * while a request of this mount runs: such an invalidation waits for no request (the kernel
   * takes no lock a request holds, and no eviction, which may wait for a WRITE under writeback,
   * can start), so it needs none of notify.ts's threads, whose round trip made a third of
   * what notifications cost an unlink. Otherwise invalInode, from a thread.
   */
  invalAttrsNow(nodeid: number): boolean {
    if (!Number.isSafeInteger(nodeid) || nodeid < 1) throw fuseError('EINVAL', `invalAttrsNow(${nodeid}): not a nodeid`);
    if (!this.fdOpen) return false;
    try {
      writeSync(this.fd, encodeNotifyInvalInode(nodeid, -1, 0));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        this.stats.invalidationsUncached++;
        return false;
      }
      if (code === 'ENODEV' || code === 'ENOTCONN') return false;
      throw fuseError(code ?? 'EIO', `FUSE notification refused by the kernel: ${code}`);
    }
    this.stats.invalidations++;
    return true;
  }

  /**
   * Drops the kernel's cached name `name` in directory `parent` (FUSE_NOTIFY_INVAL_ENTRY), a
   * negative one included: the next use of the name looks it up again, even within its entry
   * validity. Resolves true when done, false when the kernel had not cached it (or the session
   * has ended). Safe from anywhere, but see notify.ts before awaiting it inside an op.
   */
  invalEntry(parent: number, name: string): Promise<boolean> {
    const bytes = Buffer.from(name);
    if (!Number.isSafeInteger(parent) || parent < 1 || bytes.length === 0 || name.includes('/') || bytes.includes(0)) {
      return Promise.reject(fuseError('EINVAL', `invalEntry(${parent}, ${JSON.stringify(name)}): not a directory and a name`));
    }
    if (bytes.length > FUSE_NAME_MAX) return Promise.reject(fuseError('ENAMETOOLONG'));
    return this.notify(encodeNotifyInvalEntry(parent, bytes));
  }

  private async notify(message: Buffer, via: Notifier = this.notifier, entered?: () => void): Promise<boolean> {
    if (!this.fdOpen) return false;
    const code = await via.send(message, entered);
    if (code === null) {
      this.stats.invalidations++;
      return true;
    }
    // ENOENT: not cached. ENODEV, ENOTCONN: the connection has ended, and its caches with it.
    if (code === 'ENOENT') this.stats.invalidationsUncached++;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENOTCONN') return false;
    throw fuseError(code, `FUSE notification refused by the kernel: ${code}`);
  }

  /** Run at process exit while still mounted: abort, then detach, so neither the exit nor the mount point hangs. */
  private emergencyUnmount(): void {
    if (!this.fdOpen) return;
    this.abort();
    // Synchronous here on purpose: the process is exiting. The connection is aborted first, so
    // umount's look-up of the mount point fails at once instead of waiting for this process.
    spawnSync('umount', ['-l', this.mountpoint], { stdio: 'ignore', timeout: 5000 });
  }

  private onEnded(reason: string): void {
    if (reason !== 'ENODEV' && reason !== 'stopped') this.log.error({ reason, mountpoint: this.mountpoint }, 'fuse readers ended');
    process.off('exit', this.exitHandler);
    clearInterval(this.sweeper);
    for (const f of this.inFlight.values()) f.abort.abort();
    this.inFlight.clear();
    this.initDone(new Error(`FUSE connection ended before INIT (${reason})`));
    // The fd is closed once the notifiers' threads are gone: a notification one still had
    // queued must never be written to whatever file reuses the fd's number.
    void Promise.all([this.notifier.close(), this.attrNotifier.close(), this.pageNotifier.close()])
      .then(() => this.closeFd())
      .then(() => this.runDestroy())
      .finally(() => this.resolveClosed());
  }

  private closeFd(): void {
    if (!this.fdOpen) return;
    this.fdOpen = false;
    this.readers.close();
  }

  private async runDestroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      await this.ops.destroy?.();
    } catch (err) {
      this.log.error({ err }, 'fuse destroy failed');
    }
  }

  private write(unique: bigint, errno: number, body: ReplyBody, opcode = 0): void {
    if (!this.fdOpen) return;
    let len = OUT_HEADER_BYTES;
    for (const b of body) len += b.length;
    const pieces = errno === 0 ? [outHeader(len, 0, unique), ...body] : [encodeError(unique, errno)];
    try {
      writevSync(this.fd, pieces);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: the kernel dropped the request (interrupted, or its caller was killed).
      // ENODEV: the connection is gone. Neither is ours to fix.
      if (code !== 'ENOENT' && code !== 'ENODEV') this.log.error({ err, unique: String(unique) }, 'fuse reply write failed');
    }
    this.o.debug?.({ dir: 'reply', unique, opcode, errno, bytes: errno === 0 ? len : OUT_HEADER_BYTES });
  }

  /** A request from a reader; release() once nothing reads buf any more (it may be a reader's slot). */
  private onRequest(buf: Buffer, release: () => void): void {
    if (this.handleRequest(buf, release)) release();
  }

  /** Handles a request; true when done with its bytes, false when dispatched (the op releases them). */
  private handleRequest(buf: Buffer, release: () => void): boolean {
    this.stats.requests++;
    if (this.idleSince !== undefined) {
      this.gapMs += (performance.now() - this.idleSince - this.gapMs) / SPIN_GAP_WEIGHT;
      this.idleSince = undefined;
    }
    let h: InHeader;
    try {
      h = decodeInHeader(buf);
    } catch (err) {
      this.malformed(buf.length >= 16 ? buf.readBigUInt64LE(8) : undefined, err);
      this.readers.credit();
      return true;
    }
    this.o.debug?.({ dir: 'request', unique: h.unique, opcode: h.opcode, nodeid: h.nodeid, bytes: buf.length });
    const body = buf.subarray(IN_HEADER_BYTES);
    switch (h.opcode) {
      case Opcode.INIT: this.guard(h, () => this.onInit(h, body)); return true;
      case Opcode.FORGET: this.guard(h, () => this.onForget(h, body), false); return true;
      case Opcode.BATCH_FORGET: this.guard(h, () => this.onBatchForget(body), false); return true;
      case Opcode.INTERRUPT: this.guard(h, () => this.onInterrupt(body), false); return true;
      case Opcode.DESTROY:
        void this.runDestroy().then(() => { this.write(h.unique, 0, [], h.opcode); this.readers.credit(); });
        return true;
      default:
        if (h.opcode === Opcode.WRITE && body.length >= 40) {
          this.stats.largestWriteBytes = Math.max(this.stats.largestWriteBytes, body.readUInt32LE(16));
        }
        this.dispatch(h, body, release);
        return false;
    }
  }

  /** Runs a session-level handler; a malformed body is answered EIO (when the opcode has replies). */
  private guard(h: InHeader, fn: () => void, replies = true): void {
    let threw = false;
    try {
      fn();
    } catch (err) {
      threw = true;
      this.malformed(replies ? h.unique : undefined, err);
    }
    // INIT gives its credit back itself once answered (ops.init may be asynchronous).
    if (h.opcode !== Opcode.INIT || threw) this.readers.credit();
  }

  private malformed(unique: bigint | undefined, err: unknown): void {
    this.stats.malformed++;
    this.log.warn({ err: String(err), unique: unique === undefined ? undefined : String(unique) }, 'fuse: malformed request');
    if (unique !== undefined && unique !== 0n) this.write(unique, osConstants.errno.EIO, []);
  }

  private onInit(h: InHeader, body: Buffer): void {
    const init = decodeInitIn(body);
    if (init.major !== FUSE_KERNEL_VERSION) {
      // A newer major: answer with ours and expect a new INIT. An older one: unsupported.
      if (init.major > FUSE_KERNEL_VERSION) {
        this.write(h.unique, 0, [encodeInitOut({ major: FUSE_KERNEL_VERSION, minor: FUSE_MINOR, maxReadahead: 0, flags: 0, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0 })], h.opcode);
      } else {
        this.write(h.unique, osConstants.errno.EPROTO, [], h.opcode);
        this.initDone(new Error(`FUSE kernel protocol ${init.major}.${init.minor} is too old`));
      }
      this.readers.credit();
      return;
    }
    const want = InitFlag.ASYNC_READ | InitFlag.ATOMIC_O_TRUNC | InitFlag.BIG_WRITES | InitFlag.MAX_PAGES
      | InitFlag.PARALLEL_DIROPS | (this.o.autoInvalData ? InitFlag.AUTO_INVAL_DATA : 0) | (this.o.writebackCache ? InitFlag.WRITEBACK_CACHE : 0)
      | (servesPosixLocks(this.ops) ? InitFlag.POSIX_LOCKS : 0) | (servesFlockLocks(this.ops) ? InitFlag.FLOCK_LOCKS : 0);
    const flags = init.flags & want;
    const maxPages = this.maxPages;
    const conn: ConnectionInfo = {
      major: FUSE_KERNEL_VERSION, minor: Math.min(init.minor, FUSE_MINOR), flags, maxPages,
      maxWrite: this.o.maxWriteBytes, maxReadahead: Math.min(init.maxReadahead, this.o.maxReadaheadBytes),
    };
    this.conn = conn;
    void Promise.resolve()
      .then(() => this.ops.init?.(conn))
      .then(() => {
        const maxBackground = Math.min(this.o.maxInFlight, 0xffff);
        this.write(h.unique, 0, [encodeInitOut({
          major: conn.major, minor: conn.minor, maxReadahead: conn.maxReadahead, flags,
          maxBackground, congestionThreshold: Math.floor((maxBackground * 3) / 4),
          maxWrite: conn.maxWrite, timeGran: 1, maxPages: (flags & InitFlag.MAX_PAGES) ? maxPages : 0,
        })], h.opcode);
        this.initDone();
      }, (err: unknown) => {
        this.log.error({ err }, 'fuse: ops.init failed');
        this.write(h.unique, errnoOf(err).errno, [], h.opcode);
        this.initDone(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => this.readers.credit());
  }

  private forget(nodeid: number, nlookup: number): void {
    try {
      this.ops.forget?.(nodeid, nlookup);
    } catch (err) {
      this.log.error({ err, nodeid }, 'fuse: forget failed');
    }
  }

  private onForget(h: InHeader, body: Buffer): void {
    this.forget(h.nodeid, new BodyReader(body, 'FORGET').struct(8).u64(0));
  }

  private onBatchForget(body: Buffer): void {
    const r = new BodyReader(body, 'BATCH_FORGET').struct(8);
    const count = r.u32(0);
    if (body.length < 8 + count * 16) throw new Error(`BATCH_FORGET of ${count} carries ${body.length} bytes`);
    for (let i = 0; i < count; i++) this.forget(r.u64(8 + i * 16), r.u64(16 + i * 16));
  }

  /** Best effort: the op's signal is aborted; an op that heeds it throws (EINTR), others finish normally. */
  private onInterrupt(body: Buffer): void {
    const target = new BodyReader(body, 'INTERRUPT').struct(8).big(0);
    const f = this.inFlight.get(target);
    if (f) {
      this.interrupt(f);
      return;
    }
    // Already answered, or not seen yet: with more than one reader, a request and its
    // INTERRUPT may reach this thread in either order, and a SETLKW whose INTERRUPT was lost
    // would wait forever (it has no op timeout). The kernel never reuses a unique, so
    // remembering an answered one costs only its slot.
    if (this.earlyInterrupts.size >= EARLY_INTERRUPTS_MAX) this.earlyInterrupts.delete(this.earlyInterrupts.values().next().value!);
    this.earlyInterrupts.add(target);
  }

  private interrupt(f: InFlight): void {
    this.stats.interrupts++;
    f.abort.abort(Object.assign(new Error('interrupted'), { code: 'EINTR' }));
  }

  private startSweeper(): NodeJS.Timeout {
    const every = Math.max(1, Math.min(1000, Math.ceil(this.o.opTimeoutMs / 4)));
    return setInterval(() => {
      const now = performance.now();
      for (const f of [...this.inFlight.values()]) if (f.deadline !== undefined && f.deadline <= now) f.expire();
    }, every).unref();
  }

  /**
   * A reply left no request in the session: an application calling synchronously (a tool in C,
   * node:fs's *Sync) sends its next one within microseconds of getting this answer, and waiting
   * for it in epoll costs this thread a wake-up (on the 2-CPU virtual machine measured, a GETXATTR
   * that llite answers itself took 83-93 us a round trip, 48-61 us with the spin). So, once the
   * microtasks of this turn are done (setImmediate), the reader tries for the next request
   * itself, for up to twice the recent gaps between a reply and the next request (at least
   * SPIN_MS_MIN, at most spinMs). While those gaps are longer than spinMs (an application
   * computing between calls, an idle mount) the thread does not spin at all: a gap is measured
   * whether a spin or the event loop caught its request.
   */
  private spin(): void {
    this.idleSince = performance.now();
    if (this.o.spinMs <= 0 || this.spinQueued || this.gapMs > this.o.spinMs || !this.readers.poll) return;
    this.spinQueued = true;
    setImmediate(() => {
      this.spinQueued = false;
      if (this.inFlight.size !== 0 || !this.fdOpen) return;
      this.stats.spins++;
      if (this.readers.poll!(Math.min(this.o.spinMs, Math.max(SPIN_MS_MIN, 2 * this.gapMs)))) this.stats.spinHits++;
    });
  }

  /** Runs the op; release() once it settled (even after a timeout answered for it: it may still read body). */
  private dispatch(h: InHeader, body: Buffer, release: () => void): void {
    const abort = new LazyAbort();
    const ctx: RequestContext = { uid: h.uid, gid: h.gid, pid: h.pid, unique: h.unique, get signal() { return abort.signal; } };
    // A lock waiter gives its credit back now and waits without a timeout (see the top of the file).
    const waiter = h.opcode === Opcode.SETLKW;
    if (waiter) {
      this.readers.credit();
      if (this.stats.lockWaiters >= this.o.maxLockWaiters) {
        this.stats.errors++;
        this.write(h.unique, osConstants.errno.ENOLCK, [], h.opcode);
        release();
        return;
      }
      this.stats.lockWaiters++;
    }
    let answered = false;
    const finish = (errno: number, reply: ReplyBody): void => {
      if (answered) return;
      answered = true;
      this.inFlight.delete(h.unique);
      this.write(h.unique, errno, reply, h.opcode);
      if (waiter) this.stats.lockWaiters--;
      else this.readers.credit();
      if (this.inFlight.size === 0) this.spin();
    };
    const expire = (): void => {
      this.stats.timeouts++;
      this.stats.abandoned++;
      this.log.warn({ opcode: h.opcode, nodeid: h.nodeid, unique: String(h.unique), ms: this.o.opTimeoutMs }, 'fuse: op timed out, answered EIO');
      abort.abort(Object.assign(new Error('op timed out'), { code: 'ETIMEDOUT' }));
      finish(osConstants.errno.EIO, []);
    };
    const f: InFlight = { abort, deadline: waiter ? undefined : performance.now() + this.o.opTimeoutMs, expire };
    this.sweeper ??= this.startSweeper();
    this.inFlight.set(h.unique, f);
    if (this.earlyInterrupts.delete(h.unique)) this.interrupt(f);
    serve(this.ops, h, body, ctx, this.o).then(
      (reply) => {
        if (answered) this.stats.abandoned--;
        finish(0, reply);
        release();
      },
      (err: unknown) => {
        if (answered) { this.stats.abandoned--; release(); return; }
        const { errno, known } = errnoOf(err);
        if (!known || (err as { code?: unknown }).code === 'EPROTO') {
          if ((err as { name?: unknown }).name === 'WireError') this.stats.malformed++;
          this.log.error({ err, opcode: h.opcode, nodeid: h.nodeid }, 'fuse: op failed, answered EIO');
        }
        this.stats.errors++;
        finish((err as { name?: unknown }).name === 'WireError' ? osConstants.errno.EIO : errno, []);
        release();
      },
    );
  }
}

