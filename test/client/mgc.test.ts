// The MGC against a real MGS over LNet on loopback: it reads a file system's config, follows
// it while connected (an OST registered meanwhile appears in its stream, a set_param -P and a
// conf_param reach it) and keeps following across an MGS restart.
import { join } from 'node:path';
import t from 'tap';
import { firstValueFrom, filter, ReplaySubject } from 'rxjs';
import { Mgc, type ConfigChange } from '../../src/client/index.js';
import { formatTarget, Target, type MountOptions } from '../../src/services/target/index.js';
import { network, quiet, standIn, tempDir } from '../services/target/helpers.js';

const fast: MountOptions = { log: quiet, osd: { txgTimeoutMs: 5 }, modules: { mdt: standIn('mdt'), ost: standIn('ost') } };

t.test('an MGC follows the client log', async (t) => {
  const net = await network(t, 4);
  const [mdsNi, ost0Ni, ost1Ni, clientNi] = [await net.node(2), await net.node(3), await net.node(4), await net.node(5)];
  const dir = await tempDir(t, 'mgc-test-');
  const dev = (name: string) => join(dir, name);
  await formatTarget(dev('mdt0'), { fsname: 'testfs', mgs: true, mdt: true, index: 0 });
  await formatTarget(dev('ost0'), { fsname: 'testfs', ost: true, index: 0, mgsNids: [mdsNi.nid] });
  await formatTarget(dev('ost1'), { fsname: 'testfs', ost: true, index: 1, mgsNids: [mdsNi.nid] });
  let mds = await Target.mount(dev('mdt0'), mdsNi, fast);
  t.teardown(() => mds.umount({ force: true }));
  const ost0 = await Target.mount(dev('ost0'), ost0Ni, fast);
  t.teardown(() => ost0.umount());

  const mgc = await Mgc.connect(clientNi, { mgsNids: [mdsNi.nid], clientUuid: 'client-1', pollWaitMs: 1_000 });
  t.teardown(() => mgc.close());
  const config = await mgc.readConfig('testfs');
  t.same([...config.mdts.keys()], [0], 'the client log names MDT0000');
  t.same([...config.osts.values()].map((o) => [o.svname, o.nids]), [['testfs-OST0000', [ost0Ni.nid]]], 'and OST0000 with its NID');

  const changes = new ReplaySubject<ConfigChange>(64);
  const sub = mgc.watch('testfs').subscribe(changes);
  t.teardown(() => sub.unsubscribe());
  const seen = (predicate: (c: ConfigChange) => boolean) => firstValueFrom(changes.pipe(filter(predicate)));
  await seen((c) => c.config.osts.size === 1);

  // An OST registered while the MGC watches shows up in its stream.
  const ost1 = await Target.mount(dev('ost1'), ost1Ni, fast);
  t.teardown(() => ost1.umount());
  const added = await seen((c) => c.config.osts.has(1));
  t.same(added.config.osts.get(1), { svname: 'testfs-OST0001', uuid: 'testfs-OST0001_UUID', index: 1, nids: [ost1Ni.nid] },
    'OST0001 appears without a remount, with its NID');
  t.ok(added.records.some((r) => r.name === 'testfs-clilov'), 'through the lov_add_obd record appended');

  // set_param -P from another node reaches the watching MGC.
  const admin = await Mgc.connect(ost0Ni, { mgsNids: [mdsNi.nid], clientUuid: 'admin', pollWaitMs: 1_000 });
  t.teardown(() => admin.close());
  await admin.setParams('set_param', [['osc.testfs-OST*.max_dirty_mb', '64']]);
  const param = await seen((c) => c.config.params.get('osc.testfs-OST*.max_dirty_mb') === '64');
  t.equal(param.log, 'params', 'set_param -P arrives through the params log');
  await admin.setParams('conf_param', [['testfs-OST0001.ost.readcache_max_filesize', '1M']]);
  const conf = await seen((c) => c.config.params.get('testfs-OST0001.ost.readcache_max_filesize') === '1M');
  t.equal(conf.log, 'testfs-client', 'conf_param arrives through the client log');
  await t.rejects(admin.setParams('conf_param', [['nofs.sys.timeout', '40']]), { code: 'ENOENT' }, 'conf_param of an unknown file system');
  await t.rejects(admin.setParams('conf_param', [['timeout', '40']]), { code: 'EINVAL' }, 'conf_param without a device');

  // The MGS restarts under the watching MGC: the watch goes on and sees the next change.
  await mds.umount();
  mds = await Target.mount(dev('mdt0'), mdsNi, fast);
  await admin.setParams('set_param', [['mdc.*.max_rpcs_in_flight', '16']]);
  await seen((c) => c.config.params.get('mdc.*.max_rpcs_in_flight') === '16');
  t.pass('a change after an MGS restart reaches the MGC');
  const last = await seen((c) => c.config.params.has('mdc.*.max_rpcs_in_flight'));
  t.equal(last.config.osts.size, 2, 'and the view still holds both OSTs');
});
