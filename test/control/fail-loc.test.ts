// Fault injection as an administrator drives it: lctl get_param / set_param fail_loc and
// fail_val on a lustre.kernel process, a fail point that stops the kernel with SIGKILL right
// after a txg's fdatasync, lctl replay_barrier then a crash that loses exactly the updates
// after the barrier, and a kernel that starts again on the same device. Then, in this process,
// the ptlrpc adapter: a reply lost once (CFS_FAIL_ONCE) is lost and counted once.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mdc } from '../../src/client/index.js';
import { LNetNI } from '../../src/lnet/index.js';
import { CFS_FAIL_ONCE, CFS_FAILED, FAIL, FailLoc } from '../../src/log/index.js';
import { Osd, ROOT_INDEX_FID } from '../../src/osd/index.js';
import { serviceFailLoc } from '../../src/ptlrpc/fail-points.js';
import { Import, Opcode, Service, targetProfiles, type OpHandler } from '../../src/ptlrpc/index.js';
import { formatTarget } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { runTool, toolCommand, type ToolResult } from '../lib/tools.js';

// Loopback addresses of this run only, so that test files running at once never collide.
const NET = `127.${60 + (process.pid % 60)}.${1 + (process.pid % 250)}`;
const importOptions = { requestDeadlineMs: 3_000, connectDeadlineMs: 3_000, reconnectBackoffMaxMs: 200 };

interface Kernel {
  child: ChildProcess;
  exit: Promise<NodeJS.Signals | null>;
  stderr: () => string;
}

/** lustre.kernel start --foreground as our child, so that we see how it ends. */
async function startKernel(t: Test, nid: string, port: number, rundir: string): Promise<Kernel> {
  const child = spawn(process.execPath, [...toolCommand('lustre-kernel'), 'start', '--foreground', '--nid', nid, '--port', String(port), '--rundir', rundir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout!.resume();
  const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await until('the kernel answers', async () => (await lctl(rundir, ['dl'])).code === 0, 30_000);
  return { child, exit, stderr: () => stderr };
}

const lctl = (rundir: string, args: string[]): Promise<ToolResult> => runTool('lctl', args, { env: { LUSTRE_RUNDIR: rundir } });

async function mount(t: Test, rundir: string, device: string, options: string[] = []): Promise<void> {
  const r = await runTool('lustre-mount', [...options, device], { env: { LUSTRE_RUNDIR: rundir } });
  t.equal(r.code, 0, `lustre.mount ${device}`, { stderr: r.stderr });
}

/** Whether ROOT/name is on the device, read offline (the kernel is gone). */
async function onDevice(device: string, name: string): Promise<boolean> {
  const osd = await Osd.open(device);
  try {
    const root = (await osd.indexLookup(ROOT_INDEX_FID, 'ROOT'))!;
    return (await osd.indexLookup(root.fid, name)) !== undefined;
  } finally {
    await osd.close();
  }
}

async function setup(t: Test, fsname: string, host: number): Promise<{ port: number; nid: string; rundir: string; device: string; ni: LNetNI }> {
  const root = await mkdtemp(join(tmpdir(), 'failloc-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const port = await freePort();
  const device = join(root, 'mdt0');
  await formatTarget(device, { fsname, mgs: true, mdt: true, index: 0 });
  const ni = await LNetNI.start({ nid: `${NET}.${host + 1}@tcp`, port, warn: () => {} });
  t.teardown(() => ni.stop());
  return { port, nid: `${NET}.${host}@tcp`, rundir: join(root, 'run'), device, ni };
}

async function connectMdc(t: Test, ni: LNetNI, nid: string, fsname: string, clientUuid = `${fsname}-client`): Promise<Mdc> {
  const mdc = await Mdc.connect(ni, { nid, targetUuid: `${fsname}-MDT0000_UUID`, clientUuid, ...importOptions });
  t.teardown(() => Promise.race([mdc.disconnect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 500))]));
  return mdc;
}

t.test('lctl: fail_loc stops the kernel after a txg sync; it starts again on the device', async (t) => {
  const { port, nid, rundir, device, ni } = await setup(t, 'flc', 2);
  const k = await startKernel(t, nid, port, rundir);
  await mount(t, rundir, device);
  t.equal((await lctl(rundir, ['get_param', 'fail_loc', 'fail_val'])).stdout, 'fail_loc=0\nfail_val=0\n', 'off by default');
  const bad = await lctl(rundir, ['set_param', 'fail_loc=OBD_FAIL_NOPE']);
  t.not(bad.code, 0, 'an unknown point is refused');
  t.match(bad.stderr, /neither a number nor a fail point/);
  const list = await lctl(rundir, ['fail_loc', '--list']);
  t.match(list.stdout, /^0x3f02  OBD_FAIL_TXG_AFTER_SYNC_CRASH +crash /m, 'lctl fail_loc --list names the points');

  const mdc = await connectMdc(t, ni, nid, 'flc');
  const root = await mdc.root();
  await mdc.create(root, 'before', 0o644);
  // Armed only once everything so far is durable (connecting and 'before' wrote txgs).
  await until('every txg so far is durable', async () =>
    (await lctl(rundir, ['get_param', '-n', 'osd-txg.flc-MDT0000.txg_dirty_bytes'])).stdout === '0\n');
  const set = await lctl(rundir, ['set_param', `fail_loc=0x${FAIL.OBD_FAIL_TXG_AFTER_SYNC_CRASH!.toString(16)}`, 'fail_val=0']);
  t.equal(set.stdout, 'fail_loc=0x3f02\nfail_val=0\n', 'set_param prints what it set');
  t.equal((await lctl(rundir, ['get_param', '-n', 'fail_loc'])).stdout, `${0x3f02}\n`, 'get_param shows it, in decimal as Lustre');
  void mdc.create(root, 'crash', 0o644).catch(() => {});
  t.equal(await k.exit, 'SIGKILL', 'the kernel stopped itself with SIGKILL');
  t.match(k.stderr(), /cfs_fail_loc=3f02.*OBD_FAIL_TXG_AFTER_SYNC_CRASH/, 'saying why on stderr');
  t.ok(await onDevice(device, 'crash'), 'the update of the txg it stopped after is on the device');
  t.ok(await onDevice(device, 'before'));

  const again = await startKernel(t, nid, port, rundir);
  await mount(t, rundir, device);
  t.match((await lctl(rundir, ['dl'])).stdout, /UP mdt flc-MDT0000 /, 'the restarted kernel serves the device');
  t.equal((await lctl(rundir, ['get_param', '-n', 'fail_loc'])).stdout, '0\n', 'a new process starts disarmed');
  t.equal((await runTool('lustre-kernel', ['stop'], { env: { LUSTRE_RUNDIR: rundir } })).code, 0, 'and stops cleanly');
  t.equal(await again.exit, null);
});

t.test('lctl replay_barrier: a crash, or a clean umount, loses exactly the updates after the barrier', async (t) => {
  const { port, nid, rundir, device, ni } = await setup(t, 'flb', 5);
  const envOf = { env: { LUSTRE_RUNDIR: rundir } };
  // First ended by a clean umount: Lustre's device is read-only under a barrier, so the
  // umount keeps nothing after it either.
  const k = await startKernel(t, nid, port, rundir);
  await mount(t, rundir, device);
  const mdc = await connectMdc(t, ni, nid, 'flb');
  const root = await mdc.root();
  await mdc.create(root, 'kept', 0o644);
  const unknown = await lctl(rundir, ['replay_barrier', 'flb-MDT0009']);
  t.not(unknown.code, 0, 'a target not mounted is refused');
  t.match(unknown.stderr, /not a target mounted/);
  const barrier = await lctl(rundir, ['replay_barrier', 'flb-MDT0000']);
  t.match(barrier.stdout, /^flb-MDT0000: REPLAY BARRIER at txg \d+$/m, 'lctl replay_barrier reports the txg', { stderr: barrier.stderr });
  await mdc.create(root, 'lost', 0o644);
  await mdc.mkdir(root, 'lost-dir', 0o755);
  t.equal((await mdc.lookup(root, 'lost')).mode & 0o777, 0o644, 'updates after the barrier are answered and visible');
  // Let their txg go through the pipeline: without the barrier it would be written.
  await until('the txg of the updates went through the pipeline', async () =>
    (await lctl(rundir, ['get_param', '-n', 'osd-txg.flb-MDT0000.txg_dirty_bytes'])).stdout === '0\n');
  t.equal((await lctl(rundir, ['get_param', '-n', 'osd-txg.flb-MDT0000.txg_last_synced'])).stdout,
    barrier.stdout.replace(/.* txg (\d+)\n/s, '$1\n'), 'the last synced txg stays at the barrier');
  const umount = await runTool('lustre-umount', [device], envOf);
  t.equal(umount.code, 0, 'lustre.umount under a barrier', { stderr: umount.stderr, kernel: k.stderr().slice(-3000) });
  t.equal((await runTool('lustre-kernel', ['stop'], envOf)).code, 0);
  t.equal(await k.exit, null, 'the kernel stopped cleanly');
  t.ok(await onDevice(device, 'kept'), 'what came before the barrier is on the device');
  t.notOk(await onDevice(device, 'lost'), 'a create after it is not');
  t.notOk(await onDevice(device, 'lost-dir'), 'nor a mkdir');

  // Again, ended by a crash (the client of the first round is not waited for).
  const again = await startKernel(t, nid, port, rundir);
  await mount(t, rundir, device, ['-o', 'abort_recov']);
  t.match((await lctl(rundir, ['dl'])).stdout, /UP mdt flb-MDT0000 /, 'the device mounts again');
  const mdc2 = await connectMdc(t, ni, nid, 'flb', 'flb-client2');
  await mdc2.create(root, 'kept2', 0o644);
  t.equal((await lctl(rundir, ['replay_barrier', device])).code, 0, 'a barrier named by its device');
  await mdc2.create(root, 'lost2', 0o644);
  await until('the txg of the update went through the pipeline', async () =>
    (await lctl(rundir, ['get_param', '-n', 'osd-txg.flb-MDT0000.txg_dirty_bytes'])).stdout === '0\n');
  again.child.kill('SIGKILL');
  t.equal(await again.exit, 'SIGKILL');
  t.ok(await onDevice(device, 'kept2'), 'what came before the barrier is on the device');
  t.notOk(await onDevice(device, 'lost2'), 'a create after it is not, after a crash');
  t.ok(await onDevice(device, 'kept'));
});

t.test('ptlrpc fail points: a reply lost once is lost and counted once; the client resends', async (t) => {
  const registry = new FailLoc({ log: () => {} });
  const fp = serviceFailLoc('ost', registry);
  const port = await freePort();
  const server = await LNetNI.start({ nid: `${NET}.8@tcp`, port, warn: () => {} });
  const client = await LNetNI.start({ nid: `${NET}.9@tcp`, port, warn: () => {} });
  t.teardown(async () => { await client.stop(); await server.stop(); });
  let handled = 0;
  const ops = new Map<number, OpHandler<never>>([[Opcode.OST_GETATTR, { handle: () => ({ buffers: [Buffer.from(`n=${++handled}`)] }) }]]);
  const fastAt = { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 40 };
  const service = new Service(server, { name: 'ost', targetUuid: 'flp-OST0000_UUID', ...targetProfiles.ost, ops, at: fastAt, failLoc: fp });
  t.teardown(() => service.stop());
  const imp = await Import.connect(client, {
    target: { nid: server.nid, pid: server.pid }, targetUuid: 'flp-OST0000_UUID', clientUuid: 'flp-client', ...targetProfiles.ost,
    at: fastAt, initialEstimateMs: 100, pingIntervalMs: 0,
  });
  t.teardown(() => imp.disconnect());
  registry.set((CFS_FAIL_ONCE | FAIL.OBD_FAIL_OST_ALL_REPLY_NET!) >>> 0);
  const replies = [];
  for (let i = 0; i < 3; i++) replies.push((await imp.request(Opcode.OST_GETATTR, [])).buffers[0]!.toString());
  t.same(replies, ['n=2', 'n=3', 'n=4'], 'the first reply was lost: its resend ran the handler again');
  t.equal(fp.counters.repliesDropped, 1, 'one reply dropped');
  t.equal(registry.hits, 1, 'the point failed once');
  t.equal(imp.counters.resent, 1, 'the client resent once');
  t.equal(registry.loc & CFS_FAILED, CFS_FAILED, 'fail_loc shows CFS_FAILED, as lctl get_param would');
  registry.set(FAIL.OBD_FAIL_OST_ALL_REPLY_NET!);
  await imp.request(Opcode.OST_GETATTR, []);
  await imp.request(Opcode.OST_GETATTR, []);
  t.equal(fp.counters.repliesDropped, 2, 'a drop point is once even when armed without CFS_FAIL_ONCE (ORSET, as Lustre)');
  registry.set(0);
  await imp.ping();
  t.equal(fp.counters.repliesDropped, 2, 'disarmed: nothing more');
});
