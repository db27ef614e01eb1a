// The node daemon as an administrator drives it: three lustre.kernel processes on 127.0.0.2, .3
// and .4 (MGS+MDT, OST0000, OST0001), started, mounted, queried and stopped with the utilities;
// files written through the client modules from this process (127.0.0.5); lctl figures that
// move with the work; umount and mount again; a forced umount that evicts a connected client;
// a kernel killed with SIGKILL that starts again and serves; control requests that are
// malformed, of another version, from another user, or to no kernel at all.
import t from 'tap';
import { alive } from '../../src/control/rundir.js';
import { KERNEL_NODE_FLAGS, kernelExecArgv } from '../../src/control/kernel/daemon.js';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lov, Mdc, Mgc, Osc, type Raid0Layout } from '../../src/client/index.js';
import { raid0Of } from '../../src/client/file.js';
import { LNetNI } from '../../src/lnet/index.js';
import { formatTarget } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { patternBytes } from '../lib/prng.js';
import { runTool, type ToolResult } from '../lib/tools.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('three kernels: start, mount, lctl, umount/mount, forced umount, SIGKILL and stop', async (t) => {
  const port = await freePort();
  const root = await mkdtemp(join(tmpdir(), 'kernel-'));
  await chmod(root, 0o755); // the other-user check needs to reach the run dirs' parent
  const rd = (i: number): string => join(root, `k${i}`);
  const tool = (name: string, args: string[], i?: number): Promise<ToolResult> =>
    runTool(name, args, i === undefined ? {} : { env: { LUSTRE_RUNDIR: rd(i) } });
  const ok = (r: ToolResult, what: string): ToolResult => {
    t.equal(r.code, 0, what, { stderr: r.stderr, stdout: r.stdout });
    return r;
  };
  const metricsPort = await freePort();
  const startKernel = (i: number): Promise<ToolResult> =>
    tool('lustre-kernel', ['start', '--nid', `127.0.0.${i}@tcp`, '--port', String(port), '--rundir', rd(i),
      ...(i === 3 ? ['--metrics', `127.0.0.1:${metricsPort}`] : [])]);
  const pidOf = (i: number): number => Number(readFileSync(join(rd(i), 'kernel.pid'), 'utf8'));
  const closers: Array<() => Promise<void>> = [];
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    for (const i of [2, 3, 4]) {
      try { process.kill(pidOf(i), 'SIGKILL'); } catch { /* gone */ }
    }
    await rm(root, { recursive: true, force: true });
  });

  for (const i of [2, 3, 4]) ok(await startKernel(i), `lustre.kernel start on 127.0.0.${i}`);
  const second = await startKernel(2);
  t.not(second.code, 0, 'a second kernel on the same run dir is refused');
  t.match(second.stderr, /already runs on .*k2 \(pid \d+, nid 127\.0\.0\.2@tcp\)/, '... naming the one that runs');
  t.equal(pidOf(2) > 0 && alive(pidOf(2)), true, 'kernel.pid names a live process');
  const argv = readFileSync(`/proc/${pidOf(2)}/cmdline`, 'utf8').split('\0');
  for (const f of KERNEL_NODE_FLAGS) t.ok(argv.includes(f), `the kernel runs with ${f}`);
  t.same(kernelExecArgv(['--max-semi-space-size=16', '--inspect']), ['--max-semi-space-size=16', '--inspect'], 'a flag given already is kept, not doubled');

  await formatTarget(join(root, 'mdt0'), { fsname: 'kern', mgs: true, mdt: true, index: 0 });
  for (const o of [0, 1]) await formatTarget(join(root, `ost${o}`), { fsname: 'kern', ost: true, index: o, mgsNids: ['127.0.0.2@tcp'] });
  ok(await tool('lustre-mount', [join(root, 'mdt0')], 2), 'lustre.mount of the MGS+MDT');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'lustre.mount of OST0000');
  ok(await tool('lustre-mount', [join(root, 'ost1')], 4), 'lustre.mount of OST0001');
  const again = await tool('lustre-mount', [join(root, 'ost1')], 4);
  t.match(again, { code: 1, stderr: /already mounted/ }, 'mounting a mounted device says so');
  const badOption = await tool('lustre-mount', ['-o', 'nosuch', join(root, 'ost1')], 4);
  t.match(badOption.stderr, /unknown mount option 'nosuch'/, 'an unknown mount option is named');

  const dl = ok(await tool('lctl', ['dl'], 2), 'lctl dl').stdout;
  t.match(dl, /^\s*\d+ UP mgs MGS /m, 'lctl dl lists the MGS');
  t.match(dl, /^\s*\d+ UP mdt kern-MDT0000 kern-MDT0000_UUID \d+$/m, 'lctl dl lists the MDT');
  t.match(ok(await tool('lctl', ['dl'], 3), 'lctl dl on the OSS').stdout, /UP obdfilter kern-OST0000 kern-OST0000_UUID/, 'lctl dl lists OST0000');

  // A client in this process: configuration from the MGS, then the MDC and an OSC per OST.
  const ni = await LNetNI.start({ nid: '127.0.0.5@tcp', port, warn: () => {} });
  closers.push(() => ni.stop());
  const importOptions = { requestDeadlineMs: 4_000, connectDeadlineMs: 4_000, reconnectBackoffMaxMs: 200 };
  const mgc = await Mgc.connect(ni, { mgsNids: ['127.0.0.2@tcp'], clientUuid: 'kernel-client' });
  closers.push(() => mgc.close());
  const config = await mgc.readConfig('kern');
  const mdtInfo = config.mdts.get(0)!;
  const mdc = await Mdc.connect(ni, { nid: mdtInfo.nids[0]!, targetUuid: mdtInfo.uuid, clientUuid: 'kernel-client' });
  closers.push(() => mdc.disconnect());
  const oscs = new Map<number, Osc>();
  const connectOsc = async (index: number): Promise<Osc> => {
    const info = config.osts.get(index)!;
    const osc = await Osc.connect(ni, { nid: info.nids[0]!, targetUuid: info.uuid, clientUuid: 'kernel-client', importOptions });
    oscs.set(index, osc);
    closers.push(() => osc.disconnect());
    return osc;
  };
  for (const index of config.osts.keys()) await connectOsc(index);
  t.same([...oscs.keys()].sort(), [0, 1], 'the client log names both OSTs');
  const lov = new Lov(oscs);
  const layoutOf = async (fid: Parameters<Mdc['getLayout']>[0]): Promise<Raid0Layout> => raid0Of((await mdc.getLayout(fid))!)!;
  const rootFid = await mdc.root();
  await until('the MDT connected to both OSTs', async () => {
    for (const i of [3, 4]) {
      const s = await tool('lustre-kernel', ['status', '--json'], i);
      if (s.code !== 0 || !s.stdout.includes('kern-MDT0000-mdtlov_UUID')) return false;
    }
    return true;
  }, 30_000);

  const statsBefore = ok(await tool('lctl', ['get_param', 'obdfilter.kern-OST0000.stats'], 3), 'get_param obdfilter stats').stdout;
  // -R, as Lustre's: everything below the directories named.
  const listed = ok(await tool('lctl', ['list_param', '-R', 'obdfilter.kern-OST0000'], 3), 'list_param -R').stdout.split('\n');
  t.ok(listed.includes('obdfilter.kern-OST0000.kbytesavail') && listed.includes('obdfilter.kern-OST0000.stats'), 'list_param -R lists the parameters below');
  t.match(ok(await tool('lctl', ['get_param', '-R', 'obdfilter.kern-OST0000'], 3), 'get_param -R').stdout, /^obdfilter\.kern-OST0000\.kbytesavail=\d+$/m);
  const files: Array<{ name: string; digest: string; size: number; layout: Raid0Layout }> = [];
  for (const [i, size] of [300_000, 2_000_000, 70_000].entries()) {
    const attr = await mdc.create(rootFid, `f${i}`, 0o644, { stripeCount: -1, stripeSize: 64 * 1024 });
    const layout = await layoutOf(attr.fid);
    const data = patternBytes(1000 + i, size);
    await lov.write(layout, 0, data);
    await lov.sync(layout);
    files.push({ name: `f${i}`, digest: sha(data), size, layout });
  }
  const readAll = async (): Promise<void> => {
    for (const f of files) {
      const back = await lov.read(f.layout, 0, f.size);
      t.equal(sha(back), f.digest, `${f.name} reads back as written`);
    }
  };
  await readAll();
  const statsAfter = ok(await tool('lctl', ['get_param', 'obdfilter.kern-OST0000.stats'], 3), 'get_param obdfilter stats again').stdout;
  const written = (s: string): number => Number(/^write_bytes\s+\d+ samples \[bytes\] \d+ \d+ (\d+)/m.exec(s)?.[1] ?? 0);
  t.ok(written(statsAfter) > written(statsBefore), 'obdfilter write_bytes grew with the writes', { statsBefore, statsAfter });
  const md = ok(await tool('lctl', ['get_param', '-n', 'mdt.*.md_stats'], 2), 'get_param md_stats').stdout;
  t.match(md, /^(open|mknod|create)\s+\d+ samples/m, 'md_stats counts the creates');
  const free = ok(await tool('lctl', ['get_param', '-n', 'osd-*.*.kbytesfree'], 3), 'get_param kbytesfree').stdout.trim();
  t.match(free, /^\d+$/, 'osd-*.*.kbytesfree is a number');
  const exportsOst0 = ok(await tool('lctl', ['get_param', 'obdfilter.*.exports.127.0.0.5@tcp.stats'], 3), 'per-export stats').stdout;
  t.match(exportsOst0, /exports\.127\.0\.0\.5@tcp\.stats=/, "the client's export is listed by its NID");
  const recovery = ok(await tool('lctl', ['get_param', '*.*.recovery_status'], 2), 'recovery_status').stdout;
  t.match(recovery, /status: /, 'recovery_status has a status line');
  const status = JSON.parse(ok(await tool('lustre-kernel', ['status', '--json'], 3), 'lustre.kernel status').stdout) as {
    nid: string; devices: Array<{ svname: string; clients: Array<{ uuid: string }> }>;
  };
  t.equal(status.nid, '127.0.0.3@tcp', 'status names the NID');
  t.ok(status.devices[0]!.clients.some((c) => c.uuid === 'kernel-client'), 'status lists the connected client');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  t.match(metrics, /^lustre_write_bytes_total\{[^}]*target="kern-OST0000"[^}]*\} [1-9]/m, 'Prometheus: lustre_write_bytes_total of OST0000');
  t.match(metrics, /^lustre_free_kilobytes\{[^}]*\} \d+/m, 'Prometheus: lustre_free_kilobytes');
  const setDebug = ok(await tool('lctl', ['set_param', 'debug=debug'], 3), 'set_param debug');
  t.match(setDebug.stdout, /^debug=debug$/m, 'set_param echoes what it set');
  t.match(ok(await tool('lctl', ['dk'], 3), 'lctl dk').stdout, /kern-OST0000|ost/i, 'the debug log holds the OST\'s lines');

  // A clean umount and mount again keep every committed file.
  ok(await tool('lustre-umount', [join(root, 'ost0')], 3), 'lustre.umount of OST0000');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'lustre.mount of OST0000 again');
  // The target expects its clients back (recovery): this client's imports reconnect by themselves.
  const recovered = (what: string) => until(what, async () =>
    /^status: COMPLETE$/m.test(ok(await tool('lctl', ['get_param', '-n', 'obdfilter.kern-OST0000.recovery_status'], 3), 'recovery_status').stdout), 30_000);
  await recovered('OST0000 recovered its clients after the umount');
  t.match(ok(await tool('lctl', ['get_param', '-n', 'obdfilter.kern-OST0000.recovery_status'], 3), 'recovery_status').stdout,
    /^completed_clients: (\d+)\/\1$/m, 'every client came back');
  await readAll();

  // A forced umount evicts the connected client at once; the client gets an error, not a hang.
  const forced = ok(await tool('lustre-umount', ['--force', 'kern-OST0001'], 4), 'lustre.umount --force of OST0001');
  t.match(forced.stdout, /forced: [1-9]\d* client\(s\) evicted/, 'the forced umount evicted the client');
  const started = Date.now();
  const failed = await lov.read(files[1]!.layout, 0, files[1]!.size).then(() => undefined, (err: Error) => err);
  t.ok(failed instanceof Error, `the client's read of an evicted target fails (${failed?.message}) after ${Date.now() - started} ms`);
  ok(await tool('lustre-mount', [join(root, 'ost1')], 4), 'lustre.mount of OST0001 again');
  await oscs.get(1)!.disconnect().catch(() => {});
  await connectOsc(1);

  // A kernel killed with SIGKILL starts again, mounts its device and serves what was committed.
  const killed = pidOf(3);
  process.kill(killed, 'SIGKILL');
  await until('the killed kernel is gone', () => !alive(killed));
  ok(await startKernel(3), 'lustre.kernel start after SIGKILL (stale pid file and socket)');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'lustre.mount of OST0000 after the crash');
  await recovered('OST0000 recovered its clients after the crash');
  await readAll();

  // Control requests that are wrong in each way get a clear answer.
  const none = await runTool('lctl', ['dl'], { env: { LUSTRE_RUNDIR: join(root, 'nowhere') } });
  t.match(none, { code: 1, stderr: /no lustre\.kernel is running on .*nowhere; start one with: lustre\.kernel start/ }, 'no kernel: says so and how to start one');
  const raw = (line: string): Promise<string[]> => new Promise((resolve, reject) => {
    const s = connect(join(rd(2), 'control.sock'));
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (got.split('\n').length > 2) s.end();
    });
    s.on('error', reject);
    s.on('close', () => resolve(got.split('\n').filter((x) => x)));
    s.write(line);
    setTimeout(() => s.end(), 2000);
  });
  const garbage = await raw('this is not json\n');
  t.match(JSON.parse(garbage[0]!), { id: 0, ok: false, error: { code: 'EPROTO', message: /not JSON/ } }, 'a line that is not JSON: EPROTO');
  const future = await raw(JSON.stringify({ magic: 'lustre.control', version: 99, id: 7, op: 'dl', args: {} }) + '\n' +
    JSON.stringify({ magic: 'lustre.control', version: 1, id: 8, op: 'ping', args: {} }) + '\n');
  t.match(JSON.parse(future[0]!), { id: 7, ok: false, error: { code: 'EPROTO', message: /version 99 is not this kernel's \(1\)/ } }, 'another version: EPROTO naming both');
  t.match(JSON.parse(future[1]!), { id: 8, ok: true, result: { nid: '127.0.0.2@tcp' } }, 'the same connection still answers');
  const unknownOp = await raw(JSON.stringify({ magic: 'lustre.control', version: 1, id: 9, op: 'format_everything', args: {} }) + '\n');
  t.match(JSON.parse(unknownOp[0]!), { id: 9, ok: false, error: { code: 'EOPNOTSUPP' } }, 'an unknown operation is named');
  t.match(ok(await tool('lctl', ['dl'], 2), 'the kernel serves after bad requests').stdout, /mdt kern-MDT0000/, '... with its devices');

  // Only the owner may control the kernel: another user cannot even reach the socket.
  if (process.getuid?.() === 0) {
    const other = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e',
        `require('net').connect(${JSON.stringify(join(rd(2), 'control.sock'))}).on('connect', () => { console.log('CONNECTED'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`],
      { uid: 65534, gid: 65534 });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.on('close', () => resolve(out.trim()));
    });
    t.equal(other, 'EACCES', 'a process of another user is refused by the socket (EACCES)');
  } else {
    t.comment('not root: the other-user check needs to switch uid');
  }

  // SIGTERM is a stop: the devices are unmounted and the pid file removed.
  const pid4 = pidOf(4);
  process.kill(pid4, 'SIGTERM');
  await until('the kernel stopped on SIGTERM', () => !alive(pid4), 60_000);
  t.throws(() => pidOf(4), { code: 'ENOENT' }, 'SIGTERM: the kernel removed its pid file');
  t.match(readFileSync(join(rd(4), 'kernel.log'), 'utf8'), /SIGTERM: stopping[\s\S]*unmounted .*ost1/, 'SIGTERM: the log shows the device unmounted');

  for (const i of [2, 3]) {
    const pid = pidOf(i);
    const stop = ok(await tool('lustre-kernel', ['stop', '--rundir', rd(i)]), `lustre.kernel stop on 127.0.0.${i}`);
    t.match(stop.stdout, /stopped; unmounted kern-/, '... unmounting its device');
    t.notOk(alive(pid), '... and its process is gone');
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, '... reaped too, not left a zombie (kill -0 fails once stop returns)');
  }
});
