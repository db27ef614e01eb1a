// The edge of the lfs control request: an unknown value (JSON off the control socket) checked
// into an LfsRequest, or an EINVAL ControlError naming the field that is wrong.
import { ControlError } from '../protocol.js';
import type {
  CountTest, LfsRequest, SizeTest, WalkCursor, WalkFrame,
} from './types.js';
import { WALK_PAGE_MAX } from './types.js';

const PATH_MAX = 4096;
/** A cursor holds one frame per directory level being walked. */
const CURSOR_FRAMES_MAX = 4096;
const FID_TEXT = /^\[0x[0-9a-f]{1,16}:0x[0-9a-f]{1,8}:0x[0-9a-f]{1,8}\]$/;

function bad(what: string): never {
  throw new ControlError('EINVAL', `lfs request: ${what}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > PATH_MAX || v.includes('\0')) bad(`${k} must be a non-empty string without NUL of at most ${PATH_MAX} characters`);
  return v;
}

function int(o: Record<string, unknown>, k: string, min: number, max: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${k} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return v;
}

function optInt(o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  return o[k] === undefined ? undefined : int(o, k, min, max);
}

function sign(o: Record<string, unknown>, k: string): -1 | 0 | 1 {
  const v = o[k];
  if (v !== -1 && v !== 0 && v !== 1) bad(`${k} must be -1, 0 or 1`);
  return v;
}

function cursor(v: unknown): WalkCursor | null | undefined {
  if (v === undefined || v === null) return v;
  if (!isObject(v) || !Array.isArray(v.frames) || v.frames.length > CURSOR_FRAMES_MAX) bad('cursor must be { frames: [...] } as a previous page gave it');
  const frames: WalkFrame[] = v.frames.map((f: unknown) => {
    if (!isObject(f)) bad('cursor frame must be an object');
    const fid = str(f, 'fid');
    if (!FID_TEXT.test(fid)) bad(`cursor frame fid ${fid} is not a FID`);
    const c = f.cookie;
    if (c !== null && typeof c !== 'string') bad('cursor frame cookie must be a string or null');
    return { path: str(f, 'path'), fid, depth: int(f, 'depth', 1, 1 << 20), cookie: c, skip: int(f, 'skip', 0, 1 << 30) };
  });
  return { frames };
}

function sizeTest(v: unknown): SizeTest | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) bad('size must be { sign, value, units }');
  return { sign: sign(v, 'sign'), value: int(v, 'value', 0, Number.MAX_SAFE_INTEGER), units: int(v, 'units', 1, 2 ** 50) };
}

function countTest(v: unknown): CountTest | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) bad('stripeCount must be { sign, value }');
  return { sign: sign(v, 'sign'), value: int(v, 'value', 0, 65535) };
}

/** Checks an lfs request from the control socket. */
export function checkLfsRequest(value: unknown): LfsRequest {
  if (!isObject(value)) bad('the request must be an object with an op');
  const o = value;
  switch (o.op) {
    case 'setstripe': {
      const r: LfsRequest = { op: 'setstripe', path: str(o, 'path') };
      const count = optInt(o, 'stripeCount', -1, 2000);
      const size = optInt(o, 'stripeSize', 0, 0xffff0000);
      const offset = optInt(o, 'stripeOffset', -1, 0xfffe);
      if (count !== undefined) r.stripeCount = count;
      if (size !== undefined) {
        if (size % 65536 !== 0) bad(`stripeSize ${size} is not a multiple of 65536`);
        r.stripeSize = size;
      }
      if (offset !== undefined) r.stripeOffset = offset;
      if (o.delete !== undefined) {
        if (typeof o.delete !== 'boolean') bad('delete must be a boolean');
        r.delete = o.delete;
      }
      return r;
    }
    case 'getstripe': {
      const c = cursor(o.cursor);
      return {
        op: 'getstripe', path: str(o, 'path'), maxDepth: int(o, 'maxDepth', -1, 1),
        ...(o.limit !== undefined && { limit: int(o, 'limit', 1, WALK_PAGE_MAX) }), ...(c !== undefined && { cursor: c }),
      };
    }
    case 'df':
      return { op: 'df', path: str(o, 'path') };
    case 'find': {
      const c = cursor(o.cursor);
      const r: LfsRequest = { op: 'find', path: str(o, 'path'), maxDepth: int(o, 'maxDepth', -1, 1 << 20) };
      if (o.name !== undefined) r.name = str(o, 'name');
      if (o.type !== undefined) {
        if (o.type !== 'f' && o.type !== 'd' && o.type !== 'l') bad(`type must be f, d or l, not ${JSON.stringify(o.type)}`);
        r.type = o.type;
      }
      const size = sizeTest(o.size);
      if (size) r.size = size;
      const count = countTest(o.stripeCount);
      if (count) r.stripeCount = count;
      if (o.limit !== undefined) r.limit = int(o, 'limit', 1, WALK_PAGE_MAX);
      if (c !== undefined) r.cursor = c;
      return r;
    }
    case 'path2fid':
      return { op: 'path2fid', path: str(o, 'path') };
    case 'fid2path': {
      const fid = str(o, 'fid');
      if (!FID_TEXT.test(fid)) bad(`fid ${fid} is not a FID as [0x200000400:0x1:0x0]`);
      return { op: 'fid2path', root: str(o, 'root'), fid };
    }
    default:
      return bad(`unknown op ${JSON.stringify(o.op)} (setstripe, getstripe, df, find, path2fid, fid2path)`);
  }
}
