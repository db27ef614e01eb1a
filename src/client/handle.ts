// An open file, shaped as node:fs/promises' FileHandle: read and write at a position or at the
// handle's own (advanced by each call that does not give one), O_APPEND writes at the end of
// the file, truncate, sync, stat and the attribute calls, close.
//
// Data goes through the mount's FileObject of the file (shared with the mount's other handles
// on it, so that they see each other's writes); reads go through this handle's read-ahead.
// close() sends what is dirty and closes the MDT's open handle (the last close of an unlinked
// file destroys it); a failed write that surfaced only in the background is reported here.
import type { MdtAttr } from '../services/mdt/protocol.js';
import { FsError, toFsError } from './errors.js';
import type { FileObject, LockProgress } from './file.js';
import { canRead, canWrite, O_SYNC, OpenFlag } from './flags.js';
import type { LliteStats } from './lproc.js';
import type { ReadAhead } from './readahead.js';
import type { Stats } from './stats.js';

/** What a handle needs from its file system. */
export interface HandleHost {
  statOf(attr: MdtAttr, file?: FileObject): Promise<Stats>;
  getattr(fid: string): Promise<MdtAttr>;
  setattr(fid: string, attrs: { mode?: number; uid?: number; gid?: number }): Promise<void>;
  utimesFid(fid: string, attr: MdtAttr, atime: number, mtime: number): Promise<void>;
  checkWritable(attr: MdtAttr): void;
  release(handle: FileHandle): Promise<void>;
  /** Where each call of a handle is counted (the FUSE ops use handles too: counted here only). */
  readonly lliteStats: LliteStats;
}

export interface ReadResult<T> {
  bytesRead: number;
  buffer: T;
}
export interface WriteResult<T> {
  bytesWritten: number;
  buffer: T;
}

type Position = number | bigint | null | undefined;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

function positionOf(p: Position): number | undefined {
  if (p === null || p === undefined || p === -1 || p === -1n) return undefined;
  const n = Number(p);
  if (!Number.isSafeInteger(n) || n < 0) throw new FsError('EINVAL', 'read', undefined, undefined, `position ${String(p)}`);
  return n;
}

export class FileHandle {
  position = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(
    readonly fd: number,
    /** The path it was opened by. */
    readonly path: string,
    readonly flags: number,
    readonly attr: MdtAttr,
    /** The MDT's open handle. */
    readonly mdtHandle: string,
    private readonly host: HandleHost,
    /** The file's data (regular files only). */
    readonly file: FileObject | undefined,
    private readonly readAhead: ReadAhead | undefined,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  #check(syscall: string, need?: 'read' | 'write'): void {
    if (this.#closed) throw new FsError('EBADF', syscall, undefined, undefined, 'file closed');
    if (need === 'read' && !canRead(this.flags)) throw new FsError('EBADF', syscall, undefined, undefined, 'not open for reading');
    if (need === 'write' && !canWrite(this.flags)) throw new FsError('EBADF', syscall, undefined, undefined, 'not open for writing');
    if (need && !this.file) throw new FsError('EISDIR', syscall, this.path);
  }

  /** read(buffer, offset, length, position) or read({ buffer, offset, length, position }). */
  async read<T extends NodeJS.ArrayBufferView = Buffer>(
    bufferOrOptions?: T | { buffer?: T; offset?: number; length?: number; position?: Position },
    offsetArg?: number | null, lengthArg?: number | null, positionArg?: Position,
  ): Promise<ReadResult<T>> {
    let buffer: T;
    let offset = offsetArg ?? 0;
    let length: number;
    let position = positionArg;
    if (bufferOrOptions === undefined || !ArrayBuffer.isView(bufferOrOptions)) {
      const o = (bufferOrOptions ?? {}) as { buffer?: T; offset?: number; length?: number; position?: Position };
      buffer = o.buffer ?? (Buffer.alloc(16384) as unknown as T);
      offset = o.offset ?? 0;
      length = o.length ?? buffer.byteLength - offset;
      position = o.position;
    } else {
      buffer = bufferOrOptions;
      length = lengthArg ?? buffer.byteLength - offset;
    }
    this.#check('read', 'read');
    if (offset < 0 || length < 0 || offset + length > buffer.byteLength) throw new FsError('EINVAL', 'read', this.path, undefined, 'offset and length outside the buffer');
    const data = await this.readView(length, position);
    Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength).set(data, offset);
    return { bytesRead: data.length, buffer };
  }

  /**
   * Up to length bytes at position (the handle's own position when null, which advances), as a
   * buffer that may be a view of this mount's cache (read-ahead windows, bulks as they arrived):
   * the caller reads it and never writes to it. read() without its copy into the caller's
   * buffer, for a caller that sends the bytes on (FUSE's READ reply).
   */
  async readView(length: number, position: Position = null, progress?: LockProgress): Promise<Buffer> {
    this.#check('read', 'read');
    if (!Number.isSafeInteger(length) || length < 0) throw new FsError('EINVAL', 'read', this.path, undefined, `length ${length}`);
    const pos = positionOf(position);
    const at = pos ?? this.position;
    let data: Buffer;
    try {
      data = await this.#readAt(at, length, progress);
    } catch (err) {
      throw toFsError(err, 'read', this.path);
    }
    if (pos === undefined) this.position = at + data.length;
    this.host.lliteStats.bytes('read_bytes', data.length);
    return data;
  }

  #readAt(at: number, length: number, progress?: LockProgress): Promise<Buffer> {
    if (length === 0) return Promise.resolve(Buffer.alloc(0));
    return this.readAhead ? this.readAhead.read(at, length, progress) : this.file!.read(at, length, progress);
  }

  /** write(buffer, offset?, length?, position?) or write(string, position?, encoding?). */
  async write<T extends NodeJS.ArrayBufferView | string>(data: T, a?: number | null, b?: number | string | null, c?: Position): Promise<WriteResult<T>> {
    this.#check('write', 'write');
    let bytes: Buffer;
    let position: Position;
    if (typeof data === 'string') {
      bytes = Buffer.from(data, (typeof b === 'string' ? b : 'utf8') as BufferEncoding);
      position = a;
    } else {
      const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const offset = a ?? 0;
      const length = typeof b === 'number' ? b : view.length - offset;
      if (offset < 0 || length < 0 || offset + length > view.length) throw new FsError('EINVAL', 'write', this.path, undefined, 'offset and length outside the buffer');
      bytes = view.subarray(offset, offset + length);
      position = c;
    }
    const pos = positionOf(position);
    try {
      const written = await this.#writeAt(pos, bytes);
      this.host.lliteStats.bytes('write_bytes', written);
      return { bytesWritten: written, buffer: data };
    } catch (err) {
      throw toFsError(err, 'write', this.path);
    }
  }

  async #writeAt(pos: number | undefined, bytes: Buffer): Promise<number> {
    const file = this.file!;
    // O_APPEND: every write at the end of the file, whatever the position (Linux ignores it too).
    let at: number;
    if (this.flags & OpenFlag.APPEND) at = await file.append(bytes);
    else {
      at = pos ?? this.position;
      await file.write(at, bytes);
    }
    if (pos === undefined || this.flags & OpenFlag.APPEND) this.position = at + bytes.length;
    if (this.flags & O_SYNC) await file.sync();
    return bytes.length;
  }

  /** The rest of the file from the handle's position. */
  async readFile(options?: { encoding?: BufferEncoding | null } | BufferEncoding | null): Promise<Buffer | string> {
    this.#check('read', 'read');
    const chunks: Buffer[] = [];
    try {
      for (;;) {
        const data = await this.#readAt(this.position, READ_CHUNK_BYTES);
        this.position += data.length;
        if (data.length === 0) break;
        chunks.push(data);
        if (data.length < READ_CHUNK_BYTES) break;
      }
    } catch (err) {
      throw toFsError(err, 'read', this.path);
    }
    const all = Buffer.concat(chunks);
    this.host.lliteStats.bytes('read_bytes', all.length);
    const encoding = typeof options === 'string' ? options : options?.encoding;
    return encoding ? all.toString(encoding) : all;
  }

  async writeFile(data: string | NodeJS.ArrayBufferView, options?: { encoding?: BufferEncoding | null } | BufferEncoding | null): Promise<void> {
    const encoding = (typeof options === 'string' ? options : options?.encoding) ?? 'utf8';
    const bytes = typeof data === 'string' ? Buffer.from(data, encoding) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await this.write(bytes, 0, bytes.length, null);
  }

  appendFile(data: string | NodeJS.ArrayBufferView, options?: { encoding?: BufferEncoding | null } | BufferEncoding | null): Promise<void> {
    return this.writeFile(data, options);
  }

  async truncate(len = 0): Promise<void> {
    this.#check('ftruncate', 'write');
    if (!Number.isSafeInteger(len) || len < 0) throw new FsError('EINVAL', 'ftruncate', this.path);
    const t = performance.now();
    try {
      await this.file!.truncate(len);
    } catch (err) {
      throw toFsError(err, 'ftruncate', this.path);
    }
    this.host.lliteStats.tally('truncate', t);
  }

  async sync(): Promise<void> {
    this.#check('fsync');
    const t = performance.now();
    try {
      await this.file?.sync();
    } catch (err) {
      throw toFsError(err, 'fsync', this.path);
    }
    this.host.lliteStats.tally('fsync', t);
  }

  datasync(): Promise<void> {
    return this.sync();
  }

  async stat(): Promise<Stats> {
    this.#check('fstat');
    const t = performance.now();
    let stats: Stats;
    try {
      stats = await this.host.statOf(await this.host.getattr(this.attr.fid), this.file);
    } catch (err) {
      throw toFsError(err, 'fstat', this.path);
    }
    this.host.lliteStats.tally('getattr', t);
    return stats;
  }

  async chmod(mode: number | string): Promise<void> {
    this.#check('fchmod');
    const t = performance.now();
    try {
      await this.host.setattr(this.attr.fid, { mode: typeof mode === 'string' ? parseInt(mode, 8) : mode });
    } catch (err) {
      throw toFsError(err, 'fchmod', this.path);
    }
    this.host.lliteStats.tally('setattr', t);
  }

  async chown(uid: number, gid: number): Promise<void> {
    this.#check('fchown');
    const t = performance.now();
    try {
      await this.host.setattr(this.attr.fid, { ...(uid !== -1 && { uid }), ...(gid !== -1 && { gid }) });
    } catch (err) {
      throw toFsError(err, 'fchown', this.path);
    }
    this.host.lliteStats.tally('setattr', t);
  }

  async utimes(atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    this.#check('futime');
    const t = performance.now();
    try {
      await this.host.utimesFid(this.attr.fid, await this.host.getattr(this.attr.fid), toSeconds(atime), toSeconds(mtime));
    } catch (err) {
      throw toFsError(err, 'futime', this.path);
    }
    this.host.lliteStats.tally('setattr', t);
  }

  /** Sends dirty data, closes the MDT's handle; a write error found now is reported (the handle closes anyway). */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      this.#closed = true;
      const t = performance.now();
      try {
        await this.readAhead?.close();
        await this.host.release(this);
      } catch (err) {
        throw toFsError(err, 'close', this.path);
      }
      this.host.lliteStats.tally('close', t);
    })();
    return this.#closing;
  }
}

/** A time as utimes takes it (seconds, a numeric string, or a Date) in seconds. */
export function toSeconds(t: number | string | Date): number {
  if (t instanceof Date) return t.getTime() / 1000;
  const n = typeof t === 'string' ? Number(t) : t;
  if (!Number.isFinite(n)) throw new FsError('EINVAL', 'utime', undefined, undefined, `time ${String(t)}`);
  return n;
}
