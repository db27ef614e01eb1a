// A walk of a directory tree in pages, for lfs find and lfs getstripe: pre-order (a directory,
// then its entries, descending into each subdirectory as it is met, as find(1) and llapi_find
// do), symlinks not followed, '.' and '..' skipped. One call walks until the visitor has
// accepted `limit` entries or WALK_SCAN_MAX entries were looked at, and returns the cursor to
// go on from: the stack of directories being read, each with the readdir cookie of its page and
// how many entries of that page were done. The stack is as deep as the tree, never as wide.
import type { FileSystem } from '../../client/index.js';
import type { ObjectType } from '../../osd/index.js';
import { ControlError } from '../protocol.js';
import { WALK_SCAN_MAX, type WalkCursor, type WalkFrame } from './types.js';

export interface WalkEntry {
  /** The entry's path as shown (the request's path joined with names). */
  path: string;
  /** Its path inside the file system. */
  inner: string;
  fid: string;
  type: ObjectType;
  depth: number;
}

export interface WalkStart {
  path: string;
  inner: string;
  fid: string;
  type: ObjectType;
}

/** Joins a name to a path the way lfs prints it (no doubled '/'). */
export function joinPath(base: string, name: string): string {
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

/** The inner path of a shown path below the start (shown and inner paths share their tail). */
function innerOf(start: WalkStart, shown: string): string {
  if (!shown.startsWith(start.path)) throw new ControlError('EINVAL', `lfs request: cursor path ${shown} is not below ${start.path}`);
  return start.inner === '/' ? '/' + shown.slice(start.path.length).replace(/^\/+/, '') : start.inner + shown.slice(start.path.length);
}

/**
 * One page of the walk below `start` (which the caller visited itself, when the cursor is
 * null/undefined). visit() returns whether the entry counted toward `limit`.
 */
export async function walkPage(
  fs: FileSystem, start: WalkStart, maxDepth: number, cursor: WalkCursor | null | undefined, limit: number,
  visit: (e: WalkEntry) => Promise<boolean>, full: () => boolean = () => false,
): Promise<WalkCursor | null> {
  const frames: WalkFrame[] = cursor ? cursor.frames.map((f) => ({ ...f })) : [];
  if (!cursor) {
    if (start.type !== 'dir' || maxDepth === 0) return null;
    frames.push({ path: start.path, fid: start.fid, depth: 1, cookie: null, skip: 0 });
  }
  let accepted = 0;
  let scanned = 0;
  while (frames.length > 0) {
    if (accepted >= limit || scanned >= WALK_SCAN_MAX || full()) return { frames };
    const top = frames[frames.length - 1]!;
    const page = await fs.mdc.readdir(top.fid, top.cookie);
    let descended = false;
    for (let i = top.skip; i < page.entries.length; i++) {
      const d = page.entries[i]!;
      top.skip = i + 1;
      if (d.name === '.' || d.name === '..') continue;
      scanned++;
      const shown = joinPath(top.path, d.name);
      const e: WalkEntry = { path: shown, inner: innerOf(start, shown), fid: d.fid, type: d.type, depth: top.depth };
      if (await visit(e)) accepted++;
      if (d.type === 'dir' && (maxDepth < 0 || top.depth < maxDepth)) {
        frames.push({ path: shown, fid: d.fid, depth: top.depth + 1, cookie: null, skip: 0 });
        descended = true;
        break;
      }
      if (accepted >= limit || scanned >= WALK_SCAN_MAX || full()) break;
    }
    if (descended) continue;
    if (top.skip >= page.entries.length) {
      if (page.end) frames.pop();
      else {
        top.cookie = page.cookie ?? '';
        top.skip = 0;
      }
    }
  }
  return null;
}
