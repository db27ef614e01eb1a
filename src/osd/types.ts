// The OSD's values: object attributes, index values, and the semantic updates that make up a
// transaction's log entry.
//
// Log entry format (one per transaction, an opaque CBOR value to the txg log):
//   { updates: Update[], tx?: { ...annotation } }
// Each Update is a plain map whose `op` names it; FIDs are in Lustre's text form so that
// `lustre.log` and the blame debugger print them as they are. Every update records ABSOLUTE
// results (new attribute values, new size, new object version), never deltas, so replay is
// deterministic and needs no data file. `n` orders the updates of one txg: transactions that
// share a txg may interleave their updates, and replay applies a txg's updates in n order,
// which is the order they were applied live.
//   create       { n, op, fid, attrs: ObjectAttrs (all of them, version 1) }
//   destroy      { n, op, fid, xattrs: string[] (names removed with it), gen? }
//   attr_set     { n, op, fid, attrs: Partial<ObjectAttrs> (changed ones), version }
//   xattr_set    { n, op, fid, name, value: bytes, version }
//   xattr_del    { n, op, fid, name, version }
//   write        { n, op, fid, offset, length, size, blocks, version }
//   punch        { n, op, fid, start, end: number | null (null: to EOF, i.e. truncate), size, blocks, version }
//   index_insert { n, op, fid (the index), name, value: { fid, type }, version }
//   index_delete { n, op, fid (the index), name, version }

import type { Fid } from './fid.js';

export const OBJECT_TYPES = ['reg', 'dir', 'idx', 'lnk', 'chr', 'blk', 'fifo', 'sock'] as const;
export type ObjectType = (typeof OBJECT_TYPES)[number];

/** Types that hold index entries (directories and plain indexes such as the object index). */
export function isIndexType(t: ObjectType): boolean {
  return t === 'dir' || t === 'idx';
}
/** Types that hold bytes in a data file (regular files, and a symlink's target). */
export function isDataType(t: ObjectType): boolean {
  return t === 'reg' || t === 'lnk';
}

export interface ObjectAttrs {
  type: ObjectType;
  /** Permission bits only (07777); the file type is `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes, for data objects; for others, whatever the upper layer sets. */
  size: number;
  /** 512-byte sectors allocated to the data file, as fstat() reported after the last change. */
  blocks: number;
  /** Seconds since the epoch (fractions allowed). */
  atime: number;
  mtime: number;
  ctime: number;
  nlink: number;
  flags: number;
  /** Bumped on every update of the object; 1 at create. For version-based recovery. */
  version: number;
  /** Data-file generation, data objects only: names the data file, unique per device. */
  gen?: number;
}

/** The attributes a caller may set; type only at create. */
export type SettableAttrs = Partial<Pick<ObjectAttrs, 'mode' | 'uid' | 'gid' | 'size' | 'atime' | 'mtime' | 'ctime' | 'nlink' | 'flags'>>;
export const SETTABLE_ATTRS = ['mode', 'uid', 'gid', 'size', 'atime', 'mtime', 'ctime', 'nlink', 'flags'] as const;

export interface IndexValue {
  fid: Fid;
  type: ObjectType;
}

export interface IndexEntry extends IndexValue {
  name: string;
}

export type Update =
  | { n: number; op: 'create'; fid: string; attrs: ObjectAttrs }
  | { n: number; op: 'destroy'; fid: string; xattrs: string[]; gen?: number }
  | { n: number; op: 'attr_set'; fid: string; attrs: Partial<ObjectAttrs>; version: number }
  | { n: number; op: 'xattr_set'; fid: string; name: string; value: Uint8Array; version: number }
  | { n: number; op: 'xattr_del'; fid: string; name: string; version: number }
  | { n: number; op: 'write'; fid: string; offset: number; length: number; size: number; blocks: number; version: number }
  | { n: number; op: 'punch'; fid: string; start: number; end: number | null; size: number; blocks: number; version: number }
  | { n: number; op: 'index_insert'; fid: string; name: string; value: { fid: string; type: ObjectType }; version: number }
  | { n: number; op: 'index_delete'; fid: string; name: string; version: number };

export interface LogEntry {
  updates: Update[];
  tx?: Record<string, unknown>;
}

/** The largest offset or size the OSD accepts (2^52 bytes: exact in a double, with room). */
export const MAX_FILE_BYTES = 2 ** 52;
