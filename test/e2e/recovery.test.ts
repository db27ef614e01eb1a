// Recovery across a real crash (replay-single in Lustre's test suite): the MGS+MDT runs in its
// own lustre.kernel process (127.0.0.2), an OST in another (127.0.0.3), clients in this process
// (127.0.0.5). Commits of the MDT are held back (txg_timeout 600 s), each kind of update is made
// and answered, the MDT's kernel is killed with SIGKILL, started again and the device mounted:
// the target recovers, the client replays what the crash lost, and every update is there once.
// Then: a client that does not come back is evicted when the window closes while another
// recovers (replay-dual), and abort_recov evicts everyone (their uncommitted work is gone).
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, type FileSystem } from '../../src/client/index.js';
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
  let n = 5;
  return {
    root, port, tool, ok,
    async param(name, k = 2) {
      return ok(await tool('lctl', ['get_param', '-n', name], k), `get_param ${name}`).stdout.trim();
    },
    async crashMdt(options) {
      process.kill(pidOf(2), 'SIGKILL');
      await until('the MDT kernel is gone', () => {
        try { process.kill(pidOf(2), 0); return false; } catch { return true; }
      });
      await start(2);
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

/** Holds the MDT's commits back once what is there is on disk (the txg open now still syncs). */
async function holdCommits(r: Rig): Promise<void> {
  // Everything is on disk when only the open txg is left and nothing is in it.
  await until('the setup is committed', async () => {
    const open = Number(await r.param('osd-txg.*.txg_open'));
    const synced = Number(await r.param('osd-txg.*.txg_last_synced'));
    return synced >= open - 1 && Number(await r.param('osd-txg.*.txg_dirty_bytes')) === 0;
  }, 30_000);
  r.ok(await r.tool('lctl', ['set_param', 'osd-txg.*.txg_timeout=600'], 2), 'txg_timeout 600');
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
  await r.crashMdt('recovery_time_soft=3,recovery_time_hard=6');
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
  await until('the client works again', async () => {
    try {
      await fs.mkdir('/d/again');
      return true;
    } catch {
      return false;
    }
  }, 30_000);
  t.same((await fs.readdir('/d')).sort(), ['again'], 'the uncommitted mkdir is gone, the new one is there');
});
