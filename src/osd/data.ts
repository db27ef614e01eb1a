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

import assert from 'node:assert/strict';
import { open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, existsSync } from 'node:fs';
import { isErrno } from './errors.js';
import { fidKey, type Fid } from './fid.js';

interface Entry {
  path: string;
  handle: FileHandle;
  dirty: boolean;
  busy: number;
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

  constructor(dir: string, maxOpenFiles: number) {
    assert(maxOpenFiles >= 1);
    this.dir = dir;
    this.maxOpenFiles = maxOpenFiles;
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
   * 512-byte blocks. Several pieces go in one pwritev: a bulk arrives as the buffers it was
   * sent or received in, and joining them first cost a copy and a new buffer per write.
   */
  async write(path: string, offset: number, pieces: readonly Uint8Array[], txg: number): Promise<number> {
    let total = 0;
    for (const p of pieces) total += p.byteLength;
    this.dirtyBytes.set(txg, (this.dirtyBytes.get(txg) ?? 0) + total);
    const blocks = await this.use(path, txg, async (e) => {
      let left = pieces.filter((p) => p.byteLength > 0);
      let at = offset;
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

  /** Reads `length` bytes at offset; bytes past the end of the file (or of no file) are zeros. */
  async read(path: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    // Not zero-filled up front: the file fills it, and only what lies past its end (a hole at
    // the end of the object) is zeroed after.
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let done = 0;
    await this.use(path, undefined, async (e) => {
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
