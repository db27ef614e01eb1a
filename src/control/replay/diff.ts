// What changed between two states of a device. An MDT: its namespace (objects by FID, each
// with its paths): created, removed, renamed (same FID, other paths), attributes changed,
// layout changed. An OST (any device without a namespace): data objects created and destroyed,
// and the byte ranges the updates between the two points wrote (write) or zeroed (punch).
import { readLog } from '../../log/index.js';
import { devicePaths, stateAt, type ObjectAttrs, type PastState, type Update } from '../../osd/index.js';
import { isMdt, namespaceOf, objectsOf, type NamespaceNode } from './namespace.js';

/** The attributes a diff reports (version, blocks and atime change too often to be news). */
const DIFF_ATTRS = ['type', 'mode', 'uid', 'gid', 'size', 'nlink', 'mtime', 'ctime', 'flags'] as const;

export interface AttrChange {
  name: string;
  from: number | string;
  to: number | string;
}

export interface MdtDiff {
  kind: 'mdt';
  fromTxg: number;
  toTxg: number;
  created: Array<{ fid: string; paths: string[]; type: string }>;
  removed: Array<{ fid: string; paths: string[]; type: string }>;
  renamed: Array<{ fid: string; from: string[]; to: string[] }>;
  attrs: Array<{ fid: string; paths: string[]; changes: AttrChange[] }>;
  layout: Array<{ fid: string; paths: string[] }>;
}

export interface OstDiff {
  kind: 'ost';
  fromTxg: number;
  toTxg: number;
  created: Array<{ fid: string; size: number }>;
  destroyed: Array<{ fid: string; size: number }>;
  /** Merged [start, end) ranges per object, ascending. */
  written: Array<{ fid: string; ranges: Array<[number, number]> }>;
  zeroed: Array<{ fid: string; ranges: Array<[number, number | null]> }>;
}

export type DeviceDiff = MdtDiff | OstDiff;

export function attrChanges(a: ObjectAttrs, b: ObjectAttrs): AttrChange[] {
  const out: AttrChange[] = [];
  for (const name of DIFF_ATTRS) if (a[name] !== b[name]) out.push({ name, from: a[name], to: b[name] });
  return out;
}

function samePaths(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

export function diffNamespaces(a: Map<string, NamespaceNode>, b: Map<string, NamespaceNode>, fromTxg: number, toTxg: number): MdtDiff {
  const d: MdtDiff = { kind: 'mdt', fromTxg, toTxg, created: [], removed: [], renamed: [], attrs: [], layout: [] };
  for (const [fid, n] of b) {
    const old = a.get(fid);
    if (!old) { d.created.push({ fid, paths: n.paths, type: n.attrs.type }); continue; }
    if (!samePaths(old.paths, n.paths)) d.renamed.push({ fid, from: old.paths, to: n.paths });
    const changes = attrChanges(old.attrs, n.attrs);
    if (changes.length > 0) d.attrs.push({ fid, paths: n.paths, changes });
    if (old.layout !== n.layout) d.layout.push({ fid, paths: n.paths });
  }
  for (const [fid, n] of a) if (!b.has(fid)) d.removed.push({ fid, paths: n.paths, type: n.attrs.type });
  const byPath = (x: { paths?: string[]; to?: string[] }, y: { paths?: string[]; to?: string[] }): number =>
    ((x.paths ?? x.to)![0] ?? '').localeCompare((y.paths ?? y.to)![0] ?? '');
  d.created.sort(byPath); d.removed.sort(byPath); d.renamed.sort(byPath); d.attrs.sort(byPath); d.layout.sort(byPath);
  return d;
}

function merge(ranges: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/** Collects the OST-side changes of a sequence of updates. */
export class RangeCollector {
  readonly written = new Map<string, Array<[number, number]>>();
  readonly zeroed = new Map<string, Array<[number, number | null]>>();
  add(u: Update): void {
    if (u.op === 'write' && u.length > 0) {
      const list = this.written.get(u.fid) ?? [];
      list.push([u.offset, u.offset + u.length]);
      this.written.set(u.fid, list);
    } else if (u.op === 'punch') {
      const list = this.zeroed.get(u.fid) ?? [];
      list.push([u.start, u.end]);
      this.zeroed.set(u.fid, list);
    }
  }
}

export function diffObjects(a: PastState, b: PastState, ranges: RangeCollector, fromTxg: number, toTxg: number): OstDiff {
  const oa = objectsOf(a);
  const ob = objectsOf(b);
  const d: OstDiff = { kind: 'ost', fromTxg, toTxg, created: [], destroyed: [], written: [], zeroed: [] };
  for (const [fid, x] of ob) if (!oa.has(fid)) d.created.push({ fid, size: x.size });
  for (const [fid, x] of oa) if (!ob.has(fid)) d.destroyed.push({ fid, size: x.size });
  for (const [fid, list] of [...ranges.written].sort()) d.written.push({ fid, ranges: merge(list) });
  for (const [fid, list] of [...ranges.zeroed].sort()) d.zeroed.push({ fid, ranges: list });
  return d;
}

/** The diff between the states just after txgs fromTxg <= toTxg. */
export async function diffDevice(device: string, fromTxg: number, toTxg: number): Promise<DeviceDiff> {
  const past = await stateAt(device, fromTxg);
  const mdt = isMdt(past);
  const before = mdt ? namespaceOf(past) : null;
  const a = mdt ? null : past.clone();
  const ranges = new RangeCollector();
  if (toTxg > fromTxg) {
    for await (const record of readLog(devicePaths(device).log, { afterTxg: fromTxg })) {
      for (const u of await past.apply(record)) ranges.add(u);
      if (record.txg === toTxg) break;
    }
  }
  return mdt ? diffNamespaces(before!, namespaceOf(past), fromTxg, toTxg) : diffObjects(a!, past, ranges, fromTxg, toTxg);
}

/** The diff as lines: '+' created, '-' removed, 'R' renamed, 'M' attributes, 'L' layout, 'W' written, 'Z' zeroed. */
export function formatDiff(d: DeviceDiff): string[] {
  const lines: string[] = [];
  const p = (paths: string[]): string => paths.join(', ');
  if (d.kind === 'mdt') {
    for (const c of d.created) lines.push(`+ ${p(c.paths)}  ${c.type} ${c.fid}`);
    for (const c of d.removed) lines.push(`- ${p(c.paths)}  ${c.type} ${c.fid}`);
    for (const c of d.renamed) lines.push(`R ${p(c.from)} -> ${p(c.to)}  ${c.fid}`);
    for (const c of d.attrs) {
      const what = c.changes.map((x) => `${x.name} ${show(x.name, x.from)} -> ${show(x.name, x.to)}`).join(', ');
      lines.push(`M ${p(c.paths)}  ${what}`);
    }
    for (const c of d.layout) lines.push(`L ${p(c.paths)}  layout changed  ${c.fid}`);
  } else {
    for (const c of d.created) lines.push(`+ ${c.fid}  size ${c.size}`);
    for (const c of d.destroyed) lines.push(`- ${c.fid}  size ${c.size}`);
    for (const c of d.written) lines.push(`W ${c.fid}  ${c.ranges.map(([s, e]) => `${s}-${e - 1}`).join(', ')}`);
    for (const c of d.zeroed) lines.push(`Z ${c.fid}  ${c.ranges.map(([s, e]) => `${s}-${e === null ? 'EOF' : e - 1}`).join(', ')}`);
  }
  return lines;
}

function show(name: string, v: number | string): string {
  if (name === 'mode' && typeof v === 'number') return `0${v.toString(8)}`;
  if ((name === 'mtime' || name === 'ctime') && typeof v === 'number') return new Date(v * 1000).toISOString();
  return String(v);
}
