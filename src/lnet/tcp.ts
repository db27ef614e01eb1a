// The TCP LND (Lustre's socklnd, protocol V3): an acceptor on the NI's address and port,
// one peer per remote NID, connections opened on the first send to a peer (and again after
// one is lost), send credits per peer, keepalives on idle connections, and the limits that
// keep a bad or stalled peer from costing the node more than one connection.
//
// User processes (LNET_PID_USERFLAG in their pid, see nid.ts) share their node's NID with its
// kernel, so a peer is known by its NID alone only when it is a kernel: a user process is
// known by NID and pid ('U4242-127.0.0.2@tcp'), as socklnd keys its peers by lnet_process_id.
// Such a peer is never connected to (socklnd refuses to, EHOSTUNREACH): what goes to it takes
// the connections it opened, and a user process's own LND has no acceptor at all. As socklnd
// does for a userspace peer, the source of every message on its connections is taken to be
// the peer the HELLO named, whatever the header says. (socklnd takes a userspace peer's pid
// from the socket's port, since liblustre's HELLO had none to trust; here the HELLO's pid is
// kept, so that a process keeps one identity across its reconnections.)
//
// Connections are typed as socklnd types them: the first one opened to a peer is CONTROL and
// carries small messages both ways; the first large message (MIN_BULK_BYTES, 64 KiB, or more) to a peer
// opens a BULK_OUT connection that carries this side's large messages and nothing else (the
// peer calls it BULK_IN), so that bulk data never delays a small message and the writer can
// place frame headers in segments (see tcp-conn.ts). Until it is up, or if the peer refuses
// it, large messages go on the CONTROL connection.
import assert from 'node:assert';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { LNetError } from './errors.js';
import { formatProcessId, ipv4Text, isUserspacePid, nidFromWire, formatNid, parseNid, type NidString } from './nid.js';
import { FRAME_HEADER_BYTES, SOCKLND_CONN_BULK_IN, SOCKLND_CONN_BULK_OUT, SOCKLND_CONN_CONTROL, type Hello, type LNetHeader } from './wire.js';
import type { ConnDropReason, PeerStats } from './stats.js';
import { MIN_BULK_BYTES, TcpConn, type ConnOwner, type Tx } from './tcp-conn.js';
import type { Delivery, LNetNI } from './ni.js';
import { SocketReader } from './reader.js';

export interface TcpTunables extends TcpLimits {
  port: number;
  peerCredits: number;
  maxFrameBytes: number;
  keepaliveMs: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  /** Connect from a privileged port (1023 down to 512), as Lustre's lnet_connect does. */
  reservedPorts: boolean;
}

/** LNET_ACCEPTOR_MAX_RESERVED_PORT and _MIN_: where Lustre connects from. */
const RESERVED_PORT_MAX = 1023;
const RESERVED_PORT_MIN = 512;

/** The TCP LND's bounds, each with a defined behaviour when reached. */
export interface TcpLimits {
  /** Connections at once, both directions; an accept past it is closed at once. */
  connectionsMax: number;
  /** Messages waiting per peer for a credit or a connection; a send past it fails with EAGAIN. */
  txQueueMax: number;
  /**
   * Payload bytes of large frames (over 64 KiB) being received at once over all connections;
   * past it, the connections with a large frame to receive pause, in turn.
   */
  rxBytesMax: number;
  /** Dropped frames and NOOPs one connection may send per second before it is a flood. */
  noisePerSecondMax: number;
}

const defaultTunables: TcpLimits = {
  connectionsMax: 1024,
  txQueueMax: 4096,
  rxBytesMax: 256 * 1024 * 1024,
  noisePerSecondMax: 10_000,
};

/** Closes that are the peer's or our own doing, not a fault worth a warning. */
const quietCloses = new Set<ConnDropReason>(['closedByPeer', 'stopping', 'peerRestarted']);

/**
 * A message that failed: its sender learns it on a later microtask, never from inside the call
 * that queued it (ptlrpc reconnects on a failed send, and would otherwise recurse into it).
 */
function failLater(tx: Tx, err: LNetError): void {
  const failed = tx.failed;
  if (failed) queueMicrotask(() => failed(err));
}

/** How peers are keyed: a kernel by its NID, a user process by NID and pid. */
function peerKey(nid: NidString, pid: number): string {
  return isUserspacePid(pid) ? formatProcessId({ nid, pid }) : nid;
}

class TcpPeer {
  readonly conns: TcpConn[] = [];
  readonly queue: Tx[] = [];
  queueHead = 0;
  credits: number;
  connecting = false;
  bulkConnecting = false;
  /** The peer did not take a BULK_OUT connection: its large messages go on CONTROL ones. */
  bulkRefused = false;
  incarnation = 0n;

  /** A user process: reached only over the connections it opened. */
  readonly userspace: boolean;

  constructor(
    readonly key: string,
    readonly nid: NidString,
    readonly pid: number,
    readonly wireNid: bigint,
    readonly host: string,
    readonly stats: PeerStats | null,
    readonly maxCredits: number,
  ) {
    this.credits = maxCredits;
    this.userspace = isUserspacePid(pid);
    // Its large messages go on its CONTROL connections: we never open one to it.
    this.bulkRefused = this.userspace;
    if (stats) { stats.credits = maxCredits; stats.maxCredits = maxCredits; stats.minCredits = maxCredits; }
  }

  get queued(): number { return this.queue.length - this.queueHead; }

  shift(): Tx {
    const tx = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = undefined as unknown as Tx;
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return tx;
  }

  /** Lustre's view of credits: free ones minus messages waiting (negative when some wait). */
  noteCredits(): void {
    if (!this.stats) return;
    const c = this.credits - this.queued;
    this.stats.credits = c;
    if (c < this.stats.minCredits) this.stats.minCredits = c;
    this.stats.queued = this.queued;
  }

  /**
   * The connection to send a message on, or null to wait: a small one goes on the first
   * CONTROL connection not waiting for 'drain'; a large one on the BULK_OUT connection, or
   * on CONTROL while there is none.
   */
  sendConn(large: boolean): TcpConn | null {
    let control: TcpConn | null = null;
    let bulk: TcpConn | null = null;
    for (const c of this.conns) {
      if (c.ctype === SOCKLND_CONN_BULK_OUT) bulk ??= c;
      else if (c.ctype !== SOCKLND_CONN_BULK_IN && !c.needDrain) control ??= c;
    }
    if (large && bulk) return bulk.needDrain ? null : bulk;
    return control;
  }

  get hasBulkOut(): boolean {
    for (const c of this.conns) if (c.ctype === SOCKLND_CONN_BULK_OUT) return true;
    return false;
  }

  get hasControl(): boolean {
    for (const c of this.conns) if (c.ctype !== SOCKLND_CONN_BULK_OUT && c.ctype !== SOCKLND_CONN_BULK_IN) return true;
    return false;
  }
}

export class TcpLnd implements ConnOwner {
  readonly localWireNid: bigint;
  readonly localPid: number;
  readonly incarnation: bigint;
  readonly payloadMax: number;
  private readonly t: TcpTunables;
  private readonly host: string;
  /** The acceptor; null for a user process's LND, which only connects out. */
  private readonly server: Server | null;
  private readonly peers = new Map<NidString, TcpPeer>();
  private readonly conns = new Set<TcpConn>();
  private readonly peerOf = new Map<TcpConn, TcpPeer>();
  private readonly rxWaiters: Array<{ conn: TcpConn; bytes: number }> = [];
  private rxReserved = 0;
  /** The next privileged port to connect from, and how many each connect has tried. */
  private reservedPort = RESERVED_PORT_MAX;
  private readonly connectAttempts = new WeakMap<TcpConn, number>();
  private readonly ticker: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly ni: LNetNI, tunables: Omit<TcpTunables, keyof TcpLimits> & Partial<TcpLimits>) {
    this.t = { ...defaultTunables, ...tunables };
    this.t.rxBytesMax = Math.max(this.t.rxBytesMax, this.t.maxFrameBytes);
    this.localWireNid = ni.wireNid;
    this.localPid = ni.pid;
    this.incarnation = ni.incarnation;
    this.payloadMax = this.t.maxFrameBytes - FRAME_HEADER_BYTES;
    this.host = ipv4Text(parseNid(ni.nid).addr);
    this.server = ni.isUserspace ? null : createServer({ noDelay: true }, (socket) => this.accept(socket));
    const tickMs = Math.max(5, Math.min(1000, this.t.timeoutMs / 4, this.t.connectTimeoutMs / 4,
      this.t.keepaliveMs > 0 ? this.t.keepaliveMs / 2 : 1000));
    this.ticker = setInterval(() => this.tick(), tickMs);
    this.ticker.unref();
  }

  listen(): Promise<void> {
    const server = this.server;
    // Invariant: only a kernel's NI listens (LNetNI.start asks only then).
    if (!server) throw new LNetError('EINVAL', `${this.ni.nid} is a user process's NI: it has no acceptor`);
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        clearInterval(this.ticker);
        reject(new LNetError(err.code === 'EADDRINUSE' ? 'EADDRINUSE' : 'EINVAL',
          `cannot listen on ${this.host}:${this.t.port} for ${this.ni.nid}: ${err.message}`));
      };
      server.once('error', onError);
      server.listen({ host: this.host, port: this.t.port }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.ni.warn(`acceptor: ${err.message}`));
        resolve();
      });
    });
  }

  connectionCount(): number { return this.conns.size; }
  rxBytesReserved(): number { return this.rxReserved; }

  refreshPeerStats(): void {
    for (const p of this.peers.values()) {
      p.noteCredits();
      if (p.stats) p.stats.connections = p.conns.length;
    }
  }

  // ---- sending ----

  /** Queues a message; tx.sent or tx.failed tells what became of it (see Tx). */
  send(nid: NidString, pid: number, tx: Tx): void {
    const h = tx.h;
    if (this.stopping) { failLater(tx, new LNetError('ESHUTDOWN', `${this.ni.nid} is stopping`)); return; }
    if (h.payloadLength > this.payloadMax) {
      failLater(tx, new LNetError('EINVAL',
        `a ${h.payloadLength}-byte payload is over maxFrameBytes (${this.t.maxFrameBytes} with the ${FRAME_HEADER_BYTES}-byte header)`));
      return;
    }
    const peer = this.peerFor(nid, pid, h.destNid);
    if (peer.queued >= this.t.txQueueMax) {
      failLater(tx, new LNetError('EAGAIN', `${peer.queued} messages already wait for ${nid} (txQueueMax)`));
      return;
    }
    peer.queue.push(tx);
    this.pump(peer);
  }

  private peerFor(nid: NidString, pid: number, wireNid: bigint): TcpPeer {
    const key = peerKey(nid, pid);
    let peer = this.peers.get(key);
    if (!peer) {
      peer = new TcpPeer(key, nid, pid, wireNid, ipv4Text(Number(wireNid & 0xffffffffn)), this.ni.peer(key), this.t.peerCredits);
      this.peers.set(key, peer);
    }
    return peer;
  }

  private pump(peer: TcpPeer): void {
    let wantsBulk = false;
    while (peer.queued > 0 && peer.credits > 0) {
      const next = peer.queue[peer.queueHead]!;
      const large = FRAME_HEADER_BYTES + next.h.payloadLength >= MIN_BULK_BYTES;
      if (large) wantsBulk = true;
      const conn = peer.sendConn(large);
      if (!conn) break;
      const tx = peer.shift();
      peer.credits--;
      this.ni.countSend(peer.stats, tx.h.payloadLength);
      conn.writeTx(tx, tx.h.payloadLength);
    }
    peer.noteCredits();
    if (peer.queued > 0 && !peer.hasControl && !peer.connecting) {
      if (peer.userspace) {
        // As socklnd: a kernel never connects to a user process; it is unreachable until it connects again.
        this.failQueued(peer, new LNetError('EHOSTUNREACH', `${peer.key} is a user process with no connection to this node (it must connect first)`));
        this.forgetIfIdle(peer);
        return;
      }
      this.connectTo(peer, SOCKLND_CONN_CONTROL);
    }
    if (wantsBulk && peer.hasControl && !peer.hasBulkOut && !peer.bulkConnecting && !peer.bulkRefused && !this.stopping) {
      this.connectTo(peer, SOCKLND_CONN_BULK_OUT);
    }
  }

  sent(conn: TcpConn, batch: Tx[], err: Error | null): void {
    const peer = this.peerOf.get(conn) ?? this.peers.get(peerKey(conn.peerNid, conn.peerPid));
    for (const tx of batch) {
      if (err) failLater(tx, new LNetError('ECONNRESET', `connection to ${conn.peerNid || conn.remote} lost: ${err.message}`));
      else if (tx.sent) tx.sent();
    }
    if (peer) {
      peer.credits += batch.length;
      this.pump(peer);
    }
  }

  drained(conn: TcpConn): void {
    const peer = this.peerOf.get(conn);
    if (peer) this.pump(peer);
  }

  // ---- connecting ----

  private connectTo(peer: TcpPeer, ctype: number, attempt = 0): void {
    // Invariant: a user process is never connected to (see the top of the file).
    assert(!peer.userspace, `connect to the user process ${peer.key}`);
    const bulk = ctype === SOCKLND_CONN_BULK_OUT;
    if (this.conns.size >= this.t.connectionsMax) {
      if (bulk) { peer.bulkRefused = true; return; }
      this.failQueued(peer, new LNetError('EAGAIN', `${this.conns.size} connections open (connectionsMax)`));
      return;
    }
    if (bulk) peer.bulkConnecting = true; else peer.connecting = true;
    const localPort = this.t.reservedPorts ? this.nextReservedPort() : undefined;
    const reader = new SocketReader();
    const socket = connect({ host: peer.host, port: this.t.port, localAddress: this.host, localPort, noDelay: true, onread: reader.onread });
    const conn = new TcpConn(this, socket, peer.wireNid, ctype, reader);
    this.conns.add(conn);
    this.peerOf.set(conn, peer);
    this.connectAttempts.set(conn, attempt);
    socket.once('connect', () => conn.sendOpening());
  }

  /** Privileged ports in turn, from the top, as lnet_connect tries them. */
  private nextReservedPort(): number {
    const port = this.reservedPort;
    this.reservedPort = port === RESERVED_PORT_MIN ? RESERVED_PORT_MAX : port - 1;
    return port;
  }

  private accept(socket: Socket): void {
    if (this.stopping) { socket.destroy(); return; }
    if (this.conns.size >= this.t.connectionsMax) {
      this.ni.countConnDrop(null, 'tooManyConnections');
      this.ni.warn(`refused a connection from ${socket.remoteAddress}:${socket.remotePort}: ${this.conns.size} open (connectionsMax)`);
      socket.destroy();
      return;
    }
    this.conns.add(new TcpConn(this, socket, null));
  }

  established(conn: TcpConn, hello: Hello): ConnDropReason | null {
    let nid: NidString;
    try {
      const parsed = nidFromWire(hello.srcNid);
      if (parsed.lnd !== 'tcp') return 'badHello';
      nid = formatNid(parsed);
    } catch {
      return 'badHello';
    }
    if (this.stopping) return 'stopping';
    // A user process never accepts, so what answers our connect is a kernel.
    if (conn.isActive && isUserspacePid(hello.srcPid)) return 'badHello';
    conn.peerWireNid = hello.srcNid;
    conn.peerNid = nid;
    conn.peerPid = hello.srcPid;
    conn.peerIncarnation = hello.srcIncarnation;
    const peer = this.peerOf.get(conn) ?? this.peerFor(nid, hello.srcPid, hello.srcNid);
    this.peerOf.set(conn, peer);
    if (peer.incarnation !== hello.srcIncarnation) {
      // The peer restarted: what went over its old connections is gone with its old self.
      for (const old of [...peer.conns]) old.close('peerRestarted', 'the peer restarted (new incarnation)');
      peer.incarnation = hello.srcIncarnation;
      peer.bulkRefused = peer.userspace;
    }
    peer.conns.push(conn);
    if (conn.isActive && conn.ctype === SOCKLND_CONN_BULK_OUT) peer.bulkConnecting = false;
    else if (conn.isActive) peer.connecting = false;
    if (peer.stats) { peer.stats.connects++; peer.stats.connections = peer.conns.length; }
    this.pump(peer);
    return null;
  }

  closed(conn: TcpConn, reason: ConnDropReason, detail: string): void {
    this.conns.delete(conn);
    const peer = this.peerOf.get(conn);
    this.peerOf.delete(conn);
    const waiter = this.rxWaiters.findIndex((w) => w.conn === conn);
    if (waiter >= 0) this.rxWaiters.splice(waiter, 1);
    const connectFailed = conn.isActive && !conn.isEstablished;
    const attempt = this.connectAttempts.get(conn) ?? 0;
    if (connectFailed && peer && this.t.reservedPorts && !this.stopping && (conn.errorCode === 'EADDRINUSE' || conn.errorCode === 'EADDRNOTAVAIL') &&
      attempt < RESERVED_PORT_MAX - RESERVED_PORT_MIN) {
      // That privileged port is taken here: try the next one, as lnet_connect does.
      this.connectTo(peer, conn.ctype, attempt + 1);
      return;
    }
    if (connectFailed && reason === 'socketError') reason = 'connectFailed';
    const who = conn.peerNid || (peer ? peer.nid : '');
    this.ni.countConnDrop(who || null, reason);
    if (connectFailed) {
      this.ni.warn(`cannot connect to ${peer?.host}:${this.t.port} (${who}): ${reason}: ${detail}`);
    } else if (!quietCloses.has(reason) && !(reason === 'socketError' && this.stopping)) {
      this.ni.warn(`dropped connection ${conn.isActive ? 'to' : 'from'} ${conn.remote}${who ? ` (${who})` : ''}: ${reason}: ${detail}`);
    }
    if (!peer) return;
    const i = peer.conns.indexOf(conn);
    if (i >= 0) peer.conns.splice(i, 1);
    if (peer.stats) peer.stats.connections = peer.conns.length;
    if (connectFailed && conn.ctype === SOCKLND_CONN_BULK_OUT) {
      // Large messages go on CONTROL connections instead.
      peer.bulkConnecting = false;
      peer.bulkRefused = true;
      if (!this.stopping) this.pump(peer);
    } else if (connectFailed) {
      peer.connecting = false;
      // What waits for this peer fails with its connect, rather than wait forever.
      if (peer.conns.length === 0) {
        const code = reason === 'handshakeTimeout' ? 'ETIMEDOUT' : 'EHOSTUNREACH';
        this.failQueued(peer, new LNetError(code, `cannot reach ${peer.nid} at ${peer.host}:${this.t.port}: ${detail}`));
      }
    } else if (!this.stopping) {
      this.pump(peer);
    }
    this.forgetIfIdle(peer);
  }

  /** A peer with no connection and nothing to send is forgotten, so that peers stay bounded. */
  private forgetIfIdle(peer: TcpPeer): void {
    if (peer.conns.length === 0 && peer.queued === 0 && !peer.connecting && !peer.bulkConnecting && this.peers.get(peer.key) === peer) {
      this.peers.delete(peer.key);
    }
  }

  private failQueued(peer: TcpPeer, err: LNetError): void {
    while (peer.queued > 0) failLater(peer.shift(), err);
    peer.noteCredits();
  }

  // ---- receiving ----

  receive(conn: TcpConn, h: LNetHeader): Delivery | null {
    const peer = this.peerOf.get(conn)!;
    if (h.destNid !== this.localWireNid) {
      this.ni.countDrop(conn.peerNid, 'notForMe', h.payloadLength);
      return null;
    }
    let nid = conn.peerNid;
    if (peer.userspace) {
      // As socklnd: a user process's messages come from the process its HELLO named.
      h.srcNid = conn.peerWireNid;
      h.srcPid = conn.peerPid;
    } else if (h.srcNid !== conn.peerWireNid) {
      try { nid = formatNid(nidFromWire(h.srcNid)); } catch {
        this.ni.countDrop(conn.peerNid, 'badNid', h.payloadLength);
        return null;
      }
    }
    const delivery = this.ni.receiveHeader(h, nid, peer.stats);
    return typeof delivery === 'string' ? null : delivery;
  }

  reserve(conn: TcpConn, bytes: number): boolean {
    if (this.rxReserved + bytes <= this.t.rxBytesMax && this.rxWaiters.length === 0) {
      this.rxReserved += bytes;
      return true;
    }
    this.rxWaiters.push({ conn, bytes });
    return false;
  }

  release(bytes: number): void {
    this.rxReserved -= bytes;
    while (this.rxWaiters.length > 0 && this.rxReserved + this.rxWaiters[0]!.bytes <= this.t.rxBytesMax) {
      const w = this.rxWaiters.shift()!;
      this.rxReserved += w.bytes;
      w.conn.resume(w.bytes);
    }
  }

  noise(conn: TcpConn): void {
    const now = Date.now();
    if (now - conn.noiseWindowStart >= 1000) { conn.noiseWindowStart = now; conn.noiseCount = 0; }
    if (++conn.noiseCount > this.t.noisePerSecondMax) {
      conn.close('flood', `over ${this.t.noisePerSecondMax} dropped frames and NOOPs in a second`);
    }
  }

  // ---- timers ----

  private tick(): void {
    const now = Date.now();
    for (const conn of this.conns) {
      if (!conn.isEstablished) {
        if (now - conn.startedAt > this.t.connectTimeoutMs) {
          conn.close('handshakeTimeout', `no handshake within ${this.t.connectTimeoutMs} ms`);
        }
        continue;
      }
      if (conn.midFrame && now - conn.lastRxAt > this.t.timeoutMs) {
        conn.close('stalled', `a frame made no progress for ${this.t.timeoutMs} ms`);
      } else if (conn.oldestBatchAt !== 0 && now - conn.oldestBatchAt > this.t.timeoutMs) {
        conn.close('sendStalled', `written data was not taken for ${this.t.timeoutMs} ms`);
      } else if (this.t.keepaliveMs > 0 && conn.idle && now - conn.lastRxAt >= this.t.keepaliveMs &&
        now - conn.lastKeepaliveAt >= this.t.keepaliveMs) {
        // socklnd's rule: ping a peer not heard from for a keepalive period, at most once a period.
        conn.lastKeepaliveAt = now;
        conn.writeNoop(1n);
        const peer = this.peerOf.get(conn);
        if (peer?.stats) peer.stats.keepalivesSent++;
      }
    }
  }

  // ---- stopping ----

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.ticker);
    const err = new LNetError('ESHUTDOWN', `${this.ni.nid} is stopping`);
    for (const peer of this.peers.values()) this.failQueued(peer, err);
    const server = this.server;
    const closing = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const ends = [...this.conns].map((c) => c.end());
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([Promise.all(ends), grace]);
    for (const c of this.conns) c.socket.destroy();
    for (const c of [...this.conns]) c.close('stopping', 'the NI stopped');
    await closing;
  }
}

