// The MDT as lustre.mount starts it: an MGS+MDT device and OSTs mounted with Target.mount over
// LNet on 127.x.y.z. The MDT learns the OSTs from the MGS config log, also an OST that joins
// after the MDT started, and stripes new files over them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { until } from '../../lib/net.js';
import { LNetNI } from '../../../src/lnet/index.js';
import type { RunningMdt } from '../../../src/services/mdt/index.js';
import { formatTarget, Target } from '../../../src/services/target/index.js';
import { connectMdc, freePort, hosts } from './helpers.js';

const quiet = () => {};


t.test('an MDT finds its OSTs through the MGS config log', async (t) => {
  const port = await freePort();
  const [mdsHost, ost0Host, ost1Host, clientHost] = hosts(4, 3);
  const mgsNid = `${mdsHost}@tcp`;
  const root = await mkdtemp(join(tmpdir(), 'mdt-mount-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await formatTarget(join(root, 'mdt0'), { fsname: 'testfs', mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname: 'testfs', ost: true, index: 0, mgsNids: [mgsNid] });
  await formatTarget(join(root, 'ost1'), { fsname: 'testfs', ost: true, index: 1, mgsNids: [mgsNid] });
  const nis = await Promise.all([mdsHost, ost0Host, ost1Host, clientHost].map((h) => LNetNI.start({ nid: `${h}@tcp`, port, warn: quiet })));
  const osd = { txgTimeoutMs: 5 };
  const targets: Target[] = [];
  t.teardown(async () => {
    for (const x of targets.reverse()) await x.umount().catch(() => {});
    for (const ni of nis) await ni.stop();
  });
  const mds = await Target.mount(join(root, 'mdt0'), nis[0]!, { osd });
  targets.push(mds);
  targets.push(await Target.mount(join(root, 'ost0'), nis[1]!, { osd }));
  const mdt = mds.running.find((r) => r.name === 'mdt') as RunningMdt;
  t.ok(mdt, 'the profile started the MDT');
  await until('OST0000 known', () => mdt.osps.has(0));
  await mdt.osps.get(0)!.started;
  const mdc = await connectMdc(nis[3]!, mgsNid, 'mount-client');
  t.teardown(() => mdc.disconnect());
  const rootFid = await mdc.root();
  const one = await mdc.create(rootFid, 'one', 0o644, { stripeCount: -1 });
  t.equal((await mdc.getLayout(one.fid))?.objects.length, 1, 'one OST: every OST is one');
  // An OST added while the MDT runs.
  targets.push(await Target.mount(join(root, 'ost1'), nis[2]!, { osd }));
  await until('OST0001 known', () => mdt.osps.has(1));
  await mdt.osps.get(1)!.started;
  await until('OST0001 precreated', () => mdt.osps.get(1)!.available() > 0);
  const two = await mdc.create(rootFid, 'two', 0o644, { stripeCount: -1 });
  t.same((await mdc.getLayout(two.fid))?.objects.map((o) => o.ostIndex).sort(), [0, 1], 'the new OST takes stripes without a restart');
});
