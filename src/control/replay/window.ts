// The replay window of a device and the points inside it.
//
// The window is every state the device can be rebuilt at (src/osd/past.ts): from its base's txg
// to its last durable txg. A point names one of them:
//   txg:N            just after txg N
//   transno:N        just after the txg whose transaction was given transno N (the ptlrpc
//                    reply store's transno, which an OSD transaction notes in its log entry)
//   time:ISO-8601    just after the last txg closed at or before that moment (the base when
//                    none was); a moment before the base, or in the future, is outside
//   now              the last durable txg
// A point outside the window is an error (code ERANGE) whose message names the window.
import { readLog } from '../../log/index.js';
import { devicePaths, oldestBase, readDevice } from '../../osd/index.js';

/** What one txg of the window carries, for points, blame and step. */
export interface TxgInfo {
  txg: number;
  timeMs: number;
  /** The transnos of its transactions, ascending (as decimal strings: they are u64). */
  transnos: bigint[];
}

export interface ReplayWindow {
  device: string;
  baseTxg: number;
  baseTimeMs: number;
  lastTxg: number;
  lastTimeMs: number;
  firstTransno: bigint | null;
  lastTransno: bigint | null;
  txgs: TxgInfo[];
}

export type Point =
  | { kind: 'txg'; txg: number }
  | { kind: 'transno'; transno: bigint }
  | { kind: 'time'; ms: number; text: string }
  | { kind: 'now' };

export class PointError extends Error {
  constructor(message: string, readonly code: 'EINVAL' | 'ERANGE' = 'EINVAL') {
    super(message);
    this.name = 'PointError';
  }
}

export function parsePoint(text: string): Point {
  if (text === 'now') return { kind: 'now' };
  let m = /^txg:(\d+)$/.exec(text);
  if (m) return { kind: 'txg', txg: Number(m[1]) };
  m = /^transno:(\d+)$/.exec(text);
  if (m) return { kind: 'transno', transno: BigInt(m[1]!) };
  m = /^time:(.+)$/.exec(text);
  if (m) {
    const ms = Date.parse(m[1]!);
    if (Number.isNaN(ms)) throw new PointError(`'${m[1]}' is not an ISO-8601 time (e.g. time:2026-11-25T03:00:00Z)`);
    return { kind: 'time', ms, text: m[1]! };
  }
  throw new PointError(`'${text}' is not a point: use txg:N, transno:N, time:ISO-8601 or now`);
}

export function formatPoint(p: Point): string {
  switch (p.kind) {
    case 'now': return 'now';
    case 'txg': return `txg:${p.txg}`;
    case 'transno': return `transno:${p.transno}`;
    case 'time': return `time:${p.text}`;
  }
}

/** Splits DEVICE@POINT; a device path without a point is at 'now'. */
export function splitDevicePoint(arg: string): { device: string; point: Point } {
  const m = /^(.*)@(now|txg:\d+|transno:\d+|time:.+)$/.exec(arg);
  return m ? { device: m[1]!, point: parsePoint(m[2]!) } : { device: arg, point: { kind: 'now' } };
}

function transnosOf(entries: unknown[]): bigint[] {
  const out: bigint[] = [];
  for (const e of entries) {
    const t = (e as { tx?: { transno?: unknown } } | null)?.tx?.transno;
    if (typeof t === 'string' && /^\d+$/.test(t) && t !== '0') out.push(BigInt(t));
  }
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Reads the device's window (its base and every txg after it); refuses what is not a device. */
export async function readWindow(device: string): Promise<ReplayWindow> {
  await readDevice(device);
  const base = await oldestBase(device);
  const txgs: TxgInfo[] = [];
  for await (const record of readLog(devicePaths(device).log, { afterTxg: base.txg })) {
    txgs.push({ txg: record.txg, timeMs: record.timeMs, transnos: transnosOf(record.entries) });
  }
  let firstTransno: bigint | null = null;
  let lastTransno: bigint | null = null;
  for (const t of txgs) {
    if (t.transnos.length === 0) continue;
    firstTransno ??= t.transnos[0]!;
    lastTransno = t.transnos.at(-1)!;
  }
  const last = txgs.at(-1);
  return {
    device, baseTxg: base.txg, baseTimeMs: base.timeMs,
    lastTxg: last?.txg ?? base.txg, lastTimeMs: last?.timeMs ?? base.timeMs,
    firstTransno, lastTransno, txgs,
  };
}

export function describeWindow(w: ReplayWindow): string {
  const transnos = w.firstTransno === null ? 'no transno' : `transno ${w.firstTransno} to ${w.lastTransno}`;
  return `txg ${w.baseTxg} (${new Date(w.baseTimeMs).toISOString()}) to txg ${w.lastTxg} (${new Date(w.lastTimeMs).toISOString()}), ${transnos}`;
}

/** The txg a point names, or a PointError (ERANGE) naming the window. */
export function resolvePoint(w: ReplayWindow, p: Point, nowMs = Date.now()): number {
  const outside = (what: string): PointError =>
    new PointError(`${what} is outside the replay window of ${w.device}: ${describeWindow(w)}`, 'ERANGE');
  switch (p.kind) {
    case 'now':
      return w.lastTxg;
    case 'txg':
      if (p.txg < w.baseTxg || p.txg > w.lastTxg) throw outside(`txg ${p.txg}`);
      return p.txg;
    case 'transno': {
      const hit = w.txgs.find((t) => t.transnos.includes(p.transno));
      if (!hit) throw outside(`transno ${p.transno}`);
      return hit.txg;
    }
    case 'time': {
      if (p.ms < w.baseTimeMs || p.ms > nowMs) throw outside(`time ${new Date(p.ms).toISOString()}`);
      let txg = w.baseTxg;
      for (const t of w.txgs) {
        if (t.timeMs > p.ms) break;
        txg = t.txg;
      }
      return txg;
    }
  }
}
