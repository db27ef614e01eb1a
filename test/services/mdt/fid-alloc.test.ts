// The MDT's FID allocation (Mdd.allocFid): mdt.last_fid is written once per FID_RESERVE FIDs,
// holding the end of the reserved range, and a restart goes on after that range, so no FID is
// ever given twice, not even one given by a transaction a crash kept.
import t from 'tap';
import { fidToString, parseFid, type Fid } from '../../../src/osd/index.js';
import { FID_RESERVE, Mdd } from '../../../src/services/mdt/mdd.js';
import { newDevice, removeDir, txn } from '../../osd/helpers.js';

const after = (a: Fid, b: Fid): boolean => a.seq > b.seq || (a.seq === b.seq && a.oid > b.oid);

t.test('one last_fid write per reserved range; a restart goes on after the range', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(() => removeDir(dir));
  let mdd = await Mdd.open({ osd });
  const mark = async (): Promise<string> => (await osd.xattrGet(mdd.seqFid, 'mdt.last_fid')).toString();
  const given: Fid[] = [];
  let writes = 0;
  for (let i = 0; i < FID_RESERVE + 10; i++) {
    await txn(osd, async (tx) => {
      given.push(await mdd.allocFid(tx));
      writes += tx.updates.filter((u) => u.op === 'xattr_set' && u.name === 'mdt.last_fid').length;
    });
  }
  t.equal(new Set(given.map(fidToString)).size, given.length, 'every FID given once');
  t.equal(writes, 2, `${given.length} FIDs, two ranges: two writes`);
  const end = parseFid(await mark());
  t.ok(!after(given.at(-1)!, end), 'no FID given lies after the recorded end');
  t.equal(end.oid - given[FID_RESERVE]!.oid, FID_RESERVE - 1, 'the second range runs FID_RESERVE FIDs from its first');

  await osd.sync();
  mdd = await Mdd.open({ osd }); // as after a restart: only what is on disk
  await txn(osd, async (tx) => { given.push(await mdd.allocFid(tx)); });
  t.ok(after(given.at(-1)!, end), 'after a restart the next FID comes after the reserved range');
  t.ok(given.slice(0, -1).every((f) => after(given.at(-1)!, f)), 'and after every FID given before');

  // A replayed create past the range moves the record on.
  const replayed = { seq: end.seq, oid: end.oid + 5 * FID_RESERVE, ver: 0 };
  await txn(osd, async (tx) => { t.same(await mdd.allocFid(tx, replayed), replayed); });
  t.equal(await mark(), fidToString(replayed), 'a replayed FID past the range is recorded');
  await txn(osd, async (tx) => { t.ok(after(await mdd.allocFid(tx), replayed), 'and later FIDs follow it'); });
  await osd.close();
});
