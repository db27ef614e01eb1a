// Replay-to-point at the OSD: a past state rebuilt from the base and the log equals the state
// that was live at that txg; the base moves up when the log deletes segments; destroyed data
// stays in the attic while the window holds its object.
import t from 'tap';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Osd, ROOT_INDEX_FID, atticDir, decodeBase, encodeBase, fidToString, initialState, listBases, oldestBase, stateAt,
  type Fid,
} from '../../src/osd/index.js';
import { replayCopy } from '../../src/control/replay/index.js';
import { prng } from '../lib/prng.js';
import { until } from '../lib/net.js';
import { newDevice, removeDir, snapshot, tempDir, txn } from './helpers.js';

const F = (oid: number): Fid => ({ seq: 0x200000400, oid, ver: 0 });

/**
 * A random workload, one txg per step, that never rewrites bytes already written (a past view
 * shows the current bytes of a data file, so only such a workload has exact past contents).
 * Returns the live snapshot after each step's txg.
 */
async function workload(osd: Osd, seed: number, steps: number, firstOid = 1): Promise<Map<number, Record<string, unknown>>> {
  const rand = prng(seed);
  const live = new Set<number>();
  const sizes = new Map<number, number>();
  let next = firstOid;
  const states = new Map<number, Record<string, unknown>>();
  for (let s = 0; s < steps; s++) {
    const choice = rand.int(10);
    const pick = (): number | undefined => (live.size === 0 ? undefined : rand.pick([...live]));
    const txg = await txn(osd, async (tx) => {
      const victim = pick();
      if (choice < 4 || victim === undefined) {
        const oid = next++;
        await tx.create(F(oid), { type: 'reg', mode: 0o644 });
        const bytes = Buffer.from(`object ${oid} of seed ${seed}`);
        await tx.write(F(oid), 0, bytes);
        await tx.indexInsert(ROOT_INDEX_FID, `f${oid}`, { fid: F(oid), type: 'reg' });
        live.add(oid);
        sizes.set(oid, bytes.length);
      } else if (choice < 6) {
        // Appends only: bytes past the old size were never written.
        const more = Buffer.from(`+${s}`);
        await tx.write(F(victim), sizes.get(victim)!, more);
        sizes.set(victim, sizes.get(victim)! + more.length);
      } else if (choice < 7) {
        await tx.xattrSet(F(victim), 'user.step', Buffer.from(String(s)));
      } else if (choice < 8) {
        await tx.attrSet(F(victim), { mode: 0o600, uid: s });
      } else {
        await tx.indexDelete(ROOT_INDEX_FID, `f${victim}`);
        await tx.destroy(F(victim));
        live.delete(victim);
      }
    });
    await osd.waitSynced(txg);
    states.set(txg, await snapshot(osd));
  }
  return states;
}

t.test('a copy at each txg equals the live state at that txg, destroyed objects with their data', async (t) => {
  const seed = Number(process.env.SEED ?? Date.now() % 100_000);
  t.comment(`seed ${seed}`);
  // A retention window is set: destroyed data is kept for past views (the attic).
  const { dir, osd } = await newDevice({ retainMs: 3_600_000 });
  t.teardown(() => removeDir(dir));
  const states = await workload(osd, seed, 24);
  await osd.close({ checkpoint: false });
  t.ok((await readdir(atticDir(dir)).catch(() => [])).length >= 0);
  const out = await tempDir();
  t.teardown(() => removeDir(out));
  const txgs = [...states.keys()];
  for (const txg of txgs.filter((_, i) => i % 4 === 3 || i === txgs.length - 1)) {
    const copy = join(out, `at-${txg}`);
    await replayCopy(dir, txg, copy);
    const c = await Osd.open(copy);
    t.same(await snapshot(c), states.get(txg), `the copy at txg ${txg} (seed ${seed})`);
    t.same(await c.check(), [], `the copy at txg ${txg} checks clean`);
    await c.close();
  }
  // Past states straight from the log agree with the live ones on the root index.
  for (const txg of txgs) {
    const past = await stateAt(dir, txg);
    const names = past.list(ROOT_INDEX_FID).map((e) => e.name);
    const live = (states.get(txg)![Object.keys(states.get(txg)!)[0]!] as { entries: Array<{ name: string }> }).entries.map((e) => e.name);
    t.same(names, live, `root index at txg ${txg}`);
  }
});

t.test('the base moves up when the log deletes segments; points before it are refused', async (t) => {
  // The log compares segment mtimes with its clock: a real one here. A window of one byte
  // trims about as much as none, but keeps destroyed data in the attic.
  const { dir, osd } = await newDevice({ segmentBytesMax: 2048, checkpointKeysMax: 10, retainMs: 0, retainBytes: 1, clock: Date.now });
  t.teardown(() => removeDir(dir));
  const states = await workload(osd, 7, 40);
  // A destroy early on: its object leaves the attic once the base passes it.
  const early = F(9999);
  const createdAt = await txn(osd, async (tx) => {
    await tx.create(early, { type: 'reg', mode: 0o644 });
    await tx.write(early, 0, Buffer.from('kept while the window holds me'));
  });
  await osd.waitSynced(createdAt);
  const destroyedAt = await txn(osd, (tx) => tx.destroy(early));
  await osd.waitSynced(destroyedAt);
  // The file moves once the destroy is durable, beside the commit callbacks.
  await until('the attic file', async () => (await readdir(atticDir(dir)).catch(() => [])).some((n) => n.startsWith('0000000200000400-0000270f')));
  t.pass('a destroyed data file goes to the attic');
  await workload(osd, 8, 40, 1000);
  await osd.checkpoint();
  const base = await oldestBase(dir);
  t.ok(base.txg > destroyedAt, `the base moved past the destroy (base at txg ${base.txg})`);
  t.same(await listBases(dir), [base.txg], 'one base is kept');
  t.notOk((await readdir(atticDir(dir))).some((n) => n.startsWith('0000000200000400-0000270f')), 'its attic file went with it');
  await t.rejects(stateAt(dir, base.txg - 1), { code: 'ERANGE' });
  // A state after the base still matches: the last one of the workload is the live state now.
  const now = await snapshot(osd);
  const last = osd.lastSyncedTxg;
  await osd.close({ checkpoint: false });
  const copy = join(await tempDir(), 'copy');
  t.teardown(() => removeDir(join(copy, '..')));
  await replayCopy(dir, last, copy);
  const c = await Osd.open(copy);
  t.same(await snapshot(c), now);
  await c.close();
  t.ok(states.size > 0);
});

t.test('retention keeps the window: with retainBytes large the base stays at the format', async (t) => {
  const { dir, osd } = await newDevice({ segmentBytesMax: 2048, checkpointKeysMax: 10, retainBytes: 1 << 30 });
  t.teardown(() => removeDir(dir));
  await workload(osd, 3, 30);
  await osd.checkpoint();
  t.same(await listBases(dir), [0]);
  await osd.close();
  const past = await stateAt(dir, 1);
  t.equal(past.txg, 1);
});

t.test('base format: round trip, golden header, refusals', async (t) => {
  const base = { txg: 5, timeMs: 1_700_000_000_000, state: initialState(1_700_000_000_000) };
  const buf = encodeBase(base);
  t.equal(buf.subarray(0, 8).toString('latin1'), 'LUOSDBAS');
  t.equal(buf.readUInt32LE(8), 1);
  t.equal(buf.readBigUInt64LE(16), 5n);
  t.equal(buf.readBigUInt64LE(24), 1_700_000_000_000n);
  t.equal(Number(buf.readBigUInt64LE(32)), buf.length - 48);
  t.same(decodeBase(buf, 'x'), base);
  const bad = Buffer.from(buf);
  bad[60] = (bad[60] ?? 0) ^ 0xff;
  t.throws(() => decodeBase(bad, 'x'), { code: 'EBADBASE', message: /crc/ });
  t.throws(() => decodeBase(buf.subarray(0, 40), 'x'), { code: 'EBADBASE' });
});

t.test('a device without a base, a damaged base', async (t) => {
  const dir = await tempDir();
  t.teardown(() => removeDir(dir));
  await Osd.format(dir);
  await rm(join(dir, 'base'), { recursive: true });
  await t.rejects(stateAt(dir, 0), { code: 'ENOBASE' });
  await mkdir(join(dir, 'base'));
  await writeFile(join(dir, 'base', '0000000000000000.base'), 'not a base');
  await t.rejects(stateAt(dir, 0), { code: 'EBADBASE' });
  t.equal(fidToString(F(1)), '[0x200000400:0x1:0x0]');
});

t.test('a copy opened read-only refuses transactions with EROFS and writes nothing', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(() => removeDir(dir));
  await workload(osd, 11, 6);
  const last = osd.lastSyncedTxg;
  await osd.close();
  const out = await tempDir();
  t.teardown(() => removeDir(out));
  const copy = join(out, 'copy');
  await replayCopy(dir, last, copy);
  // LevelDB's own files change at any open (it compacts its journal): the state is compared by snapshot.
  const listing = async (): Promise<string> => JSON.stringify((await readdir(copy, { recursive: true })).filter((n) => !n.startsWith('db/')).sort());
  const before = await listing();
  const ro = await Osd.open(copy, { readOnly: true });
  const tx = ro.begin();
  await tx.start();
  await t.rejects(tx.create({ seq: 0x200000400, oid: 77777, ver: 0 }, { type: 'reg' }), { code: 'EROFS', message: /read-only/ });
  await t.rejects(tx.indexDelete(ROOT_INDEX_FID, 'f1'), { code: 'EROFS' });
  let committed = false;
  tx.stop(() => { committed = true; });
  await until('the empty transaction is done', () => committed);
  t.ok((await ro.indexList(ROOT_INDEX_FID)).entries.length > 0, 'reads work');
  const seen = await snapshot(ro);
  await ro.close();
  t.equal(await listing(), before);
  const rw = await Osd.open(copy);
  t.equal(rw.stats().lastSyncedTxg, last, 'the copy goes on from its point when opened read-write');
  t.same(await snapshot(rw), seen, 'the state is what the read-only open saw');
  await rw.close();
});
