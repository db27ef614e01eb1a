// The unlink llog (src/services/mdt/llog.ts) on a real OSD whose txgs close only when told:
// a record is processed (its object destroyed) only once the txg of the unlink that wrote it is
// durable, whatever starts the processing: the txg's own commit or a pass over the whole log (an
// OST connecting, a retry after a failure).
import t, { type Test } from 'tap';
import { fid, fidKey, type Osd } from '../../../src/osd/index.js';
import { DestroyLog } from '../../../src/services/mdt/llog.js';
import { localObject } from '../../../src/services/target/index.js';
import { until } from '../../lib/net.js';
import { newDevice, removeDir, txn } from '../../osd/helpers.js';

/** An OSD whose txgs close on sync() only (an unlink's txg stays open as long as the test wants), and its llog. */
async function rig(t: Test): Promise<{ osd: Osd; llog: DestroyLog; destroyed: string[] }> {
  const { dir, osd } = await newDevice({ txgTimeoutMs: 600_000 });
  t.teardown(async () => {
    await osd.close();
    await removeDir(dir);
  });
  const index = await localObject(osd, 'unlink_llog', 'idx');
  const destroyed: string[] = [];
  const llog = new DestroyLog(osd, index, { destroy: async (_ost, object) => { destroyed.push(fidKey(object)); } });
  t.teardown(() => llog.stop());
  return { osd, llog, destroyed };
}

t.test('a pass over the whole log leaves the records of txgs not yet durable to the processing after their txg', async (t) => {
  const { osd, llog, destroyed } = await rig(t);

  const durable = fid(0x100000000, 1);
  const open = fid(0x100000000, 2);
  const first = await txn(osd, (tx) => llog.add(tx, [{ ostIndex: 0, fid: durable }]));
  llog.kickAfter(first);
  await osd.sync();
  await until('the durable unlink\'s object destroyed', () => destroyed.length === 1);
  t.same(destroyed, [fidKey(durable)]);

  const second = await txn(osd, (tx) => llog.add(tx, [{ ostIndex: 0, fid: open }]));
  llog.kickAfter(second);
  t.ok(osd.lastSyncedTxg < second, 'the second unlink\'s txg is not durable yet');
  await llog.kick(); // a whole pass, as when an OST connects
  t.same(destroyed, [fidKey(durable)], 'the pass left the record of the txg a crash may still undo');
  t.equal(await llog.pending(), 1, 'and the record stays');

  await osd.sync();
  await until('the second object destroyed once its txg is durable', () => destroyed.length === 2);
  t.same(destroyed, [fidKey(durable), fidKey(open)]);
  await until('the records removed', async () => (await llog.pending()) === 0);
});

t.test('an unlink waits for its txg to commit on its own schedule: it never forces a txg of its own', async (t) => {
  const { osd, llog, destroyed } = await rig(t);
  await osd.sync();
  const before = osd.lastSyncedTxg;
  const object = fid(0x100000000, 3);
  const txg = await txn(osd, (tx) => llog.add(tx, [{ ostIndex: 0, fid: object }]));
  llog.kickAfter(txg);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal(osd.lastSyncedTxg, before, 'the unlink\'s txg is still open (one fdatasync per unlink otherwise)');
  t.same(destroyed, [], 'and its object is not destroyed before the txg is durable');
  await osd.sync(); // the txg closes (here: told; in service: its timer)
  await until('the object destroyed once its txg is durable', () => destroyed.length === 1);
  t.same(destroyed, [fidKey(object)]);
});
