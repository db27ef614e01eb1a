// One socklnd connection: the acceptor request and HELLO exchange, then ksock_msg frames both
// ways (see wire.ts for the format). The reader parses headers from the socket's chunks (read
// into memory of our own on the connections we open, see reader.ts) and hands payloads on as
// slices of them; the writer packs headers (and small payloads) into a
// slab so that a burst of small messages leaves as one contiguous buffer, and hands large
// payloads to the socket as they are. A write goes out at once when the socket is idle; what
// follows in the same tick is corked into one writev.
//
// Where frames begin TCP segments. A capture with a 512-byte snap length keeps the first
// SEGMENT_HEAD_BYTES of each segment's payload; Wireshark's LNet dissector decodes each frame
// that begins a segment from those bytes alone and calls it malformed when the frame runs past
// them (a frame that begins a segment it does not fill, in a capture that kept the segment,
// is reassembled from the segments that follow instead). So, as far as a writer can steer
// the kernel:
// - A large frame travels on a BULK_OUT connection that carries nothing else of ours (socklnd's
//   typed connections), and its header is written alone, with a push, so that it leaves in a
//   segment of its own. The header can still wait in the kernel (congestion window full) and
//   the payload then joins it; so while earlier large frames are unconfirmed (zero-copy
//   cookies, which the receiver answers once it has the whole frame) the last HOLD_BYTES of a
//   payload are held back and written in front of the next large header, which then never
//   begins a segment; a timer writes them when no frame follows.
// - A large frame on a CONTROL connection (while BULK_OUT connects, or when the peer refused
//   it) is written with its header alone too.
// - A small frame longer than SEGMENT_HEAD_BYTES is written with its header alone when it
//   would begin a write on a quiet connection (a connect reply, say); on a busy connection
//   that would cost a system call and a segment per message, so there it goes whole.
import type { Socket } from 'node:net';
import type { LNetError } from './errors.js';
import { ChunkQueue } from './chunks.js';
import type { ReadSink, SocketReader } from './reader.js';
import {
  CONNREQ_BYTES, FRAME_HEADER_BYTES, HELLO_BYTES, HELLO_IPS_MAX, KSOCK_MSG_LNET, KSOCK_MSG_NOOP, KSOCK_PROTO_V3,
  LNET_PROTO_ACCEPTOR_MAGIC, LNET_PROTO_ACCEPTOR_VERSION, LNET_PROTO_MAGIC, LNetHeader, NOOP_BYTES,
  SOCKLND_CONN_BULK_OUT, SOCKLND_CONN_CONTROL, SOCKLND_CONN_NONE, SOCKNAL_KEEPALIVE_PING, decodeConnReq, decodeFrameHeader, decodeHello,
  encodeConnReq, encodeFrameHeader, encodeHello, encodeNoop, invertConnType, type Hello,
} from './wire.js';
import type { ConnDropReason } from './stats.js';
import type { Delivery } from './ni.js';

/** A message waiting for, or on, a connection. */
export interface Tx {
  h: LNetHeader;
  payload: Buffer[];
  /** Called when the message reached the kernel; null: nobody waits for that. */
  sent: (() => void) | null;
  /** Called (never from inside the send) when it never will; null: nobody waits for that. */
  failed: ((err: LNetError) => void) | null;
}

/** What a connection needs from its LND. */
export interface ConnOwner {
  readonly localWireNid: bigint;
  readonly localPid: number;
  readonly incarnation: bigint;
  readonly payloadMax: number;
  /** The connection finished its handshake; a reason refuses it (it is then closed). */
  established(conn: TcpConn, hello: Hello): ConnDropReason | null;
  /** A header arrived: where its payload goes, or null to skip it. */
  receive(conn: TcpConn, h: LNetHeader): Delivery | null;
  /** Reserves receive memory for a payload; false: wait for resume(). */
  reserve(conn: TcpConn, bytes: number): boolean;
  release(bytes: number): void;
  /** A batch of messages reached the kernel (err: it never will). */
  sent(conn: TcpConn, batch: Tx[], err: Error | null): void;
  drained(conn: TcpConn): void;
  closed(conn: TcpConn, reason: ConnDropReason, detail: string): void;
  /** A frame was dropped or was a NOOP: counts toward flood detection. */
  noise(conn: TcpConn): void;
}

type RxState = 'connreq' | 'hello' | 'frame' | 'wait' | 'payload' | 'skip' | 'closed';

/** Payloads up to this size are received without a reservation against rxBytesMax. */
export const RX_UNRESERVED_MAX = 64 * 1024;
/** Payloads up to this size are copied beside their header, so that small messages coalesce. */
const INLINE_PAYLOAD_MAX = 2048;
const SLAB_BYTES = 64 * 1024;
/**
 * Frames of at least this many bytes, header included, are large: they go on a BULK_OUT
 * connection when there is one. socklnd's min_bulk is 1 KiB; here a large frame costs a lone
 * header write, a push, a confirmation from the receiver and at times a wait for it, which
 * only pays off where the frame itself takes far longer to move.
 */
export const MIN_BULK_BYTES = 64 * 1024;
/** TCP payload bytes a 512-byte capture keeps of a segment on loopback (512 - 14 - 20 - 32). */
const SEGMENT_HEAD_BYTES = 446;
/** Bytes of a large payload held back to be written in front of the next large header. */
const HOLD_BYTES = 8;
/** How long held-back bytes wait for the next large frame. */
const HOLD_MS = 2;
/** How long a large frame after a pause waits for the confirmation of earlier ones. */
const WAIT_MS = 20;
/** A connection that sent no frame for this long is quiet (see the top of the file). */
const QUIET_MS = 1;
/** Zero-copy cookies awaited at once; past it the oldest is forgotten. */
const ZC_PENDING_MAX = 64;

export class TcpConn implements ReadSink {
  /** Peer as the HELLO named it (set when established). */
  peerWireNid = 0n;
  peerNid = '';
  /** The peer's LNet pid, as its HELLO named it (LNET_PID_USERFLAG set: a user process). */
  peerPid = 0;
  peerIncarnation = 0n;
  isEstablished = false;
  readonly startedAt = Date.now();
  lastRxAt = Date.now();
  lastTxAt = Date.now();
  lastKeepaliveAt = 0;
  /** Time the oldest unfinished batch was written (0: none). */
  oldestBatchAt = 0;
  needDrain = false;
  /** The code of the socket error that ended the connection, if one did. */
  errorCode = '';
  batchesInFlight = 0;
  noiseWindowStart = 0;
  noiseCount = 0;

  private state: RxState;
  private readonly rx = new ChunkQueue(FRAME_HEADER_BYTES + HELLO_BYTES);
  private readonly h = new LNetHeader();
  private delivery: Delivery | null = null;
  private payload: Buffer[] = [];
  private remaining = 0;
  private reserved = 0;
  private zcReq = 0n;

  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private slabUsed = 0;
  private runStart = 0;
  private out: Buffer[] = [];
  private outTx: Tx[] = [];
  /** Where a write of `out` ends before the next starts: index into out, negative to push too. */
  private breaks: number[] = [];
  private flushScheduled = false;
  private readonly batchTimes: number[] = [];
  private lastFrameAt = 0;
  /** The tail of the last large payload, held back (see the top of the file), and its message. */
  private held: Buffer[] = [];
  private heldTx: Tx | null = null;
  private heldPastBatch = false;
  /** Large frames waiting for the receiver to confirm earlier ones (see writeLarge). */
  private waiting: Tx[] = [];
  private holdTimer: NodeJS.Timeout | null = null;
  /** Zero-copy cookies of our large frames not yet confirmed, oldest first. */
  private readonly zcPending = new Set<bigint>();
  private zcNext = SOCKNAL_KEEPALIVE_PING + 1n;

  constructor(
    private readonly owner: ConnOwner,
    readonly socket: Socket,
    /** Set for connections we open: the NID we asked for. */
    readonly targetWireNid: bigint | null,
    /** What this connection is for, as this side calls it (SOCKLND_CONN_*; set by the HELLO when accepted). */
    public ctype = SOCKLND_CONN_CONTROL,
    /** The socket's onread reader, for sockets opened with one (see reader.ts); else 'data' events. */
    reader: SocketReader | null = null,
  ) {
    this.state = targetWireNid === null ? 'connreq' : 'hello';
    if (targetWireNid === null) this.noteRemote(); else socket.once('connect', () => this.noteRemote());
    socket.setNoDelay(true);
    // As socklnd does: the kernel probes a connection gone quiet, so a vanished peer is noticed.
    socket.setKeepAlive(true, 30_000);
    if (reader) reader.attach(this); else socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => { this.needDrain = false; this.owner.drained(this); });
    socket.on('end', () => this.close('closedByPeer', 'the peer closed the connection'));
    socket.on('error', (err: NodeJS.ErrnoException) => { this.errorCode = err.code ?? ''; this.close('socketError', err.message); });
    socket.on('close', () => this.close('socketError', 'socket closed'));
  }

  get isActive(): boolean { return this.targetWireNid !== null; }
  /** Remembered at connect, since a destroyed socket no longer tells it. */
  private remoteText = 'unconnected';
  get remote(): string { return this.remoteText; }
  private noteRemote(): void {
    if (this.socket.remoteAddress) this.remoteText = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }
  get isClosed(): boolean { return this.state === 'closed'; }
  /** Part of a frame (or of the handshake) has arrived and the rest has not. */
  get midFrame(): boolean {
    return this.state === 'payload' || this.state === 'skip' || (this.state !== 'wait' && this.rx.length > 0);
  }

  /** The connector's opening: acceptor request and HELLO, in one write. */
  sendOpening(): void {
    const req = encodeConnReq(this.targetWireNid!);
    this.socket.write(Buffer.concat([req, this.hello(this.targetWireNid!, this.ctype)]));
  }

  private hello(dstNid: bigint, ctype: number): Buffer {
    return encodeHello({
      srcNid: this.owner.localWireNid, dstNid, srcPid: this.owner.localPid, dstPid: 0,
      srcIncarnation: this.owner.incarnation, dstIncarnation: 0n, ctype,
    });
  }

  // ---- receiving ----

  payloadBytesWanted(): number {
    return this.state === 'payload' && this.rx.length === 0 ? this.remaining : 0;
  }

  onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastRxAt = Date.now();
    this.rx.push(chunk);
    this.parse();
  }

  /** Resumes a connection that waited for receive memory (its reservation is now made). */
  resume(bytes: number): void {
    if (this.state !== 'wait') return;
    this.reserved = bytes;
    this.state = 'payload';
    // Time spent waiting for memory was ours, not the peer's: its stall clock starts now.
    this.lastRxAt = Date.now();
    this.socket.resume();
    this.parse();
  }

  private parse(): void {
    for (;;) {
      switch (this.state) {
        case 'connreq': if (!this.readConnReq()) return; break;
        case 'hello': if (!this.readHello()) return; break;
        case 'frame': if (!this.readFrame()) return; break;
        case 'payload': if (!this.readPayload()) return; break;
        case 'skip': if (!this.skipPayload()) return; break;
        case 'wait':
        case 'closed': return;
      }
    }
  }

  private readConnReq(): boolean {
    if (this.rx.length < 4) return false;
    const magic = this.rx.peek(4).readUInt32LE(0);
    if (magic !== LNET_PROTO_ACCEPTOR_MAGIC) {
      // Lustre's acceptor answers a peer that opens with the LNet magic with its own request.
      if (magic === LNET_PROTO_MAGIC) this.socket.write(encodeConnReq(0n));
      return this.close('badMagic', `acceptor magic 0x${hex32(magic)}, expected 0x${hex32(LNET_PROTO_ACCEPTOR_MAGIC)}`);
    }
    if (this.rx.length < CONNREQ_BYTES) return false;
    const req = decodeConnReq(this.rx.peek(CONNREQ_BYTES));
    this.rx.take(CONNREQ_BYTES, null);
    if (req.version !== LNET_PROTO_ACCEPTOR_VERSION) {
      this.socket.write(encodeConnReq(0n));
      return this.close('badAcceptorVersion', `acceptor version ${req.version}, expected ${LNET_PROTO_ACCEPTOR_VERSION}`);
    }
    if (req.nid !== this.owner.localWireNid) {
      return this.close('wrongNid', `asked for NID 0x${req.nid.toString(16)}, this is 0x${this.owner.localWireNid.toString(16)}`);
    }
    this.state = 'hello';
    return true;
  }

  private readHello(): boolean {
    if (this.rx.length < 8) return false;
    const head = this.rx.peek(8);
    const magic = head.readUInt32LE(0);
    const version = head.readUInt32LE(4);
    if (magic !== LNET_PROTO_MAGIC) {
      return this.close('badMagic', `HELLO magic 0x${hex32(magic)}, expected 0x${hex32(LNET_PROTO_MAGIC)}`);
    }
    if (version !== KSOCK_PROTO_V3) {
      // As ksocknal_recv_hello: the acceptor tells the peer which version it speaks.
      if (!this.isActive) this.socket.write(this.hello(0n, SOCKLND_CONN_NONE));
      return this.close('badVersion', `socklnd protocol version ${version}, expected ${KSOCK_PROTO_V3}`);
    }
    if (this.rx.length < HELLO_BYTES) return false;
    const hello = decodeHello(this.rx.peek(HELLO_BYTES));
    if (hello.nips > HELLO_IPS_MAX) return this.close('badHello', `HELLO lists ${hello.nips} IP addresses (at most ${HELLO_IPS_MAX})`);
    if (this.rx.length < HELLO_BYTES + 4 * hello.nips) return false;
    this.rx.take(HELLO_BYTES + 4 * hello.nips, null);
    if (this.isActive) {
      if (hello.ctype === SOCKLND_CONN_NONE) return this.close('connRace', 'the peer refused the connection type (lost a connection race)');
      if (invertConnType(hello.ctype) !== this.ctype) return this.close('badConnType', `HELLO connection type ${hello.ctype}`);
      if (hello.srcNid !== this.targetWireNid) {
        return this.close('wrongNid', `connected to NID 0x${this.targetWireNid!.toString(16)}, but it claims 0x${hello.srcNid.toString(16)}`);
      }
    } else {
      this.ctype = invertConnType(hello.ctype);
      if (this.ctype === SOCKLND_CONN_NONE) return this.close('badConnType', `HELLO connection type ${hello.ctype}`);
    }
    // The acceptor answers before anything else can be written on the connection.
    if (!this.isActive) this.socket.write(this.hello(hello.srcNid, invertConnType(hello.ctype)));
    this.isEstablished = true;
    this.state = 'frame';
    const refused = this.owner.established(this, hello);
    if (refused) return this.close(refused, 'refused after HELLO');
    return true;
  }

  private readFrame(): boolean {
    const available = this.rx.length;
    if (available < NOOP_BYTES) return false;
    // One view for the whole header when it is here (most often), else for the ksock_msg part.
    const k = this.rx.peek(available >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES : NOOP_BYTES);
    const type = k.readUInt32LE(0);
    if (type === KSOCK_MSG_NOOP) {
      const zcAck = k.readBigUInt64LE(16);
      const zcFrom = k.readBigUInt64LE(8);
      this.rx.take(NOOP_BYTES, null);
      if (zcAck === 0n || zcAck === SOCKNAL_KEEPALIVE_PING) {
        this.owner.noise(this);
        return this.state !== 'closed';
      }
      return this.zeroCopyAcked(zcFrom === 0n ? zcAck : zcFrom, zcAck);
    }
    if (type !== KSOCK_MSG_LNET) return this.close('badKsockType', `ksock message type 0x${hex32(type)}`);
    if (available < FRAME_HEADER_BYTES) return false;
    const buf = k;
    // Cookies are almost always 0: look at them as u32s first, to make no BigInt for nothing.
    const zcReq = (buf.readUInt32LE(8) | buf.readUInt32LE(12)) === 0 ? 0n : buf.readBigUInt64LE(8);
    if ((buf.readUInt32LE(16) | buf.readUInt32LE(20)) !== 0) {
      // An ACK piggybacked on a message, as socklnd V3 may send it.
      const zcAck = buf.readBigUInt64LE(16);
      if (!this.zeroCopyAcked(zcAck, zcAck)) return false;
    }
    const bad = decodeFrameHeader(buf, 0, this.h, this.owner.payloadMax);
    if (bad) return this.close(bad, `LNet type ${buf.readUInt32LE(48)}, payload ${buf.readUInt32LE(52)} bytes`);
    this.rx.take(FRAME_HEADER_BYTES, null);
    this.zcReq = zcReq;
    this.delivery = this.owner.receive(this, this.h);
    this.remaining = this.h.payloadLength;
    if (!this.delivery) {
      this.owner.noise(this);
      if (this.isClosed) return false;
      this.state = 'skip';
      return true;
    }
    if (this.remaining === 0) { this.finishFrame(); return this.state !== 'closed'; }
    // Small payloads (requests, replies) never wait behind large ones for receive memory;
    // they cost at most RX_UNRESERVED_MAX per connection.
    if (this.remaining > RX_UNRESERVED_MAX) {
      if (!this.owner.reserve(this, this.remaining)) {
        this.state = 'wait';
        this.socket.pause();
        return false;
      }
      this.reserved = this.remaining;
    }
    this.state = 'payload';
    return true;
  }

  private readPayload(): boolean {
    if (this.rx.length === 0) return false;
    this.remaining -= this.rx.take(this.remaining, this.payload);
    if (this.remaining > 0) return false;
    this.finishFrame();
    return this.state !== 'closed';
  }

  private skipPayload(): boolean {
    if (this.remaining > 0) {
      if (this.rx.length === 0) return false;
      this.remaining -= this.rx.take(this.remaining, null);
      if (this.remaining > 0) return false;
    }
    this.state = 'frame';
    this.ackZeroCopy();
    return true;
  }

  private finishFrame(): void {
    const delivery = this.delivery!;
    const payload = this.payload;
    this.delivery = null;
    this.payload = [];
    if (this.reserved) { this.owner.release(this.reserved); this.reserved = 0; }
    this.state = 'frame';
    this.ackZeroCopy();
    delivery.complete(payload);
  }

  /** The peer has the whole of our frames with cookies first..last; false when it closed the connection. */
  private zeroCopyAcked(first: bigint, last: bigint): boolean {
    const lo = first < last ? first : last;
    const hi = first < last ? last : first;
    if (lo <= SOCKNAL_KEEPALIVE_PING || hi >= this.zcNext) {
      return this.close('badZcAck', `zero-copy ACK ${first}..${last} for no request of ours`);
    }
    // Invariant: at most ZC_PENDING_MAX entries, so this loop is bounded.
    for (const c of this.zcPending) if (c >= lo && c <= hi) this.zcPending.delete(c);
    if (this.zcPending.size === 0 && this.waiting.length > 0) {
      if (this.holdTimer) clearTimeout(this.holdTimer);
      this.holdOver();
    }
    return true;
  }

  /** A peer that sent with zero-copy waits for this before it frees its pages (socklnd V2+). */
  private ackZeroCopy(): void {
    if (this.zcReq === 0n) return;
    this.writeNoop(this.zcReq);
    this.zcReq = 0n;
  }

  // ---- sending ----

  writeTx(tx: Tx, length: number): void {
    const now = performance.now();
    const quiet = now - this.lastFrameAt >= QUIET_MS;
    this.lastFrameAt = now;
    if (this.ctype === SOCKLND_CONN_BULK_OUT) { this.writeLarge(tx); return; }
    const frameBytes = FRAME_HEADER_BYTES + length;
    // A large frame here (no BULK_OUT connection yet, or the peer refused one) never follows
    // other frames in a write either.
    if (frameBytes >= MIN_BULK_BYTES || (frameBytes > SEGMENT_HEAD_BYTES && quiet && this.out.length === 0 &&
      this.slabUsed === this.runStart && this.socket.writableLength === 0)) {
      this.writeHeaderAlone(tx, 0n);
      for (const b of tx.payload) if (b.length) this.out.push(b);
      this.outTx.push(tx);
      this.scheduleFlush();
      return;
    }
    const inline = length <= INLINE_PAYLOAD_MAX;
    this.reserveSlab(FRAME_HEADER_BYTES + (inline ? length : 0));
    encodeFrameHeader(tx.h, this.slab, this.slabUsed);
    this.slabUsed += FRAME_HEADER_BYTES;
    if (inline) {
      for (const b of tx.payload) { b.copy(this.slab, this.slabUsed); this.slabUsed += b.length; }
    } else {
      this.endRun();
      for (const b of tx.payload) if (b.length) this.out.push(b);
    }
    this.outTx.push(tx);
    this.scheduleFlush();
  }

  /** A frame on a BULK_OUT connection (see the top of the file). */
  private writeLarge(tx: Tx): void {
    const startsWrite = this.out.length === 0 && this.slabUsed === this.runStart && this.held.length === 0 &&
      this.waiting.length === 0;
    if (this.waiting.length > 0 || (startsWrite && this.zcPending.size > 0)) {
      // A pause in a stream of large frames: earlier ones may still fill the congestion window,
      // and a lone header would wait there for its payload to join it. Wait until the receiver
      // confirms them (or WAIT_MS passes).
      this.waiting.push(tx);
      this.holdTimer ??= setTimeout(this.holdOver, WAIT_MS);
      return;
    }
    this.sendLarge(tx);
  }

  private sendLarge(tx: Tx, waited = false): void {
    // A frame that had to wait is part of a stream too: more are likely to follow.
    const streaming = this.zcPending.size > 0 || waited;
    const cookie = this.zcNext++;
    if (this.zcPending.size >= ZC_PENDING_MAX) this.zcPending.delete(this.zcPending.values().next().value!);
    this.zcPending.add(cookie);
    if (this.held.length > 0) {
      // The previous frame's last bytes and this header go in one buffer: a write the kernel
      // takes in part ends at a buffer boundary, and the rest would then begin with the header.
      this.endRun();
      let bytes = 0;
      for (const b of this.held) bytes += b.length;
      this.reserveSlab(bytes + FRAME_HEADER_BYTES);
      for (const b of this.held) { b.copy(this.slab, this.slabUsed); this.slabUsed += b.length; }
      encodeFrameHeader(tx.h, this.slab, this.slabUsed, cookie);
      this.slabUsed += FRAME_HEADER_BYTES;
      this.endRun();
      this.outTx.push(this.heldTx!);
      this.held = [];
      this.heldTx = null;
    } else {
      this.writeHeaderAlone(tx, cookie);
    }
    // The last HOLD_BYTES wait for the next large header (sliced, never copied): in this batch
    // always; past it while earlier frames are unconfirmed, for at most HOLD_MS.
    const payload = tx.payload.filter((b) => b.length > 0);
    let keep = Math.min(HOLD_BYTES, tx.h.payloadLength);
    let i = payload.length - 1;
    while (i > 0 && payload[i]!.length < keep) keep -= payload[i--]!.length;
    for (let j = 0; j < i; j++) this.out.push(payload[j]!);
    const cut = payload[i]!.length - keep;
    if (cut > 0) this.out.push(payload[i]!.subarray(0, cut));
    this.held = [payload[i]!.subarray(cut), ...payload.slice(i + 1)];
    this.heldTx = tx;
    this.heldPastBatch = streaming;
    if (streaming) this.holdTimer ??= setTimeout(this.holdOver, HOLD_MS);
    this.scheduleFlush();
  }

  /** Writes the frames that waited, then the held-back bytes: no frame waits longer than this. */
  private readonly holdOver = (): void => {
    this.holdTimer = null;
    if (this.state === 'closed') return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const tx of waiting) this.sendLarge(tx, true);
    if (waiting.length === 0) this.releaseHeld();
    this.scheduleFlush();
  };

  /** Ends the write before a header, writes the header alone and asks the kernel to send it at once. */
  private writeHeaderAlone(tx: Tx, zcReq: bigint): void {
    this.endRun();
    if (this.out.length > 0) this.breaks.push(this.out.length);
    this.reserveSlab(FRAME_HEADER_BYTES);
    encodeFrameHeader(tx.h, this.slab, this.slabUsed, zcReq);
    this.slabUsed += FRAME_HEADER_BYTES;
    this.endRun();
    this.breaks.push(-this.out.length);
  }

  /** Queues the held-back bytes (and so completes their message) at the end of what is to be written. */
  private releaseHeld(): void {
    if (this.held.length === 0) return;
    if (this.holdTimer && this.waiting.length === 0) { clearTimeout(this.holdTimer); this.holdTimer = null; }
    this.endRun();
    for (const b of this.held) this.out.push(b);
    this.outTx.push(this.heldTx!);
    this.held = [];
    this.heldTx = null;
  }

  /** A keepalive (cookie SOCKNAL_KEEPALIVE_PING) or a zero-copy ACK. */
  writeNoop(zcAck: bigint): void {
    this.releaseHeld();
    this.reserveSlab(NOOP_BYTES);
    encodeNoop(zcAck, this.slab, this.slabUsed);
    this.slabUsed += NOOP_BYTES;
    this.scheduleFlush();
  }

  private reserveSlab(bytes: number): void {
    if (this.slab.length - this.slabUsed >= bytes) return;
    this.endRun();
    this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, bytes));
    this.slabUsed = 0;
    this.runStart = 0;
  }

  private endRun(): void {
    if (this.slabUsed > this.runStart) this.out.push(this.slab.subarray(this.runStart, this.slabUsed));
    this.runStart = this.slabUsed;
  }

  /**
   * Writes go out at once when the socket has nothing queued (so that a lone message is not
   * delayed: waiting for the tick's end costs a request-reply exchange most of its latency,
   * measured at 0.47 -> 0.26 of raw ping-pong), and what is added in the rest of the tick
   * leaves as one batch on the next tick: one writev for a burst instead of a syscall each.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flushOnTick);
    if (this.socket.writableLength === 0) this.writeBatch();
  }

  private readonly flushOnTick = (): void => {
    this.flushScheduled = false;
    this.writeBatch();
  };

  private writeBatch(): void {
    if (this.state === 'closed') return;
    if (!this.heldPastBatch) this.releaseHeld();
    this.endRun();
    const out = this.out;
    const batch = this.outTx;
    if (out.length === 0) return;
    this.out = [];
    this.outTx = [];
    const now = Date.now();
    this.lastTxAt = now;
    this.batchesInFlight++;
    this.batchTimes.push(now);
    if (this.oldestBatchAt === 0) this.oldestBatchAt = now;
    const breaks = this.breaks;
    this.breaks = [];
    let from = 0;
    for (const at of breaks) {
      const to = Math.abs(at);
      this.writeRange(out, from, to, null);
      from = to;
      // TCP_NODELAY set again pushes what the kernel holds (autocork would keep a lone header
      // back for the payload to join it). Pointless when the write is still queued here.
      if (at < 0 && this.socket.writableLength === 0) { this.socket.setNoDelay(false); this.socket.setNoDelay(true); }
    }
    if (from === out.length) { this.batchDone(batch, null); return; }
    const ok = this.writeRange(out, from, out.length, (err) => this.batchDone(batch, err ?? null));
    if (!ok) this.needDrain = true;
  }

  private writeRange(out: Buffer[], from: number, to: number, done: ((err?: Error | null) => void) | null): boolean {
    const socket = this.socket;
    if (to - from > 1) socket.cork();
    for (let i = from; i < to - 1; i++) socket.write(out[i]!);
    const ok = done ? socket.write(out[to - 1]!, done) : socket.write(out[to - 1]!);
    if (to - from > 1) socket.uncork();
    return ok;
  }

  private batchDone(batch: Tx[], err: Error | null): void {
    this.batchesInFlight--;
    this.batchTimes.shift();
    this.oldestBatchAt = this.batchTimes[0] ?? 0;
    this.owner.sent(this, batch, err);
  }

  /** True when nothing is waiting to be written or on its way to the kernel. */
  get idle(): boolean {
    return this.batchesInFlight === 0 && this.out.length === 0 && this.slabUsed === this.runStart && this.held.length === 0 &&
      this.waiting.length === 0;
  }

  // ---- closing ----

  /** Ends the connection with a reason; returns false so that parse steps can `return this.close(...)`. */
  close(reason: ConnDropReason, detail: string): false {
    if (this.state === 'closed') return false;
    this.state = 'closed';
    if (this.reserved) { this.owner.release(this.reserved); this.reserved = 0; }
    this.rx.clear();
    this.payload = [];
    this.delivery = null;
    // Messages not yet handed to the socket are failed here; those written are failed by
    // their write callbacks if the socket is destroyed before they reach the kernel.
    if (this.holdTimer) { clearTimeout(this.holdTimer); this.holdTimer = null; }
    const unsent = [...this.outTx, ...(this.heldTx ? [this.heldTx] : []), ...this.waiting];
    this.waiting = [];
    this.outTx = [];
    this.out = [];
    this.breaks = [];
    this.held = [];
    this.heldTx = null;
    if (gracefulCloses.has(reason)) {
      // What was written (a last HELLO telling our version, queued frames) still goes out.
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    if (unsent.length) this.owner.sent(this, unsent, new Error(detail));
    this.owner.closed(this, reason, detail);
    return false;
  }

  /** Clean close: what is queued is written, then FIN. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) { resolve(); return; }
      this.socket.once('close', () => resolve());
      if (this.holdTimer) clearTimeout(this.holdTimer);
      this.holdOver();
      this.writeBatch();
      this.close('stopping', 'the NI is stopping');
    });
  }
}

const gracefulCloses = new Set<ConnDropReason>([
  'closedByPeer', 'stopping', 'badVersion', 'badAcceptorVersion', 'badMagic', 'connRace', 'peerRestarted',
]);

function hex32(v: number): string { return v.toString(16).padStart(8, '0'); }
