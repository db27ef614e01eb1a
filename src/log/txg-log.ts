// The transaction-group log: group commit of transactions into txgs, DMU style.
//
// A transaction holds the open txg from its start to its stop; many transactions share one
// txg. The open txg closes on a timer, at a dirty-bytes limit (its entries and the data its
// transactions wrote outside the log), or when someone waits for it;
// it then quiesces (waits for its last hold to be released) and syncs: its entries become one
// record, written with one append and one fdatasync. At most one txg is open, one quiescing and
// one syncing at any time, so the next txg fills while the previous one is on its way to disk:
// that overlap is what makes many small commits cheap.
//
// A replay barrier (barrier(), Lustre's replay_barrier) freezes the log at its last durable
// txg: later txgs still close and pass through the pipeline, so their holds are released and
// the owner's updates stay applied in memory, but nothing of them reaches a segment, their
// commit callbacks and onSynced never run, and lastSyncedTxg stays at the barrier. A crash then
// loses exactly those txgs; close() discards them too (Lustre's device is read-only under a
// barrier, so even a clean unmount keeps nothing after it). The barrier lasts until the log is
// closed.
//
// Fault injection points (fail-loc.ts): OBD_FAIL_TXG_SYNC_DELAY, OBD_FAIL_TXG_BEFORE_SYNC_CRASH
// and OBD_FAIL_TXG_WRITE_ERR before a txg's append, OBD_FAIL_TXG_AFTER_SYNC_CRASH after its
// fdatasync and before its commit callbacks.
import assert from 'node:assert/strict';
import { constants as osConstants } from 'node:os';
import { mkdir, open, readFile, readdir, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Encoder, decode } from 'cbor-x';
import {
  defaultTunables, type TxgHold, type TxgLogOptions, type TxgLogStats, type TxgLogTunables,
  type TxgRecord, type TxgState,
} from './api.js';
import { LogCorruptError, LogError } from './errors.js';
import { FAIL, failLoc } from './fail-loc.js';
import { SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, parseSegmentName, segmentName, type RawRecord } from './record.js';
import { scanLog, segmentSizes, type SegmentInfo } from './segments.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

class Txg {
  state: TxgState = 'open';
  holds = 0;
  entries: Buffer[] = [];
  /** Encoded bytes of the entries. */
  bytes = 0;
  /** Bytes written outside the log by the txg's transactions (TxgHold.release's dataBytes). */
  dataBytes = 0;
  callbacks: Array<(txg: number) => void> = [];
  waiters: Waiter[] = [];
  /** Under a replay barrier: resolved when the txg has gone through the pipeline (sync()). */
  passed: Array<() => void> = [];
  closeRequested = false;
  closedAtMs = 0;
  constructor(readonly txg: number) {}
  get empty(): boolean {
    return this.holds === 0 && this.entries.length === 0 && this.callbacks.length === 0;
  }
}

/** Decodes a record's body; a body that is not a CBOR array is corruption at that record. */
export function decodeRecord(segment: SegmentInfo, raw: RawRecord): TxgRecord {
  let entries: unknown;
  try {
    entries = decode(raw.body);
  } catch (err) {
    throw new LogCorruptError(`record body is not valid CBOR (${(err as Error).message})`, segment.file, raw.offset);
  }
  if (!Array.isArray(entries)) throw new LogCorruptError('record body is not an array', segment.file, raw.offset);
  return { txg: raw.txg, timeMs: raw.timeMs, entries, file: segment.file, offset: raw.offset, bytes: raw.bytes };
}

/** Every record with txg > afterTxg, decoded, for tools; throws LogCorruptError at the first damage. */
export async function* readLog(dir: string, opts: { afterTxg?: number } = {}): AsyncGenerator<TxgRecord> {
  for await (const item of scanLog(dir, opts.afterTxg ?? 0)) {
    if (item.kind === 'record') yield decodeRecord(item.segment, item.record);
  }
}

export class TxgLog {
  private readonly tunables: TxgLogTunables;
  private readonly clock: () => number;
  private readonly encoder = new Encoder({ useRecords: false });
  private openTxg: Txg;
  private quiescing: Txg | null = null;
  private syncing: Txg | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the open txg's timer was armed (the log's clock), to re-arm it on a new txgTimeoutMs. */
  private timerArmedAt = 0;
  private failed: LogError | null = null;
  private closed = false;
  private lastSynced: number;
  private checkpointAt: number;
  private checkpointRunning: Promise<number> | null = null;
  /** The replay barrier's txg: nothing after it is written (null: no barrier). */
  private barrierAt: number | null = null;
  /** Waiters of txgs the barrier discarded: rejected at close. */
  private discardedWaiters: Waiter[] = [];
  private readonly counters = {
    txgsDiscarded: 0, txgsSynced: 0, syncTimeTotalMs: 0, syncTimeMaxMs: 0, dirtyBytes: 0, recordsReplayed: 0, bytesWritten: 0,
  };

  /**
   * Creates an empty log: one segment holding only its header, made durable with its folder.
   * firstTxg > 1 starts a log that goes on from a state as of txg firstTxg - 1 (a replayed copy,
   * whose checkpoint is that state): its first record will carry firstTxg.
   */
  static async format(dir: string, firstTxg = 1): Promise<void> {
    assert(Number.isSafeInteger(firstTxg) && firstTxg >= 1);
    await mkdir(dir, { recursive: true });
    const existing = (await readdir(dir)).filter((n) => n.endsWith('.txg'));
    if (existing.length > 0) throw new LogError(`${dir} already holds a txg log`, 'EEXIST');
    await (await createSegment(dir, firstTxg)).fh.close();
  }

  /** Opens a log: replays every record after the checkpoint, cuts a torn tail, then accepts holds. */
  static async open(opts: TxgLogOptions): Promise<TxgLog> {
    await removeUnfinishedSegments(opts.dir, opts.warn);
    let replayed = 0;
    let outcome = null;
    for await (const item of scanLog(opts.dir, opts.checkpointTxg)) {
      if (item.kind === 'end') { outcome = item.outcome; break; }
      await opts.replay?.(decodeRecord(item.segment, item.record));
      replayed++;
    }
    assert(outcome, 'scanLog always ends with its outcome');
    if (outcome.lastTxg < opts.checkpointTxg) {
      throw new LogCorruptError(
        `log ends at txg ${outcome.lastTxg}, before the checkpoint's txg ${opts.checkpointTxg}`, outcome.last.file, 0);
    }
    const fh = await open(outcome.last.file, 'r+');
    if (outcome.torn) {
      await fh.truncate(outcome.endOffset);
      await fh.datasync();
      opts.warn?.(`txg log: cut a torn tail of ${outcome.last.file} at offset ${outcome.endOffset} ` +
        `(${outcome.torn.reason}); the log ends at txg ${outcome.lastTxg}`);
    }
    const log = new TxgLog(opts, fh, outcome.last, outcome.segments, outcome.endOffset, outcome.lastTxg);
    log.counters.recordsReplayed = replayed;
    return log;
  }

  private constructor(
    private readonly opts: TxgLogOptions,
    private fh: FileHandle,
    private segment: SegmentInfo,
    private segments: SegmentInfo[],
    private fileOffset: number,
    lastTxg: number,
  ) {
    this.tunables = { ...defaultTunables };
    for (const key of Object.keys(defaultTunables) as Array<keyof TxgLogTunables>) {
      if (opts[key] !== undefined) this.tunables[key] = opts[key]!;
    }
    this.clock = opts.clock ?? Date.now;
    this.lastSynced = lastTxg;
    this.checkpointAt = opts.checkpointTxg;
    this.openTxg = new Txg(lastTxg + 1);
  }

  get lastSyncedTxg(): number {
    return this.lastSynced;
  }

  get checkpointTxg(): number {
    return this.checkpointAt;
  }

  /** The replay barrier's txg, or null when no barrier is set. */
  get barrierTxg(): number | null {
    return this.barrierAt;
  }

  /**
   * Sets a replay barrier (Lustre's replay_barrier: sync, then the device read-only with
   * notransno): everything so far is made durable, then no later txg is written or
   * acknowledged (see the top of this file). Resolves with the barrier's txg, the last one
   * that is durable; a second call returns the same txg.
   */
  async barrier(): Promise<number> {
    this.assertUsable();
    if (this.barrierAt !== null) return this.barrierAt;
    await this.sync();
    // A txg whose append is already under way is written whole: the barrier is after it.
    this.barrierAt ??= this.syncing?.txg ?? this.lastSynced;
    await this.waitSynced(this.barrierAt);
    this.opts.warn?.(`txg log: replay barrier at txg ${this.barrierAt}: later txgs are not written`);
    return this.barrierAt;
  }

  /**
   * Changes tunables of a running log (lctl set_param). Each must be a positive integer
   * (retainMs and retainBytes may be 0). A new txgTimeoutMs applies to the open txg too: its
   * timer fires txgTimeoutMs after it was armed (at once if that is past).
   */
  tune(changes: Partial<TxgLogTunables>): void {
    for (const [key, value] of Object.entries(changes) as Array<[keyof TxgLogTunables, number | undefined]>) {
      if (!(key in defaultTunables)) throw new LogError(`unknown txg log tunable '${key}'`, 'EINVAL');
      const min = key === 'retainMs' || key === 'retainBytes' ? 0 : 1;
      if (value === undefined || !Number.isSafeInteger(value) || value < min) {
        throw new LogError(`txg log tunable ${key} must be an integer >= ${min}, not ${String(value)}`, 'EINVAL');
      }
    }
    Object.assign(this.tunables, changes);
    if (changes.txgTimeoutMs !== undefined && this.timer !== null) {
      clearTimeout(this.timer);
      const left = Math.max(0, this.timerArmedAt + changes.txgTimeoutMs - this.clock());
      this.timer = setTimeout(() => this.timerFired(), left);
    }
  }

  getTunables(): TxgLogTunables {
    return { ...this.tunables };
  }

  hold(): TxgHold {
    this.assertUsable();
    const t = this.openTxg;
    t.holds++;
    if (this.timer === null) this.armTimer();
    let released = false;
    return {
      txg: t.txg,
      release: (entry: unknown, onCommit?: (txg: number) => void, dataBytes = 0) => {
        assert(!released, 'a txg hold is released once');
        released = true;
        if (entry !== undefined) {
          const encoded = this.encoder.encode(entry);
          t.entries.push(encoded);
          t.bytes += encoded.length;
          this.counters.dirtyBytes += encoded.length;
        }
        t.dataBytes += dataBytes;
        if (t.bytes + t.dataBytes >= this.tunables.dirtyBytesMax) t.closeRequested = true;
        if (onCommit) t.callbacks.push(onCommit);
        t.holds--;
        if (t !== this.openTxg || t.closeRequested) this.advance();
      },
    };
  }

  /**
   * Resolves once txg is durable, closing it first if it is still open; with hurry false, it
   * waits for the txg to close on its own (timer, size), as a commit callback would.
   */
  waitSynced(txg: number, hurry = true): Promise<void> {
    if (txg <= this.lastSynced) return Promise.resolve();
    if (this.failed) return Promise.reject(this.failed);
    const t = [this.syncing, this.quiescing, this.openTxg].find((x) => x?.txg === txg);
    if (!t && this.barrierAt !== null && txg < this.openTxg.txg) {
      // Discarded by the barrier: it never becomes durable (rejected at close).
      return new Promise<void>((resolve, reject) => this.discardedWaiters.push({ resolve, reject }));
    }
    if (!t) return Promise.reject(new LogError(`txg ${txg} does not exist yet (open txg is ${this.openTxg.txg})`, 'EINVAL'));
    return new Promise<void>((resolve, reject) => {
      t.waiters.push({ resolve, reject });
      if (!hurry) return;
      if (t === this.openTxg) t.closeRequested = true;
      this.advance();
    });
  }

  /**
   * Closes the open txg if anything is in it and waits until everything so far is durable.
   * Under a replay barrier it waits until everything so far has gone through the pipeline
   * (discarded) and returns the barrier's txg: nothing more will be durable.
   */
  async sync(): Promise<number> {
    if (this.barrierAt !== null) {
      const newest = [this.openTxg, this.quiescing, this.syncing].find((x) => x !== null && !x.empty);
      if (newest) {
        await new Promise<void>((resolve) => {
          newest.passed.push(resolve);
          if (newest === this.openTxg) newest.closeRequested = true;
          this.advance();
        });
      }
      return this.lastSynced;
    }
    const t = this.openTxg;
    await this.waitSynced(t.empty ? t.txg - 1 : t.txg);
    return this.lastSynced;
  }

  /**
   * Calls write(lastSyncedTxg) at once (the owner stores its state as of that txg, with the txg,
   * durably), then removes segments the checkpoint covers, unless retention keeps them.
   */
  checkpoint(write: (txg: number) => Promise<void>): Promise<number> {
    this.assertUsable();
    const previous = this.checkpointRunning ?? Promise.resolve(0);
    const run = previous.then(async () => {
      const txg = this.lastSynced;
      await write(txg);
      this.checkpointAt = Math.max(this.checkpointAt, txg);
      await writeCheckpointHint(this.opts.dir, this.checkpointAt);
      await this.trimSegments();
      return txg;
    });
    const tracked = run.finally(() => { if (this.checkpointRunning === tracked) this.checkpointRunning = null; });
    this.checkpointRunning = tracked;
    return tracked;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.failed) await this.sync();
    if (this.checkpointRunning) await this.checkpointRunning.catch(() => undefined);
    this.closed = true;
    this.clearTimer();
    if (this.barrierAt !== null) {
      const err = new LogError(`txg log closed under a replay barrier at txg ${this.barrierAt}: later txgs were discarded`, 'ESHUTDOWN');
      const waiters = [...this.discardedWaiters.splice(0), ...[this.syncing, this.quiescing, this.openTxg].flatMap((t) => t?.waiters.splice(0) ?? [])];
      for (const w of waiters) w.reject(err);
    }
    await this.fh.close();
  }

  stats(): TxgLogStats {
    return {
      openTxg: this.openTxg.txg,
      lastSyncedTxg: this.lastSynced,
      checkpointTxg: this.checkpointAt,
      barrierTxg: this.barrierAt ?? 0,
      segments: this.segments.length,
      ...this.counters,
    };
  }

  /** The states of the txgs in flight, newest first, for tools and tests. */
  inFlight(): Array<{ txg: number; state: TxgState; entries: number; holds: number }> {
    return [this.openTxg, this.quiescing, this.syncing]
      .filter((t): t is Txg => t !== null)
      .map((t) => ({ txg: t.txg, state: t.state, entries: t.entries.length, holds: t.holds }));
  }

  private assertUsable(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new LogError('the txg log is closed', 'ESHUTDOWN');
  }

  private armTimer(): void {
    this.timerArmedAt = this.clock();
    this.timer = setTimeout(() => this.timerFired(), this.tunables.txgTimeoutMs);
  }

  private timerFired(): void {
    this.timer = null;
    this.openTxg.closeRequested = true;
    this.advance();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  // Moves txgs along open -> quiescing -> syncing as far as the one-per-state rule allows.
  private advance(): void {
    for (;;) {
      if (this.failed) return;
      const q = this.quiescing;
      if (q && q.holds === 0 && !this.syncing) {
        this.quiescing = null;
        this.syncing = q;
        q.state = 'syncing';
        void this.syncTxg(q);
        continue;
      }
      const o = this.openTxg;
      if (!o.closeRequested) return;
      if (o.empty) {
        // Nothing to write: its waiters only need everything before it to be durable.
        o.closeRequested = false;
        const inFlight = this.quiescing ?? this.syncing;
        const waiters = o.waiters.splice(0);
        if (inFlight) inFlight.waiters.push(...waiters);
        else if (o.txg - 1 > this.lastSynced) this.discardedWaiters.push(...waiters); // after a barrier
        else for (const w of waiters) w.resolve();
        return;
      }
      if (this.quiescing) return;
      this.clearTimer();
      o.state = 'quiescing';
      o.closedAtMs = this.clock();
      this.quiescing = o;
      this.openTxg = new Txg(o.txg + 1);
    }
  }

  private async syncTxg(t: Txg): Promise<void> {
    if (this.barrierAt !== null) {
      await Promise.resolve(); // advance() is still looping: discard on the next tick
      this.discard(t);
      return;
    }
    const started = performance.now();
    try {
      if (failLoc.active) await injectBeforeAppend();
      await this.opts.beforeSync?.(t.txg);
      await this.append(t.txg, encodeRecord(t.txg, t.closedAtMs, t.entries));
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
      return;
    }
    // Durable, and no one told yet: a crash here leaves commits the clients never heard of.
    if (failLoc.active) failLoc.crash(FAIL.OBD_FAIL_TXG_AFTER_SYNC_CRASH!);
    // Invariant: txgs become durable one at a time, in order.
    assert.equal(t.txg, this.lastSynced + 1);
    const elapsed = performance.now() - started;
    this.lastSynced = t.txg;
    t.state = 'synced';
    this.counters.txgsSynced++;
    this.counters.syncTimeTotalMs += elapsed;
    this.counters.syncTimeMaxMs = Math.max(this.counters.syncTimeMaxMs, elapsed);
    this.counters.dirtyBytes -= t.bytes;
    t.entries = [];
    this.syncing = null;
    this.opts.onSynced?.(t.txg);
    for (const callback of t.callbacks) callback(t.txg);
    for (const w of t.waiters) w.resolve();
    this.advance();
  }

  // A txg after the replay barrier: through the pipeline, never to disk, never acknowledged.
  private discard(t: Txg): void {
    assert.equal(this.syncing, t);
    this.counters.txgsDiscarded++;
    this.counters.dirtyBytes -= t.bytes;
    t.entries = [];
    t.callbacks = [];
    this.discardedWaiters.push(...t.waiters.splice(0));
    this.syncing = null;
    for (const resolve of t.passed.splice(0)) resolve();
    this.advance();
  }

  private async append(txg: number, record: Buffer): Promise<void> {
    if (this.fileOffset > SEGMENT_HEADER_BYTES &&
        this.fileOffset + record.length > this.tunables.segmentBytesMax) {
      await this.rotate(txg);
    }
    try {
      let done = 0;
      while (done < record.length) {
        const { bytesWritten } = await this.fh.write(record, done, record.length - done, this.fileOffset + done);
        done += bytesWritten;
      }
      await this.fh.datasync();
    } catch (err) {
      // Leave no partial record behind: the next open would take it for a torn tail anyway.
      await this.fh.truncate(this.fileOffset).catch(() => undefined);
      throw err;
    }
    this.fileOffset += record.length;
    this.counters.bytesWritten += record.length;
  }

  private async rotate(firstTxg: number): Promise<void> {
    const { fh, file } = await createSegment(this.opts.dir, firstTxg);
    await this.fh.close();
    this.fh = fh;
    this.segment = { file, firstTxg };
    this.segments.push(this.segment);
    this.fileOffset = SEGMENT_HEADER_BYTES;
  }

  // Deletes the oldest segments wholly covered by the checkpoint, keeping what retention asks.
  private async trimSegments(): Promise<void> {
    const covered: SegmentInfo[] = [];
    for (let i = 0; i + 1 < this.segments.length; i++) {
      if (this.segments[i + 1]!.firstTxg <= this.checkpointAt + 1) covered.push(this.segments[i]!);
    }
    if (covered.length === 0) return;
    const sized = await segmentSizes(covered);
    const now = this.clock();
    let keptBytes = 0;
    let keepFrom = sized.length;
    for (let i = sized.length - 1; i >= 0; i--) {
      const s = sized[i]!;
      const young = now - s.mtimeMs < this.tunables.retainMs;
      if (!young && keptBytes + s.bytes > this.tunables.retainBytes) break;
      keptBytes += s.bytes;
      keepFrom = i;
    }
    if (keepFrom === 0) return;
    // The owner moves its oldest state (the base replay-to-point starts from) up to where the
    // kept log starts; if it cannot, nothing is deleted and the window stays as it was.
    const throughTxg = sized[keepFrom]?.firstTxg ?? this.segments[covered.length]!.firstTxg;
    try {
      await this.opts.beforeTrim?.(throughTxg - 1);
    } catch (err) {
      this.opts.warn?.(`txg log: kept segments before txg ${throughTxg}: ${(err as Error).message}`);
      return;
    }
    for (const s of sized.slice(0, keepFrom)) {
      await unlink(s.file);
      this.segments = this.segments.filter((x) => x.file !== s.file);
    }
    if (keepFrom > 0) await fsyncDir(this.opts.dir);
  }

  private fail(err: NodeJS.ErrnoException): void {
    const code = err.code ?? (err as LogError).code ?? 'EIO';
    this.failed = new LogError(`txg log write failed in ${this.segment.file}: ${err.message}`, code);
    this.opts.warn?.(this.failed.message);
    this.clearTimer();
    for (const t of [this.syncing, this.quiescing, this.openTxg]) {
      for (const w of t?.waiters.splice(0) ?? []) w.reject(this.failed);
    }
  }
}

// The fail points before a txg's append: a slow disk, a crash that loses the txg, a write error.
async function injectBeforeAppend(): Promise<void> {
  await failLoc.timeout(FAIL.OBD_FAIL_TXG_SYNC_DELAY!);
  failLoc.crash(FAIL.OBD_FAIL_TXG_BEFORE_SYNC_CRASH!);
  if (failLoc.check(FAIL.OBD_FAIL_TXG_WRITE_ERR!)) {
    const errno = failLoc.errno();
    const code = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0] ?? 'EIO';
    throw Object.assign(new Error(`${code} injected by fail_loc OBD_FAIL_TXG_WRITE_ERR`), { code });
  }
}

const CHECKPOINT_HINT = 'checkpoint';

// The txg of the owner's last checkpoint, beside the segments: tools read it without opening
// the owner's state (which only the owner may open). The owner's own record stays the truth.
export async function writeCheckpointHint(dir: string, txg: number): Promise<void> {
  const tmp = join(dir, `${CHECKPOINT_HINT}.tmp`);
  await writeFile(tmp, `${txg}\n`);
  const fh = await open(tmp, 'r');
  try { await fh.datasync(); } finally { await fh.close(); }
  await rename(tmp, join(dir, CHECKPOINT_HINT));
}

/** The txg of the last checkpoint as the log folder records it (0 when none was taken). */
export async function readCheckpointHint(dir: string): Promise<number> {
  try {
    const txg = Number.parseInt(await readFile(join(dir, CHECKPOINT_HINT), 'utf8'), 10);
    return Number.isSafeInteger(txg) && txg >= 0 ? txg : 0;
  } catch {
    return 0;
  }
}

// A segment is born whole: its header is written and made durable under a name no scan reads,
// then renamed into place. A crash in between leaves only that unfinished file (removed at the
// next open), never a segment without its header at the log's end.
const UNFINISHED_SUFFIX = '.new';

async function createSegment(dir: string, firstTxg: number): Promise<{ fh: FileHandle; file: string }> {
  const file = join(dir, segmentName(firstTxg));
  const unfinished = file + UNFINISHED_SUFFIX;
  const fh = await open(unfinished, 'w');
  try {
    await fh.write(encodeSegmentHeader(firstTxg), 0, SEGMENT_HEADER_BYTES, 0);
    await fh.datasync();
    await rename(unfinished, file);
    await fsyncDir(dir);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { fh, file };
}

async function removeUnfinishedSegments(dir: string, warn?: (msg: string) => void): Promise<void> {
  let names: string[];
  try { names = await readdir(dir); } catch { return; } // scanLog names a missing folder
  const unfinished = names.filter((n) =>
    n.endsWith(UNFINISHED_SUFFIX) && parseSegmentName(n.slice(0, -UNFINISHED_SUFFIX.length)) !== null);
  for (const name of unfinished) {
    await unlink(join(dir, name));
    warn?.(`txg log: removed ${join(dir, name)}, a segment whose creation a crash interrupted`);
  }
  if (unfinished.length > 0) await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

