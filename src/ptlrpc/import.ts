// The client side of a connection to one target: an import, with Lustre's states
//   new -> connecting -> full            first connect
//   full -> disconnected -> connecting -> recover -> full     timeout, lost connection
//                                      -> evicted -> full     the server no longer knew us
//   * -> closed                                                disconnect
//   connecting -> replay -> full      the server restarted and is recovering (RECOVERING)
// In 'replay' the import sends every request of its replay list in transno order, one at a
// time, each with MSG_REPLAY, its transno, slot and xid, and the first buffer of its reply
// appended (so that the server can redo it alike: the same FID, the same objects); then a
// run of the replay steps (addReplayStep: the lock clients replay their locks, each request
// flagged MSG_REQ_REPLAY_DONE as Lustre's replay_one_lock does); then a
// ping with MSG_REQ_REPLAY_DONE | MSG_LOCK_REPLAY_DONE, whose reply comes when the server's
// recovery ends; then what was in flight is resent. A server that restarts again meanwhile
// makes the import connect again and replay from the start of what is left.
//
// Every request has an xid, unique on the network interface, and its reply comes back as a
// PUT with that xid as match bits into a sink MD attached before the request leaves. A
// request whose reply does not come within its adaptive timeout marks the connection lost:
// the import reconnects and resends every request in flight with the same xid and MSG_RESENT,
// so that the server answers from its reply record rather than executing twice. Each request
// also has an overall deadline: the caller always gets a reply or a typed error.
// Modifying requests hold a tag (slot) while in flight; after their reply they stay in the
// replay list until a reply's last_committed reaches their transno.
import type { TargetProfile } from './profiles.js';
import { BehaviorSubject, Subscription } from 'rxjs';
import { AdaptiveTimeout, defaultAtConfig, est2timeout, msToWireSeconds, type AdaptiveTimeoutConfig } from './at.js';
import {
  ConnectFlag, Errno, MsgFlag, MsgType, OBD_CONNECT_AT, OBD_CONNECT_FULL20, OBD_CONNECT_MULTIMODRPCS,
  OBD_CONNECT_VERSION, Opcode, opcodeName, PTLRPC_MSG_VERSION,
} from './constants.js';
import { decodeConnectData, encodeConnectRequest, LUSTRE_VERSION_CODE } from './connect-wire.js';
import { PtlrpcError, remoteError } from './errors.js';
import { nextXid, ReplayList, TagSlots } from './import-parts.js';
import { importFailLoc } from './fail-points.js';
import { LprocfsStats } from './stats.js';
import { portalEvents, postMessage, type MdHandle, type MdSpec, type Network, type ProcessId, type PutEvent } from './transport.js';
import { decodeMessage, encodeMessage, type PtlrpcBody } from './wire.js';

export type ImportState = 'new' | 'connecting' | 'full' | 'disconnected' | 'replay' | 'recover' | 'evicted' | 'closed';

/**
 * Sends one request of a replay step (flagged MSG_REQ_REPLAY_DONE) while the import replays:
 * sent again while the server still recovers, until its answer; a server gone again makes it
 * throw (then the import connects again and replays from the start).
 */
export type ReplaySend = (opcode: number, buffers: Buffer[]) => Promise<Reply>;
/** Something to replay after the requests and before the final ping (an LdlmClient's locks). */
export type ReplayStep = (send: ReplaySend) => Promise<void>;

export interface ImportFailLoc {
  /** Lose this reply as if the network had. */
  dropReply?(xid: bigint, opcode: number): boolean;
}

/** The portals, opcodes and version (a TargetProfile) name the kind of target. */
export interface ImportConfig extends TargetProfile {
  target: ProcessId;
  targetUuid: string;
  clientUuid: string;
  /** Requests on the wire at once (Lustre's max_rpcs_in_flight). */
  maxRpcsInFlight?: number;
  /** Modifying requests on the wire at once, at most what the server allows. */
  maxModRpcs?: number;
  /** Requests waiting for a slot or a connection; beyond it request() fails with ENOBUFS. */
  queueMax?: number;
  /** Uncommitted requests kept for replay. */
  replayMax?: number;
  maxReplyBytes?: number;
  /** A ping goes out when nothing else was sent for this long; 0 turns the pinger off. */
  pingIntervalMs?: number;
  /** The longest a request may take, resends included, before it fails with ETIMEDOUT. */
  requestDeadlineMs?: number;
  /** The longest connect() keeps trying. */
  connectDeadlineMs?: number;
  /** How long the final ping of a replay may wait for the server's recovery to end. */
  recoveryDeadlineMs?: number;
  /** Longest pause between two reconnect attempts. */
  reconnectBackoffMaxMs?: number;
  /** The first round-trip estimate, before anything was measured. */
  initialEstimateMs?: number;
  at?: Partial<AdaptiveTimeoutConfig>;
  jobid?: string;
  failLoc?: ImportFailLoc;
}

export interface RequestOptions {
  /** Executed once by the server, with a tag and a transno. */
  modifying?: boolean;
  /**
   * The reply buffer a replay of this request carries (default 0), for the server to redo the
   * update alike: an LDLM_ENQUEUE with an open intent keeps its intent's reply (buffer 1), not
   * its ldlm_reply.
   */
  replayReply?: number;
  /** Data the server pulls with a GET on the bulk portal (a bulk write). */
  bulkWrite?: Buffer[];
  /** Bytes the server may push with a PUT on the bulk portal (a bulk read). */
  bulkRead?: number;
  deadlineMs?: number;
  /**
   * Sent ahead of the queue and beyond maxRpcsInFlight: a lock cancel, which the server may
   * need before it can answer the requests in flight (they wait for the lock's conflicts).
   */
  urgent?: boolean;
}

export interface Reply {
  xid: bigint;
  status: number;
  transno: bigint;
  lastCommitted: bigint;
  body: PtlrpcBody;
  buffers: Buffer[];
  /** Bulk read data, when asked for. */
  bulk?: Buffer[];
}

export interface ImportCounters {
  sent: number;
  resent: number;
  replies: number;
  timeouts: number;
  reconnects: number;
  evictions: number;
  malformedReplies: number;
  /** Requests replayed to a recovering server. */
  replayed: number;
}

interface ClientRequest {
  xid: bigint;
  opcode: number;
  buffers: Buffer[];
  options: RequestOptions;
  control: boolean;
  tag: number;
  attempts: number;
  sentAtMs: number;
  replyMd: MdHandle | undefined;
  bulkMd: MdHandle | undefined;
  bulkData: Buffer[] | undefined;
  /** When the current attempt counts as lost (0: no attempt on the wire). */
  attemptDeadline: number;
  /** When the request fails with ETIMEDOUT, resends included. */
  deadlineAt: number;
  deadlineMs: number;
  /** pb_flags beyond RESENT (MSG_REPLAY, MSG_REQ_REPLAY_DONE), and a replay's transno. */
  flags: number;
  transno: bigint;
  /** The slot a replay held originally (not taken from the pool: never given back). */
  replayTag: number;
  /** What became of its attempts, for the error that says it got no reply. */
  answers: { refused: number; sendFailed: number; lastSendError: string };
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

export class Import {
  readonly state$: BehaviorSubject<ImportState>;
  readonly counters: ImportCounters = { sent: 0, resent: 0, replies: 0, timeouts: 0, reconnects: 0, evictions: 0, malformedReplies: 0, replayed: 0 };
  readonly replayList: ReplayList;
  /**
   * What the client's mdc.*.stats and osc.*.stats show (Lustre's obd_svc_stats of the import's
   * device): req_waittime (send to reply, usecs), req_active (requests on the wire at each send,
   * reqs), one counter per opcode replied, named as the server names its own (ptlrpc's
   * ll_opcode2str), and the bytes of each OST_WRITE and OST_READ bulk (write_bytes, read_bytes).
   */
  readonly stats = new LprocfsStats();

  readonly #ni: Network;
  readonly #c: Required<Omit<ImportConfig, 'at' | 'failLoc' | 'jobid'>> & Pick<ImportConfig, 'failLoc' | 'jobid'>;
  readonly #at: AdaptiveTimeoutConfig;
  readonly #rtt: AdaptiveTimeout;
  readonly #tags: TagSlots;
  /** Requests on the wire (or awaiting a resend), in xid order. */
  readonly #sent = new Map<bigint, ClientRequest>();
  readonly #waiting: ClientRequest[] = [];
  readonly #subscriptions = new Subscription();
  #pinger: NodeJS.Timeout | undefined;
  /**
   * One timer checks every request's attempt and deadline (as Lustre's ptlrpc_expired_set
   * does), instead of two timers per request.
   */
  readonly #sweeper: NodeJS.Timeout;
  #handle = 0n;
  #connCnt = 0;
  #lastCommitted = 0n;
  #lastXid = 0n;
  #lastSentMs = 0;
  #inFlight = 0;
  #recovering: Promise<void> | undefined;
  readonly #replaySteps = new Set<ReplayStep>();
  /** The reply buffer every attempt posts, and what its requests tell the server of it. */
  readonly #replySink: MdSpec;
  readonly #encodeOptions: { repsize: number };

  private constructor(ni: Network, config: ImportConfig) {
    this.#ni = ni;
    this.#c = {
      maxRpcsInFlight: 8, maxModRpcs: 8, queueMax: 4096, replayMax: 65536, maxReplyBytes: 64 * 1024,
      pingIntervalMs: 5000, requestDeadlineMs: 60_000, connectDeadlineMs: 30_000, recoveryDeadlineMs: 900_000,
      reconnectBackoffMaxMs: 2000, initialEstimateMs: 1000, failLoc: importFailLoc(), ...config,
    };
    this.#at = { ...defaultAtConfig, ...config.at };
    this.#rtt = new AdaptiveTimeout(this.#c.initialEstimateMs, this.#at);
    this.#tags = new TagSlots(this.#c.maxModRpcs);
    this.#replySink = { kind: 'sink', maxLength: this.#c.maxReplyBytes, once: true };
    this.#encodeOptions = { repsize: this.#c.maxReplyBytes };
    this.replayList = new ReplayList(this.#c.replayMax);
    this.state$ = new BehaviorSubject<ImportState>('new');
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(5, Math.min(50, Math.floor(this.#at.minMs / 2))));
    this.#subscriptions.add(portalEvents(ni, config.replyPortal).subscribe((e) => this.#onReply(e)));
    if (config.bulkPortal !== config.replyPortal) {
      this.#subscriptions.add(portalEvents(ni, config.bulkPortal).subscribe((e) => this.#onBulk(e)));
    }
  }

  /** Connects to the target; resolves once the import is full, or fails with a typed error. */
  static async connect(ni: Network, config: ImportConfig): Promise<Import> {
    const imp = new Import(ni, config);
    try {
      await imp.#connectUntil(performance.now() + imp.#c.connectDeadlineMs, true);
    } catch (err) {
      imp.#close(err as Error);
      throw err;
    }
    imp.#startPinger();
    return imp;
  }

  get state(): ImportState {
    return this.state$.value;
  }

  get handle(): bigint {
    return this.#handle;
  }

  get targetUuid(): string {
    return this.#c.targetUuid;
  }

  /** The NID requests go to (Lustre's current_connection). */
  get targetNid(): string {
    return this.#c.target.nid;
  }

  get connCnt(): number {
    return this.#connCnt;
  }

  get lastCommitted(): bigint {
    return this.#lastCommitted;
  }

  /** The current request timeout, from the adaptive estimate. */
  get timeoutMs(): number {
    return Math.min(this.#at.maxMs, est2timeout(this.#rtt.estimateMs, this.#at.extraMs));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sends one request; resolves with its reply or fails with a PtlrpcError. */
  request(opcode: number, buffers: Buffer[] = [], options: RequestOptions = {}): Promise<Reply> {
    if (this.state === 'closed') return Promise.reject(new PtlrpcError('ESHUTDOWN', `import to ${this.#c.targetUuid} is closed`));
    if (this.#waiting.length >= this.#c.queueMax) {
      return Promise.reject(new PtlrpcError('ENOBUFS', `${this.#waiting.length} requests already wait for ${this.#c.targetUuid}`));
    }
    return new Promise<Reply>((resolve, reject) => {
      const req = this.#newRequest(opcode, buffers, options, false, resolve, reject);
      req.deadlineMs = options.deadlineMs ?? this.#c.requestDeadlineMs;
      req.deadlineAt = performance.now() + req.deadlineMs;
      if (options.urgent) this.#waiting.unshift(req);
      else this.#waiting.push(req);
      this.#pump();
    });
  }

  /**
   * Adds a step to every replay, run after the requests are replayed and before the final ping
   * (Lustre's ldlm_replay_locks); steps run one after another. Returns its removal.
   */
  addReplayStep(step: ReplayStep): () => void {
    this.#replaySteps.add(step);
    return () => void this.#replaySteps.delete(step);
  }

  /** OBD_PING: proves the connection and keeps the export alive. */
  async ping(): Promise<void> {
    await this.request(Opcode.OBD_PING);
  }

  /** Acts as if the connection was lost: reconnect and resend what is in flight. */
  forceReconnect(): void {
    this.#connectionLost();
  }

  /** Disconnects cleanly: every request still waiting fails with ESHUTDOWN. */
  async disconnect(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'full') {
      try {
        await this.#control(this.#c.disconnectOpcode, [], this.timeoutMs);
      } catch {
        // The server evicts us in time anyway.
      }
    }
    this.#close(new PtlrpcError('ESHUTDOWN', `import to ${this.#c.targetUuid} was disconnected`));
  }

  #newRequest(opcode: number, buffers: Buffer[], options: RequestOptions, control: boolean,
    resolve: (r: Reply) => void, reject: (e: Error) => void): ClientRequest {
    return {
      xid: 0n, opcode, buffers, options, control, tag: 0, attempts: 0, sentAtMs: 0, replyMd: undefined,
      bulkMd: undefined, bulkData: undefined, attemptDeadline: 0, deadlineAt: Number.POSITIVE_INFINITY, deadlineMs: 0,
      flags: 0, transno: 0n, replayTag: 0, answers: { refused: 0, sendFailed: 0, lastSendError: '' }, resolve, reject,
    };
  }

  #pump(): void {
    while (this.state === 'full' && this.#waiting.length > 0 && (this.#inFlight < this.#c.maxRpcsInFlight || this.#waiting[0]!.options.urgent)) {
      const req = this.#waiting[0]!;
      if (req.options.modifying) {
        const tag = this.#tags.take();
        if (tag === undefined) return;
        req.tag = tag;
      }
      this.#waiting.shift();
      req.xid = nextXid(this.#ni);
      this.#inFlight++;
      this.#sent.set(req.xid, req);
      this.#transmit(req);
    }
  }

  #transmit(req: ClientRequest): void {
    const ni = this.#ni;
    const { replyPortal, bulkPortal } = this.#c;
    // Every attempt posts its reply buffer (and a bulk sink) anew, as Lustre's ptl_send_rpc does:
    // the previous one may be gone without an event. A 'once' MD is unlinked when a message
    // matches it, and a reply whose sender died mid-payload (a server killed while answering)
    // never arrives: kept, the dead MD would make every later reply miss, and the request
    // would wait out its deadline however many times it is resent.
    req.replyMd?.unlink();
    req.replyMd = ni.attach(replyPortal, { matchBits: req.xid }, this.#replySink);
    const bulk = req.options.bulkWrite ?? (req.options.bulkRead !== undefined ? req.options.bulkRead : undefined);
    if (bulk !== undefined && !Array.isArray(bulk)) {
      req.bulkMd?.unlink();
      req.bulkMd = undefined;
    }
    if (bulk !== undefined && !req.bulkMd) {
      req.bulkMd = Array.isArray(bulk)
        ? ni.attach(bulkPortal, { matchBits: req.xid }, { kind: 'source', buffers: bulk })
        : ni.attach(bulkPortal, { matchBits: req.xid }, { kind: 'sink', maxLength: bulk, once: true });
    }
    const timeoutMs = this.timeoutMs;
    // The fields straight to the encoder (it takes absent ones for zero): no body object made.
    const message = encodeMessage({
      handle: this.#handle, type: MsgType.REQUEST, version: this.#c.targetVersion | PTLRPC_MSG_VERSION,
      opcode: req.opcode, lastXid: this.#lastRepliedXid(), tag: req.replayTag || req.tag, connCnt: this.#connCnt,
      timeout: Math.max(1, msToWireSeconds(timeoutMs)), flags: (req.attempts > 0 ? MsgFlag.RESENT : 0) | req.flags, transno: req.transno,
      opFlags: req.control && req.opcode === this.#c.connectOpcode ? this.#connectOpFlags() : 0,
      mbits: bulk !== undefined ? req.xid : 0n, jobid: this.#c.jobid ?? '',
    }, req.buffers, this.#encodeOptions);
    if (req.attempts > 0) this.counters.resent++;
    req.attempts++;
    this.counters.sent++;
    // Counted at each send, as Lustre's ptlrpc_lprocfs_rpc_sent does; #sent holds this one already.
    this.stats.add('req_active', this.#sent.size, 'reqs');
    req.sentAtMs = performance.now();
    this.#lastSentMs = req.sentAtMs;
    req.attemptDeadline = req.sentAtMs + timeoutMs;
    if (!this.#sweeper.hasRef()) this.#sweeper.ref();
    // A connect attempt that cannot be sent fails on its own attempt deadline.
    postMessage(ni, this.#c.target, this.#c.requestPortal, req.xid, message, (err: Error) => {
      req.answers.sendFailed++;
      req.answers.lastSendError = err.message;
      this.#connectionLost();
    });
  }

  #connectOpFlags(): number {
    return this.#handle !== 0n ? ConnectFlag.RECONNECT : ConnectFlag.INITIAL;
  }

  /** Highest xid replied with no lower one unreplied (pb_last_xid). */
  #lastRepliedXid(): bigint {
    for (const xid of this.#sent.keys()) return xid - 1n;
    return this.#lastXid;
  }

  #sweep(): void {
    const now = performance.now();
    for (const req of this.#sent.values()) {
      if (now >= req.deadlineAt) this.#fail(req, this.#deadlineError(req));
      else if (req.attemptDeadline !== 0 && now >= req.attemptDeadline) {
        req.attemptDeadline = 0;
        this.#expired(req);
      } else if (req.attemptDeadline === 0 && !req.control && this.state === 'full') {
        // Expired while the import was not full and left without a resend: resend it now.
        try {
          this.#transmit(req);
        } catch (err) {
          this.#fail(req, err as Error); // the network interface is gone
        }
      }
    }
    for (let i = 0; i < this.#waiting.length; i++) {
      const req = this.#waiting[i]!;
      if (now >= req.deadlineAt) {
        this.#fail(req, this.#deadlineError(req));
        i--;
      }
    }
    // An idle import must not keep the process alive; one with requests pending must.
    if (this.#sent.size === 0 && this.#waiting.length === 0) this.#sweeper.unref();
  }

  #deadlineError(req: ClientRequest): PtlrpcError {
    const { refused, sendFailed, lastSendError } = req.answers;
    const where = this.#waiting.includes(req)
      ? 'never sent'
      : `${req.attempts} attempt(s), the last ${Math.round(performance.now() - req.sentAtMs)} ms ago` +
        `${refused > 0 ? `, ${refused} answered ENOTCONN` : ''}${sendFailed > 0 ? `, ${sendFailed} not sent (${lastSendError})` : ''}` +
        `${req.replyMd ? '' : ', no reply buffer posted'}`;
    return new PtlrpcError('ETIMEDOUT', `${opcodeLabel(req.opcode)} to ${this.#c.targetUuid} got no reply within ${req.deadlineMs} ms (${where}; import ${this.state}, ${this.counters.reconnects} reconnects)`);
  }

  #expired(req: ClientRequest): void {
    if (!this.#sent.has(req.xid)) return;
    this.counters.timeouts++;
    if (req.control) {
      this.#finish(req);
      req.reject(new PtlrpcError('ETIMEDOUT', `${opcodeLabel(req.opcode)} to ${this.#c.targetUuid} timed out`));
      return;
    }
    this.#connectionLost();
  }

  #onReply(e: PutEvent): void {
    const req = this.#sent.get(e.matchBits);
    if (!req || req.replyMd?.id !== e.md.id) return;
    req.replyMd = undefined; // a 'once' MD: it is gone now
    if (this.#c.failLoc?.dropReply?.(req.xid, req.opcode)) return;
    let body: PtlrpcBody;
    let buffers: Buffer[];
    try {
      const msg = decodeMessage(e.payload);
      body = msg.body;
      buffers = msg.buffers;
      if (body.type === MsgType.REQUEST || body.opcode !== req.opcode) throw new Error('not our reply');
    } catch {
      this.counters.malformedReplies++;
      return; // the attempt timer resends
    }
    if (body.status === -Errno.ENOTCONN && !req.control) {
      // The server has no export for our handle: reconnect; the request is resent then.
      req.answers.refused++;
      this.#connectionLost();
      return;
    }
    const now = performance.now();
    this.counters.replies++;
    this.#countReply(req, (now - req.sentAtMs) * 1000);
    // A held final ping (recovery) says nothing of the round trip.
    if (req.attempts === 1 && req.flags === 0) this.#rtt.measured(Math.max(now - req.sentAtMs, body.timeout * 1000), now);
    // A connect reply's last_committed is taken by #connectOnce, once it knows whether the
    // server still knew us (an eviction voids what it says of our older transnos).
    if (req.opcode !== this.#c.connectOpcode) this.#commit(body.lastCommitted);
    this.#finish(req);
    // A positive status is an outcome, not a failure (ELDLM_LOCK_ABORTED): the update stands.
    if (req.options.modifying && body.status >= 0 && body.transno > this.#lastCommitted) {
      // The reply buffer is copied: it is a slice of what the socket read, and kept until the
      // commit it would pin the whole read slab.
      const kept = buffers[req.options.replayReply ?? 0];
      this.replayList.add({
        xid: req.xid, transno: body.transno, opcode: req.opcode, tag: req.tag, buffers: req.buffers,
        reply: kept ? Buffer.from(kept) : Buffer.alloc(0),
        ...(req.options.bulkWrite && { bulk: req.options.bulkWrite }),
      });
    }
    if (req.xid > this.#lastXid) this.#lastXid = req.xid;
    const reply: Reply = {
      xid: req.xid, status: body.status, transno: body.transno, lastCommitted: body.lastCommitted, body, buffers,
      ...(req.bulkData ? { bulk: req.bulkData } : {}),
    };
    if (body.status < 0) req.reject(remoteError(body.status, `${opcodeLabel(req.opcode)} xid ${req.xid}`));
    else req.resolve(reply);
    this.#pump();
  }

  /** A reply's figures in the import's stats (its latency since the last attempt was sent). */
  #countReply(req: ClientRequest, waitUs: number): void {
    this.stats.add('req_waittime', waitUs);
    this.stats.add(opcodeName(req.opcode), waitUs);
    if (req.opcode === Opcode.OST_WRITE && req.options.bulkWrite) this.stats.add('write_bytes', bytesOf(req.options.bulkWrite), 'bytes');
    else if (req.opcode === Opcode.OST_READ && req.bulkData) this.stats.add('read_bytes', bytesOf(req.bulkData), 'bytes');
  }

  #onBulk(e: PutEvent): void {
    const req = this.#sent.get(e.matchBits);
    if (!req || req.bulkMd?.id !== e.md.id) return;
    req.bulkData = e.payload;
    req.bulkMd = undefined; // a 'once' sink: a resend attaches a new one
  }

  #commit(lastCommitted: bigint): void {
    if (lastCommitted <= this.#lastCommitted) return;
    this.#lastCommitted = lastCommitted;
    this.replayList.commit(lastCommitted);
  }

  /** Takes a request off the wire: timers, MDs, its tag and its place in flight. */
  #finish(req: ClientRequest): void {
    req.attemptDeadline = 0;
    req.deadlineAt = Number.POSITIVE_INFINITY;
    req.replyMd?.unlink();
    req.bulkMd?.unlink();
    req.replyMd = req.bulkMd = undefined;
    if (this.#sent.delete(req.xid) && !req.control) this.#inFlight--;
    if (req.tag !== 0) this.#tags.give(req.tag);
    req.tag = 0;
  }

  #fail(req: ClientRequest, err: Error): void {
    const waiting = this.#waiting.indexOf(req);
    if (waiting >= 0) this.#waiting.splice(waiting, 1);
    this.#finish(req);
    req.reject(err);
    this.#pump();
  }

  #connectionLost(): void {
    const state = this.state;
    if (state !== 'full') return; // already recovering, or closed
    this.#setState('disconnected');
    this.counters.reconnects++;
    // The next attempts wait longer (125% + margin each time the connection is lost), so that
    // a slow server is not hammered with resends; replies bring the estimate back down.
    this.#rtt.measured(this.timeoutMs, performance.now());
    this.#recovering = this.#connectUntil(Number.POSITIVE_INFINITY, false).catch(() => undefined);
  }

  /** Connect attempts with backoff until one succeeds, the deadline passes or the import closes. */
  async #connectUntil(deadline: number, first: boolean): Promise<void> {
    let pauseMs = this.#at.minMs;
    for (;;) {
      if (this.state === 'closed') throw new PtlrpcError('ESHUTDOWN', `import to ${this.#c.targetUuid} is closed`);
      this.#setState('connecting');
      try {
        await this.#connectOnce(first);
        return;
      } catch (err) {
        // The server said no. EBUSY (recovering, we are new to it) means "later"; so does any
        // answer to a reconnect, as in Lustre: a restarted node may answer before its target
        // is mounted again, and the import keeps trying until it is back or we give up.
        if (first && err instanceof PtlrpcError && err.status !== undefined && err.status !== -Errno.EBUSY) throw err;
        if (performance.now() + pauseMs > deadline) {
          throw new PtlrpcError('ETIMEDOUT', `could not connect to ${this.#c.targetUuid} at ${this.#c.target.nid}`);
        }
      }
      await new Promise((r) => setTimeout(r, pauseMs));
      pauseMs = Math.min(this.#c.reconnectBackoffMaxMs, pauseMs * 2);
    }
  }

  async #connectOnce(first: boolean): Promise<void> {
    this.#connCnt++;
    const buffers = encodeConnectRequest({
      targetUuid: this.#c.targetUuid, clientUuid: this.#c.clientUuid, handle: this.#handle,
      data: {
        connectFlags: OBD_CONNECT_VERSION | OBD_CONNECT_AT | OBD_CONNECT_FULL20 | OBD_CONNECT_MULTIMODRPCS,
        version: LUSTRE_VERSION_CODE, index: 0, brwSize: 1 << 20, transno: 0n, instance: 0, maxModRpcs: this.#c.maxModRpcs,
      },
    });
    const reply = await this.#control(this.#c.connectOpcode, buffers, this.timeoutMs);
    if (this.state === 'closed') return;
    const data = decodeConnectData(reply.buffers[0]);
    this.#tags.resize(Math.max(1, Math.min(this.#c.maxModRpcs, data.maxModRpcs || 1)));
    const hadHandle = this.#handle !== 0n;
    const reconnected = (reply.body.opFlags & ConnectFlag.RECONNECT) !== 0;
    const recovering = (reply.body.opFlags & ConnectFlag.RECOVERING) !== 0;
    this.#handle = reply.body.handle;
    // Evicted: the server forgot us, and its last_committed says nothing of what it answered us
    // before (a transno lost in its crash may be reused since): the eviction comes first, so
    // that whoever waits for an old transno's commit learns of it before the number moves.
    const evicted = !first && hadHandle && !reconnected;
    if (evicted) this.#evicted();
    this.#commit(reply.body.lastCommitted);
    if (!evicted && recovering) {
      await this.#replay();
      if (this.state$.value === 'closed') return;
      this.#setState('recover');
      for (const req of [...this.#sent.values()]) if (!req.control) this.#transmit(req);
    } else if (!evicted && !first) {
      this.#setState('recover');
      for (const req of [...this.#sent.values()]) if (!req.control) this.#transmit(req);
    }
    this.#setState('full');
    this.#pump();
  }

  /**
   * Replays what the server may have lost, in transno order, one at a time, then the final
   * ping; a failure (timeout, the server gone again) throws and the caller connects again.
   */
  async #replay(): Promise<void> {
    this.#setState('replay');
    // A replay waits in the server's queue for its turn (the clients before it in transno
    // order, or the window's end): it is sent again every few seconds rather than taken for
    // lost; the server keeps one copy. A server gone again answers ENOTCONN (no export).
    const deadline = performance.now() + this.#c.recoveryDeadlineMs;
    for (const entry of [...this.replayList.entries()]) {
      if (entry.transno <= this.#lastCommitted) continue;
      if (this.state$.value === 'closed') return;
      this.counters.replayed++;
      try {
        const reply = await this.#patiently(deadline, () => this.#control(entry.opcode, [...entry.buffers, entry.reply], this.#replayWaitMs(), {
          xid: entry.xid, tag: entry.tag, flags: MsgFlag.REPLAY, transno: entry.transno,
        }, entry.bulk ? { bulkWrite: entry.bulk } : {}));
        this.#commit(reply.body.lastCommitted);
      } catch (err) {
        // The server refused the replay (its objects changed): it evicts us; the final ping says so.
        if (err instanceof PtlrpcError && err.status !== undefined && err.status !== -Errno.ENOTCONN) break;
        throw err;
      }
    }
    const send: ReplaySend = (opcode, buffers) => {
      // One xid for every copy: the server answers the one it queued.
      const xid = nextXid(this.#ni);
      return this.#patiently(deadline, () => this.#control(opcode, buffers, this.#replayWaitMs(), { xid, flags: MsgFlag.REQ_REPLAY_DONE }));
    };
    for (const step of [...this.#replaySteps]) {
      if (this.state$.value === 'closed') return;
      await step(send);
    }
    // The server answers the final ping when its recovery ends.
    const done = await this.#patiently(deadline, () => this.#control(Opcode.OBD_PING, [], this.#replayWaitMs(), {
      flags: MsgFlag.REQ_REPLAY_DONE | MsgFlag.LOCK_REPLAY_DONE,
    }));
    this.#commit(done.body.lastCommitted);
  }

  #replayWaitMs(): number {
    return Math.max(this.timeoutMs, REPLAY_RESEND_MS);
  }

  /** Sends again what timed out (no answer at all) until the deadline; an answer ends it. */
  async #patiently(deadline: number, send: () => Promise<Reply>): Promise<Reply> {
    for (;;) {
      try {
        return await send();
      } catch (err) {
        if (!(err instanceof PtlrpcError) || err.status !== undefined || performance.now() > deadline) throw err;
        if (this.state$.value === 'closed') throw err;
      }
    }
  }

  /** The target forgot us: what was in flight may or may not have been executed. */
  #evicted(): void {
    this.counters.evictions++;
    this.#setState('evicted');
    for (const req of [...this.#sent.values()]) {
      if (req.control) continue;
      this.#finish(req);
      req.reject(new PtlrpcError('EIO', `evicted by ${this.#c.targetUuid}: ${opcodeLabel(req.opcode)} xid ${req.xid} may not have been executed`));
    }
    this.replayList.clear();
  }

  /**
   * A connect, disconnect or replay: sent whatever the state, never resent, failing on its own
   * timeout. A replay brings its old xid, slot, flags and transno.
   */
  #control(opcode: number, buffers: Buffer[], timeoutMs: number,
    replay: { xid?: bigint; tag?: number; flags: number; transno?: bigint } = { flags: 0 }, options: RequestOptions = {}): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const req = this.#newRequest(opcode, buffers, options, true, resolve, reject);
      req.xid = replay.xid ?? nextXid(this.#ni);
      req.replayTag = replay.tag ?? 0;
      req.flags = replay.flags;
      req.transno = replay.transno ?? 0n;
      this.#sent.set(req.xid, req);
      this.#transmit(req);
      req.attemptDeadline = performance.now() + timeoutMs;
    });
  }

  #startPinger(): void {
    const interval = this.#c.pingIntervalMs;
    if (interval <= 0) return;
    this.#pinger = setInterval(() => {
      if (this.state !== 'full' || performance.now() - this.#lastSentMs < interval) return;
      this.ping().catch(() => undefined);
    }, Math.max(10, Math.floor(interval / 2)));
    this.#pinger.unref();
  }

  #setState(state: ImportState): void {
    if (this.state$.value !== state && this.state$.value !== 'closed') this.state$.next(state);
  }

  #close(err: Error): void {
    if (this.#pinger) clearInterval(this.#pinger);
    clearInterval(this.#sweeper);
    this.#setState('closed');
    for (const req of [...this.#sent.values(), ...this.#waiting]) {
      this.#finish(req);
      req.reject(err);
    }
    this.#waiting.length = 0;
    this.#subscriptions.unsubscribe();
    this.state$.complete();
  }
}

/** How often a replay, or the final ping, is sent again while the server still recovers. */
const REPLAY_RESEND_MS = 5000;

function bytesOf(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}

function opcodeLabel(opcode: number): string {
  return `${opcodeName(opcode)} (${opcode})`;
}
