// The ptlrpc message as Lustre lays it out on the wire: a lustre_msg_v2 whose first buffer is
// a ptlrpc_body_v3. Facts from lustre/include/uapi/linux/lustre/lustre_idl.h, sizes and
// offsets checked against lustre/ptlrpc/wiretest.c.
//
// Byte order: little-endian throughout, as Lustre's x86 peers send it. A message whose magic
// reads 0xD30BD00B (a big-endian sender) is refused with EPROTO: there is none here to talk to.
//
// lustre_msg_v2 (header, 32 bytes + 4 per buffer, padded to a multiple of 8):
//   off size field
//     0    4 lm_bufcount   number of buffers, 1..MAX_BUFCOUNT; buffer 0 is the ptlrpc_body
//     4    4 lm_secflvr    0 (no sptlrpc flavour)
//     8    4 lm_magic      LUSTRE_MSG_MAGIC_V2 = 0x0BD00BD3
//    12    4 lm_repsize    requests: size of the reply buffer the client posted
//    16    4 lm_cksum      0 here (early replies only)
//    20    4 lm_flags      MSGHDR_* (0 here)
//    24    4 lm_opc        sub-request opcode of a batch (0 here)
//    28    4 lm_padding_3
//    32  4*n lm_buflens[n] length in bytes of each buffer, without padding
//   then zero padding up to round8(32 + 4n).
// Buffers follow, each starting 8-byte aligned: buffer i starts at
//   round8(32 + 4n) + sum(round8(lm_buflens[j]) for j < i)
// and the message is valid only if it holds round8(32 + 4n) + sum(round8(lm_buflens[i])) bytes
// (Lustre's lustre_msg_size_v2; the last buffer's padding is counted). Padding bytes are zero
// when we write them and ignored when we read. Bytes after that length are ignored.
//
// ptlrpc_body_v3 (buffer 0, 184 bytes; a 152-byte ptlrpc_body_v2, without pb_jobid, is accepted):
//   off size field
//     0    8 pb_handle         the export's cookie (connect reply: the new export's)
//     8    4 pb_type           PTL_RPC_MSG_REQUEST 4711, _ERR 4712, _REPLY 4713
//    12    4 pb_version        target version (high 16 bits) | PTLRPC_MSG_VERSION 3
//    16    4 pb_opc            opcode (OST_WRITE 4, MDS_REINT 36, OBD_PING 400, ...)
//    20    4 pb_status         reply: 0 or a negative Linux errno
//    24    8 pb_last_xid       request: highest xid replied with no lower xid unreplied
//    32    2 pb_tag            modifying requests: the slot (1..max_mod_rpcs); else 0
//    34    2 pb_padding0
//    36    4 pb_projid
//    40    8 pb_last_committed reply: highest transno on stable storage
//    48    8 pb_transno        reply: the transno the server gave a modifying request
//    56    4 pb_flags          MSG_RESENT 0x2, MSG_REPLAY 0x4, ...
//    60    4 pb_op_flags       connect: MSG_CONNECT_RECONNECT 0x2, ...
//    64    4 pb_conn_cnt       which connection of this client the request belongs to
//    68    4 pb_timeout        request: seconds the client waits; reply: service estimate (s)
//    72    4 pb_service_time   reply: seconds from arrival to reply
//    76    4 pb_limit          reply: DLM LRU lock limit
//    80    8 pb_slv            reply: DLM server lock volume
//    88   32 pb_pre_versions[4]
//   120    8 pb_mbits          request: match bits of its bulk
//   128   16 pb_padding64_0, pb_padding64_1
//   144    4 pb_uid
//   148    4 pb_gid
//   152   32 pb_jobid          ASCII, NUL-terminated
//
// The request's xid is not in these bytes: it travels as the LNet match bits of the request
// PUT, and the reply comes back as a PUT with the same match bits (Lustre's own choice).
// The operation's buffers (1..n-1) are opaque here; their owners define them.
import { LUSTRE_MSG_MAGIC_V2, LUSTRE_MSG_MAGIC_V2_SWABBED, LUSTRE_VERSION_MASK, MsgType, PTLRPC_MSG_VERSION } from './constants.js';
import { protocolError } from './errors.js';
import { ViewCache } from '../lnet/index.js';

export const MSG_HEADER_BYTES = 32;
export const PTLRPC_BODY_V3_BYTES = 184;
export const PTLRPC_BODY_V2_BYTES = 152;
export const JOBID_BYTES = 32;
/** Most buffers one message may carry (Lustre's own layouts stay under 20). */
export const MAX_BUFCOUNT = 32;

export interface PtlrpcBody {
  handle: bigint;
  type: number;
  version: number;
  opcode: number;
  status: number;
  lastXid: bigint;
  tag: number;
  projid: number;
  lastCommitted: bigint;
  transno: bigint;
  flags: number;
  opFlags: number;
  connCnt: number;
  timeout: number;
  serviceTime: number;
  limit: number;
  slv: bigint;
  preVersions: readonly [bigint, bigint, bigint, bigint];
  mbits: bigint;
  uid: number;
  gid: number;
  jobid: string;
}

export interface LustreMessage {
  secflvr: number;
  repsize: number;
  cksum: number;
  hdrFlags: number;
  opc: number;
  body: PtlrpcBody;
  /** The operation's buffers: message buffers 1..n-1 (views into the received bytes). */
  buffers: Buffer[];
}

export function round8(n: number): number {
  // Arithmetic, not bit operations: a length read from the wire may exceed 2^31.
  return n + ((8 - (n % 8)) % 8);
}

const zeroVersions = [0n, 0n, 0n, 0n] as const;

/** The fields of a body to encode: any left out is zero. */
export type BodyFields = Partial<PtlrpcBody> & Pick<PtlrpcBody, 'type' | 'opcode'>;

/** A body with every field zero except what is given. */
export function makeBody(fields: BodyFields): PtlrpcBody {
  // Spelled out rather than spread over defaults: this runs twice per RPC.
  return {
    handle: fields.handle ?? 0n, type: fields.type, version: fields.version ?? PTLRPC_MSG_VERSION,
    opcode: fields.opcode, status: fields.status ?? 0, lastXid: fields.lastXid ?? 0n, tag: fields.tag ?? 0,
    projid: fields.projid ?? 0, lastCommitted: fields.lastCommitted ?? 0n, transno: fields.transno ?? 0n,
    flags: fields.flags ?? 0, opFlags: fields.opFlags ?? 0, connCnt: fields.connCnt ?? 0, timeout: fields.timeout ?? 0,
    serviceTime: fields.serviceTime ?? 0, limit: fields.limit ?? 0, slv: fields.slv ?? 0n,
    preVersions: fields.preVersions ?? zeroVersions, mbits: fields.mbits ?? 0n, uid: fields.uid ?? 0,
    gid: fields.gid ?? 0, jobid: fields.jobid ?? '',
  };
}

/** The size of a message holding a v3 body and these operation buffers. */
export function messageBytes(buffers: readonly Buffer[]): number {
  let total = round8(MSG_HEADER_BYTES + 4 * (buffers.length + 1)) + PTLRPC_BODY_V3_BYTES;
  for (const b of buffers) total += round8(b.length);
  return total;
}

export interface EncodeOptions {
  repsize?: number;
}

/** Packs a body (fields left out are zero) and operation buffers into one lustre_msg_v2. */
export function encodeMessage(body: BodyFields, buffers: readonly Buffer[], options: EncodeOptions = {}): Buffer {
  const count = buffers.length + 1;
  if (count > MAX_BUFCOUNT) throw new RangeError(`a message holds at most ${MAX_BUFCOUNT} buffers, got ${count}`);
  const size = messageBytes(buffers);
  // Small messages come from Node's shared pool (far cheaper than a fresh zeroed ArrayBuffer);
  // zero-filled here, since skipped fields and padding must read as zero.
  const out = size < 4096 ? Buffer.allocUnsafe(size).fill(0) : Buffer.alloc(size);
  out.writeUInt32LE(count, 0);
  out.writeUInt32LE(LUSTRE_MSG_MAGIC_V2, 8);
  out.writeUInt32LE(options.repsize ?? 0, 12);
  out.writeUInt32LE(PTLRPC_BODY_V3_BYTES, 32);
  for (let i = 0; i < buffers.length; i++) out.writeUInt32LE(buffers[i]!.length, 36 + 4 * i);
  let offset = round8(MSG_HEADER_BYTES + 4 * count);
  writeBody(out, offset, body);
  offset += PTLRPC_BODY_V3_BYTES;
  for (const b of buffers) {
    b.copy(out, offset);
    offset += round8(b.length);
  }
  return out;
}

function writeBody(out: Buffer, o: number, b: BodyFields): void {
  // The buffer is zero-filled: zero and absent fields are skipped, which spares most writes.
  const v = views.get(out);
  const at = out.byteOffset + o;
  if (b.handle) writeU64(v, at, b.handle);
  v.setUint32(at + 8, b.type, true);
  v.setUint32(at + 12, (b.version ?? PTLRPC_MSG_VERSION) >>> 0, true);
  v.setUint32(at + 16, b.opcode, true);
  if (b.status) v.setInt32(at + 20, b.status, true);
  if (b.lastXid) writeU64(v, at + 24, b.lastXid);
  if (b.tag) v.setUint16(at + 32, b.tag, true);
  if (b.projid) v.setUint32(at + 36, b.projid, true);
  if (b.lastCommitted) writeU64(v, at + 40, b.lastCommitted);
  if (b.transno) writeU64(v, at + 48, b.transno);
  if (b.flags) v.setUint32(at + 56, b.flags, true);
  if (b.opFlags) v.setUint32(at + 60, b.opFlags, true);
  if (b.connCnt) v.setUint32(at + 64, b.connCnt, true);
  if (b.timeout) v.setUint32(at + 68, b.timeout, true);
  if (b.serviceTime) v.setUint32(at + 72, b.serviceTime, true);
  if (b.limit) v.setUint32(at + 76, b.limit, true);
  if (b.slv) writeU64(v, at + 80, b.slv);
  const pre = b.preVersions;
  if (pre && pre !== zeroVersions) for (let i = 0; i < 4; i++) if (pre[i]) writeU64(v, at + 88 + 8 * i, pre[i]!);
  if (b.mbits) writeU64(v, at + 120, b.mbits);
  if (b.uid) v.setUint32(at + 144, b.uid, true);
  if (b.gid) v.setUint32(at + 148, b.gid, true);
  if (b.jobid) out.write(b.jobid.slice(0, JOBID_BYTES - 1), o + 152, JOBID_BYTES - 1, 'latin1');
}

// 64-bit fields go through a DataView over the buffer's whole ArrayBuffer (small messages share
// Node's pool, so the view is most often the one already made): a BigInt written through
// Buffer's methods, or split with >> and &, makes new BigInts each time.
const views = new ViewCache();
const readViews = new ViewCache();

function writeU64(v: DataView, at: number, value: bigint): void {
  if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`${value} does not fit in a u64`);
  v.setBigUint64(at, value, true);
}

/**
 * The last value a u64 field decoded to: a connection's handle and the server's last_committed
 * repeat from message to message, and a BigInt made for each would be garbage at once.
 */
class U64Field {
  private lo = 0;
  private hi = 0;
  private value = 0n;
  read(d: Buffer, o: number): bigint {
    const lo = d.readUInt32LE(o);
    const hi = d.readUInt32LE(o + 4);
    if (lo === this.lo && hi === this.hi) return this.value;
    this.lo = lo;
    this.hi = hi;
    this.value = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
    return this.value;
  }
}
const handles = new U64Field();
const lastCommitteds = new U64Field();

/** A u64 field; the common zero and 32-bit values skip BigInt arithmetic. */
function readU64(d: Buffer, o: number): bigint {
  const hi = d.readUInt32LE(o + 4);
  if (hi === 0) {
    const lo = d.readUInt32LE(o);
    return lo === 0 ? 0n : BigInt(lo);
  }
  return (BigInt(hi) << 32n) | BigInt(d.readUInt32LE(o));
}

/**
 * Decodes and checks a received message once, at the edge. Throws PtlrpcError 'EPROTO'
 * naming what is wrong; never an assert, whatever the bytes.
 */
export function decodeMessage(payload: Buffer | readonly Buffer[]): LustreMessage {
  const data = Buffer.isBuffer(payload) ? payload : payload.length === 1 ? payload[0]! : Buffer.concat(payload);
  if (data.length < MSG_HEADER_BYTES + 4) {
    throw protocolError(`message of ${data.length} bytes is shorter than a lustre_msg_v2 header`);
  }
  const magic = data.readUInt32LE(8);
  if (magic === LUSTRE_MSG_MAGIC_V2_SWABBED) throw protocolError('byte-swapped (big-endian) lustre_msg_v2 is not supported');
  if (magic !== LUSTRE_MSG_MAGIC_V2) throw protocolError(`bad lustre_msg magic 0x${magic.toString(16)}`);
  const count = data.readUInt32LE(0);
  if (count < 1 || count > MAX_BUFCOUNT) throw protocolError(`bad buffer count ${count} (1..${MAX_BUFCOUNT})`);
  const headerBytes = round8(MSG_HEADER_BYTES + 4 * count);
  if (data.length < headerBytes) throw protocolError(`message of ${data.length} bytes cannot hold ${count} buffer lengths`);
  let required = headerBytes;
  for (let i = 0; i < count; i++) required += round8(data.readUInt32LE(MSG_HEADER_BYTES + 4 * i));
  if (data.length < required) throw protocolError(`message of ${data.length} bytes is shorter than its buffers (${required})`);
  const bodyBytes = data.readUInt32LE(MSG_HEADER_BYTES);
  if (bodyBytes < PTLRPC_BODY_V2_BYTES) throw protocolError(`ptlrpc_body of ${bodyBytes} bytes is too short`);
  const body = readBody(data, headerBytes, bodyBytes);
  if ((body.version & ~LUSTRE_VERSION_MASK) !== PTLRPC_MSG_VERSION) {
    throw protocolError(`unsupported ptlrpc version 0x${body.version.toString(16)}`);
  }
  if (body.type !== MsgType.REQUEST && body.type !== MsgType.REPLY && body.type !== MsgType.ERR) {
    throw protocolError(`bad ptlrpc message type ${body.type}`);
  }
  const buffers: Buffer[] = [];
  let offset = headerBytes + round8(bodyBytes);
  for (let i = 1; i < count; i++) {
    const len = data.readUInt32LE(MSG_HEADER_BYTES + 4 * i);
    buffers.push(data.subarray(offset, offset + len));
    offset += round8(len);
  }
  return {
    secflvr: data.readUInt32LE(4), repsize: data.readUInt32LE(12), cksum: data.readUInt32LE(16),
    hdrFlags: data.readUInt32LE(20), opc: data.readUInt32LE(24), body, buffers,
  };
}

function readBody(d: Buffer, o: number, bytes: number): PtlrpcBody {
  let jobid = '';
  if (bytes >= PTLRPC_BODY_V3_BYTES && d[o + 152] !== 0) {
    const raw = d.subarray(o + 152, o + 152 + JOBID_BYTES);
    const end = raw.indexOf(0);
    jobid = raw.subarray(0, end < 0 ? JOBID_BYTES : end).toString('latin1');
  }
  // Invariant: decodeMessage checked that the body's bytes are there; the view spans the
  // whole ArrayBuffer, so it is the check that keeps these reads inside the message.
  const v = readViews.get(d);
  const at = d.byteOffset + o;
  // Pre-versions are zero but in replays; the zero tuple is shared.
  const pre = (v.getUint32(at + 88, true) | v.getUint32(at + 92, true) | v.getUint32(at + 96, true) | v.getUint32(at + 100, true) |
    v.getUint32(at + 104, true) | v.getUint32(at + 108, true) | v.getUint32(at + 112, true) | v.getUint32(at + 116, true)) === 0
    ? zeroVersions
    : [readU64(d, o + 88), readU64(d, o + 96), readU64(d, o + 104), readU64(d, o + 112)] as const;
  return {
    handle: handles.read(d, o),
    type: v.getUint32(at + 8, true),
    version: v.getUint32(at + 12, true),
    opcode: v.getUint32(at + 16, true),
    status: v.getInt32(at + 20, true),
    lastXid: readU64(d, o + 24),
    tag: v.getUint16(at + 32, true),
    projid: v.getUint32(at + 36, true),
    lastCommitted: lastCommitteds.read(d, o + 40),
    transno: readU64(d, o + 48),
    flags: v.getUint32(at + 56, true),
    opFlags: v.getUint32(at + 60, true),
    connCnt: v.getUint32(at + 64, true),
    timeout: v.getUint32(at + 68, true),
    serviceTime: v.getUint32(at + 72, true),
    limit: v.getUint32(at + 76, true),
    slv: readU64(d, o + 80),
    preVersions: pre,
    mbits: readU64(d, o + 120),
    uid: v.getUint32(at + 144, true),
    gid: v.getUint32(at + 148, true),
    jobid,
  };
}
