// What the lfs utility asks of the kernel, and what it gets back: one control request `lfs`
// with `{ request: LfsRequest }`, answered with an LfsResult of the same `op`. Everything here
// is plain JSON (it crosses the control socket); checkLfsRequest (check.ts) is the edge that
// turns an unknown value into an LfsRequest.
//
// Paths are absolute paths inside a client mount point of the kernel, or MGSNID:/fsname/path
// (resolved by the kernel's ResolveClient). Sizes are bytes; FIDs are Lustre's text form,
// [0x200000400:0x1:0x0].
//
// Walks (getstripe of a directory, find) answer in pages: at most `limit` entries each, and a
// `cursor` (null at the end) that the utility sends back, unchanged, to get the next page. The
// cursor is the walk's own state (the directories being read and where), so the kernel keeps
// nothing between pages; entries created or removed between pages may be seen or missed, as
// with readdir(3).

/** The striping a user asks for; fields left out are inherited (0 / -1 on the wire). */
import type { StatFs } from '../../client/index.js';

export interface StripeSpec {
  /** -1: every OST; 0: the default. */
  stripeCount?: number;
  /** Bytes, a multiple of 64 KiB; 0: the default. */
  stripeSize?: number;
  /** The OST index of the first stripe; -1: any. */
  stripeOffset?: number;
}

export interface SetstripeRequest extends StripeSpec {
  op: 'setstripe';
  path: string;
  /** lfs setstripe -d: drop a directory's default layout. */
  delete?: boolean;
}

export interface WalkFrame {
  /** The directory's path as the walk names it (the request's path and names below it). */
  path: string;
  fid: string;
  /** Depth of the directory's entries below the starting path (1: its children). */
  depth: number;
  /** The readdir cookie of the page being read (null: the first page). */
  cookie: string | null;
  /** Entries of that page already walked. */
  skip: number;
}

export interface WalkCursor {
  frames: WalkFrame[];
}

export interface GetstripeRequest {
  op: 'getstripe';
  path: string;
  /** 0: the path itself only (-d, or a single field asked); 1: a directory and its entries; -1: recursive (-r). */
  maxDepth: number;
  limit?: number;
  cursor?: WalkCursor | null;
}

export interface DfRequest {
  op: 'df';
  path: string;
}

export interface SizeTest {
  /** +1: larger than; -1: smaller than; 0: equal (rounded up to units, as find(1)). */
  sign: -1 | 0 | 1;
  /** Bytes of N * units. */
  value: number;
  units: number;
}

export interface CountTest {
  sign: -1 | 0 | 1;
  value: number;
}

export interface FindRequest {
  op: 'find';
  path: string;
  /** A glob of the last component (find -name): *, ?, [...]. */
  name?: string;
  type?: 'f' | 'd' | 'l';
  size?: SizeTest;
  stripeCount?: CountTest;
  /** -1: no limit. */
  maxDepth: number;
  limit?: number;
  cursor?: WalkCursor | null;
}

export interface Path2fidRequest {
  op: 'path2fid';
  path: string;
}

export interface Fid2pathRequest {
  op: 'fid2path';
  /** A mount point (or any path in one), MGSNID:/fsname, or an fsname of a mount of the kernel. */
  root: string;
  fid: string;
}

export type LfsRequest = SetstripeRequest | GetstripeRequest | DfRequest | FindRequest | Path2fidRequest | Fid2pathRequest;
export type LfsOp = LfsRequest['op'];

/** A file's layout as lfs shows it (lov_user_md_v1). */
export interface LayoutInfo {
  /** The file's FID (lmm_fid; lmm_seq and lmm_object_id come from it). */
  fid: string;
  stripeCount: number;
  stripeSize: number;
  /** LOV_PATTERN_*: 1 raid0; 0 for a directory without a default of its own. */
  pattern: number;
  layoutGen: number;
  /** A directory default's offset, -1 any; a file's: the OST of stripe 0. */
  stripeOffset: number;
  objects: Array<{ ostIndex: number; seq: number; oid: number }>;
}

export interface GetstripeEntry {
  path: string;
  kind: 'file' | 'dir' | 'other';
  /** A file's layout; a directory's default (its own, or the file system's when `inherited`). */
  layout?: LayoutInfo;
  /** A directory without a default of its own: the values shown are what its files get. */
  inherited?: boolean;
}

/** One target's row of lfs df: its statfs(2) figures (StatFs's, the type aside). */
export interface DfTarget extends Omit<StatFs, 'type'> {
  uuid: string;
  type: 'MDT' | 'OST';
  index: number;
  /** Set when the target did not answer: an errno name. */
  error?: string;
}

export interface FindEntry {
  path: string;
}

export type LfsResult =
  | { op: 'setstripe'; path: string; created: boolean }
  | { op: 'getstripe'; entries: GetstripeEntry[]; cursor: WalkCursor | null }
  | { op: 'df'; fsname: string; mount: string; targets: DfTarget[] }
  | { op: 'find'; entries: FindEntry[]; cursor: WalkCursor | null }
  | { op: 'path2fid'; path: string; fid: string }
  | { op: 'fid2path'; fid: string; fsname: string; mount: string; paths: string[] };

/** Entries of one page of a walk, unless the request asks fewer. */
export const WALK_PAGE_MAX = 2048;
/** Directory entries looked at for one page of find before it answers (with a cursor) anyway. */
export const WALK_SCAN_MAX = 20_000;
/** JSON bytes of the entries of one page, well inside the control protocol's 1 MiB line. */
export const WALK_PAGE_BYTES_MAX = 512 * 1024;
/** Entries fid2path looks through for a file's names before it gives up (E2BIG). */
export const FID2PATH_SCAN_MAX = 1_000_000;
