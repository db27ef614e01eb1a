// A client mount in a process of its own (a client kernel), as an administrator drives it with
// the utilities: three lustre.kernel processes on 127.0.0.2, .3 and .4 (MGS+MDT, OST0000,
// OST0001); lustre.mount from the node 127.0.0.4 starts a client kernel there that shares the
// node's NID as a user process (and talks to the OST of its own node's kernel); lfs, lctl and
// lustre.kernel status find it; the node's kernel is killed with SIGKILL and the mount goes on
// reading and writing, and reaches that node again once its kernel is back; lustre.umount ends
// the client kernel. A client kernel whose mount is
// unmounted from outside (umount -l) exits by itself, and lustre.kernel stop stops a node's
// client kernels with it.
import t from 'tap';
import { alive } from '../../src/control/rundir.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTarget } from '../../src/services/target/index.js';
import { clientRundir } from '../../src/control/rundir.js';
import { fuseAvailable } from '../lib/cluster.js';
import { freePort, until } from '../lib/net.js';
import { patternBytes } from '../lib/prng.js';
import { runTool, type ToolResult } from '../lib/tools.js';

const mounted = (path: string): boolean => readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);
/** Session id and process group of a process (fields 6 and 5 of /proc/PID/stat). */
const sessionOf = (pid: number): { pgrp: number; session: number } => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(fields[2]), session: Number(fields[3]) };
};

t.test('a client mount outlives the node kernel that launched it', { skip: !fuseAvailable() && 'needs FUSE (root and /dev/fuse)' }, async (t) => {
  const port = await freePort();
  const root = await mkdtemp(join(tmpdir(), 'cproc-'));
  const rd = (i: number): string => join(root, `k${i}`);
  const tool = (name: string, args: string[], i?: number): Promise<ToolResult> =>
    runTool(name, args, i === undefined ? {} : { env: { LUSTRE_RUNDIR: rd(i) } });
  const ok = (r: ToolResult, what: string): ToolResult => {
    t.equal(r.code, 0, what, { stderr: r.stderr, stdout: r.stdout });
    return r;
  };
  const pidIn = (rundir: string): number => Number(readFileSync(join(rundir, 'kernel.pid'), 'utf8'));
  const pids: number[] = [];
  const mnts: string[] = [];
  t.teardown(async () => {
    for (const m of mnts) if (mounted(m)) try { execFileSync('umount', ['-l', m]); } catch { /* gone */ }
    for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await rm(root, { recursive: true, force: true });
  });

  for (const i of [2, 3, 4]) {
    ok(await tool('lustre-kernel', ['start', '--nid', `127.0.0.${i}@tcp`, '--port', String(port), '--rundir', rd(i)]), `lustre.kernel start on 127.0.0.${i}`);
    pids.push(pidIn(rd(i)));
  }
  await formatTarget(join(root, 'mdt0'), { fsname: 'cproc', mgs: true, mdt: true, index: 0 });
  for (const o of [0, 1]) await formatTarget(join(root, `ost${o}`), { fsname: 'cproc', ost: true, index: o, mgsNids: ['127.0.0.2@tcp'] });
  ok(await tool('lustre-mount', [join(root, 'mdt0')], 2), 'mount the MGS+MDT on 127.0.0.2');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'mount OST0000 on 127.0.0.3');
  ok(await tool('lustre-mount', [join(root, 'ost1')], 4), 'mount OST0001 on 127.0.0.4');

  // The client, launched from the node 127.0.0.4.
  const mnt = join(root, 'mnt');
  await mkdir(mnt);
  mnts.push(mnt);
  const crd = clientRundir(rd(4), mnt);
  const m = ok(await tool('lustre-mount', ['127.0.0.2@tcp:/cproc', mnt], 4), 'lustre.mount of the client');
  t.match(m.stdout, new RegExp(`mounted 127\\.0\\.0\\.2@tcp:/cproc at ${mnt} \\(client kernel pid \\d+, run dir ${crd}\\)`));
  const clientPid = pidIn(crd);
  pids.push(clientPid);
  const kernel4 = pidIn(rd(4));
  t.not(clientPid, kernel4, 'the client runs in a process of its own');
  t.equal(sessionOf(clientPid).session, clientPid, '... the leader of its own session (no terminal, no tie to lustre.mount)');
  t.ok(mounted(mnt), 'the mount point is mounted');
  const again = await tool('lustre-mount', ['127.0.0.2@tcp:/cproc', mnt], 4);
  t.match(again, { code: 1, stderr: /already a Lustre client mount \(client kernel pid \d+/ }, 'mounting it twice is refused, naming the client kernel');
  t.match(readFileSync(join(crd, 'kernel.log'), 'utf8'), `client kernel): LNet 127.0.0.4@tcp pid ${(0x80000000 | clientPid) >>> 0}, no acceptor`,
    'its LNet is a user process of the node\'s NID (LNET_PID_USERFLAG | its pid)');

  // One directory on each OST: OST0001 is the kernel of the client's own node (same NID).
  for (const i of [0, 1]) {
    await mkdir(join(mnt, `on${i}`));
    ok(await tool('lfs', ['setstripe', '-c', '1', '-i', String(i), join(mnt, `on${i}`)], 4), `lfs setstripe -i ${i} (LUSTRE_RUNDIR names the node: the registry wins for a path)`);
  }
  const data = patternBytes(7, 3 << 20);
  await writeFile(join(mnt, 'on1/f'), data);
  await writeFile(join(mnt, 'on0/f'), data);
  t.ok((await readFile(join(mnt, 'on1/f'))).equals(data), 'a file on the OST of the client\'s own node reads back');
  t.ok((await readFile(join(mnt, 'on0/f'))).equals(data), 'a file on the other OST reads back');
  t.match(ok(await tool('lfs', ['getstripe', join(mnt, 'on1/f')]), 'lfs getstripe').stdout, /obdidx[\s\S]*^\s+1\s/m, 'lfs getstripe shows OST0001');
  t.match(ok(await tool('lctl', ['--rundir', crd, 'get_param', 'llite.*.*']), 'lctl get_param llite.* on the client kernel').stdout, /^llite\./m);
  t.match(ok(await tool('lustre-kernel', ['status', '--rundir', rd(4)]), 'lustre.kernel status').stdout,
    new RegExp(`client 127\\.0\\.0\\.2@tcp:/cproc at ${mnt}  client kernel pid ${clientPid}, run dir ${crd}`), 'status lists the node\'s client kernel');
  const dl = ok(await tool('lctl', ['dl'], 4), 'lctl dl on the node').stdout;
  t.notMatch(dl, /llite|osc/, 'the node kernel hosts no client');

  // The node's kernel dies; the client goes on, reading and writing through the MDT and OST0000.
  process.kill(kernel4, 'SIGKILL');
  await until('the node kernel to die', () => !alive(kernel4), 10_000);
  t.ok(alive(clientPid), 'the client kernel outlived its node\'s kernel');
  t.ok((await readFile(join(mnt, 'on0/f'))).equals(data), 'the mount still reads');
  const later = patternBytes(8, 1 << 20);
  await writeFile(join(mnt, 'on0/after'), later);
  await mkdir(join(mnt, 'on0/d'));
  t.ok((await readFile(join(mnt, 'on0/after'))).equals(later), 'and writes');
  t.same((await readdir(join(mnt, 'on0'))).sort(), ['after', 'd', 'f']);

  // The node's kernel comes back (as after a crash): the user process reconnects to it on its own NID.
  ok(await tool('lustre-kernel', ['start', '--nid', '127.0.0.4@tcp', '--port', String(port), '--rundir', rd(4)]), 'lustre.kernel start again on 127.0.0.4');
  pids.push(pidIn(rd(4)));
  ok(await tool('lustre-mount', [join(root, 'ost1')], 4), 'mount OST0001 again');
  t.ok((await readFile(join(mnt, 'on1/f'))).equals(data), 'the file on the restarted node\'s OST reads back');
  t.ok(alive(clientPid), 'the client kernel kept running throughout');

  // lustre.umount finds the client kernel through the registry.
  const u = ok(await tool('lustre-umount', [mnt], 4), 'lustre.umount of the client mount');
  t.match(u.stdout, `unmounted 127.0.0.2@tcp:/cproc from ${mnt}`);
  t.notOk(alive(clientPid), 'the client kernel is gone');
  t.notOk(mounted(mnt), 'the mount point is unmounted');
  t.notOk(existsSync(join(crd, 'kernel.pid')), 'its pid file is removed');
  t.notMatch(readFileSync(join(crd, 'kernel.log'), 'utf8'), /config log watch .* ended/, 'its MGC watched the config log all along (its client uuid fits an obd_uuid)');

  // A mount unmounted from outside: its client kernel exits by itself.
  const mnt2 = join(root, 'mnt2');
  await mkdir(mnt2);
  mnts.push(mnt2);
  ok(await tool('lustre-mount', ['127.0.0.2@tcp:/cproc', mnt2], 3), 'a client from 127.0.0.3');
  const pid2 = pidIn(clientRundir(rd(3), mnt2));
  pids.push(pid2);
  t.ok((await readFile(join(mnt2, 'on0/after'))).equals(later), 'it sees what the first client wrote');
  execFileSync('umount', ['-l', mnt2]);
  await until('the client kernel to exit once its mount is gone', () => !alive(pid2), 30_000);
  t.pass('umount -l from outside: the client kernel exited by itself');

  // lustre.kernel stop stops the node's client kernels too.
  const mnt3 = join(root, 'mnt3');
  await mkdir(mnt3);
  mnts.push(mnt3);
  ok(await tool('lustre-mount', ['127.0.0.2@tcp:/cproc', mnt3], 3), 'another client from 127.0.0.3');
  const pid3 = pidIn(clientRundir(rd(3), mnt3));
  pids.push(pid3);
  const kernel3 = pidIn(rd(3));
  const stop = ok(await tool('lustre-kernel', ['stop', '--rundir', rd(3)]), 'lustre.kernel stop on 127.0.0.3');
  t.match(stop.stdout, /stopped 1 client kernel\(s\)[\s\S]*lustre\.kernel \(pid \d+\) stopped; unmounted cproc-OST0000/);
  t.notOk(alive(pid3) || alive(kernel3), 'the client kernel and the node kernel are gone');
  t.notOk(mounted(mnt3), 'its mount point is unmounted');
  ok(await tool('lustre-kernel', ['stop', '--rundir', rd(2)]), 'lustre.kernel stop on 127.0.0.2');
});
