// bench:replay — replay-to-point against reading the same log raw, in the same run.
//  1. Records replayed per second by stateAt (decode each record, check its updates, apply them
//     to the in-memory past state), beside reading the same segments raw: scanLog's walk of
//     headers and crc32c, with no decode and no apply.
//  2. Updates applied per second in the same replay, beside the same raw walk in records.
//  3. A whole copy (lustre.log replay) of the device at its last txg, in records per second,
//     beside the same raw walk.
// The device is an OSD with LUSTRE_BENCH_RECORDS txgs (default 20,000) of a metadata-shaped
// workload: each txg creates an object, inserts its name and sets an xattr, like an MDT create.
// LUSTRE_BENCH_DIR chooses the folder (default: the system's temporary folder).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanLog } from '../src/log/index.js';
import { Osd, ROOT_INDEX_FID, devicePaths, stateAt } from '../src/osd/index.js';
import { replayCopy } from '../src/control/replay/index.js';
import { emit, progress, rateFigure } from './lib.js';

const RECORDS = Number(process.env.LUSTRE_BENCH_RECORDS ?? 20_000);
const PER_TXG = 8;
const SEQ = 0x200000400;

const root = await mkdtemp(join(process.env.LUSTRE_BENCH_DIR ?? tmpdir(), 'bench-replay-'));
process.on('exit', () => { void rm(root, { recursive: true, force: true }); });
const device = join(root, 'dev');

async function build(): Promise<number> {
  await Osd.format(device);
  // No checkpoint on the way (the window starts at the format), so the whole log replays.
  const osd = await Osd.open(device, { checkpointKeysMax: 1e9, checkpointBytesMax: 1e12 });
  const bar = progress('writing the log', RECORDS);
  let oid = 0;
  for (let r = 0; r < RECORDS; r++) {
    const txs = [];
    for (let i = 0; i < PER_TXG; i++) {
      const id = ++oid;
      const fid = { seq: SEQ, oid: id, ver: 0 };
      const tx = osd.begin();
      txs.push((async () => {
        await tx.start();
        await tx.create(fid, { type: 'reg', mode: 0o644 });
        await tx.indexInsert(ROOT_INDEX_FID, `file-${id}`, { fid, type: 'reg' });
        await tx.xattrSet(fid, 'lustre.lov', Buffer.alloc(56, id & 0xff));
        tx.annotate({ transno: String(id), client: 'bench-client', nid: '127.0.0.1@tcp', opc: 'mds_reint' });
        return tx.stop().txg;
      })());
    }
    const txgs = await Promise.all(txs);
    await osd.waitSynced(Math.max(...txgs));
    if (r % 100 === 0) bar.update(r);
  }
  bar.stop();
  const last = osd.lastSyncedTxg;
  await osd.close({ checkpoint: false });
  return last;
}

async function raw(): Promise<{ records: number; seconds: number }> {
  const started = performance.now();
  let records = 0;
  for await (const item of scanLog(devicePaths(device).log, 0)) if (item.kind === 'record') records++;
  return { records, seconds: (performance.now() - started) / 1000 };
}

const last = await build();
await raw(); // warm the page cache for both
const r1 = await raw();
let updates = 0;
const t0 = performance.now();
const past = await stateAt(device, last, (_record, u) => { updates += u.length; });
const replaySeconds = (performance.now() - t0) / 1000;
const r2 = await raw();
const t1 = performance.now();
await replayCopy(device, last, join(root, 'copy'));
const copySeconds = (performance.now() - t1) / 1000;
const rawRate = (r1.records / r1.seconds + r2.records / r2.seconds) / 2;
emit(rateFigure('replay records', past.txg / replaySeconds, 'records/s', rawRate));
emit(rateFigure('replay updates', updates / replaySeconds, 'updates/s', (rawRate * updates) / past.txg));
emit(rateFigure('replay copy', past.txg / copySeconds, 'records/s', rawRate));
