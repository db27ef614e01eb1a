// Data files: the bytes of data objects, written in place, never through the log. Writes go to
// the file at once; zeroing (punch, truncate, gaps) waits for its txg to be durable
// (zeroing.ts), so a crash never destroys data the durable state holds.
//
// A data object's bytes live in DEVICE/data/XX/<fidKey>.<gen>, where XX is the low byte of
// (seq ^ oid ^ ver) in two hex digits and gen (hex) is the object's data-file generation, new
// at every create, so that a destroyed-then-recreated FID never meets its old bytes. The file
// is sparse: a byte never written reads as zero. Its length may exceed the object's recorded
// size (bytes written by a txg that a crash lost): such bytes are never visible, since reads
// clamp to the size and any update that makes bytes past the size visible zeroes them first
// (zeroing.ts).
//
// Durability: every file written (or created, or truncated) in a txg is fdatasync'ed, and the
// folder of every file created in it fsync'ed, in beforeSync(txg), before the txg's record is
// appended; so a file is always at least as new as the log, and replay never rewrites one.
// Open descriptors are bounded by maxOpenFiles (LRU), plus those in use at the instant (an
// fd being read, written or synced is evicted when released); one evicted while dirty is
// fdatasync'ed before it is closed.
//
// Bulk IO around the page cache: an IO larger than the policy's max_io sizes (aligned.ts; Lustre's
// readcache_max_io_mb and writethrough_max_io_mb) goes through a second descriptor of the file,
// opened O_DIRECT, by way of a page-aligned slot; the kernel keeps the two descriptors coherent
// (a direct read writes back dirty cached pages of its range first, a direct write drops them).
// A write that is not 4 KiB-aligned, or finds no free slot, goes through the cache. A file
// system that refuses O_DIRECT (EINVAL) turns it off for the device, with a warning.

import assert from 'node:assert/strict';
import { open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, existsSync } from 'node:fs';
import { alignedSlots, DEFAULT_IO_CACHE, DIRECT_ALIGN, readBypassesCache, writeBypassesCache, type AlignedSlots, type IoCachePolicy } from './aligned.js';
import { isErrno } from './errors.js';
import { fidKey, type Fid } from './fid.js';

interface Entry {
  path: string;
  handle: FileHandle;
  /** The O_DIRECT descriptor, opened at the entry's first direct IO (undefined in it: could not). */
  direct?: Promise<FileHandle | undefined>;
  dirty: boolean;
  busy: number;
}

export interface DataFilesOptions {
  /** Which IO goes around the page cache (the policy object is changed in place by lctl set_param). */
  ioCache?: Partial<IoCachePolicy>;
  slots?: AlignedSlots;
  warn?: (message: string) => void;
}

const ZERO_CHUNK_BYTES = 1 << 20;
const SYNC_CONCURRENCY = 16;

export class DataFiles {
  readonly dir: string;
  readonly maxOpenFiles: number;
  /** Open descriptors, least recently used first. */
  private lru = new Map<string, Entry>();
  private opening = new Map<string, Promise<Entry | undefined>>();
  private evicting = new Set<Promise<void>>();
  private dirtyFiles = new Map<number, Set<string>>();
  private dirtyDirs = new Map<number, Set<string>>();
  /** Bytes written per unsynced txg, for stats. */
  readonly dirtyBytes = new Map<number, number>();
  readonly ioCache: IoCachePolicy;
  /** Bytes read and written around the page cache. */
  bypassReadBytes = 0;
  bypassWriteBytes = 0;
  readonly #slots: AlignedSlots;
  readonly #warn: (message: string) => void;
  /** Why direct IO is off for this device (the file system refused it), or undefined. */
  #directOff: string | undefined;

  constructor(dir: string, maxOpenFiles: number, opts: DataFilesOptions = {}) {
    assert(maxOpenFiles >= 1);
    this.dir = dir;
    this.maxOpenFiles = maxOpenFiles;
    this.ioCache = { ...DEFAULT_IO_CACHE, ...opts.ioCache };
    this.#slots = opts.slots ?? alignedSlots;
    this.#warn = opts.warn ?? (() => {});
  }

  /** Why this device's IO never bypasses the page cache, or undefined when it can. */
  get directOff(): string | undefined {
    return this.#directOff;
  }

  static bucket(fid: Fid): string {
    return ((fid.seq ^ fid.oid ^ fid.ver) & 0xff).toString(16).padStart(2, '0');
  }

  path(fid: Fid, gen: number): string {
    return join(this.dir, DataFiles.bucket(fid), `${fidKey(fid)}.${gen.toString(16)}`);
  }

  get openFiles(): number {
    return this.lru.size;
  }

  private mark(set: Map<number, Set<string>>, txg: number, value: string): void {
    let s = set.get(txg);
    if (!s) set.set(txg, (s = new Set()));
    s.add(value);
  }

  /** Opens (or with `txg`, creates) the file; undefined if it does not exist and txg is not given. */
  private async acquire(path: string, txg?: number): Promise<Entry | undefined> {
    for (;;) {
      const e = this.lru.get(path);
      if (e) {
        this.lru.delete(path);
        this.lru.set(path, e);
        e.busy++;
        return e;
      }
      const inFlight = this.opening.get(path);
      if (!inFlight) break;
      const got = await inFlight;
      if (!got && txg === undefined) return undefined;
    }
    const p = this.openFile(path, txg);
    this.opening.set(path, p);
    let e: Entry | undefined;
    try {
      e = await p;
    } finally {
      this.opening.delete(path);
    }
    if (!e) return undefined;
    this.lru.set(path, e);
    e.busy++;
    this.evictIfNeeded();
    return e;
  }

  private async openFile(path: string, txg?: number): Promise<Entry | undefined> {
    try {
      return { path, handle: await open(path, constants.O_RDWR), dirty: false, busy: 0 };
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || txg === undefined) {
        if (isErrno(err, 'ENOENT')) return undefined;
        throw err;
      }
    }
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.mark(this.dirtyDirs, txg, join(path, '..'));
    return { path, handle, dirty: true, busy: 0 };
  }

  private release(e: Entry): void {
    e.busy--;
    this.evictIfNeeded();
  }

  private evictIfNeeded(): void {
    for (const e of this.lru.values()) {
      if (this.lru.size <= this.maxOpenFiles) return;
      if (e.busy > 0) continue;
      this.lru.delete(e.path);
      const p = this.closeEntry(e).finally(() => this.evicting.delete(p));
      this.evicting.add(p);
    }
  }

  private async closeEntry(e: Entry): Promise<void> {
    if (e.dirty) {
      e.dirty = false;
      await e.handle.datasync();
    }
    await e.handle.close();
    await closeDirect(e);
  }

  /** The entry's O_DIRECT descriptor, opened now if not yet; undefined if direct IO is off or the open failed. */
  private async directHandle(e: Entry): Promise<FileHandle | undefined> {
    if (this.#directOff !== undefined) return undefined;
    e.direct ??= open(e.path, constants.O_RDWR | constants.O_DIRECT).catch((err: unknown) => {
      if (isErrno(err, 'EINVAL')) this.turnDirectOff(err);
      else e.direct = undefined; // a passing failure (EMFILE, ...): this IO goes through the cache, the next tries again
      return undefined;
    });
    return e.direct;
  }

  private turnDirectOff(err: unknown): void {
    if (this.#directOff !== undefined) return;
    this.#directOff = `the file system of ${this.dir} refuses O_DIRECT IO (${(err as Error).message})`;
    this.#warn(`${this.#directOff}: all data IO goes through the page cache`);
  }

  /**
   * Writes what it can of pieces (total bytes, aligned) at offset around the page cache, by way of
   * an aligned slot; returns the bytes written, which the caller writes the rest of through the cache.
   */
  private async writeDirect(e: Entry, offset: number, pieces: readonly Uint8Array[], total: number): Promise<number> {
    const slot = this.#slots.take();
    if (!slot) return 0;
    let done = 0;
    try {
      const fd = await this.directHandle(e);
      if (!fd) return 0;
      let o = 0;
      for (const p of pieces) {
        slot.set(p, o);
        o += p.byteLength;
      }
      while (done < total) {
        const { bytesWritten } = await fd.write(slot, done, total - done, offset + done);
        done += bytesWritten;
        // A short write (the disk filling up) leaves an unaligned rest: the cache takes it, and tells why.
        if (bytesWritten === 0 || bytesWritten % DIRECT_ALIGN !== 0) break;
      }
    } catch (err) {
      if (!isErrno(err, 'EINVAL')) throw err;
      this.turnDirectOff(err);
    } finally {
      this.#slots.give(slot);
    }
    this.bypassWriteBytes += done;
    return done;
  }

  /**
   * Reads [offset, offset+length) around the page cache into buf, by way of an aligned slot, in
   * aligned chunks; returns the bytes read from offset (fewer at the end of the file), or
   * undefined when direct IO could not be used (the caller reads through the cache).
   */
  private async readDirect(e: Entry, offset: number, length: number, buf: Buffer): Promise<number | undefined> {
    const slot = this.#slots.take();
    if (!slot) return undefined;
    try {
      const fd = await this.directHandle(e);
      if (!fd) return undefined;
      const end = offset + length;
      let at = offset - (offset % DIRECT_ALIGN);
      let done = 0;
      while (at < end) {
        const want = Math.min(slot.length, alignUp(end - at));
        let bytesRead: number;
        try {
          ({ bytesRead } = await fd.read(slot, 0, want, at));
        } catch (err) {
          if (!isErrno(err, 'EINVAL') || done > 0) throw err;
          this.turnDirectOff(err);
          return undefined;
        }
        const from = Math.max(at, offset);
        const to = Math.min(at + bytesRead, end);
        if (to > from) {
          slot.copy(buf, from - offset, from - at, to - at);
          done = to - offset;
        }
        // Fewer bytes than asked, unaligned or none: the end of the file.
        if (bytesRead === 0 || bytesRead % DIRECT_ALIGN !== 0) break;
        at += bytesRead;
      }
      this.bypassReadBytes += done;
      return done;
    } finally {
      this.#slots.give(slot);
    }
  }

  private async use<T>(path: string, txg: number | undefined, fn: (e: Entry) => Promise<T>): Promise<T | undefined> {
    const e = await this.acquire(path, txg);
    if (!e) return undefined;
    try {
      if (txg !== undefined) this.mark(this.dirtyFiles, txg, path);
      const result = await fn(e);
      // Dirty only once the write is done: a sync that started meanwhile may not hold it.
      if (txg !== undefined) e.dirty = true;
      return result;
    } finally {
      this.release(e);
    }
  }

  /**
   * Writes pieces, back to back, at offset (creating the file); returns the file's allocated
   * 512-byte blocks. objectSize (the object's size before the write) is for the policy's
   * readcache_max_filesize. Several pieces go in one pwritev: a bulk arrives as the buffers it was
   * sent or received in, and joining them first cost a copy and a new buffer per write.
   */
  async write(path: string, offset: number, pieces: readonly Uint8Array[], txg: number, objectSize = 0): Promise<number> {
    let total = 0;
    for (const p of pieces) total += p.byteLength;
    this.dirtyBytes.set(txg, (this.dirtyBytes.get(txg) ?? 0) + total);
    const direct = total > 0 && total <= this.#slots.slotBytes && offset % DIRECT_ALIGN === 0 && total % DIRECT_ALIGN === 0 &&
      this.#directOff === undefined && writeBypassesCache(this.ioCache, total, objectSize);
    const blocks = await this.use(path, txg, async (e) => {
      const around = direct ? await this.writeDirect(e, offset, pieces, total) : 0;
      let left = unwritten(pieces.filter((p) => p.byteLength > 0), around);
      let at = offset + around;
      while (left.length > 0) {
        const { bytesWritten } = left.length === 1
          ? await e.handle.write(left[0]!, 0, left[0]!.byteLength, at)
          : await e.handle.writev(left, at);
        at += bytesWritten;
        left = unwritten(left, bytesWritten);
      }
      return (await e.handle.stat()).blocks;
    });
    return blocks!;
  }

  /**
   * Makes the ranges read as zeros in the file (zeroing.ts: their txgs are durable): zeros are
   * written, or the file is cut where a range runs to its end. Then fdatasync.
   */
  async applyZeros(path: string, ranges: { start: number; end: number }[]): Promise<void> {
    await this.use(path, undefined, async (e) => {
      let length = (await e.handle.stat()).size;
      for (const r of [...ranges].sort((x, y) => x.start - y.start)) {
        if (r.start >= length) continue;
        if (r.end >= length) {
          await e.handle.truncate(r.start);
          length = r.start;
          continue;
        }
        const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, r.end - r.start));
        for (let at = r.start; at < r.end; at += zeros.length) {
          await e.handle.write(zeros, 0, Math.min(zeros.length, r.end - at), at);
        }
      }
      await e.handle.datasync();
    });
  }

  /**
   * Reads `length` bytes at offset; bytes past the end of the file (or of no file) are zeros.
   * objectSize (the object's recorded size) is for the policy's readcache_max_filesize.
   */
  async read(path: string, offset: number, length: number, into?: Buffer, objectSize = 0): Promise<Buffer> {
    // Not zero-filled up front: the file fills it, and only what lies past its end (a hole at
    // the end of the object) is zeroed after.
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let done = 0;
    const direct = length > 0 && length <= this.#slots.slotBytes && this.#directOff === undefined &&
      readBypassesCache(this.ioCache, length, objectSize);
    await this.use(path, undefined, async (e) => {
      if (direct) {
        const n = await this.readDirect(e, offset, length, buf);
        if (n !== undefined) {
          done = n;
          return;
        }
      }
      while (done < length) {
        const { bytesRead } = await e.handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    });
    if (done < length) buf.fill(0, done);
    return buf;
  }

  /** Makes everything written in `txg` durable (the log's beforeSync). */
  async syncTxg(txg: number): Promise<void> {
    const files = this.dirtyFiles.get(txg) ?? new Set<string>();
    const dirs = this.dirtyDirs.get(txg) ?? new Set<string>();
    this.dirtyFiles.delete(txg);
    this.dirtyDirs.delete(txg);
    await Promise.all([...this.evicting]);
    const todo = [...files].map((p) => this.lru.get(p)).filter((e): e is Entry => e !== undefined && e.dirty);
    for (let i = 0; i < todo.length; i += SYNC_CONCURRENCY) {
      await Promise.all(todo.slice(i, i + SYNC_CONCURRENCY).map(async (e) => {
        e.dirty = false;
        e.busy++;
        try {
          await e.handle.datasync();
        } finally {
          this.release(e);
        }
      }));
    }
    await Promise.all([...dirs].map((d) => fsyncDir(d)));
  }

  /** Forgets the dirty-byte count of txgs <= txg (they are durable). */
  synced(txg: number): void {
    for (const t of this.dirtyBytes.keys()) if (t <= txg) this.dirtyBytes.delete(t);
  }

  /** Removes a data file (its object's destroy is durable); with keep, only closes it (the attic takes it). */
  async remove(path: string, opts: { keep?: boolean } = {}): Promise<void> {
    const e = this.lru.get(path);
    if (e && e.busy === 0) {
      this.lru.delete(path);
      e.dirty = false;
      await e.handle.close();
      await closeDirect(e);
    }
    if (opts.keep) return;
    // Most destroyed objects were never written (an empty file's stripes): no data file. Asking
    // first costs a stat; a failed unlink costs a thread-pool turn and a JavaScript Error.
    if (!existsSync(path)) return;
    try {
      await unlink(path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  /** Every file in the data folders (for the orphan scan after a crash). */
  async *files(): AsyncGenerator<{ path: string; name: string }> {
    for (const bucket of (await readdir(this.dir)).sort()) {
      for (const name of await readdir(join(this.dir, bucket))) yield { path: join(this.dir, bucket, name), name };
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.evicting]);
    const all = [...this.lru.values()];
    this.lru.clear();
    await Promise.all(all.map((e) => this.closeEntry(e)));
  }
}

async function closeDirect(e: Entry): Promise<void> {
  const d = await e.direct;
  e.direct = undefined;
  await d?.close();
}

function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
}

/** What is left of pieces after a short write of n bytes. */
function unwritten(pieces: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < pieces.length && n >= pieces[i]!.byteLength) n -= pieces[i++]!.byteLength;
  const rest = pieces.slice(i);
  if (n > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}
