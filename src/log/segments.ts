// Finding, reading and checking the segment files of a log folder.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LogCorruptError, LogError } from './errors.js';
import {
  SEGMENT_HEADER_BYTES, decodeSegmentHeader, parseRecord, parseSegmentName, validRecordAfter,
  type RawRecord,
} from './record.js';

export interface SegmentInfo {
  /** Full path of the file. */
  file: string;
  firstTxg: number;
}

/** The segments of a log folder, oldest first. */
export async function listSegments(dir: string): Promise<SegmentInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new LogError(`${dir} is not a txg log folder (${code})`, 'ENOTLOG');
    }
    throw err;
  }
  const segments: SegmentInfo[] = [];
  for (const name of names) {
    const firstTxg = parseSegmentName(name);
    if (firstTxg !== null) segments.push({ file: join(dir, name), firstTxg });
  }
  if (segments.length === 0) throw new LogError(`${dir} holds no txg log segment`, 'ENOTLOG');
  return segments.sort((a, b) => a.firstTxg - b.firstTxg);
}

export interface TornTail {
  file: string;
  offset: number;
  reason: string;
}

export interface ScanOutcome {
  /** The txg of the last valid record, or the txg before the first segment when there is none. */
  lastTxg: number;
  last: SegmentInfo;
  /** Where the last segment's valid bytes end: the append position. */
  endOffset: number;
  torn: TornTail | null;
  segments: SegmentInfo[];
}

export type ScanItem =
  | { kind: 'record'; segment: SegmentInfo; record: RawRecord }
  | { kind: 'end'; outcome: ScanOutcome };

/**
 * Walks every record with txg > afterTxg in order and checks the whole chain: headers, checksums,
 * contiguous txg numbers. A torn or damaged tail of the last segment with no valid record after it
 * is reported in the outcome, yielded last (the caller decides to cut it); any other damage
 * throws LogCorruptError with the file and offset.
 */
export async function* scanLog(dir: string, afterTxg: number): AsyncGenerator<ScanItem> {
  const segments = await listSegments(dir);
  let start = 0;
  for (let i = 0; i < segments.length; i++) if (segments[i]!.firstTxg <= afterTxg + 1) start = i;
  const first = segments[start]!;
  if (first.firstTxg > afterTxg + 1) {
    throw new LogCorruptError(
      `log starts at txg ${first.firstTxg} but txgs after ${afterTxg} are needed`, first.file, 16);
  }
  let expected = first.firstTxg;
  let endOffset = SEGMENT_HEADER_BYTES;
  let torn: TornTail | null = null;
  for (let i = start; i < segments.length; i++) {
    const segment = segments[i]!;
    const isLast = i === segments.length - 1;
    const buf = await readFile(segment.file);
    const firstTxg = decodeSegmentHeader(buf, segment.file);
    if (firstTxg !== segment.firstTxg || firstTxg !== expected) {
      throw new LogCorruptError(
        `segment starts at txg ${firstTxg}, expected ${expected}`, segment.file, 16);
    }
    let at = SEGMENT_HEADER_BYTES;
    while (at < buf.length) {
      const parsed = parseRecord(buf, at);
      if (parsed.kind === 'record' && parsed.record.txg !== expected) {
        throw new LogCorruptError(
          `record carries txg ${parsed.record.txg}, expected ${expected}`, segment.file, at);
      }
      if (parsed.kind !== 'record') {
        if (parsed.kind === 'bad' && parsed.code === 'EVERSION') throw new LogCorruptError(parsed.reason, segment.file, at, 'EVERSION');
        const later = validRecordAfter(buf, at, expected - 1);
        if (!isLast || later !== null) {
          const why = later !== null ? `${parsed.reason}, with a valid record after it at offset ${later}` : parsed.reason;
          throw new LogCorruptError(why, segment.file, at);
        }
        torn = { file: segment.file, offset: at, reason: parsed.reason };
        break;
      }
      if (parsed.record.txg > afterTxg) yield { kind: 'record', segment, record: parsed.record };
      expected++;
      at += parsed.record.bytes;
    }
    endOffset = at;
  }
  const last = segments[segments.length - 1]!;
  yield { kind: 'end', outcome: { lastTxg: expected - 1, last, endOffset, torn, segments } };
}

/** Bytes and newest modification time of each segment, for retention decisions and tools. */
export async function segmentSizes(segments: SegmentInfo[]): Promise<Array<SegmentInfo & { bytes: number; mtimeMs: number }>> {
  return Promise.all(segments.map(async (s) => {
    const st = await stat(s.file);
    return { ...s, bytes: st.size, mtimeMs: st.mtimeMs };
  }));
}
