// lfs's output layouts, as pure functions of the kernel's structured results. Each follows
// Lustre's own printing code (lustre/utils/lfs.c and liblustreapi.c): the field widths, labels,
// separators and blank lines are theirs, including their quirks (a directory's default on one
// line with single spaces between fields; a blank line after each layout; two spaces before
// "Mounted on" and a space after each df row, from the per-field printing of lfs df).
import { getSystemErrorMap } from 'node:util';
import { constants } from 'node:os';
import type { StatFs } from '../../client/index.js';
import type { DfTarget, GetstripeEntry, LayoutInfo } from './types.js';

// llapi_layout_verbose bits (lustreapi.h).
export const VERBOSE_STRIPE_COUNT = 0x1;
export const VERBOSE_STRIPE_SIZE = 0x2;
export const VERBOSE_STRIPE_OFFSET = 0x4;
export const VERBOSE_POOL = 0x8;
export const VERBOSE_DETAIL = 0x10;
export const VERBOSE_OBJID = 0x20;
export const VERBOSE_GENERATION = 0x40;
export const VERBOSE_PATTERN = 0x100;
export const VERBOSE_DFID = 0x4000;
/** The bits of VERBOSE_DEFAULT that a plain RAID0 layout shows (the others print nothing for it). */
export const VERBOSE_DEFAULT = VERBOSE_STRIPE_COUNT | VERBOSE_STRIPE_SIZE | VERBOSE_STRIPE_OFFSET | VERBOSE_POOL
  | VERBOSE_OBJID | VERBOSE_GENERATION | VERBOSE_PATTERN;

export const LOV_MAGIC_V1 = 0x0bd10bd0;

export interface GetstripeFormat {
  /** llapi_layout_verbose bits. */
  verbose: number;
  /** find_param's fp_max_depth: when not 0, each layout is headed by its path. */
  maxDepth: number;
}

/** C's "%#x": 0 prints as 0. */
const altHex = (n: number): string => (n === 0 ? '0' : `0x${n.toString(16)}`);
const fidText = (seq: number, oid: number, ver: number): string => `[0x${seq.toString(16)}:0x${oid.toString(16)}:0x${ver.toString(16)}]`;
const padStart = (s: string | number, w: number): string => String(s).padStart(w);

/** llapi_lov_pattern_string for the patterns this file system has. */
export function patternString(pattern: number): string {
  if (pattern === 0) return '';
  if (pattern === 1) return 'raid0';
  return `unknown_${(pattern & ~1).toString(16)}`;
}

/** fid_seq_is_rsvd or fid_seq_is_mdt0: such groups print in decimal, others in hex. */
const groupInDecimal = (seq: number): boolean => seq <= 11;

function parseFidText(fid: string): [number, number, number] {
  const m = /^\[0x([0-9a-f]+):0x([0-9a-f]+):0x([0-9a-f]+)\]$/i.exec(fid);
  return m ? [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)] : [0, 0, 0];
}

/** lov_dump_user_lmm_header. */
function header(l: LayoutInfo, path: string, isDir: boolean, inherited: boolean, f: GetstripeFormat): string {
  const v = f.verbose;
  const prefix = isDir ? '' : 'lmm_';
  let out = '';
  if (isDir && inherited && v & VERBOSE_DETAIL) out += '(Default) ';
  if (f.maxDepth !== 0 && path && (v !== VERBOSE_OBJID || !isDir)) out += `${path}\n`;
  const [seq, oid, ver] = parseFidText(l.fid);
  if (v & VERBOSE_DETAIL && !isDir) {
    out += `${prefix}magic:         0x${LOV_MAGIC_V1.toString(16).toUpperCase().padStart(8, '0')}\n`;
    out += `${prefix}seq:           ${altHex(seq)}\n`;
    out += `${prefix}object_id:     ${altHex(oid)}\n`;
  }
  if (v & (VERBOSE_DETAIL | VERBOSE_DFID)) {
    if (v & ~VERBOSE_DFID) out += 'lmm_fid:           ';
    out += `${fidText(seq, oid, ver)}\n`;
  }
  let sep = '';
  const field = (bit: number, label: string, value: string): void => {
    out += sep;
    if (v & ~bit) out += `${prefix}${label}`;
    out += value;
    sep = isDir ? ' ' : '\n';
  };
  if (v & VERBOSE_STRIPE_COUNT) field(VERBOSE_STRIPE_COUNT, 'stripe_count:  ', String(l.stripeCount));
  if (v & VERBOSE_STRIPE_SIZE) field(VERBOSE_STRIPE_SIZE, 'stripe_size:   ', String(l.stripeSize));
  if (v & VERBOSE_PATTERN) field(VERBOSE_PATTERN, 'pattern:       ', patternString(l.pattern));
  if (v & VERBOSE_GENERATION && !isDir) {
    field(VERBOSE_GENERATION, 'layout_gen:    ', String(l.layoutGen));
    sep = '\n';
  }
  if (v & VERBOSE_STRIPE_OFFSET) field(VERBOSE_STRIPE_OFFSET, 'stripe_offset: ', String(isDir ? l.stripeOffset : l.objects[0]?.ostIndex ?? l.stripeOffset));
  if (sep !== '') out += '\n';
  return out;
}

/** lov_dump_user_lmm_v1v3: the header, the objects table, a blank line. */
export function formatLayout(l: LayoutInfo, path: string, isDir: boolean, inherited: boolean, f: GetstripeFormat): string {
  let out = header(l, path, isDir, inherited, f);
  if (f.verbose & VERBOSE_OBJID && !isDir) {
    out += '\tobdidx\t\t objid\t\t objid\t\t group\n';
    for (const o of l.objects) {
      const group = groupInDecimal(o.seq) ? padStart(o.seq, 14) : padStart(altHex(o.seq), 14);
      out += `\t${padStart(o.ostIndex, 6)}\t${padStart(o.oid, 14)}\t${padStart(altHex(o.oid), 13)}\t${group}\n`;
    }
  }
  return out + '\n';
}

/** lfs getstripe's output for the entries of one page. */
export function formatGetstripe(entries: readonly GetstripeEntry[], f: GetstripeFormat): string {
  let out = '';
  for (const e of entries) {
    if (!e.layout) out += `${e.path} has no stripe info\n`;
    else out += formatLayout(e.layout, e.path, e.kind === 'dir', e.inherited === true, f);
  }
  return out;
}

// ---- df -----------------------------------------------------------------------------------------

export interface DfFormat {
  /** -h: sizes in bytes with K/M/G... (base 1024). */
  human: boolean;
  /** -i: inodes instead of blocks. */
  inodes: boolean;
}

type Statfs = Omit<StatFs, 'type'>;

/** obd_statfs_ratio: used over used + available, rounded up as df(1) does. */
export function statfsRatio(s: Statfs, inodes: boolean): number {
  const avail = inodes ? s.ffree : s.bavail;
  const used = inodes ? s.files - s.ffree : s.blocks - s.bfree;
  const ratio = avail + used > 0 ? (used / (used + avail)) * 100 : 0;
  return ratio - Math.trunc(ratio) > 0 ? Math.trunc(ratio + 1) : Math.trunc(ratio);
}

/** print_field_value: "%11llu", or with -h "%8.1f%c" once the value is over one unit. */
function value(n: number, f: DfFormat): string {
  if (!f.human) return padStart(n, 11);
  let v = n;
  let i = 0;
  while (v > 1024) {
    v /= 1024;
    i++;
  }
  return i > 0 ? `${v.toFixed(1).padStart(8)}${'KMGTPEZY'[i - 1]}` : padStart(n, 11);
}

function dfHeader(f: DfFormat): string {
  const cols = f.inodes ? ['Inodes', 'IUsed', 'IFree'] : [f.human ? 'bytes' : '1K-blocks', 'Used', 'Available'];
  return `${'UUID'.padEnd(20)} ${cols.map((c) => `${padStart(c, 11)} `).join('')}${(f.inodes ? 'IUse%' : 'Use%').padStart(4)}  Mounted on\n`;
}

function dfRow(uuid: string, s: Statfs, mount: string, where: string, f: DfFormat): string {
  const shift = f.human ? 1 : 1024;
  const nums = f.inodes
    ? [s.files, s.files - s.ffree, s.ffree]
    : [s.blocks * s.bsize, (s.blocks - s.bfree) * s.bsize, s.bavail * s.bsize].map((b) => Math.floor(b / shift));
  const pct = `${padStart(statfsRatio(s, f.inodes), 3)}%`;
  return `${uuid.padEnd(20)} ${nums.map((n) => value(n, f)).join(' ')} ${pct}  ${mount}${where} \n`;
}

/** glibc's strerror(3) texts for the errno names lfs meets (libuv words some differently). */
const GLIBC_STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', EIO: 'Input/output error', E2BIG: 'Argument list too long',
  EAGAIN: 'Resource temporarily unavailable', EACCES: 'Permission denied', EEXIST: 'File exists', ENODEV: 'No such device',
  ENOTDIR: 'Not a directory', EISDIR: 'Is a directory', EINVAL: 'Invalid argument', ENOTTY: 'Inappropriate ioctl for device',
  ENOSPC: 'No space left on device', ENAMETOOLONG: 'File name too long', ELOOP: 'Too many levels of symbolic links',
  ENODATA: 'No data available', EPROTO: 'Protocol error', ENOTCONN: 'Transport endpoint is not connected',
  ETIMEDOUT: 'Connection timed out', ESHUTDOWN: 'Cannot send after transport endpoint shutdown', EALREADY: 'Operation already in progress',
};

/** strerror(3)'s text for an errno name. */
export function strerror(code: string): string {
  const known = GLIBC_STRERROR[code];
  if (known) return known;
  const errno = (constants.errno as Record<string, number>)[code];
  const text = errno === undefined ? undefined : getSystemErrorMap().get(-errno)?.[1];
  return text ? text[0]!.toUpperCase() + text.slice(1) : code;
}

/** lfs df of one file system: a row per MDT and OST, a blank line, filesystem_summary:, a blank line. */
export function formatDf(mount: string, targets: readonly DfTarget[], f: DfFormat): string {
  let out = dfHeader(f);
  const sum: Statfs = { bsize: 1, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 };
  let haveOst = false;
  let ostFiles = 0;
  let ostFfree = 0;
  for (const t of targets) {
    if (t.error === 'EAGAIN') continue; // not connected (yet): lfs skips it
    if (t.type === 'OST' && !haveOst) {
      haveOst = true;
      sum.blocks = sum.bfree = sum.bavail = 0;
    }
    if (t.error) {
      out += `${t.uuid.padEnd(20)}: ${t.error === 'ENODATA' ? 'inactive device' : strerror(t.error)}\n`;
      continue;
    }
    out += dfRow(t.uuid, t, mount, `[${t.type}:${t.index}]`, f);
    if (t.type === 'MDT') {
      sum.files += t.files;
      sum.ffree += t.ffree;
    } else {
      ostFiles += t.files;
      ostFfree += t.ffree;
    }
    sum.blocks += t.blocks * t.bsize;
    sum.bfree += t.bfree * t.bsize;
    sum.bavail += t.bavail * t.bsize;
  }
  if (ostFiles && ostFfree < sum.ffree) {
    sum.files = sum.files - sum.ffree + ostFfree;
    sum.ffree = ostFfree;
  }
  return `${out}\n${dfRow('filesystem_summary:', sum, mount, '', f)}\n`;
}

// ---- path2fid, fid2path -------------------------------------------------------------------------

/** lfs path2fid: the FID alone for one path, "PATH: FID" for each of several. */
export function formatPath2fid(results: ReadonlyArray<{ path: string; fid: string }>, several = results.length > 1): string {
  return results.map((r) => `${several ? `${r.path}: ` : ''}${r.fid}\n`).join('');
}

/**
 * lfs fid2path: each name of the file, relative to the file system's root as the MDT gives it
 * ('' for the root); under a mount point named as such, that mount point, '/' and the name.
 */
export function formatFid2path(paths: readonly string[], mount: string | undefined, o: { printFid?: string } = {}): string {
  return paths.map((p) => `${o.printFid ? `${o.printFid} ` : ''}${mount !== undefined ? mount : ''}${mount !== undefined || p === '' ? '/' : ''}${p}\n`).join('');
}
