// Recovery across a real crash (replay-single in Lustre's test suite): the MGS+MDT runs in its
// own lustre.kernel process (127.0.0.2), an OST in another (127.0.0.3), clients in this process
// (127.0.0.5). Commits of the MDT are held back (txg_timeout 600 s), each kind of update is made
// and answered, the MDT's kernel is killed with SIGKILL, started again and the device mounted:
// the target recovers, the client replays what the crash lost, and every update is there once.
// Then: a client that does not come back is evicted when the window closes while another
// recovers (replay-dual), and abort_recov evicts everyone (their uncommitted work is gone).
import t, { type Test } from 'tap';
import { alive } from '../../src/control/rundir.js';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, type FileSystem } from '../../src/client/index.js';
import { dirtyBufferPool } from '../../src/client/extents.js';
import { LNetNI } from '../../src/lnet/index.js';
import { formatTarget } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { runTool, type ToolResult } from '../lib/tools.js';

interface Rig {
  root: string;
  port: number;
  tool(name: string, args: string[], k: number): Promise<ToolResult>;
  ok(r: ToolResult, what: string): ToolResult;
  param(name: string, k?: number): Promise<string>;
  /** SIGKILL of the MDT's kernel, then start and mount again (with mount options). */
  crashMdt(options?: string): Promise<void>;
  /** The same for the OST's kernel. */
  crashOst(options?: string): Promise<void>;
  /** SIGKILL of the MDT's kernel, started again without mounting its device. */
  killMdt(): Promise<void>;
  mountMdt(options?: string): Promise<void>;
  client(uuid: string): Promise<{ fs: FileSystem; ni: LNetNI }>;
}

async function rig(t: Test, fsname: string): Promise<Rig> {
  const port = await freePort();
  const root = await mkdtemp(join(tmpdir(), 'recovery-'));
  const rd = (k: number) => join(root, `k${k}`);
  const pidOf = (k: number) => Number(readFileSync(join(rd(k), 'kernel.pid'), 'utf8'));
  const closers: Array<() => Promise<unknown>> = [];
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    for (const k of [2, 3]) {
      try { process.kill(pidOf(k), 'SIGKILL'); } catch { /* gone */ }
    }
    await rm(root, { recursive: true, force: true });
  });
  const tool = (name: string, args: string[], k: number) => runTool(name, args, { env: { LUSTRE_RUNDIR: rd(k) } });
  const ok = (r: ToolResult, what: string): ToolResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  };
  const start = async (k: number) => ok(await tool('lustre-kernel', ['start', '--nid', `127.0.0.${k}@tcp`, '--port', String(port), '--rundir', rd(k)], k), `kernel ${k}`);
  await start(2);
  await start(3);
  await formatTarget(join(root, 'mdt0'), { fsname, mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname, ost: true, index: 0, mgsNids: ['127.0.0.2@tcp'] });
  ok(await tool('lustre-mount', [join(root, 'mdt0')], 2), 'mount mdt0');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'mount ost0');
  const kill = async (k: number) => {
    process.kill(pidOf(k), 'SIGKILL');
    await until(`kernel ${k} is gone`, () => {
      return !alive(pidOf(k));
    });
  };
  const crash = async (k: number, device: string, options?: string) => {
    await kill(k);
    await start(k);
    ok(await tool('lustre-mount', [...(options ? ['-o', options] : []), join(root, device)], k), `mount ${device} again`);
  };
  let n = 5;
  return {
    root, port, tool, ok,
    async param(name, k = 2) {
      return ok(await tool('lctl', ['get_param', '-n', name], k), `get_param ${name}`).stdout.trim();
    },
    async crashMdt(options) {
      await crash(2, 'mdt0', options);
    },
    async crashOst(options) {
      await crash(3, 'ost0', options);
    },
    async killMdt() {
      await kill(2);
      await start(2);
    },
    async mountMdt(options) {
      ok(await tool('lustre-mount', [...(options ? ['-o', options] : []), join(root, 'mdt0')], 2), 'mount mdt0 again');
    },
    async client(uuid) {
      const ni = await LNetNI.start({ nid: `127.0.0.${n++}@tcp`, port, warn: () => {} });
      closers.push(() => ni.stop());
      const fs = await mount(`127.0.0.2@tcp:/${fsname}`, { ni, clientUuid: uuid, requestDeadlineMs: 120_000, connectDeadlineMs: 60_000 });
      closers.unshift(() => fs.umount({ force: true }));
      return { fs, ni };
    },
  };
}

/** Retries `op` until it succeeds: an evicted client's first requests fail, later ones work. */
function worksAgain(who: string, op: () => Promise<unknown>): Promise<void> {
  return until(`${who} works again`, () => op().then(() => true, () => false), 30_000);
}

/** Holds a target's commits back once what is there is on disk (kernel 2: the MDT, 3: the OST). */
async function holdCommits(r: Rig, k = 2): Promise<void> {
  // Everything is on disk when only the open txg is left and nothing is in it.
  await until('the setup is committed', async () => {
    const open = Number(await r.param('osd-txg.*.txg_open', k));
    const synced = Number(await r.param('osd-txg.*.txg_last_synced', k));
    return synced >= open - 1 && Number(await r.param('osd-txg.*.txg_dirty_bytes', k)) === 0;
  }, 30_000);
  r.ok(await r.tool('lctl', ['set_param', 'osd-txg.*.txg_timeout=600'], k), 'txg_timeout 600');
}

t.test('each kind of update is replayed across an MDT crash after its reply, before its commit', async (t) => {
  const r = await rig(t, 'rsingle');
  const { fs } = await r.client('rsingle-client-a');
  await fs.mkdir('/d');
  for (const f of ['old', 'ren', 'attr', 'trunc']) await fs.writeFile(`/d/${f}`, `${f} content`);
  await fs.mkdir('/d/oldDir');
  await holdCommits(r);

  // Each answered, none committed.
  await fs.mkdir('/d/newDir');
  await fs.unlink('/d/old');
  await fs.rmdir('/d/oldDir');
  await fs.rename('/d/ren', '/d/ren2');
  await fs.chmod('/d/attr', 0o600);
  await fs.link('/d/attr', '/d/attr-link');
  await fs.symlink('attr', '/d/sym');
  await fs.setxattr('/d/attr', 'user.k', 'v1');
  await fs.truncate('/d/trunc', 3);
  await fs.writeFile('/d/new', 'written before the crash'); // open(O_CREAT)-write-close
  const held = await fs.open('/d/held', 'w+'); // open across the crash, closed after it

  // What the client keeps for replay: answered, not committed (the txg holding the first of
  // them may have been closing when commits were held back).
  const pending = fs.mdc.import.replayList.size;
  t.ok(pending >= 6, `the client keeps ${pending} uncommitted updates`);
  await r.crashMdt();
  // The client replays on its own; its next request waits for the end of recovery.
  t.same((await fs.readdir('/d')).sort(), ['attr', 'attr-link', 'held', 'new', 'newDir', 'ren2', 'sym', 'trunc'], 'the namespace after replay');
  const status = await r.param('mdt.*.recovery_status');
  t.match(status, /^status: COMPLETE$/m, 'recovery completed');
  t.match(status, /^completed_clients: 1\/1$/m, 'the client recovered');
  const replayed = Number(/^replayed_requests: (\d+)$/m.exec(status)?.[1]);
  t.ok(replayed >= pending, `every one was replayed (${replayed} replayed)`);
  await held.write(Buffer.from('after the crash'));
  await held.close();

  // What a client that comes afterwards sees is the server's state.
  const { fs: other } = await r.client('rsingle-client-b');
  t.equal(await other.readFile('/d/new', 'utf8'), 'written before the crash', 'the created file has its data (same FID, same objects)');
  t.equal(await other.readFile('/d/ren2', 'utf8'), 'ren content', 'rename');
  t.equal((await other.stat('/d/attr')).mode & 0o777, 0o600, 'setattr');
  t.equal((await other.stat('/d/attr')).nlink, 2, 'link');
  t.equal(await other.readlink('/d/sym'), 'attr', 'symlink');
  t.equal((await other.getxattr('/d/attr', 'user.k')).toString(), 'v1', 'setxattr');
  t.equal(await other.readFile('/d/trunc', 'utf8'), 'tru', 'truncate');
  t.equal(await other.readFile('/d/held', 'utf8'), 'after the crash', 'the handle held across the crash still writes');
  t.equal((await other.stat('/d/newDir')).isDirectory(), true, 'mkdir');
  await t.rejects(other.stat('/d/old'), { code: 'ENOENT' }, 'unlink');
  // A new file after recovery gets a FID and objects of its own (none handed out twice).
  await fs.writeFile('/d/after', 'after');
  t.equal(await other.readFile('/d/after', 'utf8'), 'after', 'a create after recovery');
  t.equal(await other.readFile('/d/new', 'utf8'), 'written before the crash', '... left the replayed file alone');
});

t.test('a client that does not come back is evicted when the window closes; the other keeps its work', async (t) => {
  const r = await rig(t, 'rdual');
  const a = await r.client('rdual-client-a');
  const b = await r.client('rdual-client-b');
  await a.fs.mkdir('/a');
  await b.fs.mkdir('/b');
  await holdCommits(r);
  await a.fs.writeFile('/a/kept', 'a');
  await b.fs.writeFile('/b/lost', 'b');
  await b.ni.stop(); // b is gone: it will not reconnect
  await r.crashMdt('recovery_time_soft=12,recovery_time_hard=30');
  t.equal(await a.fs.readFile('/a/kept', 'utf8'), 'a', 'the client that came back kept its work');
  const status = await r.param('mdt.*.recovery_status');
  t.match(status, /^status: COMPLETE$/m, 'recovery completed when the window closed');
  t.match(status, /^completed_clients: 1\/2$/m, 'one of two clients recovered, the other was evicted');
  t.same(await a.fs.readdir('/b'), [], 'the evicted client\'s uncommitted create is gone');
});

t.test('abort_recov: nobody is recovered; a client learns it was evicted and goes on', async (t) => {
  const r = await rig(t, 'rabort');
  const { fs } = await r.client('rabort-client');
  await fs.mkdir('/d');
  await holdCommits(r);
  await fs.mkdir('/d/lost');
  await r.crashMdt('abort_recov');
  t.match(await r.param('mdt.*.recovery_status'), /^status: INACTIVE$/m, 'no recovery');
  // The first requests may fail while the client learns of its eviction; then it works again.
  await worksAgain('the client', () => fs.mkdir('/d/again'));
  t.same((await fs.readdir('/d')).sort(), ['again'], 'the uncommitted mkdir is gone, the new one is there');
});

t.test('request loss and reply loss of each kind of update: resent, executed once', async (t) => {
  const r = await rig(t, 'rloss');
  const { fs: setup } = await r.client('rloss-setup');
  await setup.mkdir('/d');
  for (const f of ['u1', 'u2', 'ren1', 'ren2', 'attr', 'trunc']) await setup.writeFile(`/d/${f}`, `${f} content`);
  await setup.mkdir('/d/rm1');
  await setup.mkdir('/d/rm2');
  // Each update twice: once its request is lost, once its reply (the MDT executed it and
  // answers the resend from its reply record: a second execution would fail, EEXIST or ENOENT).
  // Each loss costs the client an attempt timeout, and each makes its next timeouts longer
  // (adaptive timeouts): one client per loss keeps the test short.
  const updates: Array<[string, (fs: FileSystem, i: number) => Promise<unknown>]> = [
    ['create', (fs, i) => fs.writeFile(`/d/new${i}`, `new ${i}`, { flag: 'wx' })],
    ['mkdir', (fs, i) => fs.mkdir(`/d/dir${i}`)],
    ['unlink', (fs, i) => fs.unlink(`/d/u${i}`)],
    ['rmdir', (fs, i) => fs.rmdir(`/d/rm${i}`)],
    ['rename', (fs, i) => fs.rename(`/d/ren${i}`, `/d/renamed${i}`)],
    ['setattr', (fs, i) => fs.chmod('/d/attr', i === 1 ? 0o640 : 0o600)],
    ['link', (fs, i) => fs.link('/d/attr', `/d/link${i}`)],
    ['symlink', (fs, i) => fs.symlink('attr', `/d/sym${i}`)],
    ['setxattr', (fs, i) => fs.setxattr('/d/attr', `user.k${i}`, `v${i}`, 1 /* XATTR_CREATE */)],
    ['truncate', (fs, i) => fs.truncate('/d/trunc', i)],
  ];
  for (const [what, loc] of [['request', '0x123'], ['reply', '0x122']] as const) {
    const i = what === 'request' ? 1 : 2;
    for (const [name, op] of updates) {
      const { fs } = await r.client(`rloss-${what}-${name}`);
      r.ok(await r.tool('lctl', ['set_param', `fail_loc=${loc}`], 2), `arm ${loc}`);
      await op(fs, i);
      // A drop point fails once and then reads CFS_FAILED | CFS_FAIL_ONCE | its id.
      t.equal(await r.param('fail_loc'), String((0xc0000000 | Number(loc)) >>> 0), `${name}: its ${what} was lost, and it succeeded`);
    }
  }
  r.ok(await r.tool('lctl', ['set_param', 'fail_loc=0'], 2), 'disarm');
  const { fs: other } = await r.client('rloss-check');
  t.same((await other.readdir('/d')).sort(), [
    'attr', 'dir1', 'dir2', 'link1', 'link2', 'new1', 'new2', 'renamed1', 'renamed2', 'sym1', 'sym2', 'trunc',
  ], 'every update once');
  t.equal(await other.readFile('/d/new2', 'utf8'), 'new 2', 'a create whose reply was lost has its data');
  t.equal((await other.stat('/d/attr')).nlink, 3, 'two links');
  t.equal((await other.stat('/d/attr')).mode & 0o777, 0o600, 'the last setattr');
  t.equal((await other.getxattr('/d/attr', 'user.k2')).toString(), 'v2', 'setxattr');
  t.equal((await other.stat('/d/trunc')).size, 2, 'the last truncate');
});

t.test('two clients with interdependent updates replay in transno order (replay-dual)', async (t) => {
  const r = await rig(t, 'rdep');
  const a = await r.client('rdep-client-a');
  const b = await r.client('rdep-client-b');
  await a.fs.mkdir('/d');
  await holdCommits(r);
  await a.fs.mkdir('/d/x'); // a's
  await b.fs.writeFile('/d/x/f', 'from b'); // b's, inside a's directory
  await a.fs.rename('/d/x/f', '/d/x/g'); // a's, of b's file
  await b.fs.mkdir('/d/x/h'); // b's again
  t.ok(a.fs.mdc.import.replayList.size >= 2 && b.fs.mdc.import.replayList.size >= 2, 'both clients keep uncommitted updates');
  await r.crashMdt();
  t.same((await a.fs.readdir('/d/x')).sort(), ['g', 'h'], 'both clients\' updates, in their order');
  t.equal(await b.fs.readFile('/d/x/g', 'utf8'), 'from b', 'b reads its file under the name a gave it');
  t.match(await r.param('mdt.*.recovery_status'), /^completed_clients: 2\/2$/m, 'both recovered');
});

t.test('a crash during recovery: the target recovers again and the client replays again', async (t) => {
  const r = await rig(t, 'ragain');
  const a = await r.client('ragain-client-a');
  const b = await r.client('ragain-client-b');
  await a.fs.mkdir('/d');
  await holdCommits(r);
  await a.fs.writeFile('/d/a', 'from a');
  await b.ni.stop(); // b never returns: recovery waits for it
  await r.killMdt();
  await r.mountMdt('recovery_time_soft=60');
  await until('a has reconnected and the MDT waits for b', async () => /^status: RECOVERING$/m.test(await r.param('mdt.*.recovery_status'))
    && /^connected_clients: 1\/2$/m.test(await r.param('mdt.*.recovery_status')), 30_000);
  await r.crashMdt('recovery_time_soft=2,recovery_time_hard=4'); // during recovery
  t.equal(await a.fs.readFile('/d/a', 'utf8'), 'from a', 'a\'s create survived two crashes');
  t.match(await r.param('mdt.*.recovery_status'), /^status: COMPLETE$/m, 'the second recovery completed');
});

t.test('an OST crash: the client and the MDT replay what the OST had not committed', async (t) => {
  const r = await rig(t, 'rost');
  const { fs } = await r.client('rost-client');
  await fs.mkdir('/d');
  for (let i = 0; i < 4; i++) await fs.writeFile(`/d/f${i}`, 'x'.repeat(10_000));
  await holdCommits(r, 3);
  await fs.truncate('/d/f0', 100); // OST_PUNCH
  await fs.truncate('/d/f1', 20_000);
  for (let i = 4; i < 40; i++) await fs.writeFile(`/d/f${i}`, `file ${i}`); // precreates the MDT asks for
  await r.crashOst();
  t.equal((await fs.stat('/d/f0')).size, 100, 'a punch replayed');
  t.equal((await fs.stat('/d/f1')).size, 20_000, 'an extension replayed');
  await fs.writeFile('/d/after', 'after the OST crash');
  const { fs: other } = await r.client('rost-check');
  for (let i = 4; i < 40; i++) t.equal(await other.readFile(`/d/f${i}`, 'utf8'), `file ${i}`, `f${i} intact`);
  t.equal(await other.readFile('/d/after', 'utf8'), 'after the OST crash', 'a create after the crash gets objects of its own');
  t.match(await r.param('obdfilter.*.recovery_status', 3), /^status: COMPLETE$/m, 'the OST recovered');
});

t.test('an OST crash after 1 MiB writes: dirty buffers used again after their commit, the uncommitted ones replayed', async (t) => {
  const MiB = 1024 * 1024;
  const r = await rig(t, 'rpool');
  const { fs } = await r.client('rpool-client');
  await fs.mkdir('/d');
  const block = (file: number, i: number) => Buffer.alloc(MiB, (file * 16 + i + 1) & 0xff);
  const writeFile = async (file: number, sync: boolean) => {
    const h = await fs.open(`/d/f${file}`, 'w');
    for (let i = 0; i < 4; i++) await h.write(block(file, i), 0, MiB, i * MiB);
    if (sync) await h.sync(); // committed: its pool buffers go back at the sync's reply
    await h.close();
  };
  for (let f = 0; f < 3; f++) await writeFile(f, true);
  await holdCommits(r, 3);
  const reusedBefore = dirtyBufferPool.counters.reused;
  for (let f = 3; f < 6; f++) await writeFile(f, false); // in buffers used before, kept for replay
  t.ok(dirtyBufferPool.counters.reused > reusedBefore, 'writes after the commit reuse its buffers');
  await r.crashOst();
  const { fs: other } = await r.client('rpool-check');
  for (let f = 0; f < 6; f++) {
    const data = await other.readFile(`/d/f${f}`) as Buffer;
    t.ok(data.length === 4 * MiB && [0, 1, 2, 3].every((i) => data.subarray(i * MiB, (i + 1) * MiB).equals(block(f, i))), `f${f}: every MiB as written${f >= 3 ? ' (replayed)' : ''}`);
  }
  t.match(await r.param('obdfilter.*.recovery_status', 3), /^status: COMPLETE$/m, 'the OST recovered');
});

t.test('a replay that no longer applies evicts only its client (version-based recovery)', async (t) => {
  const r = await rig(t, 'rvbr');
  const a = await r.client('rvbr-client-a');
  const b = await r.client('rvbr-client-b');
  const c = await r.client('rvbr-client-c');
  await a.fs.mkdir('/d');
  await holdCommits(r);
  await b.fs.mkdir('/d/p'); // b's: b will not come back
  await a.fs.mkdir('/d/p/q'); // a's, inside b's directory: it cannot be replayed without b's
  await c.fs.mkdir('/d/c'); // c's: independent
  await b.ni.stop();
  await r.crashMdt('recovery_time_soft=12,recovery_time_hard=30');
  t.same(await c.fs.readdir('/d'), ['c'], 'the independent client kept its work; b\'s and a\'s dependent one are gone');
  const status = await r.param('mdt.*.recovery_status');
  t.match(status, /^completed_clients: 1\/3$/m, 'b (gone) and a (its replay failed) were evicted, c recovered');
  // a learns it was evicted; its next requests work on a new connection.
  await worksAgain('a', () => a.fs.mkdir('/d/a'));
  t.same((await a.fs.readdir('/d')).sort(), ['a', 'c'], 'a goes on after its eviction');
});

t.test('lctl abort_recovery ends a recovery that waits for a client gone for good', async (t) => {
  const r = await rig(t, 'rlabort');
  const a = await r.client('rlabort-client-a');
  const b = await r.client('rlabort-client-b');
  await a.fs.mkdir('/d');
  await b.ni.stop();
  await r.crashMdt(); // the default window: 300 s
  await until('the MDT waits for b', async () => /^status: RECOVERING$/m.test(await r.param('mdt.*.recovery_status')), 30_000);
  const bad = await r.tool('lctl', ['abort_recovery', 'nosuch-MDT0000'], 2);
  t.not(bad.code, 0, 'abort_recovery of a target not mounted here fails');
  r.ok(await r.tool('lctl', ['abort_recovery', 'rlabort-MDT0000'], 2), 'lctl abort_recovery');
  t.match(await r.param('mdt.*.recovery_status'), /^status: COMPLETE$/m, 'recovery is over at once');
  await worksAgain('a', () => a.fs.mkdir('/d/after'));
  t.same(await a.fs.readdir('/d'), ['after'], 'the file system serves again');
});
