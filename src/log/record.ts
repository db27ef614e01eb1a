// The on-disk format of the transaction-group log.
//
// A log is a folder of segment files. A segment is named by the first txg it may hold, as 16
// lower-case hex digits and the suffix ".txg" (0000000000000001.txg), and starts with a
// 32-byte header; records follow it back to back. All integers are little-endian.
//
// Segment header (32 bytes)
//   off size field
//     0    8 magic           "LUTXGSEG"
//     8    4 version         format version, SEGMENT_VERSION (1)
//    12    4 headerBytes     32
//    16    8 firstTxg        the txg the first record of this segment will carry
//    24    4 reserved        0
//    28    4 crc             crc32c of bytes 0..27
//
// Record (one per txg: every transaction of a txg is in exactly one record)
//   off size field
//     0    4 magic           0x52475854 ("TXGR" read as bytes)
//     4    2 version         RECORD_VERSION (1)
//     6    2 flags           0
//     8    8 txg             the txg number; records of a log are contiguous: each is the
//                            previous record's txg + 1
//    16    8 timeMs          when the txg closed, milliseconds since the epoch
//    24    4 bodyBytes       N, the length of the body
//    28    4 crc             crc32c of bytes 0..27 followed by the N body bytes
//    32    N body            CBOR (RFC 8949): an array holding the txg's entries in the order
//                            their transactions stopped
//  32+N    4 recordBytes     36 + N, so a reader can also walk records backwards
//
// A record is valid when its magic, version, crc and recordBytes all check and its txg follows
// the previous one. A txg is durable once its record is written and fdatasync'ed: it is applied
// whole or not at all. A crash mid-append leaves a torn tail: on open, the last segment is cut
// at the end of its last valid record, unless a valid record follows the damage, which is then
// corruption inside the log and an error, never silently dropped.
import { crc32c } from '@node-rs/crc32';
import { LogCorruptError } from './errors.js';

export const SEGMENT_MAGIC = Buffer.from('LUTXGSEG', 'latin1');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 32;
export const RECORD_MAGIC = 0x52475854;
export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 32;
export const RECORD_TRAILER_BYTES = 4;
export const RECORD_OVERHEAD_BYTES = RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES;
/** The largest body a reader accepts: a txg is closed long before this (dirtyBytesMax). */
export const RECORD_BODY_BYTES_MAX = 1024 * 1024 * 1024;

export function segmentName(firstTxg: number): string {
  return `${firstTxg.toString(16).padStart(16, '0')}.txg`;
}

/** The first txg of a segment from its file name, or null for a name that is not a segment. */
export function parseSegmentName(name: string): number | null {
  const m = /^([0-9a-f]{16})\.txg$/.exec(name);
  return m ? Number.parseInt(m[1]!, 16) : null;
}

export function encodeSegmentHeader(firstTxg: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32LE(SEGMENT_VERSION, 8);
  b.writeUInt32LE(SEGMENT_HEADER_BYTES, 12);
  b.writeBigUInt64LE(BigInt(firstTxg), 16);
  b.writeUInt32LE(crc32c(b.subarray(0, 28)), 28);
  return b;
}

/** Checks a segment header; returns its first txg or throws naming the file. */
export function decodeSegmentHeader(b: Buffer, file: string): number {
  if (b.length < SEGMENT_HEADER_BYTES || !b.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    throw new LogCorruptError('not a txg log segment (bad magic)', file, 0);
  }
  const version = b.readUInt32LE(8);
  if (version > SEGMENT_VERSION) {
    throw new LogCorruptError(
      `segment format version ${version} is newer than this software reads (${SEGMENT_VERSION})`,
      file, 8, 'EVERSION');
  }
  if (b.readUInt32LE(28) !== crc32c(b.subarray(0, 28))) {
    throw new LogCorruptError('segment header checksum mismatch', file, 28);
  }
  return Number(b.readBigUInt64LE(16));
}

// CBOR array headers (major type 4) for the body; the entries themselves are encoded once,
// when their transaction stops, and concatenated here.
function cborArrayHeader(count: number): Buffer {
  if (count < 24) return Buffer.from([0x80 | count]);
  if (count < 0x100) return Buffer.from([0x98, count]);
  if (count < 0x10000) {
    const b = Buffer.alloc(3); b[0] = 0x99; b.writeUInt16BE(count, 1); return b;
  }
  const b = Buffer.alloc(5); b[0] = 0x9a; b.writeUInt32BE(count, 1); return b;
}

/** Builds one record from already CBOR-encoded entries. */
export function encodeRecord(txg: number, timeMs: number, encodedEntries: Buffer[]): Buffer {
  const arrayHeader = cborArrayHeader(encodedEntries.length);
  let bodyBytes = arrayHeader.length;
  for (const e of encodedEntries) bodyBytes += e.length;
  const total = RECORD_OVERHEAD_BYTES + bodyBytes;
  const b = Buffer.allocUnsafe(total);
  b.writeUInt32LE(RECORD_MAGIC, 0);
  b.writeUInt16LE(RECORD_VERSION, 4);
  b.writeUInt16LE(0, 6);
  b.writeBigUInt64LE(BigInt(txg), 8);
  b.writeBigUInt64LE(BigInt(Math.trunc(timeMs)), 16);
  b.writeUInt32LE(bodyBytes, 24);
  let at = RECORD_HEADER_BYTES;
  at += arrayHeader.copy(b, at);
  for (const e of encodedEntries) at += e.copy(b, at);
  b.writeUInt32LE(total, at);
  const crc = crc32c(b.subarray(RECORD_HEADER_BYTES, at), crc32c(b.subarray(0, 28)));
  b.writeUInt32LE(crc, 28);
  return b;
}

export interface RawRecord {
  txg: number;
  timeMs: number;
  /** The CBOR body, a view into the buffer it was read from. */
  body: Buffer;
  offset: number;
  bytes: number;
}

/** What parsing at one position found. */
export type ParseResult =
  | { kind: 'record'; record: RawRecord }
  | { kind: 'torn'; reason: string }          // not enough bytes: a tail cut by a crash
  | { kind: 'bad'; reason: string; code?: string };  // bytes present but wrong

/** Parses the record at `offset` of `buf` (a whole segment, header included). */
export function parseRecord(buf: Buffer, offset: number): ParseResult {
  const left = buf.length - offset;
  if (left < RECORD_HEADER_BYTES) return { kind: 'torn', reason: `only ${left} bytes of a record header` };
  if (buf.readUInt32LE(offset) !== RECORD_MAGIC) return { kind: 'bad', reason: 'bad record magic' };
  const version = buf.readUInt16LE(offset + 4);
  if (version > RECORD_VERSION) {
    return { kind: 'bad', reason: `record format version ${version} is newer than this software reads (${RECORD_VERSION})`, code: 'EVERSION' };
  }
  const bodyBytes = buf.readUInt32LE(offset + 24);
  if (bodyBytes > RECORD_BODY_BYTES_MAX) return { kind: 'bad', reason: `record body length ${bodyBytes} is impossible` };
  const total = RECORD_OVERHEAD_BYTES + bodyBytes;
  if (left < total) return { kind: 'torn', reason: `record needs ${total} bytes, ${left} remain` };
  const bodyEnd = offset + RECORD_HEADER_BYTES + bodyBytes;
  const crc = crc32c(buf.subarray(offset + RECORD_HEADER_BYTES, bodyEnd), crc32c(buf.subarray(offset, offset + 28)));
  if (crc !== buf.readUInt32LE(offset + 28)) return { kind: 'bad', reason: 'record checksum mismatch' };
  if (buf.readUInt32LE(bodyEnd) !== total) return { kind: 'bad', reason: 'record trailer length mismatch' };
  return {
    kind: 'record',
    record: {
      txg: Number(buf.readBigUInt64LE(offset + 8)),
      timeMs: Number(buf.readBigUInt64LE(offset + 16)),
      body: buf.subarray(offset + RECORD_HEADER_BYTES, bodyEnd),
      offset,
      bytes: total,
    },
  };
}

/**
 * Whether a valid record starts anywhere after `from`: tells damage inside the log (records
 * after it are durable and must not be dropped) from a torn tail (nothing valid after it).
 */
export function validRecordAfter(buf: Buffer, from: number, afterTxg: number): number | null {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(RECORD_MAGIC, 0);
  for (let at = buf.indexOf(magic, from + 1); at >= 0; at = buf.indexOf(magic, at + 1)) {
    const r = parseRecord(buf, at);
    if (r.kind === 'record' && r.record.txg > afterTxg) return at;
  }
  return null;
}
