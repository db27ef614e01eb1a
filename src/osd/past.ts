// Replay-to-point: the OSD state as it was just after a chosen txg, rebuilt from the device's
// base (base.ts) and its log, without opening the device (which may be mounted and serving:
// nothing here writes to it or opens its LevelDB).
//
// How a past state is rebuilt: state(T) = base(B) + replay of txgs B+1..T, through the same
// applyUpdate as live and open-time replay, into an in-memory map. The window of points is
// [B, last durable txg]: B moves up only when the log deletes segments (retention), so the
// txg log's retainMs / retainBytes (lctl set_param osd-*.*.txg_retain_ms / txg_retain_bytes)
// decide how far back a device can be rebuilt: every segment younger than retainMs, or within
// the newest retainBytes of covered segments, stays, and with it every point from the start of
// the oldest kept segment on. With both at 0, the window reaches back to the start of the
// segment the last checkpoint fell in (segments are deleted only once wholly checkpointed).
//
// Object data: data files are written in place and never copied into the log, so a past state
// has the past SIZE of each object but the CURRENT bytes of its file: a range overwritten after
// the point shows its newer bytes, and a range zeroed later (punch, truncate) shows zeros.
// Bytes written after the point past the past size are not shown (reads clamp to the size).
// A destroyed object's data file is not deleted but moved to DEVICE/attic/ (Osd: attic), and
// deleted only when the base moves past the destroy (moveBase), so an object that existed at a
// point inside the window still has its data.

import assert from 'node:assert/strict';
import { access, mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readLog, type TxgRecord } from '../log/index.js';
import { applyUpdate, updatesOfEntries, type DataEffects } from './apply.js';
import { listBases, readBase, writeBase, type Base } from './base.js';
import { DataFiles } from './data.js';
import { devicePaths } from './device.js';
import { fidKey, parseFidKey, type Fid } from './fid.js';
import { indexPrefix, objectKey, prefixEnd, xattrPrefix, type StateValue } from './keys.js';
import type { StateView } from './state.js';
import type { IndexEntry, IndexValue, ObjectAttrs, Update } from './types.js';

export const ATTIC_DIR = 'attic';
export const atticDir = (device: string): string => join(device, ATTIC_DIR);
/** Where a destroyed object's data file waits for the window to pass its destroy. */
export const atticPath = (device: string, fid: Fid, gen: number): string =>
  join(atticDir(device), `${fidKey(fid)}.${gen.toString(16)}`);

/** Moves a destroyed object's data file to the attic (absent file: nothing to keep). */
export async function retireDataFile(device: string, path: string, fid: Fid, gen: number): Promise<void> {
  await mkdir(atticDir(device), { recursive: true });
  try {
    await rename(path, atticPath(device, fid, gen));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** A destroyed data object seen by a replay: what the attic holds for it. */
export interface Destroyed {
  fid: Fid;
  gen: number;
  txg: number;
}

/** The OSD state at one txg, in memory, with the updates of each later txg applied on demand. */
export class PastState {
  readonly state: Map<string, StateValue>;
  txg: number;
  timeMs: number;
  /** Data objects destroyed by the txgs applied here. */
  readonly destroyed: Destroyed[] = [];
  private sortedKeys: string[] | null = null;

  constructor(base: Base) {
    this.state = new Map(base.state);
    this.txg = base.txg;
    this.timeMs = base.timeMs;
  }

  clone(): PastState {
    const c = new PastState({ txg: this.txg, timeMs: this.timeMs, state: this.state });
    return c;
  }

  private view(): StateView {
    return {
      get: (key) => this.state.get(key),
      put: (key, value) => { if (!this.state.has(key)) this.sortedKeys = null; this.state.set(key, value); },
      del: (key) => { if (this.state.delete(key)) this.sortedKeys = null; },
    };
  }

  /** Applies one txg's record (the next one: txgs apply in order); returns its updates. */
  async apply(record: TxgRecord): Promise<Update[]> {
    assert.equal(record.txg, this.txg + 1, 'past state: txgs apply in order');
    const updates = updatesOfEntries(record.entries, `${record.file}@${record.offset} (txg ${record.txg})`);
    const effects: DataEffects = {
      zero: () => {},
      wrote: () => {},
      destroyed: (fid, gen) => { this.destroyed.push({ fid, gen, txg: record.txg }); },
    };
    const view = this.view();
    for (const u of updates) applyUpdate(u, view, effects);
    this.txg = record.txg;
    this.timeMs = record.timeMs;
    return updates;
  }

  attrs(fid: Fid): ObjectAttrs | undefined {
    return this.state.get(objectKey(fid)) as ObjectAttrs | undefined;
  }

  xattr(fid: Fid, name: string): Buffer | undefined {
    const v = this.state.get(xattrPrefix(fid) + name) as Uint8Array | undefined;
    return v && Buffer.from(v);
  }

  lookup(index: Fid, name: string): IndexValue | undefined {
    return this.state.get(indexPrefix(index) + name) as IndexValue | undefined;
  }

  private keys(): string[] {
    this.sortedKeys ??= [...this.state.keys()].sort();
    return this.sortedKeys;
  }

  private range(prefix: string): string[] {
    const keys = this.keys();
    const end = prefixEnd(prefix);
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keys[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: string[] = [];
    for (let i = lo; i < keys.length && keys[i]! < end; i++) out.push(keys[i]!);
    return out;
  }

  /** Every entry of an index, in name order. */
  list(index: Fid): IndexEntry[] {
    const prefix = indexPrefix(index);
    return this.range(prefix).map((key) => {
      const v = this.state.get(key) as IndexValue;
      return { name: key.slice(prefix.length), fid: v.fid, type: v.type };
    });
  }

  xattrNames(fid: Fid): string[] {
    const prefix = xattrPrefix(fid);
    return this.range(prefix).map((key) => key.slice(prefix.length));
  }

  /** Every object, as [fid, attrs], in FID order. */
  *objects(): Generator<[Fid, ObjectAttrs]> {
    for (const key of this.range('o:')) yield [parseFidKey(key.slice(2))!, this.state.get(key) as ObjectAttrs];
  }
}

/** The base a device's window starts from (the newest one: older ones are removed anyway). */
export async function oldestBase(device: string): Promise<Base> {
  const bases = await listBases(device);
  if (bases.length === 0) {
    throw Object.assign(new Error(`${device} holds no base snapshot (${join(device, 'base')}): it was formatted before replay-to-point existed, so no past state can be rebuilt`), { code: 'ENOBASE' });
  }
  return readBase(device, bases.at(-1)!);
}

/**
 * The state of the device just after txg `txg`, from its base; onRecord hears each record
 * replayed (for progress). Throws when txg is outside [base, last durable txg].
 */
export async function stateAt(device: string, txg: number, onRecord?: (record: TxgRecord, updates: Update[]) => void): Promise<PastState> {
  const past = new PastState(await oldestBase(device));
  if (txg < past.txg) throw Object.assign(new Error(`txg ${txg} is before the replay window, which starts at txg ${past.txg}`), { code: 'ERANGE' });
  if (txg === past.txg) return past;
  for await (const record of readLog(devicePaths(device).log, { afterTxg: past.txg })) {
    const updates = await past.apply(record);
    onRecord?.(record, updates);
    if (record.txg === txg) return past;
  }
  throw Object.assign(new Error(`txg ${txg} is after the replay window, which ends at txg ${past.txg}`), { code: 'ERANGE' });
}

/** Where the bytes of a data object of a past state are now: its data file, or the attic. */
export async function dataSource(device: string, fid: Fid, gen: number): Promise<string | null> {
  for (const path of [new DataFiles(devicePaths(device).data, 1).path(fid, gen), atticPath(device, fid, gen)]) {
    try {
      await access(path);
      return path;
    } catch { /* next */ }
  }
  return null;
}

/**
 * Moves the device's base up to txg `throughTxg` (the log is about to delete the segments up to
 * it): replays them into the current base, writes the new base, and deletes the attic files of
 * objects destroyed up to it (no state in the window has them any more).
 */
export async function moveBase(device: string, throughTxg: number): Promise<void> {
  const bases = await listBases(device);
  if (bases.length === 0) return; // a device without bases has no window to keep
  if (bases.at(-1)! >= throughTxg) return;
  const past = await stateAt(device, throughTxg);
  await writeBase(device, { txg: past.txg, timeMs: past.timeMs, state: past.state });
  for (const d of past.destroyed) await unlink(atticPath(device, d.fid, d.gen)).catch(() => {});
}
