// lfs's argument syntax, as pure functions (the utility checks its arguments before it asks the
// kernel anything). Sizes follow llapi_parse_size: a number (decimal, 0x hex or 0 octal, with a
// fraction allowed before a suffix), then an optional unit: b (512-byte blocks, bytes where a
// size is always bytes), c (bytes), k, M, G, T, P, E (powers of 1024; case does not matter).
import { UsageError } from '../cli.js';
import type { CountTest, SizeTest } from './types.js';

const UNITS: Record<string, number> = { c: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };
const LOV_MIN_STRIPE_SIZE = 65536;
const STRIPE_SIZE_MAX = 0xffff0000;
const STRIPE_COUNT_MAX = 2000;

/** A size with its unit: bytes and the unit's size, or undefined when it is not one. */
function parseUnits(text: string, bytesDefault: boolean): { bytes: number; units: number } | undefined {
  const m = /^(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)(?:\.([0-9]+))?([bckmgtpe])?$/i.exec(text);
  if (!m) return undefined;
  const whole = m[1]!.toLowerCase().startsWith('0x') ? parseInt(m[1]!, 16) : m[1]!.length > 1 && m[1]!.startsWith('0') ? parseInt(m[1]!, 8) : Number(m[1]);
  const suffix = m[3]?.toLowerCase();
  const units = suffix === undefined ? 1 : suffix === 'b' ? (bytesDefault ? 1 : 512) : UNITS[suffix]!;
  const frac = m[2] ? Number(`0.${m[2]}`) : 0;
  const bytes = Math.floor((whole + frac) * units);
  return Number.isSafeInteger(bytes) ? { bytes, units } : undefined;
}

/** lfs setstripe -S: bytes, a multiple of 64 KiB (a value under 4096 is taken as KiB, as lfs does). */
export function parseStripeSize(text: string): number {
  const p = parseUnits(text, false);
  let size = p?.bytes;
  if (size !== undefined && size < 4096) size *= 1024;
  if (size === undefined || size % LOV_MIN_STRIPE_SIZE !== 0 || size > STRIPE_SIZE_MAX) {
    throw new UsageError(`setstripe: invalid stripe size '${text}' (a multiple of 64K up to 4G, e.g. 1M)`, 2);
  }
  return size;
}

/** A plain size in bytes (for anything that is not a stripe size). */
export function parseSize(text: string): number {
  const p = parseUnits(text, true);
  if (!p) throw new UsageError(`invalid size '${text}'`, 2);
  return p.bytes;
}

/** lfs setstripe -c: -1 (every OST) to 2000. */
export function parseStripeCount(text: string): number {
  if (!/^-?(0x[0-9a-f]+|[0-9]+)$/i.test(text)) throw new UsageError(`setstripe: invalid stripe count '${text}'`, 2);
  const n = Number(text);
  if (!Number.isInteger(n) || n < -1 || n > STRIPE_COUNT_MAX) throw new UsageError(`setstripe: invalid stripe count '${text}' (-1 for every OST, up to ${STRIPE_COUNT_MAX})`, 2);
  return n;
}

/** lfs setstripe -i: an OST index, or -1 for any. */
export function parseStripeIndex(text: string): number {
  if (!/^(-1|0x[0-9a-f]+|[0-9]+)$/i.test(text) || Number(text) > 0xfffe) throw new UsageError(`setstripe: invalid stripe offset '${text}'`, 2);
  return Number(text);
}

function signOf(text: string): { sign: -1 | 0 | 1; rest: string } {
  if (text.startsWith('+')) return { sign: 1, rest: text.slice(1) };
  if (text.startsWith('-')) return { sign: -1, rest: text.slice(1) };
  return { sign: 0, rest: text };
}

/** lfs find --size [+-]N[kMGTPE]: N units (bytes without a unit). */
export function parseSizeTest(text: string): SizeTest {
  const { sign, rest } = signOf(text);
  const p = parseUnits(rest, true);
  if (!p) throw new UsageError(`find: bad size '${text}' ([+-]N[kMGTPE], e.g. +1M)`, 2);
  return { sign, value: p.bytes, units: p.units };
}

/** lfs find --stripe-count [+-]N. */
export function parseCountTest(text: string): CountTest {
  const { sign, rest } = signOf(text);
  if (!/^[0-9]+$/.test(rest) || Number(rest) > 65535) throw new UsageError(`find: bad stripe count '${text}'`, 2);
  return { sign, value: Number(rest) };
}

/** A FID as lfs takes it: [0xSEQ:0xOID:0xVER], brackets optional; normalised to Lustre's text form. */
export function parseFidArg(text: string): string {
  const m = /^\[?(0x[0-9a-f]{1,16}):(0x[0-9a-f]{1,8}):(0x[0-9a-f]{1,8})\]?$/i.exec(text.trim());
  if (!m) throw new UsageError(`invalid FID '${text}' (as [0x200000400:0x1:0x0])`, 2);
  const [seq, oid, ver] = [m[1]!, m[2]!, m[3]!].map((h) => BigInt(h));
  if (seq! > BigInt(Number.MAX_SAFE_INTEGER)) throw new UsageError(`invalid FID '${text}': sequence too large`, 2);
  return `[0x${seq!.toString(16)}:0x${oid!.toString(16)}:0x${ver!.toString(16)}]`;
}
