// The device folder and its format file.
//
// Layout of a device DEVICE (a directory):
//   DEVICE/osd.format    the format file (below); its presence makes the folder an OSD
//   DEVICE/log/          the txg log's segments (src/log owns their format)
//   DEVICE/db/           LevelDB: the materialized state as of a checkpoint (keys.ts)
//   DEVICE/data/XX/      data files, XX = two hex digits spreading FIDs over 256 folders
//                        (data.ts names the files)
//   DEVICE/base/         the base snapshot replay-to-point starts from (base.ts); optional
//   DEVICE/attic/        data files of objects destroyed inside the replay window, kept
//                        until the window passes their destroy (past.ts); optional
//
// The format file is UTF-8 JSON, one object, written to osd.format.tmp, fsynced and renamed:
//   { "magic": "lustre-osd-txg", "formatVersion": 1, "uuid": "<uuid>", "label": "<label>",
//     "createdMs": <ms since epoch> }
// A reader refuses a wrong magic (not a device) and a formatVersion above its own (newer).
// format() writes the file LAST, so a folder whose format was interrupted is not a device.

import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { TxgLog } from '../log/index.js';
import { OsdDeviceError, isErrno } from './errors.js';
import { ROOT_INDEX_FID } from './fid.js';
import { COUNTER, encodeValue, objectKey, type StateValue } from './keys.js';
import { writeBase } from './base.js';
import type { ObjectAttrs } from './types.js';

export const FORMAT_MAGIC = 'lustre-osd-txg';
export const FORMAT_VERSION = 1;
export const FORMAT_FILE = 'osd.format';
export const DEVICE_PARTS = ['log', 'db', 'data'] as const;

export interface DeviceInfo {
  magic: string;
  formatVersion: number;
  uuid: string;
  label: string;
  createdMs: number;
}

export interface FormatOptions {
  label?: string;
  /** Replace an existing device (its whole state is lost). */
  reformat?: boolean;
  /** Injected for deterministic tests. */
  uuid?: string;
  clock?: () => number;
}

export const devicePaths = (dir: string) => ({
  format: join(dir, FORMAT_FILE),
  log: join(dir, 'log'),
  db: join(dir, 'db'),
  data: join(dir, 'data'),
});

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

export async function fsyncPath(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function formatDevice(dir: string, opts: FormatOptions = {}): Promise<DeviceInfo> {
  const paths = devicePaths(dir);
  await mkdir(dir, { recursive: true });
  const present = [];
  for (const p of [paths.format, paths.log, paths.db, paths.data]) if (await exists(p)) present.push(p);
  if (present.length > 0) {
    if (!opts.reformat) {
      throw new OsdDeviceError('EALREADY', dir, `${dir} already holds an OSD (or part of one: ${present.join(', ')}); format with reformat to replace it`);
    }
    // The format file goes first, so an interrupted reformat leaves no half device behind.
    await rm(paths.format, { force: true });
    for (const p of [paths.log, paths.db, paths.data, join(dir, 'base'), join(dir, 'attic')]) await rm(p, { recursive: true, force: true });
  }
  const clock = opts.clock ?? Date.now;
  await mkdir(paths.data);
  for (let i = 0; i < 256; i++) await mkdir(join(paths.data, i.toString(16).padStart(2, '0')));
  await TxgLog.format(paths.log);
  const createdMs = clock();
  const initial = initialState(createdMs);
  await writeInitialState(paths.db, initial);
  // The first base of replay-to-point (base.ts): the empty device, as of txg 0.
  await writeBase(dir, { txg: 0, timeMs: createdMs, state: initial });
  const info: DeviceInfo = {
    magic: FORMAT_MAGIC,
    formatVersion: FORMAT_VERSION,
    uuid: opts.uuid ?? randomUUID(),
    label: opts.label ?? '',
    createdMs,
  };
  const tmp = `${paths.format}.tmp`;
  await writeFile(tmp, JSON.stringify(info, null, 2) + '\n');
  await fsyncPath(tmp);
  await rename(tmp, paths.format);
  await fsyncPath(dir);
  return info;
}

/** The state of an empty device: its root index and the counters (no checkpoint or clean mark). */
export function initialState(nowMs: number): Map<string, StateValue> {
  const now = Math.floor(nowMs / 1000);
  const root: ObjectAttrs = {
    type: 'idx', mode: 0o755, uid: 0, gid: 0, size: 0, blocks: 0,
    atime: now, mtime: now, ctime: now, nlink: 1, flags: 0, version: 1,
  };
  return new Map<string, StateValue>([
    [objectKey(ROOT_INDEX_FID), root],
    [COUNTER.objects, 1],
    [COUNTER.bytes, 0],
    [COUNTER.lastGen, 0],
  ]);
}

/**
 * Writes a state into a new LevelDB at dbPath in one synced batch, as a checkpoint at txg
 * (a format: 0; a replayed copy: its point), marked clean.
 */
export async function writeInitialState(dbPath: string, state: Map<string, StateValue>, txg = 0): Promise<void> {
  const db = new ClassicLevel<string, Uint8Array>(dbPath, { keyEncoding: 'utf8', valueEncoding: 'view', errorIfExists: true });
  await db.open();
  try {
    const ops = [...state].filter(([key]) => !key.startsWith('z:') && key !== COUNTER.checkpointTxg && key !== COUNTER.clean)
      .map(([key, value]) => ({ type: 'put' as const, key, value: encodeValue(key, value) }));
    await db.batch([
      ...ops,
      { type: 'put', key: COUNTER.checkpointTxg, value: encodeValue(COUNTER.checkpointTxg, txg) },
      { type: 'put', key: COUNTER.clean, value: encodeValue(COUNTER.clean, 1) },
    ], { sync: true });
  } finally {
    await db.close();
  }
}

/** Reads and checks the format file; changes nothing. Throws OsdDeviceError on refusal. */
export async function readDevice(dir: string): Promise<DeviceInfo> {
  const paths = devicePaths(dir);
  let text: string;
  try {
    text = await readFile(paths.format, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR') || isErrno(err, 'EISDIR')) {
      throw new OsdDeviceError('ENODEV', dir, `${dir} is not an OSD device (no readable ${paths.format})`);
    }
    throw err;
  }
  let info: DeviceInfo;
  try {
    info = JSON.parse(text) as DeviceInfo;
  } catch {
    throw new OsdDeviceError('ENODEV', dir, `${dir} is not an OSD device (${paths.format} is not JSON)`);
  }
  if (typeof info !== 'object' || info === null || info.magic !== FORMAT_MAGIC) {
    throw new OsdDeviceError('ENODEV', dir, `${dir} is not an OSD device (bad magic in ${paths.format})`);
  }
  if (!Number.isInteger(info.formatVersion) || info.formatVersion < 1) {
    throw new OsdDeviceError('ENODEV', dir, `${dir}: ${paths.format} has no valid formatVersion`);
  }
  if (info.formatVersion > FORMAT_VERSION) {
    throw new OsdDeviceError('EVERSION', dir, `${dir} has OSD format version ${info.formatVersion}, newer than the ${FORMAT_VERSION} this code reads`);
  }
  for (const part of DEVICE_PARTS) {
    if (!(await exists(paths[part]))) {
      throw new OsdDeviceError('ENODEV', dir, `${dir} is a damaged OSD device: ${paths[part]} is missing`);
    }
  }
  return info;
}
