// The MDT's namespace as a past state holds it (src/services/mdt/mdd.ts: the root index
// anchors 'ROOT'; a directory is a 'dir' index of name -> { fid, type }; a file's layout is its
// xattr 'lustre.lov'), and the same for an OST: its objects. Read-only views for ls, stat, diff.
import { fidToString, isDataType, ROOT_INDEX_FID, type Fid, type ObjectAttrs, type PastState } from '../../osd/index.js';
import { ROOT_FID } from '../../services/mdt/mdd.js';
import { decodeFileLayout, LOV_XATTR } from '../../services/mdt/layout.js';

export class ViewError extends Error {
  constructor(message: string, readonly code: 'ENOENT' | 'ENOTDIR' | 'EINVAL' = 'ENOENT') {
    super(message);
    this.name = 'ViewError';
  }
}

export function isMdt(past: PastState): boolean {
  return past.lookup(ROOT_INDEX_FID, 'ROOT') !== undefined;
}

/** One object of the namespace: every path that names it (hard links), its attributes, its layout. */
export interface NamespaceNode {
  fid: string;
  paths: string[];
  attrs: ObjectAttrs;
  /** The layout xattr in hex, so that a change compares exactly. */
  layout: string | null;
}

/** Every object reachable from ROOT, by FID text. */
export function namespaceOf(past: PastState): Map<string, NamespaceNode> {
  const nodes = new Map<string, NamespaceNode>();
  const visit = (fid: Fid, path: string): void => {
    const key = fidToString(fid);
    const attrs = past.attrs(fid);
    if (!attrs) return;
    const known = nodes.get(key);
    if (known) {
      known.paths.push(path);
      return;
    }
    const lov = past.xattr(fid, LOV_XATTR);
    nodes.set(key, { fid: key, paths: [path], attrs, layout: lov ? lov.toString('hex') : null });
    if (attrs.type !== 'dir') return;
    for (const e of past.list(fid)) visit(e.fid, path === '/' ? `/${e.name}` : `${path}/${e.name}`);
  };
  visit(ROOT_FID, '/');
  for (const n of nodes.values()) n.paths.sort();
  return nodes;
}

/** The FID a path names in an MDT's past state, or ENOENT naming the missing component. */
export function resolvePath(past: PastState, path: string): Fid {
  if (!isMdt(past)) throw new ViewError('paths are for an MDT; this device holds no namespace (an OST: name objects by FID)', 'EINVAL');
  let fid = ROOT_FID;
  let walked = '';
  for (const name of path.split('/').filter((c) => c !== '' && c !== '.')) {
    const a = past.attrs(fid);
    if (a?.type !== 'dir') throw new ViewError(`${walked || '/'} is not a directory`, 'ENOTDIR');
    const e = past.lookup(fid, name);
    walked += `/${name}`;
    if (!e) throw new ViewError(`no such file or directory: ${walked} (at txg ${past.txg})`);
    fid = e.fid;
  }
  return fid;
}

const TYPE_CHAR: Record<string, string> = { reg: '-', dir: 'd', idx: 'i', lnk: 'l', chr: 'c', blk: 'b', fifo: 'p', sock: 's' };

export function modeString(a: ObjectAttrs): string {
  const bits = 'rwxrwxrwx';
  let s = TYPE_CHAR[a.type] ?? '?';
  for (let i = 0; i < 9; i++) s += a.mode & (1 << (8 - i)) ? bits[i] : '-';
  return s;
}

export interface ListedEntry {
  name: string;
  fid: string;
  type: string;
  mode: string;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  mtime: string;
}

/** The entries of a directory (or the one entry of a file) at a path. */
export function listPath(past: PastState, path: string): ListedEntry[] {
  const fid = resolvePath(past, path);
  const a = past.attrs(fid)!;
  const row = (name: string, f: Fid, x: ObjectAttrs): ListedEntry => ({
    name, fid: fidToString(f), type: x.type, mode: modeString(x), nlink: x.nlink, uid: x.uid, gid: x.gid,
    size: x.size, mtime: new Date(x.mtime * 1000).toISOString(),
  });
  if (a.type !== 'dir') return [row(path.split('/').filter(Boolean).at(-1) ?? '/', fid, a)];
  return past.list(fid).flatMap((e) => {
    const x = past.attrs(e.fid);
    return x ? [row(e.name, e.fid, x)] : [];
  });
}

export interface StatResult {
  path: string;
  fid: string;
  txg: number;
  attrs: Omit<ObjectAttrs, 'gen'>;
  xattrs: string[];
  layout: { stripeSize: number; objects: Array<{ ostIndex: number; fid: string }> } | null;
}

export function statPath(past: PastState, path: string): StatResult {
  const fid = resolvePath(past, path);
  const { gen: _gen, ...attrs } = past.attrs(fid)!;
  const lov = past.xattr(fid, LOV_XATTR);
  let layout: StatResult['layout'] = null;
  if (lov && attrs.type === 'reg') {
    try {
      const l = decodeFileLayout(lov);
      layout = { stripeSize: l.stripeSize, objects: l.objects.map((o) => ({ ostIndex: o.ostIndex, fid: fidToString(o.fid) })) };
    } catch { /* a directory's default layout, or damage: shown as an xattr name only */ }
  }
  return { path, fid: fidToString(fid), txg: past.txg, attrs, xattrs: past.xattrNames(fid), layout };
}

/** An OST's (or any device's) data objects, by FID text, with their sizes. */
export function objectsOf(past: PastState): Map<string, ObjectAttrs> {
  const out = new Map<string, ObjectAttrs>();
  for (const [fid, a] of past.objects()) if (isDataType(a.type)) out.set(fidToString(fid), a);
  return out;
}
