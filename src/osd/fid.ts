// FIDs: Lustre's File IDentifiers, (seq, oid, ver). Text form as Lustre prints it,
// "[0x200000400:0x1:0x0]"; key form for LevelDB, fixed-width lowercase hex so that byte order
// is FID order: 16 hex digits of seq, '-', 8 of oid, '-', 8 of ver (34 characters).
// Limits: seq < 2^53 (a JavaScript safe integer), oid and ver < 2^32.

import { OsdError } from './errors.js';

export interface Fid {
  readonly seq: number;
  readonly oid: number;
  readonly ver: number;
}

export const FID_KEY_LENGTH = 34;
const U32 = 0x1_0000_0000;

export function isValidFid(fid: unknown): fid is Fid {
  if (typeof fid !== 'object' || fid === null) return false;
  const { seq, oid, ver } = fid as Fid;
  return (
    Number.isSafeInteger(seq) && seq >= 0 &&
    Number.isInteger(oid) && oid >= 0 && oid < U32 &&
    Number.isInteger(ver) && ver >= 0 && ver < U32
  );
}

/** Validates a FID given by a caller; the edge where bad input becomes EINVAL. */
export function checkFid(fid: unknown): Fid {
  if (!isValidFid(fid)) throw new OsdError('EINVAL', `not a valid FID: ${JSON.stringify(fid, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  return fid;
}

export function fid(seq: number, oid: number, ver = 0): Fid {
  return checkFid({ seq, oid, ver });
}

/**
 * `make` with its results kept by their argument object (a WeakMap): for the strings and names
 * made from an immutable object (a Fid, a ResId) many times over. A request handles the same few
 * FID objects again and again (parseFid hands out one object per text), and a string made once
 * is also hashed once by every Map it is looked up in (the OSD's state layers, the lock
 * namespaces): a key made anew cost about ten times a kept one there. Weak, so that the results
 * go with their object.
 */
export function keptPerObject<K extends object, V>(make: (k: K) => V): (k: K) => V {
  const kept = new WeakMap<K, V>();
  return (k) => {
    let v = kept.get(k);
    if (v === undefined) {
      v = make(k);
      kept.set(k, v);
    }
    return v;
  };
}

/** Lustre's text form of a FID. */
export const fidToString: (f: Fid) => string = keptPerObject((f) => `[0x${f.seq.toString(16)}:0x${f.oid.toString(16)}:0x${f.ver.toString(16)}]`);

const TEXT = /^\[0x([0-9a-fA-F]{1,14}):0x([0-9a-fA-F]{1,8}):0x([0-9a-fA-F]{1,8})\]$/;

/**
 * FIDs parsed lately, by text: a request names the same few objects many times over (the
 * handler, its locks, each update's apply), and the regular expression and three parseInts
 * were 1-2% of a metadata server's CPU. Frozen, so that sharing one is safe; cleared when full.
 */
const parsed = new Map<string, Fid>();
const PARSED_MAX = 4096;

/** Parses Lustre's text form; throws EINVAL on anything else. */
export function parseFid(text: string): Fid {
  const known = parsed.get(text);
  if (known !== undefined) return known;
  const m = TEXT.exec(text);
  if (!m) throw new OsdError('EINVAL', `not a FID: ${JSON.stringify(text)}`);
  const f = Object.freeze(checkFid({ seq: parseInt(m[1]!, 16), oid: parseInt(m[2]!, 16), ver: parseInt(m[3]!, 16) }));
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(text, f);
  return f;
}

/** Two lowercase hex digits of each byte value. */
const BYTE_HEX: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
/** Eight hex digits of a 32-bit value, by table: every state key names a FID, and Number's toString(16) made fidKey a few percent of a metadata server's CPU. */
const hex8 = (v: number): string => BYTE_HEX[v >>> 24]! + BYTE_HEX[(v >>> 16) & 0xff]! + BYTE_HEX[(v >>> 8) & 0xff]! + BYTE_HEX[v & 0xff]!;

/** The LevelDB key form of a FID (see the top of the file). */
export const fidKey: (f: Fid) => string = keptPerObject((f) => `${hex8(Math.floor(f.seq / U32))}${hex8(f.seq >>> 0)}-${hex8(f.oid)}-${hex8(f.ver)}`);

const KEY = /^([0-9a-f]{16})-([0-9a-f]{8})-([0-9a-f]{8})$/;

export function parseFidKey(key: string): Fid | undefined {
  const m = KEY.exec(key);
  if (!m) return undefined;
  const f = { seq: parseInt(m[1]!, 16), oid: parseInt(m[2]!, 16), ver: parseInt(m[3]!, 16) };
  return isValidFid(f) ? f : undefined;
}

export function fidEquals(a: Fid, b: Fid): boolean {
  return a.seq === b.seq && a.oid === b.oid && a.ver === b.ver;
}

/**
 * The OSD's root index: a well-known index object created by format, where upper layers
 * anchor their named local objects ("ROOT", "last_rcvd", "O/0", ...). It lives in Lustre's
 * FID_SEQ_LOCAL_FILE sequence (0x200000001). Every other object must be reachable from an
 * index entry somewhere.
 */
export const ROOT_INDEX_FID: Fid = Object.freeze({ seq: 0x200000001, oid: 0x1, ver: 0 });
