// The bulk checksums themselves, plain functions of bytes: crc32c (Castagnoli, Lustre's
// default) through @node-rs/crc32's native code, and adler32 (zlib's, RFC 1950) in JavaScript.
// Both chain over several buffers: the checksum of a bulk is that of its bytes back to back.
import { crc32c } from '@node-rs/crc32';
import { CksumType } from './protocol.js';

export interface ChecksumTask {
  type: CksumType;
  sab: SharedArrayBuffer;
  length: number;
}

const ADLER_MOD = 65521;
/** Bytes summed before a reduction keeps the sums below 2^53 ... and 2^32 (zlib's NMAX). */
const ADLER_NMAX = 5552;

export function adler32(bytes: Uint8Array, start = 1): number {
  let a = start & 0xffff;
  let b = start >>> 16;
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const end = Math.min(n, i + ADLER_NMAX);
    for (; i < end; i++) {
      a += bytes[i]!;
      b += a;
    }
    a %= ADLER_MOD;
    b %= ADLER_MOD;
  }
  return ((b << 16) | a) >>> 0;
}

/** The checksum of the buffers back to back; 0 for CksumType.NONE. */
export function checksumBytes(type: CksumType, ...buffers: Uint8Array[]): number {
  if (type === CksumType.NONE) return 0;
  let state = type === CksumType.ADLER32 ? 1 : 0;
  for (const b of buffers) state = type === CksumType.ADLER32 ? adler32(b, state) : crc32c(b, state);
  return state >>> 0;
}
