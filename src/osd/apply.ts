// The one apply function: applies a semantic update (types.ts) to a state view. It runs live,
// into the pending layer of the update's txg, and at replay, into the durable layer, so the
// state after replay is the state that was live. Updates carry absolute results, so apply
// needs nothing but the update and the state. It never touches data files: it tells `effects`
// which byte ranges became zeros and which were written (zeroing.ts), and which data files a
// destroy released.
// Invariant: the object an update names exists (live validated it before logging it), so a
// missing object here means the log and the state disagree, and apply asserts.
// Synchronous: the view reads synchronously, so an update applies in one step, with nothing
// interleaved (live, no other update can see it half applied).

import assert from 'node:assert/strict';
import { parseFid, type Fid } from './fid.js';
import { COUNTER, indexKey, objectKey, toBuffer, xattrKey } from './keys.js';
import type { StateView } from './state.js';
import { isDataType, type ObjectAttrs, type Update } from './types.js';

function attrsOf(s: StateView, fid: Fid, u: Update): ObjectAttrs {
  const a = s.get(objectKey(fid)) as ObjectAttrs | undefined;
  assert(a !== undefined, `${u.op} of ${u.fid} (n ${u.n}): no such object in the state`);
  return a;
}

function addCounter(s: StateView, key: string, delta: number): void {
  if (delta === 0) return;
  const v = (s.get(key) as number | undefined) ?? 0;
  s.put(key, v + delta);
}

/** Size accounting: the sum of sizes of data objects. */
function dataBytes(a: ObjectAttrs): number {
  return isDataType(a.type) ? a.size : 0;
}

/** What apply reports about data files (zeroing.ts, data.ts). */
export interface DataEffects {
  zero(fid: Fid, gen: number, start: number, end: number): void;
  wrote(fid: Fid, gen: number, start: number, end: number): void;
  destroyed(fid: Fid, gen: number): void;
}

/** A size change of a data object: what lies past the smaller size reads as zeros from now on. */
function resized(effects: DataEffects, fid: Fid, old: ObjectAttrs, size: number): void {
  if (isDataType(old.type) && old.gen !== undefined && size !== old.size) effects.zero(fid, old.gen, Math.min(size, old.size), Infinity);
}

function setAttrs(s: StateView, fid: Fid, u: Update, changes: Partial<ObjectAttrs>, known?: ObjectAttrs): void {
  const old = known ?? attrsOf(s, fid, u);
  const next = { ...old, ...changes };
  s.put(objectKey(fid), next);
  addCounter(s, COUNTER.bytes, dataBytes(next) - dataBytes(old));
}

/** Applies `u`; `fid` is u.fid parsed, when the caller has it already (a live update). */
export function applyUpdate(u: Update, s: StateView, effects: DataEffects, fid: Fid = parseFid(u.fid)): void {
  switch (u.op) {
    case 'create': {
      s.put(objectKey(fid), { ...u.attrs });
      addCounter(s, COUNTER.objects, 1);
      addCounter(s, COUNTER.bytes, dataBytes(u.attrs));
      if (u.attrs.gen !== undefined) {
        const last = (s.get(COUNTER.lastGen) as number | undefined) ?? 0;
        if (u.attrs.gen > last) s.put(COUNTER.lastGen, u.attrs.gen);
      }
      return;
    }
    case 'destroy': {
      const old = attrsOf(s, fid, u);
      s.del(objectKey(fid));
      for (const name of u.xattrs) s.del(xattrKey(fid, name));
      addCounter(s, COUNTER.objects, -1);
      addCounter(s, COUNTER.bytes, -dataBytes(old));
      if (old.gen !== undefined) effects.destroyed(fid, old.gen);
      return;
    }
    case 'attr_set': {
      const old = attrsOf(s, fid, u);
      if (u.attrs.size !== undefined) resized(effects, fid, old, u.attrs.size);
      return setAttrs(s, fid, u, { ...u.attrs, version: u.version }, old);
    }
    case 'write': {
      const old = attrsOf(s, fid, u);
      assert(old.gen !== undefined, `write of ${u.fid}, which has no data file`);
      // A gap past the old size reads as zeros (it may hold bytes of a txg a crash lost).
      if (u.offset > old.size) effects.zero(fid, old.gen, old.size, Infinity);
      effects.wrote(fid, old.gen, u.offset, u.offset + u.length);
      return setAttrs(s, fid, u, { size: u.size, blocks: u.blocks, version: u.version }, old);
    }
    case 'punch': {
      const old = attrsOf(s, fid, u);
      assert(old.gen !== undefined, `punch of ${u.fid}, which has no data file`);
      if (u.end === null) effects.zero(fid, old.gen, Math.min(u.start, old.size), Infinity);
      else if (u.start < old.size) effects.zero(fid, old.gen, u.start, Math.min(u.end, old.size));
      return setAttrs(s, fid, u, { size: u.size, blocks: u.blocks, version: u.version }, old);
    }
    case 'xattr_set':
      s.put(xattrKey(fid, u.name), toBuffer(u.value));
      return setAttrs(s, fid, u, { version: u.version });
    case 'xattr_del':
      s.del(xattrKey(fid, u.name));
      return setAttrs(s, fid, u, { version: u.version });
    case 'index_insert':
      s.put(indexKey(fid, u.name), { fid: parseFid(u.value.fid), type: u.value.type });
      return setAttrs(s, fid, u, { version: u.version });
    case 'index_delete':
      s.del(indexKey(fid, u.name));
      return setAttrs(s, fid, u, { version: u.version });
    default: {
      const never: never = u;
      assert.fail(`unknown update ${JSON.stringify(never)}`);
    }
  }
}

/** Checks the shape of a log entry read back at replay (the edge where disk bytes become values). */
export function updatesOfEntries(entries: unknown[], where: string): Update[] {
  const out: Update[] = [];
  for (const e of entries) {
    const updates = (e as { updates?: unknown } | null)?.updates;
    if (!Array.isArray(updates)) throw new Error(`${where}: a log entry without an updates list`);
    for (const u of updates) {
      const x = u as { op?: unknown; n?: unknown; fid?: unknown };
      if (typeof x?.op !== 'string' || typeof x.n !== 'number' || typeof x.fid !== 'string') {
        throw new Error(`${where}: a malformed update ${JSON.stringify(u)}`);
      }
      out.push(u as Update);
    }
  }
  // Transactions of one txg may interleave; n is the order they were applied live.
  return out.sort((a, b) => a.n - b.n);
}
