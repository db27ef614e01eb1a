// bench:log — the storage core against the raw disk it runs on, measured in the same run.
//  1. The txg log: durably committed small updates per second while 256 writers each wait for
//     their commit (each update an entry shaped like the OSD's attr_set), and the commit
//     latency (p50, p99), beside 4 KiB write + fdatasync on the same disk.
//  2. The same through the whole OSD: 256 writers each running setattr transactions
//     (begin, start, attrSet, stop) and waiting for the commit.
//  3. Sequential write then read of a 1 GiB object in 1 MiB pieces through the OSD, beside a
//     plain file of the same size in the same folder.
// LUSTRE_BENCH_DIR chooses the folder (default: the system's temporary folder);
// LUSTRE_BENCH_SECONDS the length of each timed phase; LUSTRE_BENCH_GIB the object size.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TxgLog } from '../src/log/index.js';
import { Osd, ROOT_INDEX_FID, fidToString, type Fid } from '../src/osd/index.js';
import {
  emit, latencyFigure, percentile, plainSequentialRead, plainSequentialWrite, progress, rateFigure, rawFdatasync,
} from './lib.js';

const WRITERS = 256;
const SECONDS = Number(process.env.LUSTRE_BENCH_SECONDS ?? 5);
const OBJECT_BYTES = Math.round(Number(process.env.LUSTRE_BENCH_GIB ?? 1) * 1024 ** 3);
const IO_BYTES = 1024 * 1024;
const SEQ = 0x200000400;

const root = await mkdtemp(join(process.env.LUSTRE_BENCH_DIR ?? tmpdir(), 'bench-log-'));
process.on('exit', () => { void rm(root, { recursive: true, force: true }); });

async function createObjects(osd: Osd, count: number, firstOid: number): Promise<Fid[]> {
  const fids = Array.from({ length: count }, (_, i) => ({ seq: SEQ, oid: firstOid + i, ver: 0 }));
  const tx = osd.begin();
  await tx.start();
  for (const fid of fids) {
    await tx.create(fid, { type: 'reg', mode: 0o644, uid: 0, gid: 0 });
    await tx.indexInsert(ROOT_INDEX_FID, `bench-${fid.oid}`, { fid, type: 'reg' });
  }
  await osd.waitSynced(tx.stop().txg);
  return fids;
}

/** Runs `writers` loops of `commitOne` for SECONDS; the rate and the latencies (ms, sorted). */
async function timedWriters(label: string, writers: number, commitOne: (w: number) => Promise<void>): Promise<{ perSecond: number; latenciesMs: number[] }> {
  const latencies: number[] = [];
  const durationMs = SECONDS * 1000;
  const bar = progress(label, durationMs);
  const start = performance.now();
  const ticker = setInterval(() => bar.update(performance.now() - start), 250);
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    while (performance.now() - start < durationMs) {
      const t0 = performance.now();
      await commitOne(w);
      latencies.push(performance.now() - t0);
    }
  }));
  clearInterval(ticker);
  bar.stop();
  const elapsed = performance.now() - start;
  return { perSecond: (latencies.length * 1000) / elapsed, latenciesMs: latencies.sort((a, b) => a - b) };
}

async function logUpdates(dir: string): Promise<{ perSecond: number; latenciesMs: number[] }> {
  await TxgLog.format(dir);
  const log = await TxgLog.open({ dir, checkpointTxg: 0 });
  let version = 0;
  const result = await timedWriters('txg log updates, 256 writers', WRITERS, (w) => new Promise<void>((resolve) => {
    const hold = log.hold();
    const fid = fidToString({ seq: SEQ, oid: 1000 + w, ver: 0 });
    hold.release({ updates: [{ n: 1, op: 'attr_set', fid, attrs: { mtime: Math.floor(Date.now() / 1000) }, version: ++version }] }, () => resolve());
    void log.waitSynced(hold.txg);
  }));
  await log.close();
  return result;
}

async function osdUpdates(osd: Osd): Promise<{ perSecond: number; latenciesMs: number[] }> {
  const fids = await createObjects(osd, WRITERS, 1000);
  return timedWriters('OSD setattr transactions, 256 writers', WRITERS, async (w) => {
    const fid = fids[w]!;
    const tx = osd.begin();
    await tx.start();
    await tx.attrSet(fid, { mtime: Math.floor(Date.now() / 1000) });
    await new Promise<void>((resolve) => {
      const { txg } = tx.stop(() => resolve());
      void osd.waitSynced(txg);
    });
  });
}

async function osdSequential(osd: Osd): Promise<{ writeMiBs: number; readMiBs: number }> {
  const [fid] = await createObjects(osd, 1, 1);
  const block = Buffer.alloc(IO_BYTES, 0x5a);
  let bar = progress('OSD object write', OBJECT_BYTES);
  let start = performance.now();
  for (let at = 0; at < OBJECT_BYTES; at += IO_BYTES) {
    const tx = osd.begin().declareWrite(fid!, IO_BYTES);
    await tx.start();
    await tx.write(fid!, at, block);
    tx.stop();
    if ((at / IO_BYTES) % 64 === 0) bar.update(at);
  }
  await osd.sync();
  const writeMiBs = OBJECT_BYTES / 1024 ** 2 / ((performance.now() - start) / 1000);
  bar.stop();
  bar = progress('OSD object read', OBJECT_BYTES);
  start = performance.now();
  const into = Buffer.allocUnsafe(IO_BYTES);
  for (let at = 0; at < OBJECT_BYTES; at += IO_BYTES) {
    const data = await osd.read(fid!, at, IO_BYTES, into);
    if (data.length !== IO_BYTES) throw new Error(`short read at ${at}: ${data.length}`);
    if ((at / IO_BYTES) % 64 === 0) bar.update(at);
  }
  const readMiBs = OBJECT_BYTES / 1024 ** 2 / ((performance.now() - start) / 1000);
  bar.stop();
  return { writeMiBs, readMiBs };
}

const raw = await rawFdatasync(join(root, 'raw-fdatasync'), SECONDS * 1000);
const updates = await logUpdates(join(root, 'log'));
emit(rateFigure('log committed updates, 256 writers', updates.perSecond, 'updates/s', raw.perSecond));
emit(latencyFigure('log commit latency p50', percentile(updates.latenciesMs, 50), 'ms', percentile(raw.latenciesMs, 50)));
emit(latencyFigure('log commit latency p99', percentile(updates.latenciesMs, 99), 'ms', percentile(raw.latenciesMs, 99)));

const device = join(root, 'device');
await Osd.format(device);
const osd = await Osd.open(device);
const osdTx = await osdUpdates(osd);
emit(rateFigure('osd setattr transactions, 256 writers', osdTx.perSecond, 'tx/s', raw.perSecond));
emit(latencyFigure('osd setattr latency p50', percentile(osdTx.latenciesMs, 50), 'ms', percentile(raw.latenciesMs, 50)));

const plainFile = join(root, 'plain');
const plainWrite = await plainSequentialWrite(plainFile, OBJECT_BYTES, IO_BYTES);
const plainRead = await plainSequentialRead(plainFile, OBJECT_BYTES, IO_BYTES);
await rm(plainFile);
const seq = await osdSequential(osd);
emit(rateFigure('osd sequential write 1 GiB', seq.writeMiBs, 'MiB/s', plainWrite));
emit(rateFigure('osd sequential read 1 GiB', seq.readMiBs, 'MiB/s', plainRead));
await osd.close();
await rm(root, { recursive: true, force: true });
