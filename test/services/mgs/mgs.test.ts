// The MGS over real LNet on loopback: target registration (first, repeated after a restart of
// the target and of the MGS, a conflicting index refused, an index assigned), the config logs
// it writes (client log, each target's log, an MDT's OSPs), the llog record format, and a
// combined MGS+MDT device registering its MDT with its own MGS.
import { join } from 'node:path';
import t from 'tap';
import {
  applyConfigRecords, decodeLlog, emptyFsConfig, encodeLlogRecord, formatRecord, Lcfg, LlogError, type Mgs,
} from '../../../src/services/mgs/index.js';
import { formatTarget, readMountdata, Target, type MountOptions } from '../../../src/services/target/index.js';
import { network, quiet, standIn, tempDir } from '../target/helpers.js';

const fast: MountOptions = { log: quiet, osd: { txgTimeoutMs: 5 }, modules: { mdt: standIn('mdt'), ost: standIn('ost') } };
const mgsOf = (target: Target): Mgs => (target.running[0] as unknown as { mgs: Mgs }).mgs;
const lines = (mgs: Mgs, log: string): string[] => mgs.logs.read(log, 0, Infinity).records.map(formatRecord);

t.test('llog records: golden bytes, round trip, damage refused', async (t) => {
  const rec = { index: 1, command: Lcfg.ATTACH, name: 'testfs-clilov', args: ['lov', 'testfs-clilov_UUID'] };
  const bytes = encodeLlogRecord(rec);
  t.equal(bytes.length % 8, 0, 'records are 8-byte aligned');
  t.equal(bytes.readUInt32LE(0), bytes.length, 'lrh_len');
  t.equal(bytes.readUInt32LE(4), 1, 'lrh_index');
  t.equal(bytes.readUInt32LE(8), 0x10620000, 'lrh_type OBD_CFG_REC');
  t.equal(bytes.readUInt32LE(bytes.length - 8), bytes.length, 'lrt_len');
  t.equal(bytes.readUInt32LE(bytes.length - 4), 1, 'lrt_index');
  // Frozen: a header, the CBOR map { command, name, args }, zero padding, the tail.
  t.equal(bytes.toString('hex'),
    '58000000' + '01000000' + '00006210' + '40000000' +
    'b9000367636f6d6d616e641a000cf001646e616d656d7465737466732d636c696c6f76646172677382636c6f76727465737466732d636c' +
    '696c6f765f55554944' + '58000000' + '01000000',
    'golden record');
  const two = Buffer.concat([bytes, encodeLlogRecord({ index: 2, command: Lcfg.PARAM, name: 'x', args: ['a=b'] })]);
  t.same(decodeLlog(two, 'l').map((r) => r.index), [1, 2]);
  const torn = Buffer.from(two.subarray(0, two.length - 4));
  t.throws(() => decodeLlog(torn, 'l'), LlogError, 'a torn record is refused');
  const badTail = Buffer.from(two);
  badTail.writeUInt32LE(9, bytes.length - 4);
  t.throws(() => decodeLlog(badTail, 'l'), LlogError, 'a tail that does not match is refused');
  const gap = Buffer.concat([bytes, encodeLlogRecord({ index: 3, command: Lcfg.PARAM, name: 'x', args: ['a=b'] })]);
  t.throws(() => decodeLlog(gap, 'l'), /index 3 where 2 was expected/, 'a gap in indexes is refused');
});

t.test('registration and config logs over LNet', async (t) => {
  const net = await network(t, 1);
  const [mgsNi, mdtNi, ost0Ni, ost1Ni] = [await net.node(2), await net.node(3), await net.node(4), await net.node(5)];
  const dir = await tempDir(t, 'mgs-test-');
  const dev = (name: string) => join(dir, name);
  await formatTarget(dev('mgs'), { fsname: 'testfs', mgs: true });
  await formatTarget(dev('mdt0'), { fsname: 'testfs', mdt: true, index: 0, mgsNids: [mgsNi.nid] });
  await formatTarget(dev('ost0'), { fsname: 'testfs', ost: true, index: 0, mgsNids: [mgsNi.nid], params: { 'ost.readcache_max_filesize': '1M' } });
  let mgsTarget = await Target.mount(dev('mgs'), mgsNi, fast);
  t.teardown(() => mgsTarget.umount({ force: true }));
  let mgs = mgsOf(mgsTarget);

  // First registrations: the MDT, then an OST.
  const mdt = await Target.mount(dev('mdt0'), mdtNi, fast);
  t.equal((await readMountdata(dev('mdt0'))).virgin, false, 'the MDT is no longer virgin once registered');
  let ost0 = await Target.mount(dev('ost0'), ost0Ni, fast);
  t.equal((await readMountdata(dev('ost0'))).virgin, false, 'the OST is no longer virgin once registered');
  t.same(mgs.targets('testfs').map((x) => x.svname).sort(), ['testfs-MDT0000', 'testfs-OST0000']);

  t.same(lines(mgs, 'testfs-client'), [
    '#01 (attach) testfs-clilov: lov testfs-clilov_UUID',
    '#02 (attach) testfs-clilmv: lmv testfs-clilmv_UUID',
    '#03 (marker) testfs-MDT0000: start add mdc',
    `#04 (add_uuid) ${mdtNi.nid} ${mdtNi.nid}`,
    '#05 (attach) testfs-MDT0000-mdc: mdc testfs-clilmv_UUID',
    `#06 (setup) testfs-MDT0000-mdc: testfs-MDT0000_UUID ${mdtNi.nid}`,
    '#07 (add_mdc) testfs-clilmv: testfs-MDT0000_UUID 0 1',
    '#08 (marker) testfs-MDT0000: end add mdc',
    '#09 (marker) testfs-OST0000: start add osc',
    `#10 (add_uuid) ${ost0Ni.nid} ${ost0Ni.nid}`,
    '#11 (attach) testfs-OST0000-osc: osc testfs-clilov_UUID',
    `#12 (setup) testfs-OST0000-osc: testfs-OST0000_UUID ${ost0Ni.nid}`,
    '#13 (lov_add_obd) testfs-clilov: testfs-OST0000_UUID 0 1',
    '#14 (marker) testfs-OST0000: end add osc',
  ], 'the client log names the MDT and the OST with their NIDs');
  t.same(lines(mgs, 'testfs-OST0000'), [
    '#01 (marker) testfs-OST0000: start add ost',
    '#02 (attach) testfs-OST0000: obdfilter testfs-OST0000_UUID',
    `#03 (setup) testfs-OST0000: testfs-OST0000_UUID ${ost0Ni.nid}`,
    '#04 (param) testfs-OST0000: ost.readcache_max_filesize=1M',
    '#05 (marker) testfs-OST0000: end add ost',
  ], "the OST's own log, with its mkfs params");
  const mdtView = applyConfigRecords(emptyFsConfig(), mgs.logs.read('testfs-MDT0000', 0, Infinity).records);
  t.same([...mdtView.osts.values()], [{ svname: 'testfs-OST0000', uuid: 'testfs-OST0000_UUID', index: 0, nids: [ost0Ni.nid] }],
    "an OST registered after the MDT is appended to the MDT's log (its OSP)");

  // A repeat registration (the OST restarts) writes nothing new.
  const clientRecords = mgs.logs.lastIndex('testfs-client');
  await ost0.umount();
  ost0 = await Target.mount(dev('ost0'), ost0Ni, fast);
  t.equal(mgs.logs.lastIndex('testfs-client'), clientRecords, 'a repeat registration adds no records');

  // Another device claiming index 0 is refused, and stays virgin and unmounted.
  await formatTarget(dev('ost0-impostor'), { fsname: 'testfs', ost: true, index: 0, mgsNids: [mgsNi.nid] });
  await t.rejects(Target.mount(dev('ost0-impostor'), ost1Ni, fast), { code: 'EADDRINUSE' }, 'a second OST0000 is refused');
  t.equal((await readMountdata(dev('ost0-impostor'))).virgin, true, 'the refused target stays virgin');
  await formatTarget(dev('ost0-impostor'), { fsname: 'testfs', ost: true, index: 0, mgsNids: [mgsNi.nid], reformat: true });

  // Without --index, the MGS assigns the next free one.
  await formatTarget(dev('ost1'), { fsname: 'testfs', ost: true, mgsNids: [mgsNi.nid] });
  const ost1 = await Target.mount(dev('ost1'), ost1Ni, fast);
  t.match(await readMountdata(dev('ost1')), { index: 1, svname: 'testfs-OST0001', uuid: 'testfs-OST0001_UUID', virgin: false },
    'an index is assigned and written to the mountdata');
  t.equal(ost1.svname, 'testfs-OST0001');

  // The MGS restarts: registry and logs come back from its OSD.
  const before = { client: lines(mgs, 'testfs-client'), mdt: lines(mgs, 'testfs-MDT0000'), logs: mgs.logs.names() };
  await mgsTarget.umount();
  mgsTarget = await Target.mount(dev('mgs'), mgsNi, fast);
  mgs = mgsOf(mgsTarget);
  t.same(mgs.logs.names(), before.logs, 'the same logs after an MGS restart');
  t.same(lines(mgs, 'testfs-client'), before.client, 'the same client log after an MGS restart');
  t.same(lines(mgs, 'testfs-MDT0000'), before.mdt, 'the same MDT log after an MGS restart');
  t.same(mgs.targets('testfs').map((x) => x.svname).sort(), ['testfs-MDT0000', 'testfs-OST0000', 'testfs-OST0001']);
  await ost0.umount();
  ost0 = await Target.mount(dev('ost0'), ost0Ni, fast);
  t.pass('a known target registers again with the restarted MGS');
  await t.rejects(Target.mount(dev('ost0-impostor'), ost1Ni, { ...fast }), { code: 'EADDRINUSE' },
    'the restarted MGS still refuses a conflicting index');

  for (const x of [ost0, ost1, mdt]) await x.umount();
});

t.test('a combined MGS+MDT device registers its MDT with its own MGS', async (t) => {
  const net = await network(t, 2);
  const ni = await net.node(2);
  const dir = await tempDir(t, 'mgs-combined-');
  await formatTarget(join(dir, 'mdt0'), { fsname: 'combo', mgs: true, mdt: true, index: 0 });
  const started: unknown[] = [];
  const target = await Target.mount(join(dir, 'mdt0'), ni, { ...fast, modules: { mdt: standIn('mdt', started as never[]) } });
  t.teardown(() => target.umount());
  t.same(target.running.map((r) => r.name), ['mgs', 'mdt'], 'the profile starts the MGS, then the MDT');
  t.same((started[0] as { mgsNids: string[] }).mgsNids, [ni.nid], 'the MDT finds its MGS on its own NID');
  t.equal(target.mountdata.virgin, false);
  t.same(mgsOf(target).targets('combo').map((x) => x.svname), ['combo-MDT0000']);
});
