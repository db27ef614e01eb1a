// lustre.log replay: a complete copy of a device as it was just after one txg.
//
// The copy is a device of its own: osd.format and mountdata as the source's (mountdata's MGS
// NIDs rewritten with --mgsnode, so that a copy set can run as a file system of its own), a
// LevelDB holding the past state as a clean checkpoint at that txg, an empty log whose first
// segment starts at txg + 1, a base at that txg (its window is that one point), and each data
// object's bytes copied from the source's data file (or attic) and cut to its past size (see
// src/osd/past.ts for what a past state shows of overwritten bytes). It is built in a temporary
// folder beside DIR and renamed to DIR only when complete, so DIR never holds a partial copy;
// the source is only read (its log segments, base, data files and attic), never opened as an
// OSD, so it may be mounted and serving meanwhile.
import { copyFile, mkdir, open, readFile, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TxgLog, writeCheckpointHint } from '../../log/index.js';
import {
  DataFiles, dataSource, devicePaths, isDataType, readDevice, stateAt, writeBase, writeInitialState,
} from '../../osd/index.js';
import { MOUNTDATA_FILE, readMountdata, writeMountdata } from '../../services/target/index.js';
import { repointMgs } from './repoint.js';

export interface CopyProgress {
  phase: 'replay' | 'data';
  done: number;
  total: number;
}

export interface CopyResult {
  out: string;
  txg: number;
  timeMs: number;
  objects: number;
  dataFiles: number;
  dataBytes: number;
  /** Data objects whose file was gone (their bytes read as zeros in the copy). */
  missingData: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

export async function replayCopy(device: string, txg: number, out: string, opts: {
  mgsNids?: string[];
  /** OLD=NEW NIDs for a copy set run on other NIDs (repoint.ts): mountdata and an MGS's config logs. */
  nidMap?: Map<string, string>;
  onProgress?: (p: CopyProgress) => void;
  records?: number;
} = {}): Promise<CopyResult> {
  await readDevice(device);
  if (await exists(out)) throw Object.assign(new Error(`${out} already exists: replay writes a new copy, give a path that does not exist`), { code: 'EEXIST' });
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    let replayed = 0;
    const past = await stateAt(device, txg, () => opts.onProgress?.({ phase: 'replay', done: ++replayed, total: opts.records ?? replayed }));
    const paths = devicePaths(tmp);
    await mkdir(tmp, { recursive: true });
    await writeFile(paths.format, await readFile(devicePaths(device).format));
    let mgs = false;
    if (await exists(join(device, MOUNTDATA_FILE))) {
      const md = await readMountdata(device);
      mgs = md.mgs;
      if (opts.nidMap) md.mgsNids = md.mgsNids.map((n) => opts.nidMap!.get(n) ?? n);
      if (opts.mgsNids && !md.mgs) md.mgsNids = opts.mgsNids;
      await writeMountdata(tmp, { ...md, virgin: false });
    } else if (opts.mgsNids) {
      throw Object.assign(new Error(`${device} holds no mountdata: --mgsnode applies to a Lustre target`), { code: 'EINVAL' });
    }
    await TxgLog.format(paths.log, txg + 1);
    await writeCheckpointHint(paths.log, txg);
    await writeInitialState(paths.db, past.state, txg);
    await writeBase(tmp, { txg, timeMs: past.timeMs, state: past.state });
    const data = new DataFiles(paths.data, 1);
    await mkdir(paths.data);
    for (let i = 0; i < 256; i++) await mkdir(join(paths.data, i.toString(16).padStart(2, '0')));
    // An empty object needs no data file (a missing file reads as nothing): an MDT's are most.
    const objects = [...past.objects()].filter(([, a]) => isDataType(a.type) && a.gen !== undefined && a.size > 0);
    let dataFiles = 0;
    let dataBytes = 0;
    let missingData = 0;
    for (const [fid, a] of objects) {
      const source = await dataSource(device, fid, a.gen!);
      const target = data.path(fid, a.gen!);
      if (source === null) {
        missingData++;
      } else {
        await copyFile(source, target);
        // Bytes past the past size (written after the point) are not part of the copy.
        if ((await stat(target)).size > a.size) await truncate(target, a.size);
        dataFiles++;
        dataBytes += a.size;
      }
      opts.onProgress?.({ phase: 'data', done: dataFiles + missingData, total: objects.length });
    }
    if (mgs && opts.nidMap && opts.nidMap.size > 0) await repointMgs(tmp, opts.nidMap);
    await fsyncTree(tmp);
    await rename(tmp, out);
    await fsync(dirname(out));
    return { out, txg, timeMs: past.timeMs, objects: (past.state.get('m:objects') as number | undefined) ?? 0, dataFiles, dataBytes, missingData };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

// Everything of the copy reaches the disk before the rename makes it visible as complete.
async function fsyncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(e.parentPath, e.name);
    if (e.isFile()) await fsync(path);
  }
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isDirectory()) await fsync(join(e.parentPath, e.name));
  }
  await fsync(dir);
}
