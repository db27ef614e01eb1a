// An open directory, shaped as node:fs's Dir: entries read page by page from the MDT
// (MDS_READPAGE, one page of DIR_PAGE_BYTES at a time), so that a directory of any size is
// listed in bounded memory. '.' and '..' are not listed, as node:fs does not list them.
import type { Mdc } from './mdc.js';
import type { DirEntry } from '../services/mdt/protocol.js';
import { FsError, toFsError } from './errors.js';
import { Dirent } from './stats.js';

/** Bytes of one directory page asked of the MDT. */
export const DIR_PAGE_BYTES = 64 * 1024;

export class Dir {
  #entries: DirEntry[] = [];
  #cookie: string | null = null;
  #end = false;
  #started = false;
  #closed = false;

  constructor(
    private readonly mdc: Mdc,
    private readonly fid: string,
    /** The directory's path, as opened. */
    readonly path: string,
  ) {}

  /** The next entry, or null at the end. */
  async read(): Promise<Dirent | null> {
    if (this.#closed) throw new FsError('EBADF', 'readdir', this.path, undefined, 'directory handle was closed');
    while (this.#entries.length === 0) {
      if (this.#end) return null;
      try {
        const page = await this.mdc.readdir(this.fid, this.#started ? this.#cookie ?? '' : null, DIR_PAGE_BYTES);
        this.#started = true;
        this.#entries = page.entries.filter((e) => e.name !== '.' && e.name !== '..');
        this.#cookie = page.cookie;
        this.#end = page.end;
      } catch (err) {
        throw toFsError(err, 'readdir', this.path);
      }
    }
    return new Dirent(this.#entries.shift()!, this.path);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#entries = [];
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Dirent> {
    try {
      for (let e = await this.read(); e; e = await this.read()) yield e;
    } finally {
      await this.close();
    }
  }
}
