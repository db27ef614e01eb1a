// The replay barrier (Osd.replayBarrier, lctl replay_barrier) and the txg crash points, with
// real processes: a child makes a known state, sets a barrier and changes everything after it
// (or arms a crash point), and is killed with SIGKILL; the device reopened must be exactly as
// it was at the barrier (or hold the txg the point kept, and lack the one it lost).
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fidKey, Osd, ROOT_INDEX_FID } from '../../src/osd/index.js';
import { until } from '../lib/net.js';
import { afterBarrier, beforeBarrier, FID, X_DATA, Z_DATA } from './barrier-workload.js';
import { newDevice, removeDir } from './helpers.js';

const WORKER = join(import.meta.dirname, 'barrier-worker.ts');

interface Run {
  lines: Record<string, unknown>[];
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the child until it prints `until` (then kills it) or until it dies by itself. */
async function runChild(dir: string, mode: string, until?: string): Promise<Run> {
  const child = spawn(process.execPath, ['--import=tsx', WORKER, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for await (const text of createInterface({ input: child.stdout })) {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    if (until && until in line) child.kill('SIGKILL');
  }
  return { lines, signal: await exited, stderr };
}

async function device(t: Test): Promise<string> {
  const { dir, osd } = await newDevice();
  await osd.close();
  t.teardown(() => removeDir(dir));
  return dir;
}

/** The device holds exactly the barrier's state. */
async function checkBarrierState(t: Test, dir: string, barrier: number): Promise<void> {
  const osd = await Osd.open(dir);
  try {
    t.equal(osd.lastSyncedTxg, barrier, 'the log ends at the barrier');
    const x = await osd.getAttrs(FID.x);
    t.equal(x.mode & 0o7777, 0o600, 'a mode set after the barrier is gone');
    t.equal(x.size, X_DATA.length, 'an append after the barrier is gone');
    t.same(await osd.read(FID.x, 0, 100), X_DATA);
    t.same(await osd.xattrList(FID.x), [], 'an xattr set after the barrier is gone');
    t.equal(await osd.exists(FID.y), false, 'an object created after the barrier is gone');
    t.equal(await osd.indexLookup(ROOT_INDEX_FID, 'y'), undefined);
    const files: string[] = [];
    for await (const f of osd.data.files()) files.push(f.name);
    t.notOk(files.some((n) => n.startsWith(fidKey(FID.y))), 'and so is its data file');
    t.same(await osd.read(FID.z, 0, 100), Z_DATA, 'an object destroyed after the barrier is there, with its data');
    t.same(await osd.indexLookup(ROOT_INDEX_FID, 'z'), { fid: FID.z, type: 'reg' });
    t.same(await osd.check(), [], 'the device is consistent');
  } finally {
    await osd.close();
  }
}

t.test('a crash after a replay barrier loses exactly what came after it', async (t) => {
  const dir = await device(t);
  const run = await runChild(dir, 'barrier', 'after');
  t.equal(run.signal, 'SIGKILL', run.stderr);
  const barrier = run.lines.find((l) => 'barrier' in l)?.barrier as number;
  t.ok(barrier > 0, `barrier at txg ${barrier}`);
  t.same(run.lines.filter((l) => 'c' in l), [], 'no commit callback ran after the barrier');
  await checkBarrierState(t, dir, barrier);
});

t.test('a clean close under a barrier discards the same, as Lustre\'s read-only device', async (t) => {
  const dir = await device(t);
  const osd = await Osd.open(dir, { txgTimeoutMs: 5 });
  await beforeBarrier(osd);
  const barrier = await osd.replayBarrier();
  const committed: string[] = [];
  await afterBarrier(osd, (name) => committed.push(name));
  t.equal(osd.barrierTxg, barrier);
  t.equal(await osd.sync(), barrier, 'sync returns at once with the barrier');
  t.equal((await osd.getAttrs(FID.x)).mode & 0o7777, 0o644, 'changes after the barrier apply in memory');
  t.equal(await osd.exists(FID.z), false);
  await until('the txgs after the barrier pass the pipeline', () => osd.stats().txgsDiscarded >= 1 && osd.stats().openTxg > barrier + 1);
  t.equal(osd.stats().barrierTxg, barrier);
  t.equal(osd.lastSyncedTxg, barrier, 'nothing after the barrier became durable');
  await osd.close();
  t.same(committed, [], 'no commit callback ran');
  await checkBarrierState(t, dir, barrier);
});

t.test('OBD_FAIL_TXG_BEFORE_SYNC_CRASH: the process stops and the txg is lost', async (t) => {
  const dir = await device(t);
  const run = await runChild(dir, 'before-sync');
  t.equal(run.signal, 'SIGKILL', 'killed by its own fail point');
  t.match(run.stderr, /cfs_fail_loc=3f01.*OBD_FAIL_TXG_BEFORE_SYNC_CRASH/);
  t.ok(run.lines.some((l) => 'stopped' in l), 'the transaction stopped');
  t.notOk(run.lines.some((l) => 'c' in l || 'survived' in l), 'and was never committed');
  const osd = await Osd.open(dir);
  t.equal((await osd.getAttrs(FID.x)).mode & 0o7777, 0o600, 'its change is not on the device');
  await osd.close();
});

t.test('OBD_FAIL_TXG_AFTER_SYNC_CRASH: the txg is durable but was never acknowledged', async (t) => {
  const dir = await device(t);
  const run = await runChild(dir, 'after-sync');
  t.equal(run.signal, 'SIGKILL', 'killed by its own fail point');
  t.match(run.stderr, /cfs_fail_loc=3f02.*OBD_FAIL_TXG_AFTER_SYNC_CRASH/);
  t.notOk(run.lines.some((l) => 'c' in l || 'survived' in l), 'no commit callback ran');
  const osd = await Osd.open(dir);
  t.equal((await osd.getAttrs(FID.x)).mode & 0o7777, 0o640, 'its change is on the device');
  t.equal(osd.lastSyncedTxg, run.lines.find((l) => 'stopped' in l)?.stopped as number);
  await osd.close();
});

