// Recovery across a real crash (replay-single in Lustre's test suite), the rig in recovery-rig.ts:
// the MGS+MDT runs in its own lustre.kernel process (127.0.0.2), an OST in another (127.0.0.3),
// clients in this process (127.0.0.5 on). Commits are held back (txg_timeout 600 s), each kind of
// update is made and answered, the kernel is killed with SIGKILL, started again and the device
// mounted: the target recovers, the client replays what the crash lost, and every update is there
// once. Here: MDT crashes (also one during recovery), OST crashes, a replay that no longer applies
// (version-based recovery) and lctl abort_recovery. recovery-clients.test.ts has the rest; the two
// are split so that tap runs them side by side.
import t from 'tap';
import { dirtyBufferPool } from '../../src/client/extents.js';
import { until } from '../lib/net.js';
import { holdCommits, rigAt, worksAgain } from './recovery-rig.js';

const rig = rigAt(0);

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
  // During recovery. The window is a's to reconnect and replay in: with 2 s (4 at most) a
  // loaded machine (the CI's, the suite two files at once) once had a come back after it closed,
  // evicted with its create unreplayed.
  await r.crashMdt('recovery_time_soft=6,recovery_time_hard=12');
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
