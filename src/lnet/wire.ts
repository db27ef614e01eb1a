// Lustre's TCP wire format: the acceptor request, the socklnd HELLO (protocol V3) and
// ksock_msg frames carrying LNet headers. Every integer is little-endian, as Lustre sends
// it (receivers are allowed to flip; we only speak little-endian and treat a flipped magic
// as an unknown one). Offsets below are from the start of each structure.
//
// 1. Acceptor connection request (lnet_acceptor_connreq, 16 bytes), sent once by the side
//    that connects, before anything else:
//      0  u32 acr_magic    LNET_PROTO_ACCEPTOR_MAGIC 0xacce7100
//      4  u32 acr_version  LNET_PROTO_ACCEPTOR_VERSION 1
//      8  u64 acr_nid      the NID the connector wants to reach (must be the acceptor's)
//
// 2. HELLO (ksock_hello_msg, 56 bytes, no IP list), sent by the connector right after its
//    request and answered by the acceptor with its own:
//      0  u32 kshm_magic            LNET_PROTO_MAGIC 0x45726963
//      4  u32 kshm_version          KSOCK_PROTO_V3 3
//      8  u64 kshm_src_nid          sender's NID
//     16  u64 kshm_dst_nid          NID the sender believes it talks to
//     24  u32 kshm_src_pid          sender's LNet pid (12345 for Lustre)
//     28  u32 kshm_dst_pid          0 (Lustre leaves it unset)
//     32  u64 kshm_src_incarnation  sender's start time in ns: a new value means it restarted
//     40  u64 kshm_dst_incarnation  0 (Lustre leaves it unset)
//     48  u32 kshm_ctype            SOCKLND_CONN_*: the connector says what the connection is
//                                   for (CONTROL 1 for small messages, BULK_OUT 3 for its large
//                                   ones); the acceptor answers the inverse (BULK_IN 2 <->
//                                   BULK_OUT 3), or NONE (-1) to refuse
//     52  u32 kshm_nips             0 (an IP list of nips u32s would follow; at most 16)
//    A HELLO with another magic or version ends the connection; an acceptor first answers
//    an unknown version with its own HELLO so that the peer learns what it speaks.
//
// 3. Frames (ksock_msg), both ways for the life of the connection:
//      0  u32 ksm_type        KSOCK_MSG_NOOP 0xc0 | KSOCK_MSG_LNET 0xc1
//      4  u32 ksm_csum        0: no checksum (V3 never checksums; a non-zero one is ignored)
//      8  u64 ksm_zc_cookies[0]  zero-copy request: non-zero asks the receiver to confirm
//                                receipt with a NOOP carrying it in cookies[1]; in a NOOP
//                                with cookies[1] set, a non-zero [0] acknowledges [0]..[1]
//     16  u64 ksm_zc_cookies[1]  zero-copy ACK (in a NOOP, or piggybacked on an LNET frame);
//                                1 (SOCKNAL_KEEPALIVE_PING) in a NOOP is a keepalive that
//                                needs no answer, so request cookies start at 2
//    A NOOP ends here (24 bytes). An LNET frame goes on with lnet_hdr (72 bytes):
//     24  u64 dest_nid
//     32  u64 src_nid
//     40  u32 dest_pid
//     44  u32 src_pid
//     48  u32 type            LNET_MSG_ACK 0 | PUT 1 | GET 2 | REPLY 3 (HELLO 4 is V1 only)
//     52  u32 payload_length  bytes of payload following the 96-byte header
//     56  40 bytes by type, zero-filled after the last field:
//         PUT:   56 u64 ack_wmd.wh_interface_cookie  64 u64 ack_wmd.wh_object_cookie
//                (both ~0 when no ACK is wanted)     72 u64 match_bits  80 u64 hdr_data
//                88 u32 ptl_index  92 u32 offset
//         GET:   56,64 return_wmd  72 u64 match_bits  80 u32 ptl_index  84 u32 src_offset
//                88 u32 sink_length
//         REPLY: 56,64 dst_wmd (the GET's return_wmd)
//         ACK:   56,64 dst_wmd (the PUT's ack_wmd)  72 u64 match_bits  80 u32 mlength
//    then payload_length bytes (PUT and REPLY carry data; GET and ACK carry none).
//
// What makes a frame valid here: a known ksm_type; for LNET a known message type,
// payload_length within the receiver's maxFrameBytes, and no payload on GET or ACK. Any
// other frame ends the connection (TCP has no resync point). There is no torn-tail
// recovery: a connection that breaks mid-frame loses that frame, and the sender learns it
// from its ACK/REPLY timeout, as in Lustre.

export const LNET_PROTO_ACCEPTOR_MAGIC = 0xacce7100;
export const LNET_PROTO_ACCEPTOR_VERSION = 1;
export const LNET_PROTO_MAGIC = 0x45726963;
export const LNET_PROTO_TCP_MAGIC = 0xeebc0ded;
export const KSOCK_PROTO_V3 = 3;

export const KSOCK_MSG_NOOP = 0xc0;
export const KSOCK_MSG_LNET = 0xc1;
export const SOCKNAL_KEEPALIVE_PING = 1n;

export const SOCKLND_CONN_NONE = 0xffffffff; // -1 as u32
export const SOCKLND_CONN_ANY = 0;
export const SOCKLND_CONN_CONTROL = 1;
export const SOCKLND_CONN_BULK_IN = 2;
export const SOCKLND_CONN_BULK_OUT = 3;
/** LNET_INTERFACES_NUM: the most IP addresses a HELLO may list. */
export const HELLO_IPS_MAX = 16;

export const LNET_MSG_ACK = 0;
export const LNET_MSG_PUT = 1;
export const LNET_MSG_GET = 2;
export const LNET_MSG_REPLY = 3;
export type LNetMsgType = 0 | 1 | 2 | 3;

export const CONNREQ_BYTES = 16;
export const HELLO_BYTES = 56;
export const NOOP_BYTES = 24;
export const FRAME_HEADER_BYTES = 96;
export const LNET_WIRE_HANDLE_COOKIE_NONE = 0xffffffffffffffffn;

/** One lnet_hdr, flat: the fields a type does not use stay 0. */
export class LNetHeader {
  destNid = 0n;
  srcNid = 0n;
  destPid = 0;
  srcPid = 0;
  type: LNetMsgType = LNET_MSG_PUT;
  payloadLength = 0;
  /** ack_wmd (PUT), return_wmd (GET) or dst_wmd (REPLY, ACK). */
  wmdInterface = 0n;
  wmdObject = 0n;
  matchBits = 0n;
  hdrData = 0n;
  portal = 0;
  /** PUT offset, GET src_offset. */
  offset = 0;
  /** GET sink_length. */
  sinkLength = 0;
  /** ACK mlength. */
  mlength = 0;
}

// 64-bit fields go through a DataView: Buffer's BigInt accessors range-check and assemble
// in JavaScript, several times slower on the per-message path.
// A view spans the Buffer's whole ArrayBuffer and is kept for the next call: frames from one
// socket chunk, or headers in one send slab, share it. Encoding and decoding keep one each,
// since they alternate between the send slab and received chunks.
export class ViewCache {
  private of: ArrayBufferLike | null = null;
  private view: DataView = new DataView(new ArrayBuffer(8));
  get(buf: Buffer): DataView {
    if (buf.buffer !== this.of) { this.view = new DataView(buf.buffer); this.of = buf.buffer; }
    return this.view;
  }
}
const encodeViews = new ViewCache();
const decodeViews = new ViewCache();

/**
 * The last u64 a header field decoded to, kept with its two halves: most fields repeat from
 * frame to frame (NIDs, the peer's incarnation, the ~0 of "no ACK", zero hdr_data), and a
 * BigInt is a heap object each time one is made. Only the match bits (the xid) differ always.
 */
class U64Field {
  private lo = 0;
  private hi = 0;
  private value = 0n;
  read(v: DataView, at: number): bigint {
    const lo = v.getUint32(at, true);
    const hi = v.getUint32(at + 4, true);
    if (lo === this.lo && hi === this.hi) return this.value;
    this.lo = lo;
    this.hi = hi;
    this.value = v.getBigUint64(at, true);
    return this.value;
  }
}
const destNids = new U64Field();
const srcNids = new U64Field();
const wmdInterfaces = new U64Field();
const wmdObjects = new U64Field();
const hdrDatas = new U64Field();

/**
 * Writes a 96-byte LNET frame header at `at`; every byte of the 96 is written. `zcReq` asks
 * the receiver to confirm the whole frame with a NOOP carrying it (ksm_zc_cookies[0]).
 */
export function encodeFrameHeader(h: LNetHeader, buf: Buffer, offset: number, zcReq = 0n, zcAck = 0n): void {
  // Invariant: the view spans more than `buf`, so the bounds are checked here, once.
  if (buf.length < offset + FRAME_HEADER_BYTES) throw new RangeError(`a frame header needs ${FRAME_HEADER_BYTES} bytes`);
  const v = encodeViews.get(buf);
  const at = buf.byteOffset + offset;
  v.setUint32(at, KSOCK_MSG_LNET, true);
  v.setUint32(at + 4, 0, true);
  v.setBigUint64(at + 8, zcReq, true);
  v.setBigUint64(at + 16, zcAck, true);
  v.setBigUint64(at + 24, h.destNid, true);
  v.setBigUint64(at + 32, h.srcNid, true);
  v.setUint32(at + 40, h.destPid, true);
  v.setUint32(at + 44, h.srcPid, true);
  v.setUint32(at + 48, h.type, true);
  v.setUint32(at + 52, h.payloadLength, true);
  v.setBigUint64(at + 56, h.wmdInterface, true);
  v.setBigUint64(at + 64, h.wmdObject, true);
  buf.fill(0, offset + 72, offset + 96);
  switch (h.type) {
    case LNET_MSG_PUT:
      v.setBigUint64(at + 72, h.matchBits, true);
      v.setBigUint64(at + 80, h.hdrData, true);
      v.setUint32(at + 88, h.portal, true);
      v.setUint32(at + 92, h.offset, true);
      break;
    case LNET_MSG_GET:
      v.setBigUint64(at + 72, h.matchBits, true);
      v.setUint32(at + 80, h.portal, true);
      v.setUint32(at + 84, h.offset, true);
      v.setUint32(at + 88, h.sinkLength, true);
      break;
    case LNET_MSG_ACK:
      v.setBigUint64(at + 72, h.matchBits, true);
      v.setUint32(at + 80, h.mlength, true);
      break;
    case LNET_MSG_REPLY:
      break;
  }
}

/** Why a frame header is refused; each is also a stats reason. */
export type FrameError = 'badKsockType' | 'badMsgType' | 'oversized' | 'payloadOnGetOrAck';

/**
 * Reads the lnet_hdr of an LNET frame whose 96 header bytes start at `at` into `h`.
 * Returns null when valid, or the reason it is not.
 */
export function decodeFrameHeader(buf: Buffer, offset: number, h: LNetHeader, payloadMax: number): FrameError | null {
  if (buf.length < offset + FRAME_HEADER_BYTES) throw new RangeError(`a frame header needs ${FRAME_HEADER_BYTES} bytes`);
  const v = decodeViews.get(buf);
  const at = buf.byteOffset + offset;
  const type = v.getUint32(at + 48, true);
  if (type > LNET_MSG_REPLY) return 'badMsgType';
  const payloadLength = v.getUint32(at + 52, true);
  if (payloadLength > payloadMax) return 'oversized';
  if (payloadLength !== 0 && (type === LNET_MSG_GET || type === LNET_MSG_ACK)) return 'payloadOnGetOrAck';
  h.type = type as LNetMsgType;
  h.payloadLength = payloadLength;
  h.destNid = destNids.read(v, at + 24);
  h.srcNid = srcNids.read(v, at + 32);
  h.destPid = v.getUint32(at + 40, true);
  h.srcPid = v.getUint32(at + 44, true);
  h.wmdInterface = wmdInterfaces.read(v, at + 56);
  h.wmdObject = wmdObjects.read(v, at + 64);
  h.matchBits = 0n; h.hdrData = 0n; h.portal = 0; h.offset = 0; h.sinkLength = 0; h.mlength = 0;
  switch (type) {
    case LNET_MSG_PUT:
      h.matchBits = v.getBigUint64(at + 72, true);
      h.hdrData = hdrDatas.read(v, at + 80);
      h.portal = v.getUint32(at + 88, true);
      h.offset = v.getUint32(at + 92, true);
      break;
    case LNET_MSG_GET:
      h.matchBits = v.getBigUint64(at + 72, true);
      h.portal = v.getUint32(at + 80, true);
      h.offset = v.getUint32(at + 84, true);
      h.sinkLength = v.getUint32(at + 88, true);
      break;
    case LNET_MSG_ACK:
      h.matchBits = v.getBigUint64(at + 72, true);
      h.mlength = v.getUint32(at + 80, true);
      break;
  }
  return null;
}

/** A NOOP frame: a keepalive (zcAck = SOCKNAL_KEEPALIVE_PING) or a zero-copy ACK. */
export function encodeNoop(zcAck: bigint, buf: Buffer = Buffer.allocUnsafe(NOOP_BYTES), at = 0): Buffer {
  buf.writeUInt32LE(KSOCK_MSG_NOOP, at);
  buf.writeUInt32LE(0, at + 4);
  buf.writeBigUInt64LE(0n, at + 8);
  buf.writeBigUInt64LE(zcAck, at + 16);
  return buf;
}

export interface ConnReq { magic: number; version: number; nid: bigint }

export function encodeConnReq(nid: bigint): Buffer {
  const b = Buffer.alloc(CONNREQ_BYTES);
  b.writeUInt32LE(LNET_PROTO_ACCEPTOR_MAGIC, 0);
  b.writeUInt32LE(LNET_PROTO_ACCEPTOR_VERSION, 4);
  b.writeBigUInt64LE(nid, 8);
  return b;
}

export function decodeConnReq(b: Buffer): ConnReq {
  return { magic: b.readUInt32LE(0), version: b.readUInt32LE(4), nid: b.readBigUInt64LE(8) };
}

export interface Hello {
  magic: number;
  version: number;
  srcNid: bigint;
  dstNid: bigint;
  srcPid: number;
  dstPid: number;
  srcIncarnation: bigint;
  dstIncarnation: bigint;
  ctype: number;
  nips: number;
}

export function encodeHello(h: Omit<Hello, 'magic' | 'version' | 'nips'> & { version?: number }): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(LNET_PROTO_MAGIC, 0);
  b.writeUInt32LE(h.version ?? KSOCK_PROTO_V3, 4);
  b.writeBigUInt64LE(h.srcNid, 8);
  b.writeBigUInt64LE(h.dstNid, 16);
  b.writeUInt32LE(h.srcPid, 24);
  b.writeUInt32LE(h.dstPid, 28);
  b.writeBigUInt64LE(h.srcIncarnation, 32);
  b.writeBigUInt64LE(h.dstIncarnation, 40);
  b.writeUInt32LE(h.ctype, 48);
  b.writeUInt32LE(0, 52);
  return b;
}

export function decodeHello(b: Buffer): Hello {
  return {
    magic: b.readUInt32LE(0),
    version: b.readUInt32LE(4),
    srcNid: b.readBigUInt64LE(8),
    dstNid: b.readBigUInt64LE(16),
    srcPid: b.readUInt32LE(24),
    dstPid: b.readUInt32LE(28),
    srcIncarnation: b.readBigUInt64LE(32),
    dstIncarnation: b.readBigUInt64LE(40),
    ctype: b.readUInt32LE(48),
    nips: b.readUInt32LE(52),
  };
}

/** ksocknal_invert_type: what the acceptor calls a connection the connector typed `t`. */
export function invertConnType(t: number): number {
  switch (t) {
    case SOCKLND_CONN_ANY:
    case SOCKLND_CONN_CONTROL: return t;
    case SOCKLND_CONN_BULK_IN: return SOCKLND_CONN_BULK_OUT;
    case SOCKLND_CONN_BULK_OUT: return SOCKLND_CONN_BULK_IN;
    default: return SOCKLND_CONN_NONE;
  }
}
