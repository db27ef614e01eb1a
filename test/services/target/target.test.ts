// What every target shares: the mountdata (round trip, refusals of bad files), formatting
// (Lustre's combinations, refusals of a formatted or mounted device), mounting (no mountdata,
// mounted twice, last_rcvd anchored), and the mkfs.lustre command itself.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toolCommand } from '../../lib/tools.js';
import { promisify } from 'node:util';
import t from 'tap';
import { ROOT_INDEX_FID } from '../../../src/osd/index.js';
import {
  formatTarget, LAST_RCVD_FID, localObject, readMountdata, Target, writeMountdata, type Mountdata,
} from '../../../src/services/target/index.js';
import { network, quiet, standIn, tempDir } from './helpers.js';

const run = promisify(execFile);

const sample: Mountdata = {
  fsname: 'testfs', svname: 'testfs-OST0003', mgs: false, mdt: false, ost: true, index: 3, mgsNids: ['127.0.0.2@tcp'],
  params: { 'sys.timeout': '40' }, uuid: 'testfs-OST0003_UUID', virgin: true, profile: ['ost'],
};

t.test('mountdata: round trip and refusals', async (t) => {
  const dir = await tempDir(t, 'target-md-');
  await writeMountdata(dir, sample);
  t.same(await readMountdata(dir), sample, 'what is written is read back');
  await writeMountdata(dir, { ...sample, virgin: false });
  t.equal((await readMountdata(dir)).virgin, false, 'a rewrite replaces it');
  const empty = await tempDir(t, 'target-none-');
  await t.rejects(readMountdata(empty), { code: 'ENODEV' }, 'no mountdata: not a target');
  const raw = JSON.parse(await readFile(join(dir, 'mountdata'), 'utf8')) as Record<string, unknown>;
  const refuse = async (change: Record<string, unknown>, code: string, what: string): Promise<void> => {
    await writeFile(join(dir, 'mountdata'), JSON.stringify({ ...raw, ...change }));
    await t.rejects(readMountdata(dir), { code }, what);
  };
  await refuse({ magic: 'ext4' }, 'ENODEV', 'a wrong magic');
  await refuse({ version: 99 }, 'EINVAL', 'a newer version');
  await refuse({ index: 'three' }, 'EINVAL', 'an index that is not a number');
  await refuse({ index: 70000 }, 'EINVAL', 'an index beyond 16 bits');
  await refuse({ profile: ['ost', 'nfs'] }, 'EINVAL', 'an unknown service in the profile');
  await refuse({ mdt: true }, 'EINVAL', 'both MDT and OST');
  await refuse({ params: { a: 1 } }, 'EINVAL', 'a param that is not a string');
  await writeFile(join(dir, 'mountdata'), '{"magic": "lustre-mountdata", ');
  await t.rejects(readMountdata(dir), { code: 'EINVAL' }, 'a torn file');
  await t.rejects(writeMountdata(dir, { ...sample, mgsNids: 'x' as never }), { code: 'EINVAL' }, 'a bad mountdata is not written');
});

t.test('formatTarget: combinations and refusals', async (t) => {
  const dir = await tempDir(t, 'target-fmt-');
  const combined = await formatTarget(join(dir, 'mdt0'), { fsname: 'testfs', mgs: true, mdt: true, index: 0 });
  t.match(combined.mountdata, { svname: 'testfs-MDT0000', mgs: true, mdt: true, ost: false, index: 0, profile: ['mgs', 'mdt'], virgin: true });
  t.equal(combined.osd.label, 'testfs-MDT0000', "the OSD's label is the target's name");
  const mgs = await formatTarget(join(dir, 'mgs'), { fsname: 'testfs', mgs: true });
  t.match(mgs.mountdata, { svname: 'MGS', profile: ['mgs'] });
  const ost = await formatTarget(join(dir, 'ost'), { fsname: 'testfs', ost: true, mgsNids: ['127.0.0.2@tcp'] });
  t.match(ost.mountdata, { svname: 'testfs-OSTffff', index: -1 }, 'without --index the MGS assigns one later');
  const refuse = (opts: Parameters<typeof formatTarget>[1], code: string, what: string) =>
    t.rejects(formatTarget(join(dir, 'x'), opts), { code }, what);
  await refuse({ fsname: 'testfs', ost: true, mdt: true, index: 0, mgsNids: ['127.0.0.2@tcp'] }, 'EINVAL', 'an OST and an MDT on one device');
  await refuse({ fsname: 'testfs', ost: true, mgs: true, index: 0 }, 'EINVAL', 'an OST with the MGS');
  await refuse({ fsname: 'testfs' }, 'EINVAL', 'no kind');
  await refuse({ fsname: 'much-too-long', mgs: true }, 'EINVAL', 'a bad fsname');
  await refuse({ fsname: 'testfs', ost: true, index: 0 }, 'EINVAL', 'an OST without --mgsnode');
  await refuse({ fsname: 'testfs', ost: true, index: 0, mgsNids: ['not a nid'] }, 'EINVAL', 'a bad NID');
  await t.rejects(formatTarget(join(dir, 'mdt0'), { fsname: 'testfs', mgs: true, mdt: true, index: 0 }), { code: 'EALREADY' },
    'a formatted device without reformat');
  await formatTarget(join(dir, 'mdt0'), { fsname: 'other', mgs: true, mdt: true, index: 0, reformat: true });
  t.equal((await readMountdata(join(dir, 'mdt0'))).fsname, 'other', 'reformat replaces it');
});

t.test('mount: refusals, last_rcvd, umount', async (t) => {
  const net = await network(t, 3);
  const ni = await net.node(2);
  const dir = await tempDir(t, 'target-mount-');
  await t.rejects(Target.mount(dir, ni, { log: quiet }), { code: 'ENODEV' }, 'a folder without mountdata');
  const dev = join(dir, 'ost0');
  await formatTarget(dev, { fsname: 'testfs', ost: true, index: 0, mgsNids: [ni.nid] });
  const started: never[] = [];
  const target = await Target.mount(dev, ni, { log: quiet, register: false, modules: { ost: standIn('ost', started) } });
  t.equal(started.length, 1, "the profile's service started");
  t.same(await target.osd.indexLookup(ROOT_INDEX_FID, 'last_rcvd'), { fid: LAST_RCVD_FID, type: 'reg' },
    "last_rcvd is anchored in the root index with Lustre's FID");
  const a = await localObject(target.osd, 'O', 'idx');
  const b = await localObject(target.osd, 'seq_srv', 'reg');
  t.not(`${a.oid}`, `${b.oid}`, 'local objects get distinct FIDs');
  t.same(await localObject(target.osd, 'O', 'idx'), a, 'and the same one when asked again');
  await t.rejects(Target.mount(dev, ni, { log: quiet, register: false }), { code: 'EBUSY' }, 'a mounted device is refused');
  await t.rejects(formatTarget(dev, { fsname: 'testfs', ost: true, index: 0, mgsNids: [ni.nid], reformat: true }), { code: 'EBUSY' },
    'reformat of a mounted device is refused');
  await target.umount();
  const again = await Target.mount(dev, ni, { log: quiet, register: false, modules: { ost: standIn('ost') } });
  t.same(await localObject(again.osd, 'O', 'idx'), a, 'local objects survive a remount');
  await again.umount();
});

t.test('mkfs.lustre: output and refusals', async (t) => {
  const dir = await tempDir(t, 'mkfs-');
  const mkfs = (...args: string[]) => run(process.execPath, [...toolCommand('mkfs-lustre'), ...args]);
  const out = await mkfs('--fsname=testfs', '--ost', '--index=1', '--mgsnode=127.0.0.2@tcp', '--param', 'sys.timeout=40', join(dir, 'ost1'));
  t.match(out.stdout, /Permanent disk data:\nTarget: {5}testfs-OST0001\nIndex: {6}1\nLustre FS: {2}testfs\nMount type: osd-txg\nFlags: {6}0x62\n {14}\(OST first_time update \)\nParameters: mgsnode=127\.0\.0\.2@tcp sys\.timeout=40\n/,
    'Permanent disk data as Lustre prints it');
  t.match(await readMountdata(join(dir, 'ost1')), { svname: 'testfs-OST0001', params: { 'sys.timeout': '40' } });
  const again = await mkfs('--fsname=testfs', '--ost', '--index=1', '--mgsnode=127.0.0.2@tcp', join(dir, 'ost1')).catch((e: { code: number; stderr: string }) => e);
  t.match(again, { code: 1, stderr: /mkfs\.lustre: EALREADY: .*ost1 is formatted already \(use --reformat/ }, 'a second format is refused');
  const bad = await mkfs('--fsname=testfs', '--ost', '--mdt', '--index=0', '--mgsnode=127.0.0.2@tcp', join(dir, 'x')).catch((e: { code: number; stderr: string }) => e);
  t.match(bad, { code: 1, stderr: /an OST cannot share its device with an MDT/ }, 'a bad combination is refused');
  const help = await mkfs('--help');
  t.match(help.stdout, /--mgsnode <nid>/, '--help lists the options');
});
