// A ptlrpc service: one target's request portal on one network interface. Requests arrive as
// LNet PUTs into a sink MD that matches every xid, shared by every target of the node on that
// portal (portal-share.ts routes each to its target); each is decoded and checked once, bound to
// its export, and dispatched by opcode to a handler; a ThreadGate bounds the handlers running at
// once to the service's "threads" (threads_max, adjustable while running), and the requests
// waiting for one to queueMax. Pings and opcodes marked high-priority (lock callbacks) have a
// gate of their own so that a full normal queue never delays them. A handler that answers
// synchronously is answered in the same turn that decoded its request (no promise, no
// subscription per request: on the small-RPC path those were most of the service's own cost).
// Replies go back as PUTs to the client's reply portal with the request's xid as match bits.
//
// Executed once: a modifying request runs inside a transaction of the ReplyStore, which
// writes the client's slot record (xid, transno, status, reply) in that same transaction. A
// resent request whose record exists gets that reply again, never a second execution; one
// that arrives while its original still runs waits for it.
//
// Recovery (recovery.ts): while the target's TargetRecovery is on, only the clients it expects
// may connect (others get EBUSY); their replays (MSG_REPLAY) are queued to it and run in
// transno order with the transno they had; their final ping (MSG_REQ_REPLAY_DONE) is answered
// when recovery ends; any other request waits for the end, except lock replays: a request
// flagged MSG_REQ_REPLAY_DONE whose handler takes lock replays (OpHandler.lockReplay: the
// LDLM_ENQUEUE of a lock the client held, marked so by Lustre's replay_one_lock) is queued to
// the recovery's lock phase, which runs once no client has requests left to replay (Lustre's
// lock replay queue, b=6063): the locks are granted again before anyone else asks. Slot
// records and client records are keyed by the service's slotPrefix and the client's UUID, so
// that two services of one target (ost and ost_io) keep apart the slots of one client's two
// imports.
import type { TargetProfile } from './profiles.js';
import { Subject, Subscription } from 'rxjs';
import { AdaptiveTimeout, defaultAtConfig, msToWireSeconds, type AdaptiveTimeoutConfig } from './at.js';
import { ConnectFlag, Errno, MsgFlag, MsgType, OBD_CONNECT_MULTIMODRPCS, Opcode, opcodeName } from './constants.js';
import { decodeConnectRequest, encodeConnectData, LUSTRE_VERSION_CODE } from './connect-wire.js';
import { PtlrpcError } from './errors.js';
import { Export, ExportTable } from './export.js';
import type { TargetRecovery } from './recovery.js';
import { MemoryReplyStore, type ReplyRecord, type ReplyStore, type ReplyTransaction } from './reply-store.js';
import { LprocfsStats } from './stats.js';
import { PortalShare } from './portal-share.js';
import { postMessage, type Network, type ProcessId, type PutEvent } from './transport.js';
import { encodeMessage, type PtlrpcBody } from './wire.js';

/** A request as a handler sees it: decoded, checked, bound to its export. */
export interface IncomingRequest {
  xid: bigint;
  opcode: number;
  body: PtlrpcBody;
  /** The operation's buffers (message buffers 1..n-1). */
  buffers: Buffer[];
  export: Export;
  peer: ProcessId;
  arrivalMs: number;
  /**
   * A replay's original reply (its first buffer), which the client appends to the request:
   * what the handler must redo alike (the FID it gave, the objects it chose).
   */
  replayOf?: Buffer;
}

export interface RequestContext<Tx extends ReplyTransaction> {
  /** The storage transaction of a modifying request: do its updates in it. */
  tx: Tx | undefined;
  /** Pulls the client's bulk write buffer (an LNet GET on the bulk portal). Do bulk IO before updating. */
  bulkGet(length: number): Promise<Buffer[]>;
  /** Pushes bulk read data into the client's sink (an LNet PUT on the bulk portal). */
  bulkPut(buffers: Buffer[]): Promise<void>;
}

export interface HandlerReply {
  status?: number;
  buffers?: Buffer[];
}

export interface OpHandler<Tx extends ReplyTransaction> {
  handle(request: IncomingRequest, context: RequestContext<Tx>): Promise<HandlerReply> | HandlerReply;
  /**
   * Modifying: runs once per (client, xid) in a transaction, gets a transno. A function decides
   * per request, for an opcode that is an update only sometimes (an LDLM_ENQUEUE with an open
   * intent is one; a plain lock enqueue is not).
   */
  modifying?: boolean | ((request: IncomingRequest) => boolean);
  /** Served by the high-priority pipeline (lock callbacks, pings). */
  highPriority?: boolean;
  /**
   * A modifying request's step before its transaction starts, for what may wait long (the
   * MDT's lock manager locks: a client may take up to the lock timeout to give a lock back, and
   * an open transaction holds up its whole txg). What it returns is called once the transaction
   * ended (before the reply); a throw answers the request with its status, nothing recorded.
   */
  prepare?(request: IncomingRequest): Promise<(() => void) | undefined>;
  /**
   * Takes lock replays: during recovery, a request of this opcode flagged MSG_REQ_REPLAY_DONE
   * runs in the recovery's lock phase instead of waiting for its end.
   */
  lockReplay?: boolean;
  /**
   * A modifying request's reply as recorded, for a resent copy (executed once: never run
   * again); the handler may amend what no longer holds (an enqueue's recorded lock that is
   * gone). Without it the recorded reply goes as it is.
   */
  reconstruct?(request: IncomingRequest, recorded: HandlerReply): HandlerReply;
}

/**
 * Fault injection, after Lustre's fail_loc (fail-points.ts backs it with the process's
 * registry): lose a request or a reply, pause or fail a request, stop the process between an
 * update and its reply or in the middle of a bulk.
 */
export interface ServiceFailLoc {
  dropRequest?(request: IncomingRequest): boolean;
  dropReply?(request: IncomingRequest): boolean;
  /** A promise that resolves once the request has waited, or false at once. */
  pauseRequest?(request: IncomingRequest): Promise<boolean> | false;
  /** The status to answer with instead of running the handler, or 0. */
  requestError?(request: IncomingRequest): number;
  /** Called after a modifying request's transaction, before its reply (may stop the process). */
  beforeReply?(request: IncomingRequest): void;
  /** true: the bulk does not start; a promise: it starts when resolved (false) or not at all (true). */
  bulk?(request: IncomingRequest, kind: 'get' | 'put'): Promise<boolean> | boolean;
  /** Called with a bulk write's data in hand, nothing applied yet (may stop the process). */
  afterBulk?(request: IncomingRequest): void;
}

/** Whether a request of `op` is an update, run once in a transaction. */
function modifies(op: OpHandler<ReplyTransaction>, request: IncomingRequest): boolean {
  return typeof op.modifying === 'function' ? op.modifying(request) : op.modifying === true;
}

/** The portals, opcodes and version (a TargetProfile) name the kind of target. */
export interface ServiceConfig<Tx extends ReplyTransaction> extends TargetProfile {
  /** Name in stats and logs: 'ost', 'mdt', 'mgs'. */
  name: string;
  targetUuid: string;
  ops: ReadonlyMap<number, OpHandler<Tx>>;
  /** Handlers running at once on the normal path (the service's threads). */
  threads?: number;
  /** Handlers running at once on the high-priority path. */
  hpThreads?: number;
  /** Requests waiting per path; beyond it new ones are dropped (the client resends). */
  queueMax?: number;
  /**
   * Count each request's opcode in its export's NID stats (exports/NID/stats). Targets whose
   * handlers keep their own per-export counters (the OST's and MDT's, as Lustre's obd-level
   * nid_stats) turn it off. Default true.
   */
  exportOpcodeStats?: boolean;
  maxRequestBytes?: number;
  /** Slots per client for modifying requests (ocd_maxmodrpcs). */
  maxModRpcs?: number;
  maxExports?: number;
  /** An export silent longer than this is evicted. */
  evictionTimeoutMs?: number;
  replyStore?: ReplyStore<Tx>;
  /** Keys this service's slot and client records in the (shared) reply store: '' or 'io:'. */
  slotPrefix?: string;
  /** The target's recovery after a restart; none: the service never recovers. */
  recovery?: TargetRecovery;
  at?: Partial<AdaptiveTimeoutConfig>;
  failLoc?: ServiceFailLoc;
  clock?: () => number;
}

export interface ServiceCounters {
  received: number;
  malformed: number;
  stale: number;
  queueFull: number;
  notConnected: number;
  wrongPeer: number;
  reconstructed: number;
  replayed: number;
  recoveryBusy: number;
  forgetFailed: number;
  resentWhileRunning: number;
  executed: number;
  evicted: number;
  replyFailed: number;
  bulkFailed: number;
}

/** A bulk transfer failed: the request is neither recorded nor answered; the client resends. */
class BulkFailure extends Error {}

/** The largest threads_max a service takes (Lustre's OSS_THREADS_MAX). */
export const SERVICE_THREADS_MAX = 512;

/**
 * Admits at most `limit` handlers at once, first come first served; the limit may change at any
 * time. Lowering it lets running handlers finish and admits no new one until fewer than the new
 * limit run; raising it admits waiting ones at once. A job admitted calls leave() when it ends.
 * The caller bounds the waiting jobs (Service.deliver drops past queueMax).
 */
class ThreadGate {
  #limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  #admitting = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get limit(): number {
    return this.#limit;
  }

  set limit(n: number) {
    this.#limit = n;
    this.#admit();
  }

  /** Starts `job` now if a handler may run, else once one may. */
  enter(job: () => void): void {
    if (this.#running < this.#limit && this.#waiting.length === 0) {
      this.#running++;
      job();
    } else {
      this.#waiting.push(job);
    }
  }

  leave(): void {
    this.#running--;
    this.#admit();
  }

  #admit(): void {
    // Jobs that end at once leave() from inside job(): the outer loop admits the next, so that a
    // long queue of synchronous handlers does not recurse.
    if (this.#admitting) return;
    this.#admitting = true;
    try {
      while (this.#running < this.#limit && this.#waiting.length > 0) {
        this.#running++;
        this.#waiting.shift()!();
      }
    } finally {
      this.#admitting = false;
    }
  }
}

/** A handler running this long is reported (notices$): something it waits for may be stuck. */
const SLOW_HANDLER_MS = 20_000;

export class Service<Tx extends ReplyTransaction = ReplyTransaction> {
  readonly name: string;
  readonly exports: ExportTable;
  readonly stats = new LprocfsStats();
  readonly counters: ServiceCounters = {
    received: 0, malformed: 0, stale: 0, queueFull: 0, notConnected: 0, wrongPeer: 0, reconstructed: 0, replayed: 0, recoveryBusy: 0, forgetFailed: 0,
    resentWhileRunning: 0, executed: 0, evicted: 0, replyFailed: 0, bulkFailed: 0,
  };
  /** Emits each export as it is evicted. */
  readonly evictions$ = new Subject<Export>();
  /** Emits each export its client disconnected, or replaced by connecting anew (a new instance). */
  readonly disconnects$ = new Subject<Export>();
  /**
   * Unusual events worth a line in the target's log: a request dropped without an answer (its
   * client resends), a resend that waits for its original, a handler running long.
   */
  readonly notices$ = new Subject<string>();

  readonly #ni: Network;
  readonly #config: Required<Omit<ServiceConfig<Tx>, 'failLoc' | 'at' | 'replyStore' | 'recovery'>>;
  readonly #recovery: TargetRecovery | undefined;
  /** Requests that arrived during recovery, delivered again when it ends. */
  #held: (() => void)[] = [];
  /** Replays queued to the recovery, by client key and xid. */
  readonly #queuedReplays = new Set<string>();
  readonly #failLoc: ServiceFailLoc;
  readonly #store: ReplyStore<Tx>;
  readonly #estimate: AdaptiveTimeout;
  readonly #share: PortalShare;
  readonly #normalGate: ThreadGate;
  readonly #hpGate: ThreadGate;
  readonly #subscriptions = new Subscription();
  readonly #sweepTimer: NodeJS.Timeout;
  #queuedNormal = 0;
  #queuedHp = 0;
  #active = 0;
  /** Requests whose handler runs, with when it started; each reported once if it runs long. */
  readonly #running = new Map<IncomingRequest, { startMs: number; reported: boolean }>();
  #stopped = false;
  #idle: (() => void) | undefined;

  constructor(ni: Network, config: ServiceConfig<Tx>) {
    this.#ni = ni;
    this.name = config.name;
    this.#config = {
      threads: 8, hpThreads: 2, queueMax: 1024, exportOpcodeStats: true, maxRequestBytes: 64 * 1024, maxModRpcs: 8,
      maxExports: 4096, evictionTimeoutMs: 30_000, clock: () => performance.now(), slotPrefix: '', ...config,
    };
    this.#recovery = config.recovery;
    this.#failLoc = config.failLoc ?? {};
    for (const [key, n] of [['threads', this.#config.threads], ['hpThreads', this.#config.hpThreads]] as const) {
      if (!Number.isInteger(n) || n < 1 || n > SERVICE_THREADS_MAX) throw new RangeError(`${key} ${n} is not an integer from 1 to ${SERVICE_THREADS_MAX}`);
    }
    this.#normalGate = new ThreadGate(this.#config.threads);
    this.#hpGate = new ThreadGate(this.#config.hpThreads);
    this.#store = config.replyStore ?? (new MemoryReplyStore() as unknown as ReplyStore<Tx>);
    this.#estimate = new AdaptiveTimeout(0, { ...defaultAtConfig, ...config.at });
    this.exports = new ExportTable(this.#config.maxExports);
    this.#share = PortalShare.join(ni, config.requestPortal, this.#config.maxRequestBytes, this);
    if (this.#recovery?.recovering) {
      const recovery = this.#recovery;
      this.#subscriptions.add(recovery.evictions$.subscribe((key) => this.#evictKey(key)));
      void recovery.done.then(() => {
        const held = this.#held;
        this.#held = [];
        for (const again of held) again();
      });
    }
    const sweepMs = Math.max(10, Math.floor(this.#config.evictionTimeoutMs / 4));
    this.#sweepTimer = setInterval(() => this.#evictSilent(), sweepMs);
    this.#sweepTimer.unref();
  }

  get replyStore(): ReplyStore<Tx> {
    return this.#store;
  }

  /** Handlers that may run at once on the normal path (threads_max). */
  get threadsMax(): number {
    return this.#normalGate.limit;
  }

  /** Changes threads_max while running (lctl set_param ost.OSS.ost_io.threads_max=N). */
  setThreadsMax(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > SERVICE_THREADS_MAX) {
      throw new RangeError(`threads_max ${n} is not an integer from 1 to ${SERVICE_THREADS_MAX}`);
    }
    this.#normalGate.limit = n;
  }

  /** The stats file (lctl get_param ost.*.stats style). */
  formatStats(): string {
    return this.stats.format();
  }

  /** Stops taking requests and waits for the handlers running. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#sweepTimer);
    this.#share.leave(this);
    this.#subscriptions.unsubscribe();
    if (this.#active > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
  }

  get targetUuid(): string {
    return this.#config.targetUuid;
  }

  get connectOpcode(): number {
    return this.#config.connectOpcode;
  }

  /** For the portal share: whether `handle` is one of this service's exports. */
  ownsHandle(handle: bigint): boolean {
    return this.exports.byHandle(handle) !== undefined;
  }

  /** For the portal share: a frame it could not route here (status 0: malformed, no answer). */
  refuse(e: PutEvent, body: PtlrpcBody | undefined, status: number): void {
    this.counters.received++;
    if (!body || status === 0) {
      this.counters.malformed++;
      return;
    }
    this.#sendError(e.initiator, e.matchBits, body, status);
  }

  /** For the portal share: a request of this service's target, decoded once. */
  deliver(e: PutEvent, body: PtlrpcBody, buffers: Buffer[]): void {
    const now = this.#config.clock();
    this.counters.received++;
    const opcode = body.opcode;
    const isConnect = opcode === this.#config.connectOpcode;
    let exp = isConnect ? undefined : this.exports.byHandle(body.handle);
    if (!isConnect && !exp) {
      this.counters.notConnected++;
      this.#sendError(e.initiator, e.matchBits, body, -Errno.ENOTCONN);
      return;
    }
    if (exp) {
      if (exp.peer.nid !== e.initiator.nid || exp.peer.pid !== e.initiator.pid) {
        // A handle is no password, but it belongs to the peer that connected: another peer
        // presenting it is refused, as if it had none.
        this.counters.wrongPeer++;
        this.#sendError(e.initiator, e.matchBits, body, -Errno.ENOTCONN);
        return;
      }
      if (body.connCnt < exp.connCnt) {
        // A request of an earlier connection: its resend on the current one supersedes it.
        this.counters.stale++;
        this.#notice(`${opcodeName(opcode)} xid ${e.matchBits} from ${exp.clientUuid} dropped: conn_cnt ${body.connCnt} is older than the export's ${exp.connCnt}`);
        return;
      }
      exp.lastSeenMs = now;
    }
    if (exp && this.#recovery?.recovering && this.#duringRecovery(e, body, buffers, exp, now)) return;
    // Until a connect is handled its export is unknown; the connect handler fills it in.
    exp ??= new Export('', 0n, body.connCnt, e.initiator, now);
    const request: IncomingRequest = { xid: e.matchBits, opcode, body, buffers, export: exp, peer: e.initiator, arrivalMs: now };
    const op = this.#config.ops.get(opcode) as OpHandler<ReplyTransaction> | undefined;
    const known = op || isConnect || opcode === this.#config.disconnectOpcode || opcode === Opcode.OBD_PING;
    if (!known) {
      this.#sendError(e.initiator, e.matchBits, body, -Errno.EOPNOTSUPP);
      return;
    }
    if (this.#failLoc.dropRequest?.(request)) return;
    const hp = opcode === Opcode.OBD_PING || op?.highPriority === true;
    if (hp ? this.#queuedHp >= this.#config.queueMax : this.#queuedNormal >= this.#config.queueMax) {
      this.counters.queueFull++;
      this.#notice(`${opcodeName(opcode)} xid ${e.matchBits} from ${exp.clientUuid || e.initiator.nid} dropped: ${this.#config.queueMax} requests already queued`);
      return;
    }
    // Invariant: at most queueMax requests wait per gate (checked above).
    if (hp) {
      this.#queuedHp++;
      this.#hpGate.enter(() => this.#run(request, op, true));
    } else {
      this.#queuedNormal++;
      this.#normalGate.enter(() => this.#run(request, op, false));
    }
  }

  /**
   * A request of a connected client while recovery runs: a replay is queued to the recovery,
   * the final ping answered when recovery ends, any other request but a ping held until then.
   * False: deliver it as usual.
   */
  #duringRecovery(e: PutEvent, body: PtlrpcBody, buffers: Buffer[], exp: Export, now: number): boolean {
    const recovery = this.#recovery!;
    const key = this.#key(exp.clientUuid);
    const request: IncomingRequest = { xid: e.matchBits, opcode: body.opcode, body, buffers, export: exp, peer: e.initiator, arrivalMs: now };
    if (body.opcode === Opcode.OBD_PING) {
      if (!(body.flags & MsgFlag.REQ_REPLAY_DONE)) return false;
      recovery.replayDone(key);
      void recovery.done.then(() => {
        if (this.exports.byHandle(exp.handle) === exp) this.#reply(request, 0, 0n, []);
        else this.#sendError(request.peer, request.xid, body, -Errno.ENOTCONN);
      });
      return true;
    }
    const op = this.#config.ops.get(body.opcode) as OpHandler<ReplyTransaction> | undefined;
    if (body.flags & MsgFlag.REPLAY && op && modifies(op, request)) {
      // The client sends a replay again while it waits its turn: the queued copy answers.
      const id = `${key} ${e.matchBits}`;
      if (this.#queuedReplays.has(id)) return true;
      this.#queuedReplays.add(id);
      this.counters.replayed++;
      if (buffers.length > 0) {
        request.buffers = buffers.slice(0, -1);
        request.replayOf = buffers[buffers.length - 1]!;
      }
      recovery.enqueue(key, body.transno, async () => {
        this.#active++;
        try {
          return { failed: (await this.#executeOnce(request, op, body.transno)) < 0 };
        } finally {
          this.#queuedReplays.delete(id);
          this.#active--;
          if (this.#active === 0 && this.#idle) this.#idle();
        }
      }, () => {
        this.#queuedReplays.delete(id);
        this.#sendError(request.peer, request.xid, body, -Errno.ENOTCONN);
      });
      return true;
    }
    if (body.flags & MsgFlag.REQ_REPLAY_DONE && op?.lockReplay) {
      this.#queueLockReplay(key, request, op);
      return true;
    }
    this.#held.push(() => this.deliver(e, body, buffers));
    return true;
  }

  /** A lock replay, run in the recovery's lock phase; sent again while it waits, the queued copy answers. */
  #queueLockReplay(key: string, request: IncomingRequest, op: OpHandler<ReplyTransaction>): void {
    const id = `${key} ${request.xid}`;
    if (this.#queuedReplays.has(id)) return;
    this.#queuedReplays.add(id);
    this.#recovery!.enqueueLock(key, async () => {
      this.#active++;
      try {
        await this.#execute(request, op);
      } finally {
        this.#queuedReplays.delete(id);
        this.#active--;
        if (this.#active === 0 && this.#idle) this.#idle();
      }
    }, () => {
      this.#queuedReplays.delete(id);
      this.#sendError(request.peer, request.xid, request.body, -Errno.ENOTCONN);
    });
  }

  /** The store key of a client's records on this service. */
  #key(clientUuid: string): string {
    return this.#config.slotPrefix + clientUuid;
  }

  /** Recovery evicted a participant: if it is one of ours, its export goes. */
  #evictKey(key: string): void {
    const prefix = this.#config.slotPrefix;
    if (!key.startsWith(prefix)) return;
    const exp = this.exports.byUuid(key.slice(prefix.length));
    if (exp) {
      this.counters.evicted++;
      this.#destroy(exp);
      this.evictions$.next(exp);
    } else this.#forget(key);
  }

  /** Drops a client's records; a failure (the device closing under us) is only counted. */
  #forget(key: string): void {
    void Promise.resolve().then(() => this.#store.forget(key)).catch(() => {
      this.counters.forgetFailed++;
    });
  }

  /** A request admitted by its gate: runs it, and leaves the gate when it is done. */
  #run(request: IncomingRequest, op: OpHandler<ReplyTransaction> | undefined, hp: boolean): void {
    if (hp) this.#queuedHp--;
    else this.#queuedNormal--;
    const start = this.#config.clock();
    this.stats.add('req_waittime', (start - request.arrivalMs) * 1000);
    this.stats.add('req_qdepth', hp ? this.#queuedHp : this.#queuedNormal, 'reqs');
    this.stats.add('req_active', this.#active + 1, 'reqs');
    this.#active++;
    this.#running.set(request, { startMs: start, reported: false });
    let pending: Promise<unknown> | void;
    try {
      pending = this.#dispatch(request, op);
    } catch (err) {
      this.#ran(request, start, hp);
      throw err;
    }
    if (!pending) {
      this.#ran(request, start, hp);
      return;
    }
    pending.then(() => this.#ran(request, start, hp), (err: unknown) => {
      this.#ran(request, start, hp);
      throw err;
    });
  }

  /** What a request does; a promise when it did not end at once. */
  #dispatch(request: IncomingRequest, op: OpHandler<ReplyTransaction> | undefined): Promise<unknown> | void {
    if (this.#stopped) return;
    const opcode = request.opcode;
    if (opcode === this.#config.connectOpcode) return this.#connect(request);
    if (opcode === this.#config.disconnectOpcode) return this.#disconnect(request);
    if (opcode === Opcode.OBD_PING) return this.#reply(request, 0, 0n, []);
    // fail_loc: a request paused, or answered with an error before its handler (nothing runs).
    const pause = this.#failLoc.pauseRequest?.(request);
    if (pause) return pause.then(() => this.#afterPause(request, op!));
    return this.#afterPause(request, op!);
  }

  #afterPause(request: IncomingRequest, op: OpHandler<ReplyTransaction>): Promise<unknown> | void {
    const status = this.#failLoc.requestError?.(request) ?? 0;
    if (status !== 0) return this.#reply(request, status, 0n, []);
    if (modifies(op, request)) return this.#executeOnce(request, op);
    return this.#execute(request, op);
  }

  /** A request's handler ended: the accounting, and its gate admits the next. */
  #ran(request: IncomingRequest, start: number, hp: boolean): void {
    this.#active--;
    this.#running.delete(request);
    const end = this.#config.clock();
    this.#estimate.measured(end - start, end);
    const name = opcodeName(request.opcode);
    this.stats.add(name, (end - start) * 1000);
    if (this.#config.exportOpcodeStats && request.export.handle !== 0n) request.export.stats.add(name, (end - start) * 1000);
    if (this.#active === 0 && this.#idle) this.#idle();
    (hp ? this.#hpGate : this.#normalGate).leave();
  }

  /** A handler that is not modifying; answered at once when it answers at once. */
  #execute(request: IncomingRequest, op: OpHandler<ReplyTransaction>): Promise<void> | void {
    let result: Promise<HandlerReply> | HandlerReply;
    try {
      result = op.handle(request, this.#context(request, undefined));
    } catch (err) {
      this.#replyFailure(request, err);
      return;
    }
    if (!isPromiseLike(result)) {
      this.#reply(request, result.status ?? 0, 0n, result.buffers ?? []);
      return;
    }
    return Promise.resolve(result).then(
      (r) => this.#reply(request, r.status ?? 0, 0n, r.buffers ?? []),
      (err: unknown) => this.#replyFailure(request, err),
    );
  }

  #replyFailure(request: IncomingRequest, err: unknown): void {
    if (err instanceof BulkFailure) return;
    this.#reply(request, statusOf(err), 0n, []);
  }

  /** Runs a modifying request once; resolves with the status it was answered with. */
  async #executeOnce(request: IncomingRequest, op: OpHandler<ReplyTransaction>, replayTransno?: bigint): Promise<number> {
    const exp = request.export;
    const tag = request.body.tag;
    if (tag > this.#config.maxModRpcs) {
      this.#reply(request, -Errno.EPROTO, 0n, []);
      return -Errno.EPROTO;
    }
    const running = exp.inflight.get(request.xid);
    if (running) {
      this.counters.resentWhileRunning++;
      this.#notice(`${opcodeName(request.opcode)} xid ${request.xid} from ${exp.clientUuid} resent while its original runs: it waits for it`);
      await running;
    }
    const key = this.#key(exp.clientUuid);
    const record = this.#store.lookup(key, tag);
    if (record && record.xid === request.xid) {
      this.counters.reconstructed++;
      const r = op.reconstruct ? op.reconstruct(request, { status: record.status, buffers: record.buffers }) : record;
      const status = r.status ?? 0;
      this.#reply(request, status, record.transno, r.buffers ?? []);
      return status;
    }
    if (record && record.xid > request.xid && replayTransno === undefined) {
      // An old duplicate: the client already had the reply and reused the slot.
      this.counters.stale++;
      this.#notice(`${opcodeName(request.opcode)} xid ${request.xid} from ${exp.clientUuid} dropped: slot ${tag} already holds the later xid ${record.xid}`);
      return 0;
    }
    if (running) return 0; // the original failed its bulk: the client resends again
    const done = this.#executeInTransaction(request, op, tag, replayTransno);
    exp.inflight.set(request.xid, done.then(() => undefined));
    try {
      return await done;
    } finally {
      exp.inflight.delete(request.xid);
    }
  }

  async #executeInTransaction(request: IncomingRequest, op: OpHandler<ReplyTransaction>, tag: number, replayTransno?: bigint): Promise<number> {
    const uuid = this.#key(request.export.clientUuid);
    let release: (() => void) | undefined;
    try {
      release = await op.prepare?.(request);
    } catch (err) {
      const status = statusOf(err);
      this.#reply(request, status, 0n, []);
      return status;
    }
    try {
      return await this.#runInTransaction(request, op, tag, uuid, replayTransno);
    } finally {
      release?.();
    }
  }

  async #runInTransaction(request: IncomingRequest, op: OpHandler<ReplyTransaction>, tag: number, uuid: string, replayTransno?: bigint): Promise<number> {
    const tx = await this.#store.begin(uuid, replayTransno);
    let status = 0;
    let buffers: Buffer[] = [];
    try {
      const result = await op.handle(request, this.#context(request, tx as Tx));
      status = result.status ?? 0;
      buffers = result.buffers ?? [];
    } catch (err) {
      if (err instanceof BulkFailure) {
        // Nothing was applied (handlers move bulk before updating): close the transaction
        // with a record the client's resend will not match.
        await this.#store.finish(tx, uuid, { tag, xid: 0n, transno: 0n, status: -Errno.EIO, buffers: [] });
        return -Errno.EIO;
      }
      status = statusOf(err);
    }
    // A positive status is an outcome, not a failure (LDLM's ELDLM_LOCK_ABORTED: an open intent
    // done without handing out a lock): the update stands and gets its transno.
    const transno = status >= 0 ? tx.transno : 0n;
    const record: ReplyRecord = { tag, xid: request.xid, transno, status, buffers };
    // The client's NID and the opcode go into an OSD transaction's log entry (lustre.log blame).
    (tx as { osdTx?: { annotate(info: Record<string, unknown>): unknown } }).osdTx
      ?.annotate({ nid: request.peer.nid, opc: opcodeName(request.opcode), client: request.export.clientUuid });
    await this.#store.finish(tx, uuid, record);
    this.counters.executed++;
    this.#failLoc.beforeReply?.(request);
    this.#reply(request, status, transno, buffers);
    return status;
  }

  #context(request: IncomingRequest, tx: Tx | undefined): RequestContext<Tx> {
    return new BulkContext(this.#ni, this.#config.bulkPortal, this.counters, this.#failLoc, request, tx);
  }

  async #connect(request: IncomingRequest): Promise<void> {
    let connect;
    try {
      connect = decodeConnectRequest(request.buffers);
    } catch {
      this.counters.malformed++;
      this.#sendError(request.peer, request.xid, request.body, -Errno.EPROTO);
      return;
    }
    if (connect.targetUuid !== this.#config.targetUuid) {
      this.#sendError(request.peer, request.xid, request.body, -Errno.ENODEV);
      return;
    }
    const now = this.#config.clock();
    const connCnt = request.body.connCnt;
    let exp = this.exports.byUuid(connect.clientUuid);
    let opFlags = ConnectFlag.REPLAYABLE;
    const reconnect = (request.body.opFlags & ConnectFlag.RECONNECT) !== 0;
    const key = this.#key(connect.clientUuid);
    const recovery = this.#recovery;
    if (recovery?.recovering) {
      if (!recovery.expects(key)) {
        // Lustre's answer to a client it does not know while recovering: come back later.
        this.counters.recoveryBusy++;
        this.#sendError(request.peer, request.xid, request.body, -Errno.EBUSY);
        return;
      }
      if (exp && connCnt < exp.connCnt) return;
      if (exp) {
        exp.connCnt = connCnt;
        exp.peer = request.peer;
        exp.lastSeenMs = now;
      } else {
        exp = this.exports.create(connect.clientUuid, connCnt, request.peer, now);
        if (!exp) {
          this.#sendError(request.peer, request.xid, request.body, -Errno.ENOMEM);
          return;
        }
      }
      recovery.connected(key);
      request.export = exp;
      this.#reply(request, 0, 0n, [this.#connectData(connect.data.connectFlags)], opFlags | ConnectFlag.RECONNECT | ConnectFlag.RECOVERING);
      return;
    }
    if (exp && reconnect && exp.handle === connect.handle) {
      if (connCnt < exp.connCnt) return; // an older connect overtaken by a newer one
      exp.connCnt = connCnt;
      exp.peer = request.peer;
      exp.lastSeenMs = now;
      opFlags |= ConnectFlag.RECONNECT;
    } else {
      const replaced = exp !== undefined;
      if (exp) {
        this.exports.remove(exp);
        this.disconnects$.next(exp);
      }
      exp = this.exports.create(connect.clientUuid, connCnt, request.peer, now);
      if (!exp) {
        if (replaced) this.#forget(key);
        this.#sendError(request.peer, request.xid, request.body, -Errno.ENOMEM);
        return;
      }
      // The client slot of last_rcvd, durable before the client is answered: a restart
      // expects it back, so that what it is told later (transnos, objects) is recovered. The
      // old connection's records go first: forgotten after the slot was found already there
      // (as #destroy forgets, a moment later), they took the slot with them, and a restart
      // did not expect the client (an MDT's OSP, reconnected after the MDT restarted, was then
      // evicted by the OST's next restart, and the objects it had handed out were lost).
      try {
        if (replaced) await this.#store.forget(key);
        await this.#store.addClient(key);
      } catch {
        this.exports.remove(exp);
        this.#sendError(request.peer, request.xid, request.body, -Errno.EIO);
        return;
      }
    }
    request.export = exp;
    this.#reply(request, 0, 0n, [this.#connectData(connect.data.connectFlags)], opFlags);
  }

  #connectData(clientFlags: bigint): Buffer {
    return encodeConnectData({
      connectFlags: clientFlags & OBD_CONNECT_MULTIMODRPCS,
      version: LUSTRE_VERSION_CODE, index: 0, brwSize: 1 << 20, transno: 0n, instance: 1,
      maxModRpcs: this.#config.maxModRpcs,
    });
  }

  async #disconnect(request: IncomingRequest): Promise<void> {
    this.#reply(request, 0, 0n, []);
    this.#destroy(request.export);
    this.disconnects$.next(request.export);
  }

  /**
   * Evicts one client (the lock manager's callback timer, an administrator): its export and
   * its records go as a silent client's do, evictions$ tells the target, and the reason is
   * logged (notices$). False when no such client is connected.
   */
  evict(clientUuid: string, reason: string): boolean {
    const exp = this.exports.byUuid(clientUuid);
    if (!exp) return false;
    this.counters.evicted++;
    this.#destroy(exp);
    if (this.notices$.observed) this.notices$.next(`${this.name}: evicting client ${clientUuid} at ${exp.peer.nid}: ${reason}`);
    this.evictions$.next(exp);
    return true;
  }

  #destroy(exp: Export): void {
    this.exports.remove(exp);
    this.#forget(this.#key(exp.clientUuid));
  }

  #notice(message: string): void {
    if (this.notices$.observed) this.notices$.next(`${this.name}: ${message}`);
  }

  /** Reports, once each, handlers that have run longer than SLOW_HANDLER_MS. */
  #reportSlow(now: number): void {
    for (const [request, run] of this.#running) {
      if (run.reported || now - run.startMs < SLOW_HANDLER_MS) continue;
      run.reported = true;
      this.#notice(`${opcodeName(request.opcode)} xid ${request.xid} from ${request.export.clientUuid || request.peer.nid} still running after ${Math.round((now - run.startMs) / 1000)} s`);
    }
  }

  #evictSilent(): void {
    const now = this.#config.clock();
    this.#reportSlow(now);
    for (const exp of this.exports.silent(now, this.#config.evictionTimeoutMs)) {
      this.counters.evicted++;
      this.#destroy(exp);
      this.evictions$.next(exp);
    }
  }

  #reply(request: IncomingRequest, status: number, transno: bigint, buffers: Buffer[], opFlags = 0): void {
    const exp = request.export;
    const now = this.#config.clock();
    if (this.#failLoc.dropReply?.(request)) return;
    // The fields straight to the encoder (it takes absent ones for zero): no body object made.
    this.#send(request.peer, request.xid, encodeMessage({
      handle: exp.handle, type: MsgType.REPLY, version: request.body.version, opcode: request.opcode,
      status, tag: request.body.tag, lastCommitted: this.#store.lastCommitted(), transno,
      opFlags, connCnt: exp.connCnt, timeout: msToWireSeconds(this.#estimate.estimateMs),
      serviceTime: msToWireSeconds(now - request.arrivalMs), flags: request.body.flags & MsgFlag.RESENT,
    }, buffers));
  }

  #sendError(peer: ProcessId, xid: bigint, request: PtlrpcBody, status: number): void {
    this.#send(peer, xid, encodeMessage({
      type: MsgType.ERR, version: request.version, opcode: request.opcode, status, tag: request.tag,
      lastCommitted: this.#store.lastCommitted(), connCnt: request.connCnt,
    }, []));
  }

  #send(peer: ProcessId, xid: bigint, message: Buffer): void {
    if (this.#stopped) return;
    postMessage(this.#ni, peer, this.#config.replyPortal, xid, message, (err: Error) => this.#replyFailed(peer, xid, err));
  }

  /**
   * Evicts every client at once (a forced umount): their exports and reply slots are dropped,
   * so a client that comes back is told it was evicted instead of being recovered.
   */
  async evictAll(): Promise<number> {
    const all = this.exports.list();
    const forgotten: Promise<void>[] = [];
    for (const exp of all) {
      this.counters.evicted++;
      this.exports.remove(exp);
      forgotten.push(Promise.resolve(this.#store.forget(this.#key(exp.clientUuid))));
      this.evictions$.next(exp);
    }
    await Promise.all(forgotten);
    return all.length;
  }

  /** The client times out and resends; the reply record answers it then. */
  #replyFailed(peer: ProcessId, xid: bigint, err: unknown): void {
    this.counters.replyFailed++;
    // The client resends when its attempt times out; a reply lost here is worth a line.
    this.#notice(`reply to xid ${xid} for ${peer.nid} (pid ${peer.pid}) not sent: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** What a handler may do beyond its buffers: its transaction and the request's bulk. */
class BulkContext<Tx extends ReplyTransaction> implements RequestContext<Tx> {
  constructor(
    private readonly ni: Network,
    private readonly portal: number,
    private readonly counters: ServiceCounters,
    private readonly failLoc: ServiceFailLoc,
    private readonly request: IncomingRequest,
    readonly tx: Tx | undefined,
  ) {}

  async bulkGet(length: number): Promise<Buffer[]> {
    await this.#injected('get');
    let data: Buffer[];
    try {
      data = await this.ni.get(this.request.peer, this.portal, this.request.body.mbits, length);
    } catch {
      this.counters.bulkFailed++;
      throw new BulkFailure(`bulk GET of xid ${this.request.xid} failed`);
    }
    this.failLoc.afterBulk?.(this.request);
    return data;
  }

  /** fail_loc: a bulk that never starts (the client times out and resends), or starts late. */
  async #injected(kind: 'get' | 'put'): Promise<void> {
    const drop = this.failLoc.bulk?.(this.request, kind);
    if (drop === true || (drop && (await drop))) {
      this.counters.bulkFailed++;
      throw new BulkFailure(`bulk ${kind.toUpperCase()} of xid ${this.request.xid} dropped (fail_loc)`);
    }
  }

  async bulkPut(buffers: Buffer[]): Promise<void> {
    await this.#injected('put');
    try {
      // As Lustre does, the reply waits for the bulk's ACK: without it, the small reply can
      // reach the client before the bulk data it announces.
      await this.ni.put(this.request.peer, this.portal, this.request.body.mbits, buffers, { ack: true });
    } catch {
      this.counters.bulkFailed++;
      throw new BulkFailure(`bulk PUT of xid ${this.request.xid} failed`);
    }
  }
}

function isPromiseLike<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}

function statusOf(err: unknown): number {
  if (err instanceof PtlrpcError && err.status !== undefined && err.status < 0) return err.status;
  return -Errno.EIO;
}
