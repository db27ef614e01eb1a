// An LNet network interface: one node's NID, its portals and MDs, and the LNDs that move its
// messages (the in-process one always, the TCP one when the NID is on tcp).
//
// The semantics are LNet's: a PUT lands in the first matching sink MD and is delivered as an
// event (and ACKed when the sender asked); a GET is answered from the first matching source MD
// with a REPLY; a message no MD takes is dropped and counted, and the sender learns of it only
// by its ACK or REPLY never coming (at once with ENOENT when the target is in this process).
import assert from 'node:assert';
import { Observable, Subject } from 'rxjs';
import { LNetError } from './errors.js';
import { MatchTable, sliceBuffers, checkU32, checkU64, type MdHandle, type MdSpec } from './match.js';
import {
  LNET_DEFAULT_PORT, LNET_PID_LUSTRE, formatNid, isUserspacePid, parseNid, nidToWire,
  type Nid, type NidString, type ProcessId,
} from './nid.js';
import {
  LNetHeader, LNET_MSG_ACK, LNET_MSG_GET, LNET_MSG_PUT, LNET_MSG_REPLY, LNET_WIRE_HANDLE_COOKIE_NONE,
  FRAME_HEADER_BYTES,
} from './wire.js';
import {
  bump, newMessageCounters, type ConnDropReason, type DropReason, type LNetStats, type NiStats, type PeerStats,
} from './stats.js';
import { loLnd } from './lo.js';
import { TcpLnd, type TcpLimits } from './tcp.js';

export interface LNetConfig {
  /** '127.0.0.2@tcp' binds 127.0.0.2:port; '0@lo' is in-process only. */
  nid: NidString;
  /** TCP port of every node of the network (Lustre's acceptor port): 988 by default. */
  port?: number;
  /** Messages in flight to one peer before more wait (Lustre's peer_credits): 8. */
  peerCredits?: number;
  /** Largest frame accepted or sent, header included: 64 MiB + 96 bytes. */
  maxFrameBytes?: number;
  /** A peer not heard from for this long is sent a keepalive NOOP: 30 s (0: never). */
  keepaliveMs?: number;
  /** Connect plus handshake must finish within this: 10 s. */
  connectTimeoutMs?: number;
  /** A frame started must make progress within this, or its connection is dropped: 50 s. */
  timeoutMs?: number;
  /** How long put({ack}) waits for its ACK and get() for its REPLY: 50 s. */
  replyTimeoutMs?: number;
  /**
   * Connect from privileged ports (1023 down to 512), as Lustre does and as a Lustre acceptor
   * with its default accept=secure demands; needs root. Off by default.
   */
  reservedPorts?: boolean;
  /**
   * This NI's LNet pid (LNET_PID_LUSTRE); two '0@lo' NIs of one process need two pids. A pid
   * with LNET_PID_USERFLAG (userspacePid()) makes a user process's NI, as Lustre's: no
   * acceptor, it only connects out, and it may share its NID with the node's kernel (whose NI
   * it then reaches over TCP like any other node's).
   */
  pid?: number;
  /** Where dropped connections and other warnings are told; stderr by default. */
  warn?: (message: string) => void;
  /** Further bounds (MDs, waiters, peers, connections, queues, receive memory). */
  limits?: Partial<TcpLimits & NiLimits>;
}

export interface NiLimits {
  /** MDs attached at once. */
  mdsMax: number;
  /** ACKs and REPLYs awaited at once. */
  pendingMax: number;
  /** Peers whose counters are kept one by one (others add to the NI's only). */
  peersMax: number;
}

export interface PutEvent {
  type: 'put';
  md: MdHandle;
  portal: number;
  matchBits: bigint;
  hdrData: bigint;
  initiator: ProcessId;
  target: ProcessId;
  offset: number;
  /** The payload as it came off the socket: slices of the received chunks, not copies. */
  payload: Buffer[];
  payloadLength: number;
}

export interface PutOptions { hdrData?: bigint; ack?: boolean; offset?: number }

const TARGETS_CACHED = 4096;
const defaultLimits: NiLimits = { mdsMax: 1 << 20, pendingMax: 1 << 16, peersMax: 4096 };

/** What becomes of a message whose header has been read: its payload goes to complete(). */
export interface Delivery { complete(payload: Buffer[]): void }

interface Pending {
  cookie: bigint;
  kind: 'ack' | 'reply';
  target: NidString;
  /** GET: the most bytes the REPLY may carry. */
  length: number;
  deadline: number;
  resolve: (payload: Buffer[]) => void;
  reject: (err: LNetError) => void;
}

export class LNetNI {
  readonly nid: NidString;
  readonly pid: number;
  readonly wireNid: bigint;
  /** Interface cookie of this NI's wire handles: its start time, new at each start. */
  readonly incarnation: bigint;
  readonly events$: Observable<PutEvent>;

  private readonly subject = new Subject<PutEvent>();
  /** Events by portal, for those who listen to one portal (portalEvents). */
  private readonly portalSubjects = new Map<number, Subject<PutEvent>>();
  private readonly parsed: Nid;
  private readonly mds: MatchTable;
  private readonly pending = new Map<bigint, Pending>();
  /** Targets as given by callers, parsed once (a cache, cleared when full). */
  private readonly targets = new Map<string, { lnd: Nid['lnd']; nid: NidString; wire: bigint }>();
  /** Initiators of received messages, by NID (see processId). */
  private readonly initiators = new Map<NidString, ProcessId>();
  /** This NI as a message's target. */
  private readonly self: ProcessId;
  private readonly limits: NiLimits;
  private readonly counters: NiStats;
  private readonly peers = new Map<NidString, PeerStats>();
  private readonly replyTimeoutMs: number;
  private readonly sweep: NodeJS.Timeout;
  private tcp: TcpLnd | null = null;
  private nextCookie = 1n;
  private stopped = false;
  readonly warn: (message: string) => void;

  private constructor(config: LNetConfig, parsed: Nid) {
    this.parsed = parsed;
    this.nid = formatNid(parsed);
    this.wireNid = nidToWire(parsed);
    this.pid = config.pid ?? LNET_PID_LUSTRE;
    checkU32('pid', this.pid);
    // Lustre's is the start time in ns; the sub-millisecond part tells apart NIs started together.
    this.incarnation = BigInt(Date.now()) * 1000000n + (process.hrtime.bigint() % 1000000n);
    this.limits = { ...defaultLimits, ...config.limits };
    this.mds = new MatchTable(this.limits.mdsMax);
    this.replyTimeoutMs = config.replyTimeoutMs ?? 50_000;
    this.warn = config.warn ?? ((m) => process.stderr.write(`lnet ${this.nid}: ${m}\n`));
    this.counters = {
      nid: this.nid, ...newMessageCounters(), mdsAttached: 0, acksPending: 0, repliesPending: 0,
      connections: 0, rxBytesReserved: 0, drops: {}, connDrops: {},
    };
    this.events$ = this.subject.asObservable();
    this.self = Object.freeze({ nid: this.nid, pid: this.pid });
    this.sweep = setInterval(() => this.expirePending(), Math.max(10, Math.min(1000, this.replyTimeoutMs / 4)));
    this.sweep.unref();
  }

  static async start(config: LNetConfig): Promise<LNetNI> {
    const parsed = parseNid(config.nid);
    const ni = new LNetNI(config, parsed);
    if (parsed.lnd === 'lo') {
      try { loLnd.register(ni); } catch (err) { clearInterval(ni.sweep); throw err; }
    } else {
      const tcp = new TcpLnd(ni, {
        port: config.port ?? LNET_DEFAULT_PORT,
        peerCredits: config.peerCredits ?? 8,
        maxFrameBytes: config.maxFrameBytes ?? 64 * 1024 * 1024 + FRAME_HEADER_BYTES,
        keepaliveMs: config.keepaliveMs ?? 30_000,
        connectTimeoutMs: config.connectTimeoutMs ?? 10_000,
        timeoutMs: config.timeoutMs ?? 50_000,
        reservedPorts: config.reservedPorts ?? false,
        ...config.limits,
      });
      try {
        // A user process's LNet starts no acceptor (lnet_acceptor_start does nothing for it).
        if (!ni.isUserspace) await tcp.listen();
      } catch (err) {
        clearInterval(ni.sweep);
        throw err;
      }
      ni.tcp = tcp;
    }
    return ni;
  }

  /**
   * The events of one portal: what events$ filtered on the portal would give, without every
   * listener of the NI looking at every event.
   */
  portalEvents(portal: number): Observable<PutEvent> {
    let s = this.portalSubjects.get(portal);
    if (!s) {
      s = new Subject<PutEvent>();
      if (this.stopped) s.complete();
      else this.portalSubjects.set(portal, s);
    }
    return s.asObservable();
  }

  attach(portal: number, match: { matchBits: bigint; ignoreBits?: bigint }, md: MdSpec): MdHandle {
    this.checkRunning();
    return this.mds.attach(portal, match.matchBits, match.ignoreBits ?? 0n, md);
  }

  put(target: ProcessId, portal: number, matchBits: bigint, payload: Buffer | Buffer[], opts: PutOptions = {}): Promise<void> {
    try {
      const h = this.putHeader(portal, matchBits, payload, opts.hdrData ?? 0n, opts.offset ?? 0);
      const buffers = Array.isArray(payload) ? payload : [payload];
      if (!opts.ack) {
        h.wmdInterface = LNET_WIRE_HANDLE_COOKIE_NONE;
        h.wmdObject = LNET_WIRE_HANDLE_COOKIE_NONE;
        return new Promise<void>((resolve, reject) => this.transmit(target, h, buffers, resolve, reject));
      }
      const waiting = this.await('ack', target.nid, 0);
      h.wmdInterface = this.incarnation;
      h.wmdObject = waiting.cookie;
      this.transmit(target, h, buffers, null, (err) => this.fail(waiting.cookie, err));
      return waiting.promise.then(() => undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A PUT without ACK whose sender does not wait for it to leave (ptlrpc's requests and
   * replies): no promise. onError learns, on a later microtask and never from inside this call,
   * that it could not be sent (bad arguments included); once written, as with put(), the
   * sender learns of a loss only by the answer never coming.
   */
  post(target: ProcessId, portal: number, matchBits: bigint, payload: Buffer | Buffer[], onError?: (err: LNetError) => void): void {
    let h: LNetHeader;
    try {
      h = this.putHeader(portal, matchBits, payload, 0n, 0);
    } catch (err) {
      if (onError) queueMicrotask(() => onError(err as LNetError));
      return;
    }
    h.wmdInterface = LNET_WIRE_HANDLE_COOKIE_NONE;
    h.wmdObject = LNET_WIRE_HANDLE_COOKIE_NONE;
    this.transmit(target, h, Array.isArray(payload) ? payload : [payload], null, onError ?? null);
  }

  /** The header of a PUT, its arguments checked (throws LNetError). */
  private putHeader(portal: number, matchBits: bigint, payload: Buffer | Buffer[], hdrData: bigint, offset: number): LNetHeader {
    this.checkRunning();
    checkU32('portal', portal);
    checkU64('matchBits', matchBits);
    let length = 0;
    if (Array.isArray(payload)) { for (const b of payload) length += b.length; } else length = payload.length;
    checkU32('payload length', length);
    checkU64('hdrData', hdrData);
    checkU32('offset', offset);
    const h = new LNetHeader();
    h.type = LNET_MSG_PUT;
    h.payloadLength = length;
    h.matchBits = matchBits;
    h.portal = portal;
    h.hdrData = hdrData;
    h.offset = offset;
    return h;
  }

  get(target: ProcessId, portal: number, matchBits: bigint, length: number): Promise<Buffer[]> {
    try {
      this.checkRunning();
      checkU32('portal', portal);
      checkU64('matchBits', matchBits);
      checkU32('length', length);
      const h = new LNetHeader();
      h.type = LNET_MSG_GET;
      h.matchBits = matchBits;
      h.portal = portal;
      h.sinkLength = length;
      const waiting = this.await('reply', target.nid, length);
      h.wmdInterface = this.incarnation;
      h.wmdObject = waiting.cookie;
      this.transmit(target, h, [], null, (err) => this.fail(waiting.cookie, err));
      return waiting.promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  stats(): LNetStats {
    const ni: NiStats = {
      ...this.counters,
      drops: { ...this.counters.drops },
      connDrops: { ...this.counters.connDrops },
      mdsAttached: this.mds.size,
      acksPending: 0,
      repliesPending: 0,
      connections: this.tcp?.connectionCount() ?? 0,
      rxBytesReserved: this.tcp?.rxBytesReserved() ?? 0,
    };
    for (const p of this.pending.values()) {
      if (p.kind === 'ack') ni.acksPending++; else ni.repliesPending++;
    }
    this.tcp?.refreshPeerStats();
    const peers = [...this.peers.values()].map((p) => ({ ...p, drops: { ...p.drops }, connDrops: { ...p.connDrops } }));
    return { ni, peers };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.sweep);
    if (this.parsed.lnd === 'lo') loLnd.unregister(this);
    const err = new LNetError('ESHUTDOWN', `${this.nid} is stopping`);
    for (const cookie of [...this.pending.keys()]) this.fail(cookie, err);
    await this.tcp?.stop();
    this.mds.clear();
    this.subject.complete();
    for (const s of this.portalSubjects.values()) s.complete();
    this.portalSubjects.clear();
  }

  // ---- below: for the LNDs of this folder ----

  get isStopped(): boolean { return this.stopped; }

  /** A user process's NI (LNET_PID_USERFLAG in its pid): it connects out and never listens. */
  get isUserspace(): boolean { return isUserspacePid(this.pid); }

  /** Per-peer counters, made on first use; null past peersMax (the NI's own still count). */
  peer(nid: NidString): PeerStats | null {
    let p = this.peers.get(nid);
    if (p) return p;
    if (this.peers.size >= this.limits.peersMax) return null;
    p = {
      nid, ...newMessageCounters(), connections: 0, connects: 0, credits: 0, maxCredits: 0, minCredits: 0,
      queued: 0, keepalivesSent: 0, drops: {}, connDrops: {},
    };
    this.peers.set(nid, p);
    return p;
  }

  countConnDrop(peerNid: NidString | null, reason: ConnDropReason): void {
    bump(this.counters.connDrops, reason);
    if (peerNid) { const p = this.peer(peerNid); if (p) bump(p.connDrops, reason); }
  }

  countDrop(peerNid: NidString | null, reason: DropReason, length: number): void {
    this.counters.dropCount++;
    this.counters.dropLength += length;
    bump(this.counters.drops, reason);
    if (peerNid) {
      const p = this.peer(peerNid);
      if (p) { p.dropCount++; p.dropLength += length; bump(p.drops, reason); }
    }
  }

  countSend(peer: PeerStats | null, length: number): void {
    this.counters.sendCount++;
    this.counters.sendLength += length;
    if (peer) { peer.sendCount++; peer.sendLength += length; }
  }

  /**
   * An incoming message's header (already checked against the wire format): decides where its
   * payload goes, or drops it (counted; the LND then skips the payload without keeping it).
   * `h` belongs to the caller and is reused after this returns.
   */
  receiveHeader(h: LNetHeader, initiatorNid: NidString, peer: PeerStats | null): Delivery | DropReason {
    if (this.stopped) return this.drop(initiatorNid, 'stopping', h.payloadLength);
    this.counters.recvCount++;
    this.counters.recvLength += h.payloadLength;
    if (peer) { peer.recvCount++; peer.recvLength += h.payloadLength; }
    switch (h.type) {
      case LNET_MSG_PUT: return this.receivePut(h, initiatorNid);
      case LNET_MSG_GET: return this.receiveGet(h, initiatorNid);
      case LNET_MSG_REPLY: return this.receiveReply(h, initiatorNid);
      case LNET_MSG_ACK: return this.receiveAck(h, initiatorNid);
    }
  }

  private receivePut(h: LNetHeader, initiatorNid: NidString): Delivery | DropReason {
    const md = this.mds.match('sink', h.portal, h.matchBits, h.offset, h.payloadLength);
    if (typeof md === 'string') return this.drop(initiatorNid, md, h.payloadLength);
    const event: PutEvent = {
      type: 'put', md, portal: h.portal, matchBits: h.matchBits, hdrData: h.hdrData,
      initiator: this.processId(initiatorNid, h.srcPid),
      target: h.destPid === this.pid ? this.self : { nid: this.nid, pid: h.destPid },
      offset: h.offset, payload: [], payloadLength: h.payloadLength,
    };
    const wantsAck = h.wmdObject !== LNET_WIRE_HANDLE_COOKIE_NONE || h.wmdInterface !== LNET_WIRE_HANDLE_COOKIE_NONE;
    return new PutDelivery(this, event, wantsAck ? ackHeader(h) : null);
  }

  /**
   * The id of a message's initiator: one frozen object per NID (and pid) as long as the cache
   * holds it, rather than a new one for every message of a peer.
   */
  private processId(nid: NidString, pid: number): ProcessId {
    const known = this.initiators.get(nid);
    if (known && known.pid === pid) return known;
    const id = Object.freeze({ nid, pid });
    if (this.initiators.size >= TARGETS_CACHED) this.initiators.clear();
    this.initiators.set(nid, id);
    return id;
  }

  private receiveGet(h: LNetHeader, initiatorNid: NidString): Delivery | DropReason {
    const md = this.mds.match('source', h.portal, h.matchBits, h.offset, h.sinkLength);
    if (typeof md === 'string') return this.drop(initiatorNid, md, 0);
    const reply = new LNetHeader();
    reply.type = LNET_MSG_REPLY;
    reply.wmdInterface = h.wmdInterface;
    reply.wmdObject = h.wmdObject;
    reply.payloadLength = h.sinkLength;
    const spec = md.spec;
    // Invariant: match('source', ...) only returns source MDs.
    assert(spec.kind === 'source');
    const data = sliceBuffers(spec.buffers, h.offset, h.sinkLength);
    return new ReplyDelivery(this, this.processId(initiatorNid, h.srcPid), reply, data);
  }

  private receiveReply(h: LNetHeader, initiatorNid: NidString): Delivery | DropReason {
    const p = this.pending.get(h.wmdObject);
    if (!p || p.kind !== 'reply' || h.wmdInterface !== this.incarnation) return this.drop(initiatorNid, 'unexpectedReply', h.payloadLength);
    if (h.payloadLength > p.length) return this.drop(initiatorNid, 'replyTooLong', h.payloadLength);
    // The GET stays awaited until its data is all here: a connection lost mid-REPLY leaves it
    // to time out rather than hang.
    return {
      complete: (payload) => {
        if (this.pending.get(p.cookie) !== p) return;
        this.pending.delete(p.cookie);
        p.resolve(payload);
      },
    };
  }

  private receiveAck(h: LNetHeader, initiatorNid: NidString): Delivery | DropReason {
    const p = this.pending.get(h.wmdObject);
    if (!p || p.kind !== 'ack' || h.wmdInterface !== this.incarnation) return this.drop(initiatorNid, 'unexpectedAck', 0);
    this.pending.delete(h.wmdObject);
    return { complete: () => p.resolve([]) };
  }

  private drop(initiatorNid: NidString, reason: DropReason, length: number): DropReason {
    this.countDrop(initiatorNid, reason, length);
    return reason;
  }

  emit(event: PutEvent): void {
    this.portalSubjects.get(event.portal)?.next(event);
    if (this.subject.observed) this.subject.next(event);
  }

  /**
   * Sends a message this NI built (PUT, GET) or owes (ACK, REPLY); `sent` is called once it
   * reached the kernel (or the receiver, in process), `failed` (on a later microtask) if it
   * never will.
   */
  transmit(target: ProcessId, h: LNetHeader, payload: Buffer[], sent: (() => void) | null, failed: ((err: LNetError) => void) | null): void {
    let dest = this.targets.get(target.nid);
    if (!dest) {
      let parsed: Nid;
      try { parsed = parseNid(target.nid); } catch (err) {
        if (failed) queueMicrotask(() => failed(err as LNetError));
        return;
      }
      dest = { lnd: parsed.lnd, nid: formatNid(parsed), wire: nidToWire(parsed) };
      if (this.targets.size >= TARGETS_CACHED) this.targets.clear();
      this.targets.set(target.nid, dest);
    }
    const nid = dest.nid;
    h.destNid = dest.wire;
    h.destPid = target.pid;
    h.srcPid = this.pid;
    h.srcNid = this.wireNid;
    // Lustre sends to a node's own NID, and to 0@lo, through the loopback LND. A user process
    // and the kernel of its node share the NID but are two LNet instances: between them it
    // is TCP, over the connections the user process opens.
    const otherInstance = dest.lnd === 'tcp' && target.pid !== this.pid && (this.isUserspace || isUserspacePid(target.pid));
    if ((nid === this.nid && !otherInstance) || dest.lnd === 'lo') {
      const self = dest.lnd === 'lo' ? target.pid === this.pid : true;
      loLnd.send(this, self ? this : loLnd.find(target.pid), h, payload).then(sent, (err: LNetError) => failed?.(err));
      return;
    }
    if (!this.tcp) {
      const err = new LNetError('EHOSTUNREACH', `no route from ${this.nid} to ${nid}`);
      if (failed) queueMicrotask(() => failed(err));
      return;
    }
    this.tcp.send(nid, target.pid, { h, payload, sent, failed });
  }

  private await(kind: 'ack' | 'reply', target: NidString, length: number): { cookie: bigint; promise: Promise<Buffer[]> } {
    if (this.pending.size >= this.limits.pendingMax) {
      throw new LNetError('EAGAIN', `${this.pending.size} ACKs and REPLYs awaited, the most allowed (pendingMax)`);
    }
    const cookie = (this.nextCookie++ << 2n) | 1n;
    let resolve!: (payload: Buffer[]) => void;
    let reject!: (err: LNetError) => void;
    const promise = new Promise<Buffer[]>((res, rej) => { resolve = res; reject = rej; });
    this.pending.set(cookie, { cookie, kind, target, length, deadline: Date.now() + this.replyTimeoutMs, resolve, reject });
    return { cookie, promise };
  }

  /** Fails an awaited ACK or REPLY (no-op when it already came). */
  fail(cookie: bigint, err: LNetError): void {
    const p = this.pending.get(cookie);
    if (!p) return;
    this.pending.delete(cookie);
    p.reject(err);
  }

  private expirePending(): void {
    const now = Date.now();
    // Invariant: every entry has the same timeout, so the map (in insertion order) is in deadline order.
    for (const p of this.pending.values()) {
      if (p.deadline > now) break;
      this.fail(p.cookie, new LNetError('ETIMEDOUT',
        `no ${p.kind === 'ack' ? 'ACK' : 'REPLY'} from ${p.target} within ${this.replyTimeoutMs} ms`));
    }
  }

  private checkRunning(): void {
    if (this.stopped) throw new LNetError('ESHUTDOWN', `${this.nid} is stopped`);
  }
}

function ackHeader(put: LNetHeader): LNetHeader {
  const a = new LNetHeader();
  a.type = LNET_MSG_ACK;
  a.wmdInterface = put.wmdInterface;
  a.wmdObject = put.wmdObject;
  a.matchBits = put.matchBits;
  a.mlength = put.payloadLength;
  return a;
}

class PutDelivery implements Delivery {
  constructor(private readonly ni: LNetNI, private readonly event: PutEvent, private readonly ack: LNetHeader | null) {}

  complete(payload: Buffer[]): void {
    this.event.payload = payload;
    this.ni.emit(this.event);
    // A lost ACK: the sender times out, as in Lustre.
    if (this.ack) this.ni.transmit(this.event.initiator, this.ack, [], null, null);
  }
}

class ReplyDelivery implements Delivery {
  constructor(
    private readonly ni: LNetNI, private readonly to: ProcessId,
    private readonly reply: LNetHeader, private readonly data: Buffer[],
  ) {}

  complete(): void {
    // A lost REPLY: the getter times out, as in Lustre.
    this.ni.transmit(this.to, this.reply, this.data, null, null);
  }
}

