// Config logs (llogs) on the OSD: one data object per log, named in the MGS's CONFIGS index, as
// Lustre's MGS keeps CONFIGS/testfs-client and friends. Records are only ever appended, each in
// the OSD transaction of the request that wrote it, so a log is whole records or nothing.
//
// Record layout, little-endian, after Lustre's llog_rec_hdr ... llog_rec_tail:
//    0 u32 len      whole record in bytes, header and tail included, a multiple of 8
//    4 u32 index    1, 2, 3, ... within the log (lrh_index)
//    8 u32 type     OBD_CFG_REC 0x10620000 (lrh_type)
//   12 u32 bodyLen  bytes of body
//   16 body         CBOR { command: LCFG_* number, name: string, args: string[] }, zero padded to 8
//   len-8 u32 len   again (lrt_len)
//   len-4 u32 index again (lrt_index)
// A log is valid when its records tile the object exactly, each len/index pair matches its
// tail, indexes run 1, 2, 3, ... and every body decodes. Lustre's llog header record (the
// bitmap of live records) is left out: config logs are append-only here, nothing is cancelled.
import { decode, encode } from 'cbor-x';
import { fid, type Fid, type Osd, type Tx } from '../../osd/index.js';
import { Lcfg, type ConfigRecord } from './protocol.js';

export const OBD_CFG_REC = 0x10620000;
const HEADER_BYTES = 16;
const TAIL_BYTES = 8;
/** Lustre's FID_SEQ_LLOG: llog objects, their oids counted in an xattr of CONFIGS. */
export const FID_SEQ_LLOG = 0x1;
const LAST_LLOG_OID = 'mgs.last_llog_oid';
/** A log's largest record (Lustre's LLOG_MIN_CHUNK_SIZE is 8 KiB). */
export const LLOG_RECORD_MAX_BYTES = 8192;

export class LlogError extends Error {
  readonly code = 'EBADMSG';
  constructor(message: string) {
    super(`EBADMSG: ${message}`);
    this.name = 'LlogError';
  }
}

export function encodeLlogRecord(r: ConfigRecord): Buffer {
  const body = encode({ command: r.command, name: r.name, args: r.args }) as Buffer;
  const padded = Math.ceil(body.length / 8) * 8;
  const len = HEADER_BYTES + padded + TAIL_BYTES;
  if (len > LLOG_RECORD_MAX_BYTES) throw new RangeError(`a config record of ${len} bytes exceeds ${LLOG_RECORD_MAX_BYTES}`);
  const out = Buffer.alloc(len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(r.index, 4);
  out.writeUInt32LE(OBD_CFG_REC, 8);
  out.writeUInt32LE(body.length, 12);
  body.copy(out, HEADER_BYTES);
  out.writeUInt32LE(len, len - 8);
  out.writeUInt32LE(r.index, len - 4);
  return out;
}

/** Every record of a log's bytes; throws LlogError at the first one that is not valid. */
export function decodeLlog(bytes: Buffer, name: string): ConfigRecord[] {
  const records: ConfigRecord[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const where = `${name} at offset ${offset}`;
    if (bytes.length - offset < HEADER_BYTES + TAIL_BYTES) throw new LlogError(`${where}: truncated record`);
    const len = bytes.readUInt32LE(offset);
    const index = bytes.readUInt32LE(offset + 4);
    const bodyLen = bytes.readUInt32LE(offset + 12);
    if (len % 8 !== 0 || len < HEADER_BYTES + TAIL_BYTES || offset + len > bytes.length) throw new LlogError(`${where}: bad length ${len}`);
    if (bytes.readUInt32LE(offset + 8) !== OBD_CFG_REC) throw new LlogError(`${where}: not a config record`);
    if (bytes.readUInt32LE(offset + len - 8) !== len || bytes.readUInt32LE(offset + len - 4) !== index) throw new LlogError(`${where}: tail does not match header`);
    if (index !== records.length + 1) throw new LlogError(`${where}: index ${index} where ${records.length + 1} was expected`);
    if (HEADER_BYTES + bodyLen > len - TAIL_BYTES) throw new LlogError(`${where}: body overruns the record`);
    let body: unknown;
    try {
      body = decode(bytes.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + bodyLen));
    } catch {
      throw new LlogError(`${where}: body is not CBOR`);
    }
    const b = body as Partial<ConfigRecord>;
    if (typeof b.command !== 'number' || typeof b.name !== 'string' || !Array.isArray(b.args) || !b.args.every((a) => typeof a === 'string')) {
      throw new LlogError(`${where}: body is not a config command`);
    }
    records.push({ index, command: b.command, name: b.name, args: b.args });
    offset += len;
  }
  return records;
}

interface Log {
  fid: Fid;
  records: ConfigRecord[];
  /** Encoded size of each record, for replies bounded in bytes. */
  sizes: number[];
  bytes: number;
}

export type NewRecord = Omit<ConfigRecord, 'index'>;

/** The logs of one MGS: loaded whole at start (config logs are small), appended in transactions. */
export class ConfigLogs {
  readonly #osd: Osd;
  readonly #dir: Fid;
  readonly #logs = new Map<string, Log>();

  private constructor(osd: Osd, dir: Fid) {
    this.#osd = osd;
    this.#dir = dir;
  }

  static async open(osd: Osd, dir: Fid): Promise<ConfigLogs> {
    const logs = new ConfigLogs(osd, dir);
    let cookie: string | null | undefined;
    do {
      const page = await osd.indexList(dir, { cookie, limit: 256 });
      for (const e of page.entries) {
        const attrs = await osd.getAttrs(e.fid);
        const bytes = attrs.size > 0 ? await osd.read(e.fid, 0, attrs.size) : Buffer.alloc(0);
        const records = decodeLlog(bytes, e.name);
        const sizes = records.map((r) => encodeLlogRecord(r).length);
        logs.#logs.set(e.name, { fid: e.fid, records, sizes, bytes: bytes.length });
      }
      cookie = page.cookie;
    } while (cookie);
    return logs;
  }

  names(): string[] {
    return [...this.#logs.keys()].sort();
  }

  has(name: string): boolean {
    return this.#logs.has(name);
  }

  lastIndex(name: string): number {
    return this.#logs.get(name)?.records.length ?? 0;
  }

  /** Records after `after`, at most `maxBytes` of them (at least one if any), and their bytes. */
  read(name: string, after: number, maxBytes: number): { records: ConfigRecord[]; bytes: number } {
    const log = this.#logs.get(name);
    const records: ConfigRecord[] = [];
    let bytes = 0;
    if (!log) return { records, bytes };
    for (let i = Math.max(0, after); i < log.records.length; i++) {
      if (records.length > 0 && bytes + log.sizes[i]! > maxBytes) break;
      bytes += log.sizes[i]!;
      records.push(log.records[i]!);
    }
    return { records, bytes };
  }

  /**
   * Appends records to `name` (creating the log) inside `tx`. The caller serializes appends:
   * the memory view follows each write as it lands, so it matches what the tx wrote.
   */
  async append(tx: Tx, name: string, records: NewRecord[]): Promise<number> {
    if (records.length === 0) return this.lastIndex(name);
    let log = this.#logs.get(name);
    if (!log) log = await this.#create(tx, name);
    const encoded: Buffer[] = [];
    const full: ConfigRecord[] = [];
    records.forEach((r, i) => {
      const record = { ...r, index: log.records.length + 1 + i };
      full.push(record);
      encoded.push(encodeLlogRecord(record));
    });
    const data = Buffer.concat(encoded);
    await tx.write(log.fid, log.bytes, data);
    log.records.push(...full);
    log.sizes.push(...encoded.map((b) => b.length));
    log.bytes += data.length;
    return log.records.length;
  }

  async #create(tx: Tx, name: string): Promise<Log> {
    const stored = await this.#osd.xattrFind(this.#dir, LAST_LLOG_OID);
    const last = stored ? Number(stored.readBigUInt64LE(0)) : 0;
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(last + 1));
    const logFid = fid(FID_SEQ_LLOG, last + 1);
    await tx.xattrSet(this.#dir, LAST_LLOG_OID, value);
    await tx.create(logFid, { type: 'reg', mode: 0o644 });
    await tx.indexInsert(this.#dir, name, { fid: logFid, type: 'reg' });
    const log: Log = { fid: logFid, records: [], sizes: [], bytes: 0 };
    this.#logs.set(name, log);
    return log;
  }
}

/** One line per record, as `lctl llog_print` prints a config log. */
export function formatRecord(r: ConfigRecord): string {
  const command = Object.entries(Lcfg).find(([, v]) => v === r.command)?.[0].toLowerCase() ?? `0x${r.command.toString(16)}`;
  return `#${String(r.index).padStart(2, '0')} (${command}) ${r.name ? `${r.name}: ` : ''}${r.args.join(' ')}`;
}
