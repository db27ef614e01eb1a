// An OSD's page-cache tunables, with Lustre's osd-ldiskfs names and formats (osd_lproc.c):
//
//   read_cache_enable, writethrough_cache_enable   0 or 1 (written as 1/0, y/n, on/off, true/false)
//   readcache_max_filesize                         bytes (K/M/G/T/P suffixes; -1: no limit, shown
//                                                  as 18446744073709551615)
//   readcache_max_io_mb, writethrough_max_io_mb    whole MiB shown; written in MiB or with a
//                                                  suffix (512K, 4M); at most a BRW's 4 MiB (ERANGE)
//
// An IO larger than its max_io size, of a disabled cache, or of an object larger than
// readcache_max_filesize goes around the page cache with O_DIRECT (src/osd/aligned.ts). Lustre
// drops such pages after the IO; the effect is the same.
import { MAX_CACHE_FILESIZE, type Osd } from '../../osd/index.js';
import { OST_BRW_MAX_BYTES } from '../../services/ost/index.js';
import { ParamError } from './errors.js';
import type { Param } from './nodes.js';

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * A size as Lustre's sysfs_memparse reads it: a number, then an optional binary suffix (K, M,
 * G, T, P, with or without iB), `unit` bytes when none. Not lfs's parseSize (llapi_parse_size:
 * bytes by default, b for 512-byte blocks, hex and octal), whose syntax parameters do not take.
 */
function memparse(name: string, v: string, unit: number): number {
  const m = /^(\d{1,20}(?:\.\d{1,9})?)\s*([kmgtp]?)(?:i?b)?$/i.exec(v.trim());
  if (!m) throw new ParamError('EINVAL', `${name}: '${v}' is not a size (a number, optionally with K, M, G, T or P)`);
  const scale = m[2] ? UNITS[m[2].toLowerCase()]! : unit;
  return Math.floor(Number(m[1]) * scale);
}

function parseBool(name: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (['1', 'y', 'yes', 'on', 'true'].includes(s)) return true;
  if (['0', 'n', 'no', 'off', 'false'].includes(s)) return false;
  throw new ParamError('EINVAL', `${name}: '${v}' is not a boolean (1 or 0, y or n, on or off)`);
}

function formatFilesize(n: number): string {
  return n >= MAX_CACHE_FILESIZE ? '18446744073709551615' : String(n);
}

export function osdCacheParams(dir: string[], osd: Osd): Param[] {
  const name = (leaf: string) => `${dir.join('.')}.${leaf}`;
  const policy = osd.data.ioCache;
  const bool = (leaf: string, key: 'readCacheEnable' | 'writethroughCacheEnable'): Param => ({
    path: [...dir, leaf], read: () => (policy[key] ? '1' : '0'),
    write: (v) => { policy[key] = parseBool(name(leaf), v); },
  });
  const maxIo = (leaf: string, key: 'readcacheMaxIoBytes' | 'writethroughMaxIoBytes'): Param => ({
    path: [...dir, leaf], read: () => String(Math.floor(policy[key] / 2 ** 20)),
    write: (v) => {
      const bytes = memparse(name(leaf), v, 2 ** 20);
      if (bytes > OST_BRW_MAX_BYTES) throw new ParamError('ERANGE', `${name(leaf)}: ${v} is more than a BRW's ${OST_BRW_MAX_BYTES / 2 ** 20} MiB`);
      policy[key] = bytes;
    },
  });
  return [
    bool('read_cache_enable', 'readCacheEnable'),
    bool('writethrough_cache_enable', 'writethroughCacheEnable'),
    {
      path: [...dir, 'readcache_max_filesize'], read: () => formatFilesize(policy.readcacheMaxFilesize),
      write: (v) => {
        policy.readcacheMaxFilesize = v.trim() === '-1' ? MAX_CACHE_FILESIZE : Math.min(MAX_CACHE_FILESIZE, memparse(name('readcache_max_filesize'), v, 1));
      },
    },
    maxIo('readcache_max_io_mb', 'readcacheMaxIoBytes'),
    maxIo('writethrough_max_io_mb', 'writethroughMaxIoBytes'),
    // Not Lustre's: what went around the cache, and whether this device's file system allows it.
    { path: [...dir, 'cache_bypass_read_bytes'], read: () => String(osd.data.bypassReadBytes) },
    { path: [...dir, 'cache_bypass_write_bytes'], read: () => String(osd.data.bypassWriteBytes) },
    { path: [...dir, 'cache_bypass'], read: () => (osd.data.directOff === undefined ? 'on' : `off: ${osd.data.directOff}`) },
  ];
}

