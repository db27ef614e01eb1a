// The parameter tree over a real node: an MGS+MDT and an OST mounted with Target.mount on
// loopback NIDs, a client working through the MDC, OSC and LOV, and a ParamTree over a
// KernelView of the two targets. The figures lctl would show move as the client works; the
// tunables change the running services and OSDs; errors name what is wrong; lctl dl and the
// Prometheus endpoint show the same targets.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lov, Mdc, Mgc, Osc, type Raid0Layout } from '../../src/client/index.js';
import { deviceList, formatGetParam, ParamTree, startMetrics, type KernelView, type ParamValue } from '../../src/control/params/index.js';
import { LNetNI } from '../../src/lnet/index.js';
import type { RunningMdt } from '../../src/services/mdt/index.js';
import type { RunningOst } from '../../src/services/ost/index.js';
import { formatTarget, Target } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { patternBytes, prng, seedFrom } from '../lib/prng.js';

const SEED = seedFrom('LUSTRE_PARAMS_SEED');
const quiet = (): void => {};
const value = (values: ParamValue[], name: string): string => {
  const v = values.find((x) => x.name === name);
  if (!v) throw new Error(`${name} missing from ${values.map((x) => x.name).join(', ')}`);
  return v.value;
};
/** count and sum of one counter line of a stats file ("name N samples [units] min max sum sumsq"). */
function counter(stats: string, name: string): { count: number; units: string; sum: number } | undefined {
  const m = new RegExp(`^${name} +(\\d+) samples \\[(\\w+)\\] (\\d+) (\\d+) (\\d+) (\\d+)$`, 'm').exec(stats);
  return m ? { count: Number(m[1]), units: m[2]!, sum: Number(m[5]) } : undefined;
}

t.test(`lctl's parameters, dl and metrics over an MGS+MDT and an OST with a client at work (seed ${SEED})`, async (t) => {
  const random = prng(SEED);
  const port = await freePort();
  const [mdsNid, ostNid, clientNid] = ['127.0.0.2@tcp', '127.0.0.3@tcp', '127.0.0.5@tcp'];
  const root = await mkdtemp(join(tmpdir(), 'params-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await formatTarget(join(root, 'mdt0'), { fsname: 'pfs', mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname: 'pfs', ost: true, index: 0, mgsNids: [mdsNid] });
  const nis = await Promise.all([mdsNid, ostNid, clientNid].map((nid) => LNetNI.start({ nid, port, warn: quiet })));
  const targets: Target[] = [];
  const closers: Array<() => Promise<void>> = [];
  t.teardown(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    for (const target of targets.reverse()) await target.umount().catch(() => {});
    for (const ni of nis) await ni.stop();
  });
  const osd = { txgTimeoutMs: 10, warn: quiet };
  const log = quiet;
  targets.push(await Target.mount(join(root, 'mdt0'), nis[0]!, { osd, log }));
  targets.push(await Target.mount(join(root, 'ost0'), nis[1]!, { osd, log }));
  const [mds, ostTarget] = targets as [Target, Target];
  const mdt = mds.running.find((r) => r.name === 'mdt') as RunningMdt;
  const ost = ostTarget.running.find((r) => r.name === 'ost') as RunningOst;
  await until('the MDT connected to OST0000', () => mdt.osps.size === 1);
  await Promise.all([...mdt.osps.values()].map((o) => o.started));

  let level = 'info';
  const view: KernelView = {
    version: '0.1.0', nid: mdsNid, startedAtMs: Date.now(), ni: nis[0],
    targets: () => targets,
    debug: {
      get: () => level,
      set: (l) => {
        if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(l)) throw new Error(`unknown level ${l}`);
        level = l;
      },
    },
  };
  const tree = new ParamTree(view);

  t.same(await tree.get('version'), [{ name: 'version', value: '0.1.0' }]);
  t.same((await tree.get('*.*.uuid')).map((v) => `${v.name}=${v.value}`).sort(), [
    'mdt.pfs-MDT0000.uuid=pfs-MDT0000_UUID', 'mgs.MGS.uuid=MGS', 'obdfilter.pfs-OST0000.uuid=pfs-OST0000_UUID',
  ]);
  for (const v of await tree.get('*.*.recovery_status')) t.equal(v.value, 'status: INACTIVE', `${v.name}: no recovery window in this build`);
  const before = await tree.get('osd-txg.*.txg_*');
  t.notOk(counter(value(await tree.get('obdfilter.*.stats'), 'obdfilter.pfs-OST0000.stats'), 'write_bytes'), 'nothing written yet');

  // The client: the OST from the MGS's client log, the MDT through the MDC, data through the LOV.
  const client = nis[2]!;
  const mgc = await Mgc.connect(client, { mgsNids: [mdsNid], clientUuid: 'params-client' });
  closers.push(() => mgc.close());
  const config = await mgc.readConfig('pfs');
  const mdc = await Mdc.connect(client, { nid: mdsNid, targetUuid: config.mdts.get(0)!.uuid, clientUuid: 'params-client' });
  closers.push(() => mdc.disconnect());
  const osc = await Osc.connect(client, { nid: ostNid, targetUuid: config.osts.get(0)!.uuid, clientUuid: 'params-client' });
  closers.push(() => osc.disconnect());
  const lov = new Lov(new Map([[0, osc]]));

  const rootFid = await mdc.root();
  const dir = await mdc.mkdir(rootFid, 'd', 0o755);
  const sizes = Array.from({ length: 3 }, () => 100_000 + random.int(1_500_000));
  const layouts: Raid0Layout[] = [];
  for (const [i, size] of sizes.entries()) {
    const attr = await mdc.create(dir.fid, `f${i}`, 0o644, { stripeCount: 1, stripeSize: 1 << 20 });
    const l = (await mdc.getLayout(attr.fid))!;
    const layout: Raid0Layout = {
      pattern: 'raid0', stripeSize: l.stripeSize, stripeCount: 1, stripeOffset: 0,
      objects: l.objects.map((o) => ({ ostIndex: o.ostIndex, seq: o.fid.seq, oid: o.fid.oid })),
    };
    layouts.push(layout);
    await lov.write(layout, 0, patternBytes(random.int(2 ** 31), size));
  }
  for (const [i, layout] of layouts.entries()) t.equal((await lov.read(layout, 0, sizes[i]!)).length, sizes[i], `f${i} reads back`);
  await mdc.rename(dir.fid, 'f0', dir.fid, 'f0-renamed');
  await mdc.unlink(dir.fid, 'f1');
  await mdc.setxattr(dir.fid, 'user.tag', Buffer.from('x'));
  await mdc.getxattr(dir.fid, 'user.tag');
  await mdc.mkdir(dir.fid, 'sub', 0o755);
  await mdc.rmdir(dir.fid, 'sub');
  await mdc.statfs();
  await mdc.getattr(dir.fid);
  const written = sizes.reduce((a, b) => a + b, 0);

  // obdfilter stats: read_bytes / write_bytes in [bytes] with the exact sums, per-op usecs.
  const ofd = value(await tree.get('obdfilter.pfs-OST0000.stats'), 'obdfilter.pfs-OST0000.stats');
  t.match(ofd, /^snapshot_time +\d+\.\d{9} secs\.nsecs\nstart_time +\d+\.\d{9} secs\.nsecs\nelapsed_time +\d+\.\d{9} secs\.nsecs\n/);
  t.match(counter(ofd, 'write_bytes'), { units: 'bytes', sum: written }, 'write_bytes: every byte written');
  t.match(counter(ofd, 'read_bytes'), { units: 'bytes', sum: written }, 'read_bytes: every byte read');
  t.match(counter(ofd, 'write'), { units: 'usecs', count: counter(ofd, 'write_bytes')!.count }, 'one write latency per BRW');
  t.ok(counter(ofd, 'create')!.count >= 1, 'the MDT precreated objects');
  // Per export, by the client's NID: the client's bytes there, the MDT's precreates at its NID.
  const exportsStats = await tree.get('obdfilter.*.exports.*.stats');
  t.same(exportsStats.map((v) => v.name), [
    'obdfilter.pfs-OST0000.exports.127.0.0.2@tcp.stats', 'obdfilter.pfs-OST0000.exports.127.0.0.5@tcp.stats',
  ]);
  const clientOfd = value(await tree.get('obdfilter.pfs-OST0000.exports.127.0.0.5@tcp.stats'), 'obdfilter.pfs-OST0000.exports.127.0.0.5@tcp.stats');
  t.match(counter(clientOfd, 'write_bytes'), { sum: written }, 'the client NID wrote every byte');
  t.notOk(counter(clientOfd, 'create'), 'the client created no objects');
  t.ok(counter(value(exportsStats, 'obdfilter.pfs-OST0000.exports.127.0.0.2@tcp.stats'), 'create'), "the MDT's NID did");
  t.same(await tree.get('obdfilter.*.exports.127.0.0.5@tcp.uuid'), [{ name: 'obdfilter.pfs-OST0000.exports.127.0.0.5@tcp.uuid', value: 'params-client' }]);

  // md_stats: Lustre's names, one sample per operation.
  const md = value(await tree.get('mdt.*.md_stats'), 'mdt.pfs-MDT0000.md_stats');
  // getxattr: the one asked for, and each getLayout (the layout is an xattr).
  for (const [name, count] of [['mkdir', 2], ['rmdir', 1], ['mknod', 3], ['rename', 1], ['unlink', 1], ['setxattr', 1], ['getxattr', 1 + layouts.length], ['statfs', 1]] as const) {
    t.match(counter(md, name), { count, units: 'usecs' }, `md_stats ${name}: ${count}`);
  }
  t.ok(counter(md, 'getattr')!.count >= 1, 'md_stats getattr');
  const mdtExport = value(await tree.get('mdt.pfs-MDT0000.exports.127.0.0.5@tcp.stats'), 'mdt.pfs-MDT0000.exports.127.0.0.5@tcp.stats');
  t.match(counter(mdtExport, 'mkdir'), { count: 2 }, "the client's NID stats on the MDT count its mkdirs");

  // The ptlrpc services' stats (service.stats.format()).
  const services = await tree.get('{ost.OSS.ost,ost.OSS.ost_io,mds.MDS.mdt,mgs.MGS.mgs}.stats');
  t.same(services.map((v) => v.name), ['ost.OSS.ost.stats', 'ost.OSS.ost_io.stats', 'mds.MDS.mdt.stats', 'mgs.MGS.mgs.stats']);
  t.ok(counter(value(services, 'ost.OSS.ost_io.stats'), 'ost_write'), 'ost_io counted the BRW writes');
  t.ok(counter(value(services, 'ost.OSS.ost.stats'), 'ost_create'), 'ost counted the precreates');
  t.ok(counter(value(services, 'mds.MDS.mdt.stats'), 'mds_reint'), 'mdt counted the reints');
  t.ok(counter(value(services, 'mgs.MGS.mgs.stats'), 'req_waittime'), 'mgs counted its requests');

  // The OSDs: space and inodes as numbers, the type, the txg figures moved by the work.
  const space = await tree.get('osd-*.*.{kbytestotal,kbytesfree,kbytesavail,filestotal,filesfree,blocksize,fstype}');
  t.equal(space.length, 14, 'seven files on each of the two OSDs');
  t.same(space.slice(0, 2).map((v) => v.name), ['osd-txg.pfs-MDT0000.kbytestotal', 'osd-txg.pfs-OST0000.kbytestotal'], 'per brace alternative, sorted');
  for (const v of space) t.match(v.value, v.name.endsWith('fstype') ? /^txg$/ : /^\d+$/, v.name);
  for (const svname of ['pfs-MDT0000', 'pfs-OST0000']) {
    t.ok(Number(value(space, `osd-txg.${svname}.kbytesfree`)) <= Number(value(space, `osd-txg.${svname}.kbytestotal`)), `${svname}: free <= total`);
  }
  const after = await tree.get('osd-txg.*.txg_*');
  const txgSynced = (vs: ParamValue[]) => Number(value(vs, 'osd-txg.pfs-OST0000.txg_synced'));
  t.ok(txgSynced(after) > txgSynced(before), 'txg_synced moved with the writes');
  t.ok(Number(value(after, 'osd-txg.pfs-OST0000.txg_last_synced')) > Number(value(before, 'osd-txg.pfs-OST0000.txg_last_synced')));
  t.same(after.map((v) => v.name.split('.')[2]).filter((n, i, a) => a.indexOf(n) === i), [
    'txg_checkpoint', 'txg_dirty_bytes', 'txg_last_synced', 'txg_open', 'txg_replayed', 'txg_retain_bytes', 'txg_retain_ms', 'txg_sync_time_max_ms',
    'txg_sync_time_total_ms', 'txg_synced', 'txg_timeout',
  ]);
  t.same(await tree.get('*.*.num_exports').then((vs) => vs.filter((v) => v.name !== 'mgs.MGS.num_exports')), [
    { name: 'mdt.pfs-MDT0000.num_exports', value: '1' }, { name: 'obdfilter.pfs-OST0000.num_exports', value: '2' },
  ], 'the MDT has the client; the OST the client and the MDT');

  // get_param's output.
  const out = formatGetParam(await tree.get('obdfilter.pfs-OST0000.{uuid,stats}'), {});
  t.match(out, /^obdfilter\.pfs-OST0000\.uuid=pfs-OST0000_UUID\nobdfilter\.pfs-OST0000\.stats=\nsnapshot_time +/);
  t.equal(formatGetParam(await tree.get('osd-txg.pfs-OST0000.fstype'), { valuesOnly: true }), 'txg\n');
  t.equal(formatGetParam(await tree.get('osd-txg.pfs-OST0000.fstype'), { namesOnly: true }), 'osd-txg.pfs-OST0000.fstype\n');

  // Tunables.
  t.same(await tree.set('osd-*.*.txg_timeout', '0.025'), [
    { name: 'osd-txg.pfs-MDT0000.txg_timeout', value: '0.025' }, { name: 'osd-txg.pfs-OST0000.txg_timeout', value: '0.025' },
  ]);
  t.same([mds.osd.tunables().txgTimeoutMs, ostTarget.osd.tunables().txgTimeoutMs], [25, 25], 'txg_timeout is in seconds');
  t.equal(value(await tree.get('osd-txg.pfs-OST0000.txg_timeout'), 'osd-txg.pfs-OST0000.txg_timeout'), '0.025');
  // Replay-to-point's retention window.
  await tree.set('osd-txg.pfs-MDT0000.txg_retain_ms', '86400000');
  await tree.set('osd-txg.pfs-MDT0000.txg_retain_bytes', '1073741824');
  t.match(mds.osd.tunables(), { retainMs: 86400000, retainBytes: 1073741824 });
  await t.rejects(tree.set('osd-txg.pfs-MDT0000.txg_retain_ms', '-5'), { code: 'EINVAL', message: /txg_retain_ms/ });
  await tree.set('ost.OSS.ost_io.threads_max', '3');
  t.equal(ost.services.find((s) => s.name === 'ost_io')!.threadsMax, 3, 'ost_io runs 3 handlers at most now');
  t.equal(value(await tree.get('ost.OSS.*.threads_max'), 'ost.OSS.ost_io.threads_max'), '3');
  t.equal(value(await tree.get('ost.OSS.*.threads_max'), 'ost.OSS.ost.threads_max'), '8', 'the other service kept its own');
  await tree.set('mds.MDS.mdt.threads_max', '4');
  t.equal(mdt.services[0]!.threadsMax, 4);
  t.same(await tree.set('debug', 'trace'), [{ name: 'debug', value: 'trace' }]);
  t.equal(level, 'trace');
  // The data path still works with the new tunables.
  t.equal((await lov.read(layouts[2]!, 0, sizes[2]!)).length, sizes[2]);

  // Errors name the parameter or the value.
  await t.rejects(tree.set('version', '9'), { code: 'EROFS', message: /version/ });
  await t.rejects(tree.set('osd-txg.pfs-OST0000.txg_*', '1'), { code: 'EROFS', message: /txg_checkpoint/ }, 'a read-only one among them');
  t.equal(ostTarget.osd.tunables().txgTimeoutMs, 25, '...and nothing was set');
  await t.rejects(tree.get('nosuch.*.param'), { code: 'ENOENT', message: /nosuch\.\*\.param/ });
  await t.rejects(tree.set('ost.OSS.ost_io.threads_max', 'many'), { code: 'EINVAL', message: /many/ });
  await t.rejects(tree.set('ost.OSS.ost_io.threads_max', '0'), { code: 'EINVAL', message: /\b0\b/ });
  await t.rejects(tree.set('osd-*.*.txg_timeout', '-1'), { code: 'EINVAL', message: /-1/ });
  await t.rejects(tree.set('debug', 'loud'), { code: 'EINVAL', message: /loud/ });
  t.equal(level, 'trace');
  await t.rejects(tree.get('obdfilter.*'), { code: 'EISDIR' });
  // A stats file clears when written, as Lustre's: every service's or export's counters it sums.
  t.match(value(await tree.get('ost.OSS.ost_io.stats'), 'ost.OSS.ost_io.stats'), / samples /);
  await tree.set('ost.OSS.*.stats', 'clear');
  t.notMatch(value(await tree.get('ost.OSS.ost_io.stats'), 'ost.OSS.ost_io.stats'), / samples /, 'ost_io.stats cleared');
  await tree.set('obdfilter.*.exports.*.stats', 'clear');
  t.ok((await tree.get('obdfilter.*.exports.*.stats')).every((v) => !/ samples /.test(v.value)), 'each export\'s stats cleared');
  await t.rejects(tree.get('a/b'), { code: 'EINVAL' });

  // list_param.
  t.same(await tree.list('obdfilter.*'), ['obdfilter.pfs-OST0000']);
  const all = await tree.list('obdfilter.*', { recursive: true });
  t.ok(all.includes('obdfilter.pfs-OST0000.exports.127.0.0.5@tcp.stats') && all.includes('obdfilter.pfs-OST0000.kbytesavail'));
  const below = await tree.get('obdfilter.pfs-OST0000.exports', { recursive: true });
  t.same(below.map((v) => v.name), all.filter((n) => n.startsWith('obdfilter.pfs-OST0000.exports.') && /\.(stats|uuid)$/.test(n)),
    'get_param -R: every parameter below the directory');
  t.ok(below.every((v) => typeof v.value === 'string'));
  t.same((await tree.get('obdfilter.pfs-OST0000.kbytesavail', { recursive: true })).map((v) => v.name), ['obdfilter.pfs-OST0000.kbytesavail'],
    '-R on a parameter: the parameter');
  t.same(await tree.list('*.*.exports.127.0.0.5@tcp'), [
    'mdt.pfs-MDT0000.exports.127.0.0.5@tcp', 'mgs.MGS.exports.127.0.0.5@tcp', 'obdfilter.pfs-OST0000.exports.127.0.0.5@tcp',
  ]);

  // lctl dl.
  const dl = deviceList(view).split('\n').filter(Boolean);
  for (const line of dl) t.match(line, /^ {0,2}\d{1,3} UP [\w-]+ \S+ \S+ \d+$/, `dl line: ${line}`);
  t.same(dl.map((l) => l.split(' ').filter(Boolean).slice(0, 5).join(' ')), [
    '0 UP osd-txg pfs-MDT0000-osd pfs-MDT0000-osd_UUID', '1 UP mgs MGS MGS', '2 UP mds MDS MDS_uuid',
    '3 UP mdt pfs-MDT0000 pfs-MDT0000_UUID', '4 UP lod pfs-MDT0000-mdtlov pfs-MDT0000-mdtlov_UUID',
    '5 UP osp pfs-OST0000-osc-MDT0000 pfs-MDT0000-mdtlov_UUID', '6 UP osd-txg pfs-OST0000-osd pfs-OST0000-osd_UUID',
    '7 UP ost OSS OSS_uuid', '8 UP obdfilter pfs-OST0000 pfs-OST0000_UUID',
  ]);
  t.equal(dl[0]!.slice(0, 4), '  0 ', 'the index in three columns');

  // Prometheus: the same figures at scrape time.
  await t.rejects(startMetrics(view, { host: '0.0.0.0', port: 0 }), { code: 'EINVAL' }, 'loopback only');
  const metrics = await startMetrics(view, { host: '127.0.0.1', port: 0 });
  closers.push(() => metrics.close());
  const scrape = async () => {
    const res = await fetch(metrics.url);
    t.equal(res.status, 200);
    return res.text();
  };
  const text = await scrape();
  const ostLabels = 'component="ost",target="pfs-OST0000"';
  t.match(text, new RegExp(`^lustre_write_bytes_total\\{${ostLabels}\\} ${written}$`, 'm'));
  t.match(text, new RegExp(`^lustre_read_bytes_total\\{${ostLabels}\\} ${written + sizes[2]!}$`, 'm'), 'f2 was read twice');
  t.match(text, /^# TYPE lustre_write_bytes_total counter$/m);
  t.match(text, /^lustre_stats_total\{component="mdt",target="pfs-MDT0000",operation="mkdir"\} 2$/m);
  t.match(text, new RegExp(`^lustre_exports_total\\{${ostLabels}\\} 2$`, 'm'));
  t.match(text, /^lustre_exports_total\{component="mgs",target="MGS"\} \d+$/m);
  for (const name of ['capacity_kilobytes', 'free_kilobytes', 'available_kilobytes', 'inodes_free', 'inodes_maximum']) {
    t.match(text, new RegExp(`^lustre_${name}\\{component="mdt",target="pfs-MDT0000"\\} \\d+$`, 'm'), `${name} of the MDT`);
    t.match(text, new RegExp(`^lustre_${name}\\{${ostLabels}\\} \\d+$`, 'm'), `${name} of the OST`);
  }
  t.match(text, new RegExp(`^lustre_txg_timeout_seconds\\{${ostLabels}\\} 0.025$`, 'm'));
  const extra = patternBytes(random.int(2 ** 31), 50_000);
  await lov.write(layouts[2]!, sizes[2]!, extra);
  t.match(await scrape(), new RegExp(`^lustre_write_bytes_total\\{${ostLabels}\\} ${written + extra.length}$`, 'm'), 'a later scrape sees the new write');
  t.equal((await fetch(metrics.url.replace('/metrics', '/other'))).status, 404);

  // The OSD's page cache tunables, with osd-ldiskfs's names: a bulk larger than its max_io size
  // goes around the cache (O_DIRECT), and reads back the same.
  const ostOsd = 'osd-txg.pfs-OST0000';
  const cacheNames = ['read_cache_enable', 'writethrough_cache_enable', 'readcache_max_filesize', 'readcache_max_io_mb', 'writethrough_max_io_mb', 'cache_bypass'];
  t.same((await tree.get(`${ostOsd}.{${cacheNames.join(',')}}`)).map((v) => v.value), ['1', '1', '18446744073709551615', '1', '1', 'on'], 'the defaults');
  const bypassed = async (way: 'read' | 'write') => Number(value(await tree.get(`${ostOsd}.cache_bypass_${way}_bytes`), `${ostOsd}.cache_bypass_${way}_bytes`));
  const [r0, w0] = [await bypassed('read'), await bypassed('write')];
  const block = patternBytes(random.int(2 ** 31), 64 * 1024);
  await lov.write(layouts[2]!, 0, block);
  t.equal(await bypassed('write'), w0, 'a 64 KiB bulk is written through the cache');
  t.same((await tree.set(`${ostOsd}.writethrough_max_io_mb`, '0')).map((v) => v.value), ['0']);
  await tree.set(`${ostOsd}.readcache_max_io_mb`, '32K');
  t.equal(ostTarget.osd.data.ioCache.readcacheMaxIoBytes, 32 * 1024, 'a size with a suffix');
  t.equal(value(await tree.get(`${ostOsd}.readcache_max_io_mb`), `${ostOsd}.readcache_max_io_mb`), '0', 'shown in whole MiB');
  await lov.write(layouts[2]!, 0, block);
  t.equal(await bypassed('write') - w0, block.length, 'writethrough_max_io_mb=0: the bulk went around the cache');
  t.same(await lov.read(layouts[2]!, 0, block.length), block, 'and reads back');
  t.equal(await bypassed('read') - r0, block.length, 'around the cache too (64 KiB > 32K)');
  await tree.set(`${ostOsd}.read_cache_enable`, 'off');
  t.equal(value(await tree.get(`${ostOsd}.read_cache_enable`), `${ostOsd}.read_cache_enable`), '0');
  await tree.set(`${ostOsd}.readcache_max_filesize`, '64M');
  t.equal(value(await tree.get(`${ostOsd}.readcache_max_filesize`), `${ostOsd}.readcache_max_filesize`), '67108864');
  await tree.set(`${ostOsd}.readcache_max_filesize`, '-1');
  t.equal(value(await tree.get(`${ostOsd}.readcache_max_filesize`), `${ostOsd}.readcache_max_filesize`), '18446744073709551615');
  await t.rejects(tree.set(`${ostOsd}.writethrough_max_io_mb`, '5'), { code: 'ERANGE', message: /writethrough_max_io_mb: 5 is more than a BRW's 4 MiB/ });
  await t.rejects(tree.set(`${ostOsd}.readcache_max_io_mb`, 'lots'), { code: 'EINVAL', message: /readcache_max_io_mb: 'lots' is not a size/ });
  await t.rejects(tree.set(`${ostOsd}.writethrough_cache_enable`, 'maybe'), { code: 'EINVAL', message: /writethrough_cache_enable: 'maybe' is not a boolean/ });
  t.equal(ostTarget.osd.data.ioCache.writethroughCacheEnable, true, 'nothing set by a refused value');

  // The client leaves: its NID's export directories go with it.
  await osc.disconnect();
  await until('the OST export gone', () => ost.services.every((s) => !s.exports.byNid().has(clientNid)));
  t.same((await tree.list('obdfilter.*.exports.*')), ['obdfilter.pfs-OST0000.exports.127.0.0.2@tcp']);
});
