// lfs inside the kernel: each request done on the client file system behind its path (the
// kernel's ResolveClient), answered with structured results that the utility formats
// (format.ts). What lfs asks of a Lustre client's kernel (LL_IOC_LOV_GETSTRIPE, SETSTRIPE,
// OBD_IOC_FID2PATH, per-target statfs) is done here with the client library's MDC and OSCs.
//
// fid2path: the MDT keeps no link EA (a file's names are not recorded with it), so a
// directory's path is found by walking '..' up to the root, and a file's names by a search of
// the namespace from the root, bounded by FID2PATH_SCAN_MAX entries (E2BIG past it).
import type { FileSystem } from '../../client/index.js';
import { fsCall } from '../../client/errors.js';
import { mdcSource, Walker } from '../../client/paths.js';
import type { FileLayout } from '../../services/mdt/layout.js';
import { DEFAULT_LAYOUT } from '../../services/mdt/layout.js';
import type { MdtAttr } from '../../services/mdt/protocol.js';
import type { ObjectType } from '../../osd/index.js';
import { ControlError } from '../protocol.js';
import {
  FID2PATH_SCAN_MAX, WALK_PAGE_BYTES_MAX, WALK_PAGE_MAX,
  type DfTarget, type FindRequest, type GetstripeEntry, type GetstripeRequest, type LayoutInfo, type LfsRequest, type LfsResult,
  type SetstripeRequest,
} from './types.js';
import { walkPage, type WalkEntry, type WalkStart } from './walk.js';

export type ResolveClient = (path: string) => Promise<{ fs: FileSystem; path: string; release(): Promise<void> }>;

const S_IFMT = 0o170000;
const TYPE_OF: Record<number, ObjectType> = {
  0o100000: 'reg', 0o040000: 'dir', 0o120000: 'lnk', 0o020000: 'chr', 0o060000: 'blk', 0o010000: 'fifo', 0o140000: 'sock',
};
const typeOf = (a: MdtAttr): ObjectType => TYPE_OF[a.mode & S_IFMT] ?? 'reg';
const LOV_PATTERN_RAID0 = 1;
/** How deep fid2path climbs '..' before it calls the tree broken. */
const FID2PATH_DEPTH_MAX = 4096;

/** Runs one lfs request on the file system behind its path. */
export async function serveLfs(request: LfsRequest, resolve: ResolveClient): Promise<LfsResult> {
  const target = request.op === 'fid2path' ? request.root : request.path;
  const r = await resolve(target);
  try {
    const ctx: Ctx = { fs: r.fs, inner: r.path, shown: target, walker: new Walker(mdcSource(r.fs.mdc), r.fs.core.rootFid) };
    switch (request.op) {
      case 'setstripe': return await setstripe(ctx, request);
      case 'getstripe': return await getstripe(ctx, request);
      case 'df': return await df(ctx);
      case 'find': return await find(ctx, request);
      case 'path2fid': {
        const a = await attrOf(ctx, ctx.inner, false);
        return { op: 'path2fid', path: target, fid: a.fid };
      }
      case 'fid2path': return await fid2path(ctx, request.fid);
    }
  } finally {
    await r.release();
  }
}

interface Ctx {
  fs: FileSystem;
  /** The request's path inside the file system. */
  inner: string;
  /** The request's path as the utility sent it. */
  shown: string;
  walker: Walker;
}

/** The mount's root as the request names it: the request's path less its inner tail. */
function mountOf(ctx: Ctx): string {
  if (ctx.inner === '/' || !ctx.shown.endsWith(ctx.inner)) return ctx.shown.replace(/(.)\/+$/, '$1');
  return ctx.shown.slice(0, ctx.shown.length - ctx.inner.length) || '/';
}

function attrOf(ctx: Ctx, inner: string, follow: boolean, shown = ctx.shown): Promise<MdtAttr> {
  return fsCall(follow ? 'stat' : 'lstat', shown, async () => (await ctx.walker.resolve(inner, follow, follow ? 'stat' : 'lstat')).attr);
}

async function lookupOrNothing(ctx: Ctx, inner: string): Promise<MdtAttr | undefined> {
  try {
    return await attrOf(ctx, inner, true);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

// ---- setstripe ----------------------------------------------------------------------------------

async function setstripe(ctx: Ctx, req: SetstripeRequest): Promise<LfsResult> {
  const { mdc } = ctx.fs;
  const spec = {
    ...(req.stripeCount !== undefined && { stripeCount: req.stripeCount }),
    ...(req.stripeSize !== undefined && { stripeSize: req.stripeSize }),
    ...(req.stripeOffset !== undefined && { stripeOffset: req.stripeOffset }),
  };
  const a = await lookupOrNothing(ctx, ctx.inner);
  const fail = (code: string, why: string): never => {
    throw new ControlError(code, `setstripe error for '${req.path}': ${why}`);
  };
  if (!a) {
    if (req.delete) fail('ENOENT', 'no such file or directory');
    const h = await fsCall('open', req.path, () => ctx.fs.open(ctx.inner, 'wx', 0o666, spec));
    await h.close();
    return { op: 'setstripe', path: req.path, created: true };
  }
  const type = typeOf(a);
  try {
    if (type === 'dir') {
      if (req.delete) await mdc.removeDirStripe(a.fid).catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'ENODATA') throw err;
      });
      else await mdc.setStripe(a.fid, spec);
    } else if (type === 'reg') {
      if (req.delete) fail('EINVAL', 'only a directory has a default layout to delete');
      if (await mdc.getLayout(a.fid)) fail('EEXIST', 'stripe already set');
      await mdc.setStripe(a.fid, spec);
    } else fail('ENOTTY', 'not a regular file or directory');
  } catch (err) {
    if (err instanceof ControlError) throw err;
    const code = (err as { code?: string }).code ?? 'EIO';
    fail(code === 'EEXIST' || code === 'EALREADY' ? 'EEXIST' : code, code === 'EEXIST' ? 'stripe already set' : (err as Error).message);
  }
  return { op: 'setstripe', path: req.path, created: false };
}

// ---- getstripe ----------------------------------------------------------------------------------

function fileLayoutInfo(l: FileLayout): LayoutInfo {
  const fid = `[0x${l.fid.seq.toString(16)}:0x${l.fid.oid.toString(16)}:0x${l.fid.ver.toString(16)}]`;
  return {
    fid, stripeCount: l.objects.length, stripeSize: l.stripeSize, pattern: LOV_PATTERN_RAID0, layoutGen: 0,
    stripeOffset: l.objects[0]?.ostIndex ?? -1,
    objects: l.objects.map((o) => ({ ostIndex: o.ostIndex, seq: o.fid.seq, oid: o.fid.oid })),
  };
}

/** A directory's default: its own, else the root's (as a Lustre client answers), else the built-in one. */
async function dirDefault(fs: FileSystem, fid: string): Promise<{ layout: LayoutInfo; inherited: boolean }> {
  const own = await fs.mdc.getDirStripe(fid);
  const root = fid === fs.core.rootFid ? undefined : await fs.mdc.getDirStripe(fs.core.rootFid);
  const spec = own ?? root;
  const fill = (count: number, size: number) => ({
    stripeCount: count !== 0 ? count : root?.stripeCount || DEFAULT_LAYOUT.stripeCount,
    stripeSize: size !== 0 ? size : root?.stripeSize || DEFAULT_LAYOUT.stripeSize,
  });
  const layout: LayoutInfo = spec
    ? { fid, ...fill(spec.stripeCount, spec.stripeSize), pattern: LOV_PATTERN_RAID0, layoutGen: 0, stripeOffset: spec.stripeOffset, objects: [] }
    : { fid, ...fill(0, 0), pattern: 0, layoutGen: 0, stripeOffset: -1, objects: [] };
  return { layout, inherited: own === undefined };
}

async function stripeEntry(fs: FileSystem, path: string, a: { fid: string; type: ObjectType }): Promise<GetstripeEntry> {
  if (a.type === 'dir') return { path, kind: 'dir', ...(await dirDefault(fs, a.fid)) };
  if (a.type !== 'reg') return { path, kind: 'other' };
  const l = await fs.mdc.getLayout(a.fid);
  return l ? { path, kind: 'file', layout: fileLayoutInfo(l) } : { path, kind: 'file' };
}

async function getstripe(ctx: Ctx, req: GetstripeRequest): Promise<LfsResult> {
  const a = await attrOf(ctx, ctx.inner, true);
  const start: WalkStart = { path: req.path, inner: ctx.inner, fid: a.fid, type: typeOf(a) };
  const entries: GetstripeEntry[] = [];
  const bytes = { n: 0 };
  const add = (e: GetstripeEntry): void => {
    entries.push(e);
    bytes.n += JSON.stringify(e).length;
  };
  if (!req.cursor) add(await stripeEntry(ctx.fs, req.path, start));
  const cursor = await walkPage(ctx.fs, start, req.maxDepth, req.cursor, req.limit ?? WALK_PAGE_MAX, async (e) => {
    let target: { fid: string; type: ObjectType } = e;
    if (e.type === 'lnk') {
      // As llapi: a symlink among a directory's entries is shown by what it points to.
      const t = await lookupOrNothing(ctx, e.inner);
      if (!t) return false;
      target = { fid: t.fid, type: typeOf(t) };
    }
    add(await fsCall('getxattr', e.path, () => stripeEntry(ctx.fs, e.path, target)));
    return true;
  }, () => bytes.n >= WALK_PAGE_BYTES_MAX);
  return { op: 'getstripe', entries, cursor };
}

// ---- df -----------------------------------------------------------------------------------------

async function df(ctx: Ctx): Promise<LfsResult> {
  const { fs } = ctx;
  await attrOf(ctx, ctx.inner, true);
  const config = fs.core.config;
  const targets: DfTarget[] = [];
  const mdt = config?.mdts.get(0);
  const bsize = 4096;
  const failed = (err: unknown): string => (err as { code?: string }).code ?? 'EIO';
  try {
    const s = await fs.mdc.statfs();
    const bfree = Math.floor(s.bytesFree / bsize);
    targets.push({
      uuid: mdt?.uuid ?? `${fs.fsname}-MDT0000_UUID`, type: 'MDT', index: 0, bsize,
      blocks: Math.floor(s.bytesTotal / bsize), bfree, bavail: bfree, files: s.objectsTotal, ffree: s.objectsFree,
    });
  } catch (err) {
    targets.push({ uuid: mdt?.uuid ?? `${fs.fsname}-MDT0000_UUID`, type: 'MDT', index: 0, error: failed(err), bsize, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 });
  }
  const osts = [...(config?.osts.entries() ?? [])].sort((x, y) => x[0] - y[0]);
  const answers = await Promise.all(osts.map(async ([index, ost]): Promise<DfTarget> => {
    const none = { uuid: ost.uuid, type: 'OST' as const, index, bsize, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 };
    const osc = fs.core.oscs.get(index);
    if (!osc) return { ...none, error: 'EAGAIN' };
    try {
      const s = await osc.statfs();
      return { ...none, bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
    } catch (err) {
      return { ...none, error: failed(err) };
    }
  }));
  targets.push(...answers);
  return { op: 'df', fsname: fs.fsname, mount: mountOf(ctx), targets };
}

// ---- find ---------------------------------------------------------------------------------------

/** fnmatch(3) of one name, without flags: *, ?, [...] and [!...], backslash escapes. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '\\' && i + 1 < glob.length) out += escape(glob[++i]!);
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) out += '\\[';
      else {
        let set = glob.slice(i + 1, end);
        if (set.startsWith('!')) set = '^' + set.slice(1);
        out += `[${set.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += escape(c);
  }
  return new RegExp(`^${out}$`, 's');
}

const escape = (c: string): string => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const baseName = (p: string): string => p.replace(/\/+$/, '').split('/').pop() || p;

/** find(1)'s comparison: N rounded up to units; +: more than, -: less than. */
export function sizeMatches(size: number, t: { sign: -1 | 0 | 1; value: number; units: number }): boolean {
  const limit = t.value;
  if (t.sign > 0) return size > limit;
  if (t.sign < 0) return size + t.units <= limit;
  return size <= limit && size + t.units > limit;
}

function countMatches(count: number, t: { sign: -1 | 0 | 1; value: number }): boolean {
  return t.sign > 0 ? count > t.value : t.sign < 0 ? count < t.value : count === t.value;
}

async function find(ctx: Ctx, req: FindRequest): Promise<LfsResult> {
  const { fs } = ctx;
  const a = await attrOf(ctx, ctx.inner, false);
  const name = req.name === undefined ? undefined : globToRegExp(req.name);
  const wantType = req.type && ({ f: 'reg', d: 'dir', l: 'lnk' } as const)[req.type];
  const matches = async (e: { path: string; fid: string; type: ObjectType }): Promise<boolean> => {
    if (name && !name.test(baseName(e.path))) return false;
    if (wantType && e.type !== wantType) return false;
    if (req.stripeCount) {
      let count: number | undefined;
      if (e.type === 'reg') count = (await fs.mdc.getLayout(e.fid))?.objects.length ?? 0;
      else if (e.type === 'dir') count = (await fs.mdc.getDirStripe(e.fid))?.stripeCount;
      if (count === undefined || !countMatches(count, req.stripeCount)) return false;
    }
    if (req.size) {
      const attr = await fs.mdc.getattr(e.fid);
      if (!sizeMatches((await fs.statOf(attr)).size, req.size)) return false;
    }
    return true;
  };
  const entries: Array<{ path: string }> = [];
  let bytes = 0;
  const start: WalkStart = { path: req.path, inner: ctx.inner, fid: a.fid, type: typeOf(a) };
  if (!req.cursor && (await matches(start))) entries.push({ path: req.path });
  const cursor = await walkPage(fs, start, req.maxDepth, req.cursor, req.limit ?? WALK_PAGE_MAX, async (e: WalkEntry) => {
    try {
      if (!(await matches(e))) return false;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return false; // gone while walked
      throw err;
    }
    entries.push({ path: e.path });
    bytes += e.path.length + 12;
    return true;
  }, () => bytes >= WALK_PAGE_BYTES_MAX);
  return { op: 'find', entries, cursor };
}

// ---- fid2path -----------------------------------------------------------------------------------

async function fid2path(ctx: Ctx, fidText: string): Promise<LfsResult> {
  const { fs } = ctx;
  const result = (paths: string[]): LfsResult => ({ op: 'fid2path', fid: fidText, fsname: fs.fsname, mount: mountOf(ctx), paths });
  if (fidText === fs.core.rootFid) return result(['']);
  const a = await fsCall('fid2path', fidText, () => fs.mdc.getattr(fidText));
  if (typeOf(a) === 'dir') return result([await dirPath(fs, fidText)]);
  const want = Math.max(1, a.nlink);
  const found: string[] = [];
  let scanned = 0;
  const queue: Array<{ fid: string; path: string }> = [{ fid: fs.core.rootFid, path: '' }];
  while (queue.length > 0 && found.length < want) {
    const dir = queue.shift()!;
    let cookie: string | null = null;
    for (;;) {
      const page = await fs.mdc.readdir(dir.fid, cookie);
      for (const e of page.entries) {
        if (e.name === '.' || e.name === '..') continue;
        if (++scanned > FID2PATH_SCAN_MAX) throw new ControlError('E2BIG', `fid2path ${fidText}: not found among the first ${FID2PATH_SCAN_MAX} entries of ${fs.fsname}`);
        const path = dir.path ? `${dir.path}/${e.name}` : e.name;
        if (e.fid === fidText) found.push(path);
        else if (e.type === 'dir') queue.push({ fid: e.fid, path });
      }
      if (page.end) break;
      cookie = page.cookie ?? '';
    }
  }
  if (found.length === 0) throw new ControlError('ENOENT', `fid2path: ${fidText} has no name in ${fs.fsname} (unlinked, still open somewhere)`);
  return result(found);
}

/** A directory's path: '..' up to the root, each name found in its parent. */
async function dirPath(fs: FileSystem, fid: string): Promise<string> {
  const names: string[] = [];
  let cur = fid;
  for (let depth = 0; cur !== fs.core.rootFid; depth++) {
    if (depth > FID2PATH_DEPTH_MAX) throw new ControlError('ELOOP', `fid2path ${fid}: more than ${FID2PATH_DEPTH_MAX} levels up to the root`);
    const parent = (await fs.mdc.lookup(cur, '..')).fid;
    names.unshift(await nameIn(fs, parent, cur));
    cur = parent;
  }
  return names.join('/');
}

async function nameIn(fs: FileSystem, dir: string, fid: string): Promise<string> {
  let cookie: string | null = null;
  for (;;) {
    const page = await fs.mdc.readdir(dir, cookie);
    const e = page.entries.find((x) => x.fid === fid && x.name !== '.' && x.name !== '..');
    if (e) return e.name;
    if (page.end) throw new ControlError('ENOENT', `fid2path: ${fid} is not in its parent ${dir} (renamed meanwhile?)`);
    cookie = page.cookie ?? '';
  }
}

