// Recovery with more than one client and lost messages, on the rig of recovery-rig.ts: the MGS+MDT
// in its own lustre.kernel process, an OST in another, clients in this process, at 127.0.0.12,
// .13 and .15 on (not the addresses of recovery-crash.test.ts, which tap may run at the same time).
// Here: a client that does not come back is evicted when the window closes while another recovers
// (replay-dual), abort_recov evicts everyone (their uncommitted work is gone), lost requests and
// replies of each kind of update are resent and executed once, and two clients' interdependent
// updates replay in transno order.
import t from 'tap';
import type { FileSystem } from '../../src/client/index.js';
import { holdCommits, rigAt, worksAgain } from './recovery-rig.js';

const rig = rigAt(10);

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

