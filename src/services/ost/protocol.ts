// The OST's wire protocol: the operation bodies of each OST opcode, shared by the OST (the
// server), the OSC (a client's import to one OST) and the MDT's OSP (precreate and destroy).
//
// Message layout (lustre_msg_v2, see ptlrpc/wire.ts): buffer 0 is ptlrpc_body; buffer 1 holds
// the operation body, one CBOR map (RFC 8949) as cbor-x writes it (map lengths in 16 bits,
// integers beyond 32 bits as float64, exact below 2^53), in the request and in a successful
// reply; test/services/ost pins example bytes. Error replies carry only the status (a negative errno) and no body. Bulk data never
// goes through CBOR: it moves as raw bytes through the bulk portal (OST_BULK_PORTAL), an LNet
// GET by the server for a write, a PUT by the server for a read, with the request's xid as
// match bits.
//
// Objects are named by (seq, oid), Lustre's OST object FIDs [seq:oid:0]. Sequences allowed:
// FID_SEQ_OST_MDT0 (0x100000000) up to (not including) the local sequences at 0x200000000,
// and the normal sequences from FID_SEQ_NORMAL (0x200000400).
//
//   opcode        portal    request body                                   reply body
//   OST_CREATE    OST_REQ   { seq, lastId, delorphan? }                   { seq, lastId }
//       Precreate: objects lastId(OST)+1 .. lastId are created (at most OST_MAX_PRECREATE per
//       request); the reply names the last created. A lastId at or below the OST's asks only
//       for it. delorphan: the MDT restarted and last used lastId: the objects above it are
//       destroyed and the OST's lastId becomes lastId (Lustre's OBD_FL_DELORPHAN).
//   OST_DESTROY   OST_REQ   { seq, oid }                                   {}
//   OST_GETATTR   OST_REQ   { seq, oid }                                   { attrs }
//   OST_SETATTR   OST_REQ   { seq, oid, attrs: { mode?, uid?, gid?, atime?, mtime?, ctime? } }
//                                                                          { attrs }
//       Size is not an attribute here: truncate is OST_PUNCH, as in Lustre.
//   OST_STATFS    OST_REQ   {}                                             { statfs }
//   OST_SET_INFO  OST_REQ   { key: 'grant', want, release }                { grant }
//       Stands in for ocd_grant at connect (ask for an initial grant) and for
//       KEY_GRANT_SHRINK (give some back, at disconnect).
//   OST_PUNCH     OST_IO    { seq, oid, start, end: number | null }        { attrs }
//       end null: truncate to start (Lustre's OBD_OBJECT_EOF); else [start, end) reads zeros.
//   OST_SYNC      OST_IO    { seq?, oid? }                                  {}
//   OST_WRITE     OST_IO    { seq, oid, niobufs: [offset, length][], cksumType, cksum,
//                             fromGrant, want }                           { attrs, grant }
//       The server GETs sum(length) bytes: the niobufs' data back to back. cksumType 0: none,
//       1: crc32c, 2: adler32 (OBD_CKSUM_* numbering differs: names, not bits, matter here),
//       cksum: the checksum of the whole bulk. A mismatch is refused with -EAGAIN and nothing is
//       written; the client resends (a new request). fromGrant: the client counted the write
//       against its grant (OBD_BRW_FROM_GRANT); want: how much more grant it would like; grant
//       in the reply: bytes granted by this reply.
//   OST_READ      OST_IO    { seq, oid, niobufs, cksumType }                { attrs, lengths, cksum }
//       lengths[i]: bytes of niobuf i within the object's size (short at its end); the server
//       PUTs those bytes back to back (nothing when all are 0). Holes read as zeros.
//
// Limits: OST_MAX_NIOBUFS ranges and OST_BRW_MAX_BYTES bytes per BRW; niobufs of one request
// are in increasing offset order and do not overlap.
import { decode, encode } from 'cbor-x';
import { Errno, statusError } from '../../ptlrpc/index.js';

export const FID_SEQ_OST_MDT0 = 0x1_0000_0000;
export const FID_SEQ_LOCAL_START = 0x2_0000_0000;
export const FID_SEQ_NORMAL = 0x2_0000_0400;
/** Objects one OST_CREATE may create (Lustre's OST_MAX_PRECREATE). */
export const OST_MAX_PRECREATE = 20_000;
/** Slots of one client on the ost_io service: a write is executed once and holds one while in flight (max_rpcs_in_flight at most 256). */
export const OST_IO_SLOTS = 256;
/** The largest bulk of one BRW (Lustre's PTLRPC_MAX_BRW_SIZE of 4 MiB). */
export const OST_BRW_MAX_BYTES = 4 * 1024 * 1024;
/** Ranges in one BRW (one niobuf per page run; Lustre allows one per page). */
export const OST_MAX_NIOBUFS = 256;
/** The largest object offset (the OSD's limit). */
export const OST_MAX_OBJECT_BYTES = 2 ** 52;

export const CksumType = { NONE: 0, CRC32C: 1, ADLER32: 2 } as const;
export type CksumType = (typeof CksumType)[keyof typeof CksumType];
export type CksumName = 'none' | 'crc32c' | 'adler32';
export const cksumTypeOf: Record<CksumName, CksumType> = { none: 0, crc32c: 1, adler32: 2 };

export interface OstObjectId {
  seq: number;
  oid: number;
}

/** An object's attributes as the OST reports them (Lustre's obdo fields). */
export interface ObdAttrs {
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  mode: number;
  uid: number;
  gid: number;
  /** The OSD's object version: bumped by every update of the object. */
  version: number;
}

export type SettableObdAttrs = Partial<Pick<ObdAttrs, 'mode' | 'uid' | 'gid' | 'atime' | 'mtime' | 'ctime'>>;
const SETTABLE = ['mode', 'uid', 'gid', 'atime', 'mtime', 'ctime'] as const;

/** Lustre's obd_statfs, in bytes and objects. */
export interface ObdStatfs {
  bsize: number;
  /** Blocks in all, free, and free for new grants (bfree less the grants outstanding). */
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  /** Bytes granted to clients and not yet used. */
  granted: number;
}

export type Niobuf = [offset: number, length: number];

export interface CreateRequest { seq: number; lastId: number; delorphan?: boolean }
export interface CreateReply { seq: number; lastId: number }
export interface SetattrRequest extends OstObjectId { attrs: SettableObdAttrs }
export interface PunchRequest extends OstObjectId { start: number; end: number | null }
export interface SyncRequest { seq?: number; oid?: number }
export interface GrantRequest { key: 'grant'; want: number; release: number }
export interface GrantReply { grant: number }
export interface WriteRequest extends OstObjectId {
  niobufs: Niobuf[]; cksumType: CksumType; cksum: number; fromGrant: boolean; want: number;
}
export interface WriteReply { attrs: ObdAttrs; grant: number }
export interface ReadRequest extends OstObjectId { niobufs: Niobuf[]; cksumType: CksumType }
export interface ReadReply { attrs: ObdAttrs; lengths: number[]; cksum: number }

// ---- Encoding ------------------------------------------------------------------------------

export function encodeBody(body: object): Buffer {
  return encode(body);
}

/** Decodes an operation body; a malformed one is the peer's fault: -EPROTO. */
export function decodeBody(buffers: Buffer[], what: string): Record<string, unknown> {
  const b = buffers[0];
  if (!b || b.length === 0) throw statusError(-Errno.EPROTO, `${what}: no operation body`);
  let v: unknown;
  try {
    v = decode(b);
  } catch {
    throw statusError(-Errno.EPROTO, `${what}: the operation body is not CBOR`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw statusError(-Errno.EPROTO, `${what}: the operation body is not a map`);
  return v as Record<string, unknown>;
}

function invalid(message: string): never {
  throw statusError(-Errno.EINVAL, message);
}

function uint(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max) invalid(`${what} must be an integer in [0, ${max}], not ${String(v)}`);
  return v as number;
}

export function isOstSeq(seq: number): boolean {
  return Number.isSafeInteger(seq) && ((seq >= FID_SEQ_OST_MDT0 && seq < FID_SEQ_LOCAL_START) || seq >= FID_SEQ_NORMAL);
}

function seqOf(v: unknown): number {
  const seq = uint(v, 'seq');
  if (!isOstSeq(seq)) invalid(`sequence 0x${seq.toString(16)} is not an OST object sequence`);
  return seq;
}

export function checkObjectId(body: Record<string, unknown>): OstObjectId {
  const seq = seqOf(body.seq);
  const oid = uint(body.oid, 'oid', 0xffff_ffff);
  if (oid === 0) invalid('oid 0 names no object');
  return { seq, oid };
}

export function checkCreate(body: Record<string, unknown>): CreateRequest {
  const seq = seqOf(body.seq);
  const lastId = uint(body.lastId, 'lastId', 0xffff_ffff);
  if (body.delorphan !== undefined && typeof body.delorphan !== 'boolean') invalid('delorphan must be a boolean');
  return { seq, lastId, delorphan: body.delorphan === true };
}

export function checkSetattr(body: Record<string, unknown>): SetattrRequest {
  const id = checkObjectId(body);
  const a = body.attrs;
  if (typeof a !== 'object' || a === null) invalid('setattr needs attrs');
  const attrs: SettableObdAttrs = {};
  for (const [k, v] of Object.entries(a)) {
    if (k === 'size') invalid('size is set by OST_PUNCH, not OST_SETATTR');
    if (!(SETTABLE as readonly string[]).includes(k)) invalid(`attribute ${k} cannot be set`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) invalid(`attribute ${k} must be a non-negative number`);
    if (k === 'mode' && (!Number.isInteger(v) || v > 0o7777)) invalid('mode holds permission bits only (0 to 07777)');
    if ((k === 'uid' || k === 'gid') && !Number.isSafeInteger(v)) invalid(`${k} must be an integer`);
    attrs[k as keyof SettableObdAttrs] = v;
  }
  return { ...id, attrs };
}

export function checkPunch(body: Record<string, unknown>): PunchRequest {
  const id = checkObjectId(body);
  const start = uint(body.start, 'punch start', OST_MAX_OBJECT_BYTES);
  const end = body.end === null || body.end === undefined ? null : uint(body.end, 'punch end', OST_MAX_OBJECT_BYTES);
  if (end !== null && end < start) invalid('punch end before start');
  return { ...id, start, end };
}

export function checkGrant(body: Record<string, unknown>): GrantRequest {
  if (body.key !== 'grant') invalid(`unknown info key ${String(body.key)}`);
  return { key: 'grant', want: uint(body.want ?? 0, 'want'), release: uint(body.release ?? 0, 'release') };
}

function cksumTypeOfBody(v: unknown): CksumType {
  if (v !== 0 && v !== 1 && v !== 2) invalid(`unknown checksum type ${String(v)}`);
  return v;
}

/** Niobufs: at most OST_MAX_NIOBUFS, increasing, not overlapping, OST_BRW_MAX_BYTES in all. */
export function checkNiobufs(v: unknown): Niobuf[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > OST_MAX_NIOBUFS) invalid(`a BRW needs 1 to ${OST_MAX_NIOBUFS} niobufs`);
  let end = 0;
  let total = 0;
  return v.map((nb: unknown) => {
    if (!Array.isArray(nb) || nb.length !== 2) invalid('a niobuf is [offset, length]');
    const offset = uint(nb[0], 'niobuf offset', OST_MAX_OBJECT_BYTES);
    const length = uint(nb[1], 'niobuf length', OST_BRW_MAX_BYTES);
    if (length === 0) invalid('a niobuf of 0 bytes');
    if (offset < end) invalid('niobufs must be in increasing offset order and not overlap');
    if (offset + length > OST_MAX_OBJECT_BYTES) invalid('a niobuf ends beyond the largest object size');
    end = offset + length;
    total += length;
    if (total > OST_BRW_MAX_BYTES) invalid(`a BRW of more than ${OST_BRW_MAX_BYTES} bytes`);
    return [offset, length] as Niobuf;
  });
}

export function checkWrite(body: Record<string, unknown>): WriteRequest {
  const id = checkObjectId(body);
  return {
    ...id, niobufs: checkNiobufs(body.niobufs), cksumType: cksumTypeOfBody(body.cksumType ?? 0),
    cksum: uint(body.cksum ?? 0, 'cksum', 0xffff_ffff), fromGrant: body.fromGrant === true, want: uint(body.want ?? 0, 'want'),
  };
}

export function checkRead(body: Record<string, unknown>): ReadRequest {
  const id = checkObjectId(body);
  return { ...id, niobufs: checkNiobufs(body.niobufs), cksumType: cksumTypeOfBody(body.cksumType ?? 0) };
}

export function niobufBytes(niobufs: readonly Niobuf[]): number {
  let n = 0;
  for (const [, length] of niobufs) n += length;
  return n;
}

// ---- Replies, as the client checks them ------------------------------------------------------

/** A reply body the client trusts only after these checks (the server is a peer, too). */
export function replyAttrs(body: Record<string, unknown>): ObdAttrs {
  const a = body.attrs as Record<string, unknown> | undefined;
  if (typeof a !== 'object' || a === null) throw statusError(-Errno.EPROTO, 'reply without attrs');
  for (const k of ['size', 'blocks', 'atime', 'mtime', 'ctime', 'mode', 'uid', 'gid', 'version']) {
    if (typeof a[k] !== 'number') throw statusError(-Errno.EPROTO, `reply attrs without ${k}`);
  }
  return a as unknown as ObdAttrs;
}

export function replyNumber(body: Record<string, unknown>, key: string): number {
  const v = body[key];
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw statusError(-Errno.EPROTO, `reply without a valid ${key}`);
  return v as number;
}

// ---- Request builders and reply readers for a caller with a bare Import (the MDT's OSP) ------

/** OST_CREATE's buffers (send with { modifying: true }). */
export function createRequest(seq: number, lastId: number, delorphan = false): Buffer[] {
  return [encodeBody(delorphan ? { seq, lastId, delorphan } : { seq, lastId })];
}

/** The last id an OST_CREATE reply names. */
export function createReplyLastId(buffers: Buffer[]): number {
  return replyNumber(decodeBody(buffers, 'OST_CREATE reply'), 'lastId');
}

/** OST_DESTROY's buffers (send with { modifying: true }; ENOENT means it is gone already). */
export function destroyRequest(id: OstObjectId): Buffer[] {
  return [encodeBody({ seq: id.seq, oid: id.oid })];
}

/** OST_GETATTR's buffers. */
export function getattrRequest(id: OstObjectId): Buffer[] {
  return [encodeBody({ seq: id.seq, oid: id.oid })];
}

export function getattrReply(buffers: Buffer[]): ObdAttrs {
  return replyAttrs(decodeBody(buffers, 'OST_GETATTR reply'));
}

/** OST_STATFS's buffers and reply. */
export function statfsRequest(): Buffer[] {
  return [encodeBody({})];
}

export function statfsReply(buffers: Buffer[]): ObdStatfs {
  const s = decodeBody(buffers, 'OST_STATFS reply').statfs as Record<string, unknown> | undefined;
  if (typeof s !== 'object' || s === null) throw statusError(-Errno.EPROTO, 'OST_STATFS reply without statfs');
  for (const k of ['bsize', 'blocks', 'bfree', 'bavail', 'files', 'ffree', 'granted']) {
    if (!Number.isSafeInteger(s[k]) || (s[k] as number) < 0) throw statusError(-Errno.EPROTO, `OST_STATFS reply without ${k}`);
  }
  return s as unknown as ObdStatfs;
}
