// What lustre.log shows of a device's txg log: the list of txgs, one txg decoded, and the
// verification of every record. Read-only: nothing here writes to the device.
import { join } from 'node:path';
import { LogCorruptError, decodeRecord, listSegments, scanLog, type TornTail, type TxgRecord } from '../log/index.js';

export interface TxgSummary {
  txg: number;
  time: string;
  entries: number;
  bytes: number;
  state: 'synced' | 'checkpointed';
  file: string;
  offset: number;
}

export interface LogListing {
  txgs: TxgSummary[];
  torn: TornTail | null;
  firstTxg: number | null;
  lastTxg: number | null;
}

export function logDir(device: string): string {
  return join(device, 'log');
}

/**
 * Every record still in the log, from its oldest segment (older ones were deleted by a
 * checkpoint, and a replayed copy's log starts after its checkpoint).
 */
async function* scanAll(device: string): ReturnType<typeof scanLog> {
  const segments = await listSegments(logDir(device));
  yield* scanLog(logDir(device), segments[0]!.firstTxg - 1);
}

/** Every txg still in the log; checkpointTxg marks those the device's checkpoint already holds. */
export async function listTxgs(device: string, checkpointTxg: number): Promise<LogListing> {
  const txgs: TxgSummary[] = [];
  let torn: TornTail | null = null;
  for await (const item of scanAll(device)) {
    if (item.kind === 'end') { torn = item.outcome.torn; break; }
    const record = decodeRecord(item.segment, item.record);
    txgs.push({
      txg: record.txg,
      time: new Date(record.timeMs).toISOString(),
      entries: record.entries.length,
      bytes: record.bytes,
      state: record.txg <= checkpointTxg ? 'checkpointed' : 'synced',
      file: record.file,
      offset: record.offset,
    });
  }
  return { txgs, torn, firstTxg: txgs[0]?.txg ?? null, lastTxg: txgs.at(-1)?.txg ?? null };
}

/** One txg, decoded; an error naming the window when it is not in the log. */
export async function readTxg(device: string, txg: number): Promise<TxgRecord> {
  let first: number | null = null;
  let last: number | null = null;
  for await (const item of scanAll(device)) {
    if (item.kind === 'end') break;
    first ??= item.record.txg;
    last = item.record.txg;
    if (item.record.txg === txg) return decodeRecord(item.segment, item.record);
  }
  const window = first === null ? 'the log holds no txg' : `the log holds txgs ${first} to ${last}`;
  throw Object.assign(new Error(`txg ${txg} is not in the log: ${window}`), { code: 'ENOENT' });
}

export interface LogProblem {
  kind: string;
  message: string;
  file?: string;
  offset?: number;
}

/** Checks every record of the log; returns the first problem (with file and offset) or null. */
export async function verifyLog(device: string): Promise<{ records: number; problem: LogProblem | null; torn: TornTail | null }> {
  let records = 0;
  try {
    for await (const item of scanAll(device)) {
      if (item.kind === 'end') return { records, problem: null, torn: item.outcome.torn };
      decodeRecord(item.segment, item.record);
      records++;
    }
  } catch (err) {
    if (err instanceof LogCorruptError) {
      return { records, torn: null, problem: { kind: 'log', message: err.message, file: err.file, offset: err.offset } };
    }
    throw err;
  }
  return { records, problem: null, torn: null };
}
