// fail_loc (src/log/fail-loc.ts): Lustre's modes, the txg log's fail points, and the log's
// replay barrier. The crash points are proved with real processes in test/osd/barrier.test.ts.
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CFS_FAIL_ONCE, CFS_FAIL_RAND, CFS_FAIL_SKIP, CFS_FAIL_SOME, CFS_FAULT, FAIL, FAIL_POINTS, FailLoc, LogError, TxgLog,
  failLoc, formatFailLoc, parseFailLoc, readLog, type TxgLogOptions,
} from '../../src/log/index.js';
import { prng, seedFrom } from '../lib/prng.js';

const quiet = (): FailLoc => new FailLoc({ log: () => {}, crash: (m) => { throw new Error(`crash: ${m}`); } });
const hits = (f: FailLoc, id: number, n: number): boolean[] => Array.from({ length: n }, () => f.check(id));

t.test('off by default; a plain fail_loc fails its point every time and no other', async (t) => {
  const f = quiet();
  t.equal(f.active, false);
  t.same(hits(f, 0x122, 3), [false, false, false]);
  f.set(0x122);
  t.same(hits(f, 0x122, 3), [true, true, true]);
  t.equal(f.check(0x211), false, 'another point passes');
  t.equal(f.hits, 3);
  f.set(0);
  t.equal(f.check(0x122), false, 'disarmed');
  t.equal(failLoc.active, false, "the process's registry starts disarmed");
});

t.test('CFS_FAIL_ONCE: the first hit fails and sets CFS_FAILED; later ones pass', async (t) => {
  const f = quiet();
  f.set((CFS_FAIL_ONCE | 0x122) >>> 0);
  t.same(hits(f, 0x122, 4), [true, false, false, false]);
  t.equal(f.loc, 0xc0000122, 'CFS_FAILED is set, as lctl get_param fail_loc shows it');
  t.match(formatFailLoc(f.loc), /^0xc0000122 \(OBD_FAIL_MDS_ALL_REPLY_NET\|ONCE\|FAILED\)$/);
});

t.test('CFS_FAIL_SKIP: pass fail_val hits, then fail every time', async (t) => {
  const f = quiet();
  f.set((CFS_FAIL_SKIP | 0x211) >>> 0, 3);
  t.same(hits(f, 0x211, 6), [false, false, false, true, true, true]);
  f.set((CFS_FAIL_SKIP | CFS_FAIL_ONCE | 0x211) >>> 0, 2);
  t.same(hits(f, 0x211, 5), [false, false, true, false, false], 'SKIP|ONCE: the third hit only');
});

t.test('CFS_FAIL_SOME: fail fail_val times, then pass', async (t) => {
  const f = quiet();
  f.set((CFS_FAIL_SOME | 0x212) >>> 0, 2);
  t.same(hits(f, 0x212, 5), [true, true, false, false, false]);
});

t.test('CFS_FAIL_RAND: one hit in fail_val, reproducible from the seed', async (t) => {
  const seed = seedFrom('LUSTRE_FAILLOC_SEED');
  t.comment(`seed ${seed} (LUSTRE_FAILLOC_SEED)`);
  const run = (): boolean[] => {
    const r = prng(seed);
    const f = new FailLoc({ log: () => {}, random: () => r.next() });
    f.set((CFS_FAIL_RAND | 0x123) >>> 0, 10);
    return hits(f, 0x123, 2000);
  };
  const first = run();
  const failed = first.filter(Boolean).length;
  t.ok(failed > 120 && failed < 300, `about 200 of 2000 failed (${failed}, seed ${seed})`);
  t.same(run(), first, 'the same seed fails the same hits');
  const f = quiet();
  f.set((CFS_FAIL_RAND | 0x123) >>> 0, 1);
  t.same(hits(f, 0x123, 3), [false, false, false], 'fail_val < 2 never fails, as Lustre');
});

t.test('check_value, orset, reset and CFS_FAULT', async (t) => {
  const f = quiet();
  f.set(0x505, 7);
  t.equal(f.checkValue(0x505, 6), false);
  t.equal(f.checkValue(0x505, 7), true);
  f.value = 0xffffffff;
  t.equal(f.checkValue(0x505, 1), true, 'fail_val -1 matches any value');
  f.set(0x505);
  t.equal(f.checkOrset(0x505, CFS_FAIL_ONCE), true);
  t.equal(f.check(0x505), false, 'ORSET of ONCE: the current hit counted as the once');
  f.set(0x505);
  t.equal(f.checkReset(0x505, 0x506), true);
  t.equal(f.loc, 0x506, 'RESET replaces fail_loc');
  f.set((CFS_FAULT | 0x1) >>> 0);
  t.equal(f.check((CFS_FAULT | 0x777) >>> 0), true, 'CFS_FAULT matches any CFS_FAULT point');
});

t.test('timeout sleeps fail_val ms and wakes when fail_loc changes; crash runs the crash action', async (t) => {
  const f = quiet();
  t.equal(await f.timeout(0x50a), false, 'off: resolves false');
  f.set(0x50a, 3_600_000);
  let woke = false;
  const sleeping = f.timeout(0x50a).then((hit) => { woke = true; return hit; });
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(woke, false, 'asleep');
  f.set(0);
  t.equal(await sleeping, true, 'woken by the change, reporting the hit');
  f.set(FAIL.OBD_FAIL_SRV_REPLY_CRASH!);
  t.throws(() => f.crash(FAIL.OBD_FAIL_SRV_REPLY_CRASH!), /crash: \*\*\* cfs_fail_loc=3f10.*OBD_FAIL_SRV_REPLY_CRASH/);
  t.equal(f.crash(0x3f01), false, 'another point does not crash');
});

t.test('fail_loc as lctl takes it: numbers, names and modes', async (t) => {
  t.equal(parseFailLoc('0x80000122'), 0x80000122);
  t.equal(parseFailLoc('290'), 290);
  t.equal(parseFailLoc('OBD_FAIL_OST_ALL_REPLY_NET'), 0x211);
  t.equal(parseFailLoc('obd_fail_mds_all_reply_net|once'), 0x80000122);
  t.equal(parseFailLoc('OBD_FAIL_NOPE'), undefined);
  t.equal(parseFailLoc('0x1ffffffff'), undefined);
  t.equal(formatFailLoc(0), '0');
  const ids = FAIL_POINTS.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'ids are unique');
  for (const p of FAIL_POINTS.filter((x) => x.name.startsWith('OBD_FAIL_TXG_') || x.name.startsWith('OBD_FAIL_SRV_R') || x.name.startsWith('OBD_FAIL_IMP_'))) {
    t.ok(p.id >= 0x3f00 && p.id <= 0x3fff, `${p.name} is in the range Lustre leaves unused`);
  }
});

// ---- the txg log ------------------------------------------------------------------------------

async function freshLog(t: Test, opts: Partial<TxgLogOptions> = {}): Promise<{ dir: string; log: TxgLog }> {
  const dir = await mkdtemp(join(tmpdir(), 'txgfail-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await TxgLog.format(dir);
  const log = await TxgLog.open({ dir, checkpointTxg: 0, txgTimeoutMs: 5, ...opts });
  return { dir, log };
}

/** Releases one entry; the promise resolves at its commit callback. */
function put(log: TxgLog, entry: unknown): { txg: number; committed: Promise<number>; done: () => boolean } {
  const h = log.hold();
  let fired = false;
  const committed = new Promise<number>((resolve) => h.release(entry, (txg) => { fired = true; resolve(txg); }));
  return { txg: h.txg, committed, done: () => fired };
}

async function entriesOf(dir: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const r of readLog(dir)) out.push(...r.entries);
  return out;
}

t.test('txg log: OBD_FAIL_TXG_SYNC_DELAY holds a txg back until fail_loc changes', async (t) => {
  const { dir, log } = await freshLog(t);
  t.teardown(() => failLoc.set(0));
  failLoc.set(FAIL.OBD_FAIL_TXG_SYNC_DELAY!, 3_600_000);
  const a = put(log, 'a');
  void log.waitSynced(a.txg);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(a.done(), false, 'not committed while the disk is "slow"');
  t.same(await entriesOf(dir), [], 'nothing written');
  failLoc.set(0);
  t.equal(await a.committed, a.txg);
  t.same(await entriesOf(dir), ['a']);
  await log.close();
});

t.test('txg log: OBD_FAIL_TXG_WRITE_ERR fails the log with fail_err, as a disk error', async (t) => {
  const { dir, log } = await freshLog(t);
  t.teardown(() => { failLoc.set(0); failLoc.err = 0; });
  failLoc.err = 28; // ENOSPC
  failLoc.set((CFS_FAIL_ONCE | FAIL.OBD_FAIL_TXG_WRITE_ERR!) >>> 0);
  const a = put(log, 'a');
  await t.rejects(log.waitSynced(a.txg), { name: 'LogError', code: 'ENOSPC' });
  t.throws(() => log.hold(), { code: 'ENOSPC' }, 'the log stays failed');
  t.equal(a.done(), false);
  t.same(await entriesOf(dir), []);
  await log.close();
});

t.test('txg log: a replay barrier keeps later txgs from disk and from their commit callbacks', async (t) => {
  const { dir, log } = await freshLog(t);
  const a = put(log, 'a');
  const barrier = await log.barrier();
  t.equal(barrier, a.txg, 'the barrier is the last durable txg');
  t.equal(await a.committed, a.txg, 'what came before it is committed');
  t.equal(await log.barrier(), barrier, 'a second barrier is the same');
  const b = put(log, 'b');
  let bSynced: unknown = 'pending';
  log.waitSynced(b.txg).then(() => (bSynced = 'resolved'), (err: Error) => (bSynced = err));
  t.equal(await log.sync(), barrier, 'sync returns the barrier txg');
  const c = put(log, 'c');
  void log.waitSynced(c.txg).catch(() => {});
  for (let i = 0; i < 20 && log.stats().txgsDiscarded < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const s = log.stats();
  t.equal(s.barrierTxg, barrier);
  t.equal(s.txgsDiscarded, 2, 'both later txgs went through the pipeline');
  t.equal(s.lastSyncedTxg, barrier, 'last synced froze');
  t.equal(s.dirtyBytes, 0, 'their bytes are not held');
  t.equal(b.done() || c.done(), false, 'no commit callback after the barrier');
  t.equal(bSynced, 'pending');
  t.same(await entriesOf(dir), ['a'], 'nothing after the barrier is in the segments');
  await log.close();
  t.type(bSynced, LogError, 'closing rejects waiters of discarded txgs');
  t.equal((bSynced as LogError).code, 'ESHUTDOWN');
  const reopened = await TxgLog.open({ dir, checkpointTxg: 0 });
  t.equal(reopened.lastSyncedTxg, barrier, 'a reopened log ends at the barrier');
  t.equal(reopened.barrierTxg, null, 'and has no barrier');
  await reopened.close();
});
