// Base snapshots: the whole OSD state (the key space of keys.ts) as of one txg, from which
// replay-to-point (past.ts) rebuilds any later state by replaying the log. A device keeps one
// base, at the txg just before the oldest log segment it keeps: mkfs writes the first (txg 0,
// the empty device), and each time the log deletes segments (txg-log.ts beforeTrim) the base is
// moved up to the txg before the first segment that stays, by replaying the segments about to
// go into the old base. So the window of points that can be rebuilt is always
// [base txg, last durable txg], and its length is what the log's retention keeps.
//
// File DEVICE/base/<txg as 16 lower-case hex digits>.base, little-endian:
//   off size field
//     0    8 magic       "LUOSDBAS"
//     8    4 version     BASE_VERSION (1)
//    12    4 reserved    0
//    16    8 txg         the state holds every txg <= txg and none after it
//    24    8 timeMs      when that txg closed (for txg 0: when the device was formatted)
//    32    8 bodyBytes   N
//    40    4 crc         crc32c of bytes 0..39 followed by the N body bytes
//    44    4 reserved    0
//    48    N body        CBOR array [key0, value0, key1, value1, ...]: every key of the state
//                        (o:, x:, i: and the m: counters, no z: key) with its value encoded as
//                        LevelDB holds it (keys.ts encodeValue)
// Written to <name>.tmp, fdatasync'ed and renamed, then the folder fsync'ed: a reader sees a
// whole base or none. A base whose magic, version or crc does not check is refused (EBADBASE),
// never used.

import { crc32c } from '@node-rs/crc32';
import { Encoder, decode } from 'cbor-x';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeValue, encodeValue, type StateValue } from './keys.js';
import { fsyncPath } from './device.js';

export const BASE_MAGIC = Buffer.from('LUOSDBAS', 'latin1');
export const BASE_VERSION = 1;
export const BASE_HEADER_BYTES = 48;
export const BASE_DIR = 'base';

export interface Base {
  txg: number;
  timeMs: number;
  state: Map<string, StateValue>;
}

export class BaseError extends Error {
  readonly code = 'EBADBASE';
  constructor(readonly file: string, reason: string) {
    super(`${file}: not a valid base snapshot (${reason})`);
    this.name = 'BaseError';
  }
}

export const baseDir = (device: string): string => join(device, BASE_DIR);
export const baseName = (txg: number): string => `${txg.toString(16).padStart(16, '0')}.base`;

const cbor = new Encoder({ useRecords: false });

export function encodeBase(base: Base): Buffer {
  const flat: unknown[] = [];
  for (const [key, value] of [...base.state].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (key.startsWith('z:')) continue;
    flat.push(key, encodeValue(key, value));
  }
  const body = cbor.encode(flat);
  const out = Buffer.alloc(BASE_HEADER_BYTES + body.length);
  BASE_MAGIC.copy(out, 0);
  out.writeUInt32LE(BASE_VERSION, 8);
  out.writeBigUInt64LE(BigInt(base.txg), 16);
  out.writeBigUInt64LE(BigInt(base.timeMs), 24);
  out.writeBigUInt64LE(BigInt(body.length), 32);
  body.copy(out, BASE_HEADER_BYTES);
  out.writeUInt32LE(crc32c(body, crc32c(out.subarray(0, 40))), 40);
  return out;
}

export function decodeBase(buf: Buffer, file: string): Base {
  if (buf.length < BASE_HEADER_BYTES || !buf.subarray(0, 8).equals(BASE_MAGIC)) throw new BaseError(file, 'bad magic');
  const version = buf.readUInt32LE(8);
  if (version !== BASE_VERSION) throw new BaseError(file, `version ${version}, this code reads ${BASE_VERSION}`);
  const bodyBytes = Number(buf.readBigUInt64LE(32));
  if (BASE_HEADER_BYTES + bodyBytes !== buf.length) throw new BaseError(file, `${buf.length} bytes, the header says ${BASE_HEADER_BYTES + bodyBytes}`);
  const body = buf.subarray(BASE_HEADER_BYTES);
  if (crc32c(body, crc32c(buf.subarray(0, 40))) !== buf.readUInt32LE(40)) throw new BaseError(file, 'crc mismatch');
  const flat = decode(body) as unknown;
  if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new BaseError(file, 'body is not a key/value array');
  const state = new Map<string, StateValue>();
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i];
    const value = flat[i + 1];
    if (typeof key !== 'string' || !(value instanceof Uint8Array)) throw new BaseError(file, `malformed entry ${i / 2}`);
    state.set(key, decodeValue(key, value));
  }
  return { txg: Number(buf.readBigUInt64LE(16)), timeMs: Number(buf.readBigUInt64LE(24)), state };
}

/** The txgs of the bases a device holds, oldest first (none: an empty list). */
export async function listBases(device: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(baseDir(device));
  } catch {
    return [];
  }
  return names.map((n) => /^([0-9a-f]{16})\.base$/.exec(n)).filter((m) => m !== null)
    .map((m) => Number.parseInt(m[1]!, 16)).sort((a, b) => a - b);
}

export async function readBase(device: string, txg: number): Promise<Base> {
  const file = join(baseDir(device), baseName(txg));
  return decodeBase(await readFile(file), file);
}

/** Writes a base durably (temp file, fdatasync, rename, folder fsync), then removes older ones. */
export async function writeBase(device: string, base: Base): Promise<void> {
  const dir = baseDir(device);
  await mkdir(dir, { recursive: true });
  const file = join(dir, baseName(base.txg));
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(encodeBase(base));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await fsyncPath(dir);
  for (const txg of await listBases(device)) if (txg < base.txg) await unlink(join(dir, baseName(txg))).catch(() => {});
}
