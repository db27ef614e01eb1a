// Read-ahead of one file handle (Lustre's llite read-ahead, simplified): a read that starts
// where the previous one ended is sequential; after two of them the handle reads a window
// ahead of the application, and the window doubles with each sequential read up to
// max_read_ahead_per_file_mb. At most two windows are held: the one being consumed and the
// one prefetched after it, read in the background while the application consumes the first.
// Every byte held counts against the mount's read-ahead budget (max_read_ahead_mb); a prefetch
// that does not fit is not made. A random read drops the windows.
//
// A window holds the bulks as they arrived (FileObject.readPieces), not one buffer they were
// copied into: a read inside one bulk is served as a view of it, with no copy and no new
// buffer; only a read across bulks joins its parts.
//
// Nothing read ahead outlives its handle (no cache across opens), and a change of the file's
// data made through this mount (FileObject.generation) drops the windows at once.
import type { ByteBudget } from './budget.js';
import type { FileObject, LockProgress } from './file.js';

const MiB = 1024 * 1024;
/** The first window, once a handle reads sequentially. */
const WINDOW_START_BYTES = MiB;
/** Sequential reads seen before read-ahead starts. */
const SEQUENTIAL_READS_MIN = 2;

interface Window {
  offset: number;
  length: number;
  generation: number;
  data: Promise<Buffer[]>;
  /** Bytes taken from the mount's budget for this window (0 for a plain read). */
  charged: number;
}

export interface ReadAheadCounters {
  hits: number;
  misses: number;
  prefetches: number;
}

export class ReadAhead {
  readonly counters: ReadAheadCounters = { hits: 0, misses: 0, prefetches: 0 };
  #windows: Window[] = [];
  #nextOffset = -1;
  #sequential = 0;
  #windowBytes = 0;

  constructor(
    private readonly file: FileObject,
    private readonly budget: ByteBudget,
    private readonly perFileBytes: () => number,
  ) {}

  /**
   * Reads up to length bytes at offset (fewer at the end of the file). `progress` follows a
   * read from the OSTs made for this call alone (one served by a window stays at 'start').
   */
  async read(offset: number, length: number, progress?: LockProgress): Promise<Buffer> {
    this.#dropStale(offset);
    if (offset === this.#nextOffset) this.#sequential++;
    else {
      this.#sequential = 0;
      this.#windowBytes = 0;
      this.#dropAll();
    }
    this.#nextOffset = offset + length;
    const ahead = this.#sequential >= SEQUENTIAL_READS_MIN && this.perFileBytes() > 0;
    if (ahead) this.#windowBytes = Math.min(this.perFileBytes(), Math.max(WINDOW_START_BYTES, length, this.#windowBytes * 2));
    const out = await this.#serve(offset, length, ahead, progress);
    if (ahead && out.length === length) this.#prefetch();
    return out;
  }

  async #serve(offset: number, length: number, ahead: boolean, progress?: LockProgress): Promise<Buffer> {
    const w = this.#windows.find((x) => x.offset <= offset && offset < x.offset + x.length);
    if (!w) {
      this.counters.misses++;
      if (!ahead || this.#windowBytes <= length || !this.budget.tryTake(this.#windowBytes)) return this.file.read(offset, length, progress);
      this.#add(offset, this.#windowBytes, this.#windowBytes);
      return this.#serve(offset, length, ahead);
    }
    this.counters.hits++;
    let pieces: Buffer[];
    try {
      pieces = await w.data;
    } catch (err) {
      this.#dropAll();
      throw err;
    }
    // Views of the window, not copies: a window's bytes never change (a change through this
    // mount drops the windows), and readers copy out of them (FileHandle.read).
    const parts: Buffer[] = [];
    let got = 0;
    let total = 0;
    for (let i = 0, at = w.offset; i < pieces.length; at += pieces[i]!.length, i++) {
      const b = pieces[i]!;
      total += b.length;
      const from = offset + got;
      if (got === length || at + b.length <= from) continue;
      const part = b.subarray(from - at, Math.min(b.length, from - at + length - got));
      parts.push(part);
      got += part.length;
    }
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
    if (got === length || total < w.length) {
      // All of it, or the window stopped at the end of the file.
      return data;
    }
    // The read runs past this window into the next one (or past both): the rest on its own.
    const rest = await this.#serve(offset + got, length - got, ahead);
    return Buffer.concat([data, rest]);
  }

  /** Reads the window after the last one held, in the background. */
  #prefetch(): void {
    if (this.#windows.length >= 2) return;
    const last = this.#windows[this.#windows.length - 1];
    if (!last) return;
    if (!this.budget.tryTake(this.#windowBytes)) return;
    this.counters.prefetches++;
    this.#add(last.offset + last.length, this.#windowBytes, this.#windowBytes);
  }

  #add(offset: number, length: number, charged: number): void {
    const data = this.file.readPieces(offset, length);
    data.catch(() => {}); // a failed prefetch is reported to the read that needs it, if any
    this.#windows.push({ offset, length, generation: this.file.generation, data, charged });
  }

  /** Drops windows wholly before offset, and all of them if the file changed. */
  #dropStale(offset: number): void {
    const keep: Window[] = [];
    for (const w of this.#windows) {
      if (w.generation !== this.file.generation || w.offset + w.length <= offset) this.#release(w);
      else keep.push(w);
    }
    this.#windows = keep;
  }

  #dropAll(): void {
    for (const w of this.#windows) this.#release(w);
    this.#windows = [];
  }

  #release(w: Window): void {
    if (w.charged > 0) this.budget.release(w.charged);
    w.charged = 0;
  }

  /** Drops everything (the handle closes); resolves once no read of this handle is on the wire. */
  async close(): Promise<void> {
    const pending = this.#windows.map((w) => w.data.catch(() => undefined));
    this.#dropAll();
    await Promise.all(pending);
  }
}
