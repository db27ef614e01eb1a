// The materialized state in LevelDB (DEVICE/db), and the same key space in the in-memory layers.
//
// Keys are UTF-8 strings; <fid> is fidKey() (34 characters of fixed-width hex, so byte order is
// FID order); <name> is the index or xattr name, any non-empty string of at most NAME_MAX_BYTES
// UTF-8 bytes. Values are CBOR (cbor-x, useRecords: false):
//   o:<fid>          ObjectAttrs map (see types.ts)
//   x:<fid>:<name>   xattr value, a byte string
//   i:<fid>:<name>   index entry { fid: [seq, oid, ver], type }
//   m:checkpointTxg  the txg this LevelDB state reflects (every txg <= it is in, none after)
//   m:objects        number of objects
//   m:bytes          sum of the sizes of data objects
//   m:lastGen        the last data-file generation handed out
//   m:clean          1 if the last close was clean (its checkpoint wrote it), 0 while open
//   z:<XX>/<file>    zero ranges of durable txgs not yet applied to that data file (written
//                    only by a checkpoint during replay, see zeroing.ts): [[start, end|null]...]
// A checkpoint writes its whole set of changes and m:checkpointTxg in ONE synced batch, so the
// database is always the exact state after some txg.

import { Encoder } from 'cbor-x';
import { fidKey, keptPerObject, parseFidKey, FID_KEY_LENGTH, type Fid } from './fid.js';
import type { IndexValue, ObjectAttrs, ObjectType } from './types.js';

export const NAME_MAX_BYTES = 255;
export const XATTR_VALUE_MAX_BYTES = 65536;

export const COUNTER = {
  checkpointTxg: 'm:checkpointTxg',
  objects: 'm:objects',
  bytes: 'm:bytes',
  lastGen: 'm:lastGen',
  clean: 'm:clean',
} as const;

export const objectKey: (f: Fid) => string = keptPerObject((f) => `o:${fidKey(f)}`);
export const xattrPrefix = (f: Fid): string => `x:${fidKey(f)}:`;
export const indexPrefix = (f: Fid): string => `i:${fidKey(f)}:`;
export const xattrKey = (f: Fid, name: string): string => xattrPrefix(f) + name;
export const indexKey = (f: Fid, name: string): string => indexPrefix(f) + name;
/** Every key of this kind ('o', 'x', 'i') lies in [kindStart, kindEnd). */
export const kindStart = (kind: 'o' | 'x' | 'i' | 'z'): string => `${kind}:`;
export const kindEnd = (kind: 'o' | 'x' | 'i' | 'z'): string => `${kind};`;

/** Splits an x: or i: key into its owner FID and name; undefined if malformed. */
export function splitOwnedKey(key: string): { fid: Fid; name: string } | undefined {
  const fid = parseFidKey(key.slice(2, 2 + FID_KEY_LENGTH));
  if (!fid || key[2 + FID_KEY_LENGTH] !== ':') return undefined;
  return { fid, name: key.slice(3 + FID_KEY_LENGTH) };
}

/** The prefix an x: or i: key belongs to ("i:<fid>:"), for grouping by owner. */
export function ownerPrefix(key: string): string | undefined {
  if ((key[0] !== 'x' && key[0] !== 'i') || key.length < 3 + FID_KEY_LENGTH) return undefined;
  return key.slice(0, 3 + FID_KEY_LENGTH);
}

/** A value in the key space: attrs, index value, xattr bytes or a counter. null is a tombstone. */
export type StateValue = ObjectAttrs | IndexValue | Uint8Array | number;

const cbor = new Encoder({ useRecords: false });

export function encodeValue(key: string, value: StateValue): Uint8Array {
  if (key[0] === 'i') {
    const v = value as IndexValue;
    return cbor.encode({ fid: [v.fid.seq, v.fid.oid, v.fid.ver], type: v.type });
  }
  return cbor.encode(value);
}

export function decodeValue(key: string, bytes: Uint8Array): StateValue {
  const v = cbor.decode(bytes) as unknown;
  if (key[0] === 'i') {
    const e = v as { fid: [number, number, number]; type: ObjectType };
    return { fid: { seq: e.fid[0], oid: e.fid[1], ver: e.fid[2] }, type: e.type };
  }
  if (key[0] === 'x') return toBuffer(v as Uint8Array);
  return v as StateValue;
}

export function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Rough bytes a value holds in memory, for the checkpoint threshold. */
export function valueBytes(key: string, value: StateValue | null): number {
  const base = 48 + key.length * 2;
  if (value === null || typeof value === 'number') return base + 8;
  if (value instanceof Uint8Array) return base + value.byteLength;
  return base + (key[0] === 'o' ? 160 : 64);
}

/**
 * Compares two keys in UTF-8 byte order (LevelDB's order). JavaScript's < compares UTF-16 code
 * units, which differs only when a surrogate meets a code unit >= 0xE000.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys && (xs ? y : x) >= 0xe000) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** The exclusive upper bound of the keys starting with `prefix` (prefixes here end in ':'). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
