// Page-aligned buffers for IO that bypasses the page cache (O_DIRECT), and the policy of which
// IO does: Lustre's osd-ldiskfs tunables read_cache_enable, writethrough_cache_enable,
// readcache_max_filesize, readcache_max_io_mb and writethrough_max_io_mb (osd_lproc.c).
//
// O_DIRECT wants the buffer's address, the file offset and the length aligned to the device's
// logical block size. Node gives no aligned Buffer, but a WebAssembly.Memory is allocated by the
// engine's page allocator, so every 4 KiB slot of one is page-aligned. One memory is made, on
// the first direct IO of the process, and cut into slots shared by every OSD the process hosts;
// its size is fixed at creation (growing it would detach the views in use).

import assert from 'node:assert/strict';

/** The alignment of direct IO's offsets, lengths and buffers: a page, which covers 512-byte and 4 KiB logical blocks. */
export const DIRECT_ALIGN = 4096;
/** Bytes of one slot: the largest bulk of one BRW (4 MiB). */
export const SLOT_BYTES = 4 << 20;
/** Slots in the process: direct IOs at once; more wait for none, they go through the page cache. */
export const SLOT_COUNT = 16;

const WASM_PAGE = 65536;

/** A fixed set of page-aligned slots of SLOT_BYTES. */
export class AlignedSlots {
  readonly slotBytes: number;
  readonly count: number;
  #memory: WebAssembly.Memory | undefined;
  #free: number[] = [];

  constructor(slotBytes = SLOT_BYTES, count = SLOT_COUNT) {
    assert(slotBytes > 0 && slotBytes % WASM_PAGE === 0, 'a slot is a whole number of 64 KiB pages');
    assert(count >= 1);
    this.slotBytes = slotBytes;
    this.count = count;
  }

  /** A free slot as a Buffer of slotBytes, or undefined when all are in use. Give it back with give(). */
  take(): Buffer | undefined {
    if (!this.#memory) {
      this.#memory = new WebAssembly.Memory({ initial: (this.slotBytes * this.count) / WASM_PAGE, maximum: (this.slotBytes * this.count) / WASM_PAGE });
      for (let i = this.count - 1; i >= 0; i--) this.#free.push(i * this.slotBytes);
    }
    const at = this.#free.pop();
    return at === undefined ? undefined : Buffer.from(this.#memory.buffer, at, this.slotBytes);
  }

  give(slot: Buffer): void {
    assert(this.#memory && slot.buffer === this.#memory.buffer && slot.byteOffset % this.slotBytes === 0, 'not a slot of this set');
    assert(!this.#free.includes(slot.byteOffset), 'slot given back twice');
    this.#free.push(slot.byteOffset);
  }

  get inUse(): number {
    return this.#memory ? this.count - this.#free.length : 0;
  }
}

/** The process's slots, shared by its OSDs. */
export const alignedSlots = new AlignedSlots();

/**
 * Which data IO goes through the page cache. As in Lustre's osd-ldiskfs, an IO is cached when
 * its cache is enabled, it is no larger than its max_io size and the object is no larger than
 * readcacheMaxFilesize; any other IO bypasses the cache. Lustre's defaults cache IOs up to
 * 8 MiB; this OSD's bypass the client's 4 MiB bulks (DEFAULT_IO_CACHE: bench/README.md has why).
 */
export interface IoCachePolicy {
  readCacheEnable: boolean;
  writethroughCacheEnable: boolean;
  /** Bytes; IO of objects larger than this goes around the cache. */
  readcacheMaxFilesize: number;
  /** Bytes; a read larger than this bypasses the cache. At most SLOT_BYTES. */
  readcacheMaxIoBytes: number;
  /** Bytes; a write larger than this bypasses the cache. At most SLOT_BYTES. */
  writethroughMaxIoBytes: number;
}

/** Lustre's OSD_MAX_CACHE_SIZE (OBD_OBJECT_EOF, 2^64 - 1; 2^64 as a double): no object is too large for the read cache. */
export const MAX_CACHE_FILESIZE = 2 ** 64;

export const DEFAULT_IO_CACHE: IoCachePolicy = {
  readCacheEnable: true,
  writethroughCacheEnable: true,
  readcacheMaxFilesize: MAX_CACHE_FILESIZE,
  readcacheMaxIoBytes: 1 << 20,
  writethroughMaxIoBytes: 1 << 20,
};

export function readBypassesCache(p: IoCachePolicy, length: number, objectSize: number): boolean {
  return !p.readCacheEnable || objectSize > p.readcacheMaxFilesize || length > p.readcacheMaxIoBytes;
}

export function writeBypassesCache(p: IoCachePolicy, length: number, objectSize: number): boolean {
  return !p.writethroughCacheEnable || objectSize > p.readcacheMaxFilesize || length > p.writethroughMaxIoBytes;
}
