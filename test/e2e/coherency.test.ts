// Coherency across client mounts, in the spirit of Lustre's sanityn.sh (issue 9's proof): one
// lustre.kernel hosting an MGS+MDT and two OSTs, four FUSE mounts of the file system (each its
// own client kernel process), and what one mount does seen at once through another, POSIX
// fashion and not close-to-open: a write read by the other mount while the writer keeps the
// file open; O_APPEND from two mounts at once, nothing lost; truncate, rename, unlink, chmod,
// size and mtime seen by the other mount; flock() and fcntl() locks that exclude each other
// across mounts; four mounts writing disjoint ranges of one file; and a client stopped with
// SIGSTOP while it caches a write under a lock, evicted within the lock timeout so that the
// other mount's read completes. (A flock has no blocking callback, in Lustre as here: a stopped
// holder of one is evicted by the ping evictor, not by the lock timer.)
//
// The file operations run from this process (node:fs/promises; the FUSE daemons are the client
// kernels, other processes) and from child processes (python3 for flock/fcntl/O_APPEND, the
// everyday tools). LUSTRE_COHERENCY_SEED sets the seed of the randomized parts. Some cases come
// twice: with the writer's fsync (what holds without locks) and without (what locks give).
//
// Needs /dev/fuse and root; skipped otherwise.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, open, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { clientRundir } from '../../src/control/rundir.js';
import { startLineChild, type LineChild } from '../lib/child.js';
import { fuseAvailable, startCluster, type Cluster } from '../lib/cluster.js';
import { until } from '../lib/net.js';
import { prng, seedFrom } from '../lib/prng.js';

const KiB = 1024;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Lock timeout asked of the servers' lock namespaces (seconds), so that an eviction comes soon. */
const LOCK_TIMEOUT_S = 3;
/** Lustre's default (LDLM_TIMEOUT_DEFAULT), what a server keeps when it has no such parameter. */
const DEFAULT_LOCK_TIMEOUT_S = 20;

// Takes a lock and holds it until a line arrives on stdin (or stdin ends), printing where it is:
// "trying" before the call, then "locked", or "refused ERRNO" (exit 3) when a non-blocking
// request is refused. argv: flock|fcntl PATH ex|sh[-nb] START LENGTH (fcntl ranges; 0 = to EOF).
const LOCKER = `
import errno, fcntl, os, sys
kind, path, how, start, length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
excl = how.startswith('ex')
fd = os.open(path, os.O_RDWR if excl else os.O_RDONLY)
op = fcntl.LOCK_EX if excl else fcntl.LOCK_SH
if how.endswith('-nb'):
    op |= fcntl.LOCK_NB
print('trying', flush=True)
try:
    if kind == 'flock':
        fcntl.flock(fd, op)
    else:
        fcntl.lockf(fd, op, length, start, 0)
except OSError as e:
    print('refused ' + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    sys.exit(3)
print('locked', flush=True)
sys.stdin.readline()
print('released', flush=True)
`;

// Opens PATH read-write, writes N bytes of the character C at offset 0 (no fsync), says
// "written", and keeps the file open until a line arrives. argv: PATH N C.
const HOLDING_WRITER = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, sys.argv[3].encode() * int(sys.argv[2]), 0)
print('written', flush=True)
sys.stdin.readline()
try:
    os.close(fd)
except OSError as e:
    print('close failed: ' + str(e), flush=True)
`;

// Opens PATH with O_APPEND (kept open), says "open", waits for a line, then appends N lines
// "TAG NNNNN x..." of varied lengths, one write(2) each, and says "done". argv: PATH TAG N.
const APPENDER = `
import os, sys
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
print('open', flush=True)
sys.stdin.readline()
for i in range(n):
    line = ('%s %05d %s\\n' % (tag, i, 'x' * (i % 37))).encode()
    assert os.write(fd, line) == len(line)
os.close(fd)
print('done', flush=True)
`;

interface Run { code: number; stdout: string; stderr: string }

/** A shell command line in a child process. */
function sh(script: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { timeout: 120_000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const locker = (t: Test, kind: 'flock' | 'fcntl', path: string, how: string, start = 0, length = 0): LineChild =>
  startLineChild(t, PYTHON, ['-c', LOCKER, kind, path, how, String(start), String(length)]);

/** The pid of the client kernel (lustre.mount's process of its own) serving mount point `mnt`. */
const clientKernelPid = (c: Cluster, mnt: string): number => Number(readFileSync(join(clientRundir(c.rundir, mnt), 'kernel.pid'), 'utf8'));

const serverLog = (c: Cluster): string => readFileSync(join(c.rundir, 'kernel.log'), 'utf8');

/** Pauses, for a check that something has NOT happened yet (a waiter still waiting). */
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

if (!fuseAvailable()) {
  t.comment('skipped: FUSE mounts need /dev/fuse and root');
  t.pass('skipped: FUSE mounts need /dev/fuse and root');
} else {
  const seed = seedFrom('LUSTRE_COHERENCY_SEED');
  t.comment(`coherency seed ${seed} (LUSTRE_COHERENCY_SEED)`);
  const c = await startCluster(t, { fsname: 'cohfs' });
  const m = [await c.mountClient(), await c.mountClient(), await c.mountClient(), await c.mountClient()];
  const [m1, m2] = [m[0]!, m[1]!];
  const on = (mnt: string, ...parts: string[]): string => join(mnt, ...parts);

  /**
   * A write on one mount read on the other while the writer keeps the file open. With `sync` the
   * writer fsyncs each write (what holds without locks: a client keeps written data until fsync
   * or close); without, the reader's client must get it by the lock it asks for.
   */
  const writeReadAtOnce = async (t: Test, name: string, sync: boolean): Promise<void> => {
    const w = await open(on(m1, name), 'w+');
    t.teardown(() => w.close().catch(() => undefined));
    await w.write(Buffer.from('first version'), 0, 13, 0);
    if (sync) await w.sync();
    const r = await open(on(m2, name), 'r');
    t.teardown(() => r.close().catch(() => undefined));
    const b = Buffer.alloc(64);
    let n = (await r.read(b, 0, 64, 0)).bytesRead;
    t.equal(b.toString('utf8', 0, n), 'first version', 'read through a fresh open on the other mount');
    // The reader's mount gives its lock back once its kernel dropped the pages it read, so a
    // read through a handle kept open does not see the old page.

    // The same bytes overwritten (the size does not change), read through the open handle that read them before.
    await w.write(Buffer.from('FIRST'), 0, 5, 0);
    if (sync) await w.sync();
    if (!sync) {
      // Not asked after a mere fsync: the size did not change, and the reader's mount may keep
      // the page it read while it holds the file open, until a lock's cancel drops it.
      n = (await r.read(b, 0, 64, 0)).bytesRead;
      t.equal(b.toString('utf8', 0, n), 'FIRST version', 'an overwrite is read through the reader\'s open handle');
    }
    t.equal((await readFile(on(m2, name), 'utf8')), 'FIRST version', 'and through a new open');
    const cat = await sh(`cat '${on(m2, name)}'`);
    t.equal(cat.stdout, 'FIRST version', 'and by another process (cat)');

    // The file grows past what the reader has seen.
    const more = prng(seed).bytes(64 * KiB);
    await w.write(more, 0, more.length, 100_000);
    if (sync) await w.sync();
    t.equal((await r.stat()).size, 100_000 + more.length, 'fstat on the reader gives the new size');
    const got = Buffer.alloc(more.length);
    n = (await r.read(got, 0, got.length, 100_000)).bytesRead;
    t.equal(n, more.length, 'the reader reads the appended range whole');
    t.ok(got.equals(more), 'and its bytes');
    const hole = Buffer.alloc(100);
    await r.read(hole, 0, 100, 50_000);
    t.ok(hole.equals(Buffer.alloc(100)), 'the hole between reads as zeros');

    // And the other way round: the reader's mount writes, the first mount reads through its handle.
    const back = await open(on(m2, name), 'r+');
    t.teardown(() => back.close().catch(() => undefined));
    await back.write(Buffer.from('third'), 0, 5, 0);
    if (sync) await back.sync();
    n = (await w.read(b, 0, 64, 0)).bytesRead;
    t.equal(b.toString('utf8', 0, 13), 'third version', 'the first mount reads the second mount\'s write through its own open handle');
  };

  t.test('a write on one mount, fsynced, is read on the other, the writer keeping the file open', (t) => writeReadAtOnce(t, 'w-sync', true));
  t.test('a write on one mount is read at once on the other, the writer keeping the file open (no fsync)',
    (t) => writeReadAtOnce(t, 'w-nosync', false));

  t.test('O_APPEND from two mounts at once: every line, whole, in each writer\'s order', async (t) => {
    const lines = 300;
    const path = on(m1, 'appended');
    await writeFile(path, '');
    const a = startLineChild(t, PYTHON, ['-c', APPENDER, path, 'A', String(lines)]);
    const b = startLineChild(t, PYTHON, ['-c', APPENDER, on(m2, 'appended'), 'B', String(lines)]);
    await Promise.all([a.line(/^open$/), b.line(/^open$/)]);
    a.send('go');
    b.send('go');
    t.equal(await a.wait(60_000), 0, `the appender on mount 1 ended well ${a.stderr()}`);
    t.equal(await b.wait(60_000), 0, `the appender on mount 2 ended well ${b.stderr()}`);
    const expected = (tag: string): string[] => Array.from({ length: lines }, (_, i) => `${tag} ${String(i).padStart(5, '0')} ${'x'.repeat(i % 37)}`);
    const bytes = [...expected('A'), ...expected('B')].reduce((s, l) => s + l.length + 1, 0);
    for (const [i, mnt] of [m1, m2].entries()) {
      const text = await readFile(on(mnt, 'appended'), 'utf8');
      t.equal(text.length, bytes, `mount ${i + 1}: the file holds every byte appended (${bytes})`);
      const got = text.split('\n').slice(0, -1);
      t.same(got.filter((l) => l.startsWith('A ')), expected('A'), `mount ${i + 1}: mount 1's lines, whole and in order`);
      t.same(got.filter((l) => l.startsWith('B ')), expected('B'), `mount ${i + 1}: mount 2's lines, whole and in order`);
      t.equal(got.length, 2 * lines, `mount ${i + 1}: nothing else`);
    }
  });

  t.test('truncate on one mount, stat and read on the other', async (t) => {
    const data = prng(seed + 1).bytes(10_000);
    await writeFile(on(m1, 'trunc'), data);
    const r = await open(on(m2, 'trunc'), 'r');
    t.teardown(() => r.close().catch(() => undefined));
    t.equal((await r.stat()).size, 10_000, 'the other mount sees the written size');
    const w = await open(on(m1, 'trunc'), 'r+');
    t.teardown(() => w.close().catch(() => undefined));
    await w.truncate(1234);
    t.equal((await stat(on(m2, 'trunc'))).size, 1234, 'ftruncate down on mount 1: stat on mount 2');
    t.equal((await r.stat()).size, 1234, 'and fstat of mount 2\'s open handle');
    const b = Buffer.alloc(10_000);
    const n = (await r.read(b, 0, b.length, 0)).bytesRead;
    t.equal(n, 1234, 'a read on mount 2 ends at the new size');
    t.ok(b.subarray(0, n).equals(data.subarray(0, 1234)), 'with the bytes before it');
    const up = await sh(`truncate -s 50000 '${on(m1, 'trunc')}'`);
    t.equal(up.code, 0, up.stderr);
    t.equal((await stat(on(m2, 'trunc'))).size, 50_000, 'truncate(1) up on mount 1: stat on mount 2');
    const tail = Buffer.alloc(50_000 - 1234);
    await r.read(tail, 0, tail.length, 1234);
    t.ok(tail.equals(Buffer.alloc(tail.length)), 'what was cut and grown back reads as zeros on mount 2');
    t.equal((await sh(`stat -c %s '${on(m2, 'trunc')}'`)).stdout.trim(), '50000', 'stat(1) on mount 2 agrees');
  });

  t.test('rename and unlink on one mount are seen at once on the other', async (t) => {
    await mkdir(on(m1, 'names/d/x'), { recursive: true });
    await writeFile(on(m1, 'names/a'), 'contents of a');
    await writeFile(on(m1, 'names/d/x/f'), 'deep');
    // Mount 2 looks first, so that whatever it may keep of these names is there to go stale.
    t.equal(await readFile(on(m2, 'names/a'), 'utf8'), 'contents of a', 'mount 2 reads a');
    t.equal(await readFile(on(m2, 'names/d/x/f'), 'utf8'), 'deep', 'mount 2 reads d/x/f');
    t.same((await readdir(on(m2, 'names'))).sort(), ['a', 'd']);

    await rename(on(m1, 'names/a'), on(m1, 'names/b'));
    await t.rejects(stat(on(m2, 'names/a')), { code: 'ENOENT' }, 'the old name: stat fails ENOENT on mount 2');
    await t.rejects(open(on(m2, 'names/a'), 'r'), { code: 'ENOENT' }, 'and open');
    t.equal(await readFile(on(m2, 'names/b'), 'utf8'), 'contents of a', 'the new name reads the file on mount 2');
    t.same((await readdir(on(m2, 'names'))).sort(), ['b', 'd'], 'mount 2 lists the new name');

    await rename(on(m1, 'names/d'), on(m1, 'names/e'));
    await t.rejects(stat(on(m2, 'names/d/x/f')), { code: 'ENOENT' }, 'a renamed directory: the old path fails ENOENT on mount 2');
    t.equal(await readFile(on(m2, 'names/e/x/f'), 'utf8'), 'deep', 'the new path reads on mount 2');

    // A rename over a name the other mount has looked at: it now names the renamed file.
    await writeFile(on(m1, 'names/c'), 'contents of c');
    t.equal(await readFile(on(m2, 'names/c'), 'utf8'), 'contents of c');
    await rename(on(m1, 'names/b'), on(m1, 'names/c'));
    t.equal(await readFile(on(m2, 'names/c'), 'utf8'), 'contents of a', 'rename over an existing name: mount 2 reads the renamed file');

    await unlink(on(m1, 'names/c'));
    await t.rejects(stat(on(m2, 'names/c')), { code: 'ENOENT' }, 'unlink on mount 1: stat fails ENOENT on mount 2');
    await t.rejects(open(on(m2, 'names/c'), 'r'), { code: 'ENOENT' }, 'and open');
    t.same(await readdir(on(m2, 'names')), ['e'], 'mount 2 lists what is left');
    const ls = await sh(`ls '${on(m2, 'names')}'`);
    t.equal(ls.stdout, 'e\n', 'ls(1) on mount 2 agrees');
    // Created on mount 2 under the name mount 1 removed: mount 1 sees the new file.
    await writeFile(on(m2, 'names/c'), 'new c');
    t.equal(await readFile(on(m1, 'names/c'), 'utf8'), 'new c', 'a new file under the unlinked name, made on mount 2, read on mount 1');
  });

  t.test('a name just created on one mount, renamed, unlinked or chmodded on the other: the creating mount sees it at once', async (t) => {
    // A create leaves its name and the new file's attributes in the creating mount's kernel
    // cache, under the lock its lookup of the new name took: each change on the other mount
    // must take them out.
    await mkdir(on(m1, 'fresh'));
    await writeFile(on(m1, 'fresh/n'), 'new');
    t.equal((await stat(on(m1, 'fresh/n'))).size, 3, 'mount 1 stats the file it created');
    await rename(on(m2, 'fresh/n'), on(m2, 'fresh/m'));
    await t.rejects(stat(on(m1, 'fresh/n')), { code: 'ENOENT' }, 'renamed on mount 2: the old name fails ENOENT on mount 1');
    t.equal(await readFile(on(m1, 'fresh/m'), 'utf8'), 'new', 'the new name reads on mount 1');
    await writeFile(on(m1, 'fresh/k'), '');
    await unlink(on(m2, 'fresh/k'));
    await t.rejects(stat(on(m1, 'fresh/k')), { code: 'ENOENT' }, 'unlinked on mount 2: stat fails ENOENT on mount 1');
    await writeFile(on(m1, 'fresh/p'), '', { mode: 0o644 });
    await chmod(on(m2, 'fresh/p'), 0o600);
    t.equal((await stat(on(m1, 'fresh/p'))).mode & 0o777, 0o600, 'chmod on mount 2: mount 1 sees the new mode');
  });

  /** Writes from both mounts into one file both keep open; with `sync` each writer fsyncs before the stats. */
  const sizeAndMtime = async (t: Test, name: string, sync: boolean): Promise<void> => {
    const p1 = on(m1, name);
    await writeFile(p1, '');
    await utimes(p1, 1_000_000, 1_000_000);
    const old = await stat(on(m2, name));
    t.equal(old.mtimeMs, 1_000_000_000, 'mount 2 sees the mtime set on mount 1');
    const before = Date.now();
    const a = await open(p1, 'r+');
    t.teardown(() => a.close().catch(() => undefined));
    const b = await open(on(m2, name), 'r+');
    t.teardown(() => b.close().catch(() => undefined));
    await a.write(Buffer.alloc(100, 0x61), 0, 100, 0);
    await b.write(Buffer.alloc(100, 0x62), 0, 100, 4000);
    await a.write(Buffer.alloc(10, 0x63), 0, 10, 2000);
    if (sync) await Promise.all([a.sync(), b.sync()]);
    const s1 = await stat(p1);
    const s2 = await stat(on(m2, name));
    t.equal(s1.size, 4100, 'mount 1 sees the size mount 2 made');
    t.equal(s2.size, 4100, 'mount 2 too');
    t.equal((await a.stat()).size, 4100, 'fstat through mount 1\'s open handle');
    t.ok(s1.mtimeMs >= before - 1000, `the writes moved mtime on mount 1 (${s1.mtime.toISOString()})`);
    t.ok(s2.mtimeMs >= before - 1000, `and on mount 2 (${s2.mtime.toISOString()})`);
    t.equal(s1.mtimeMs, s2.mtimeMs, 'both mounts give the same mtime');
    await a.close();
    await b.close();
    const want = Buffer.alloc(4100);
    want.fill(0x61, 0, 100);
    want.fill(0x63, 2000, 2010);
    want.fill(0x62, 4000, 4100);
    t.ok((await readFile(on(m1, name))).equals(want), 'mount 1 reads both mounts\' bytes');
    t.ok((await readFile(on(m2, name))).equals(want), 'mount 2 too');
    const after = await stat(on(m2, name));
    t.equal(after.mtimeMs, (await stat(p1)).mtimeMs, 'after the closes, the mtimes still agree');
  };

  t.test('size and mtime after writes from both mounts, each fsynced', (t) => sizeAndMtime(t, 'both-sync', true));
  t.test('size and mtime after writes from both mounts (no fsync)',
    (t) => sizeAndMtime(t, 'both-nosync', false));

  t.test('chmod and chown on one mount are seen by the other', async (t) => {
    await writeFile(on(m1, 'perm'), 'p', { mode: 0o644 });
    t.equal((await stat(on(m2, 'perm'))).mode & 0o7777, 0o644 & ~process.umask());
    const held = await open(on(m2, 'perm'), 'r');
    t.teardown(() => held.close().catch(() => undefined));
    await chmod(on(m1, 'perm'), 0o600);
    t.equal((await stat(on(m2, 'perm'))).mode & 0o7777, 0o600, 'chmod 0600 on mount 1: stat on mount 2');
    t.equal((await held.stat()).mode & 0o7777, 0o600, 'and fstat of an open handle on mount 2');
    const st = await sh(`stat -c %a '${on(m2, 'perm')}'`);
    t.equal(st.stdout.trim(), '600', 'stat(1) on mount 2 agrees');
    await chmod(on(m1, 'perm'), 0o4755);
    t.equal((await stat(on(m2, 'perm'))).mode & 0o7777, 0o4755, 'setuid and 0755');
    await chown(on(m1, 'perm'), 65534, 65534);
    const s = await stat(on(m2, 'perm'));
    t.same([s.uid, s.gid], [65534, 65534], 'chown on mount 1: owner and group on mount 2');
  });

  t.test('flock() excludes across mounts', async (t) => {
    const path = on(m1, 'flocked');
    await writeFile(path, 'f');
    const holder = locker(t, 'flock', path, 'ex');
    await holder.line(/^locked$/);
    const nb = await sh(`flock -n -E 99 -x '${on(m2, 'flocked')}' true`);
    t.equal(nb.code, 99, 'flock(1) -n on mount 2 is refused while mount 1 holds it');
    const nbShared = locker(t, 'flock', on(m2, 'flocked'), 'sh-nb');
    t.match(await nbShared.line(/^(locked|refused)/), /^refused (EAGAIN|EWOULDBLOCK)$/, 'a shared LOCK_NB on mount 2 fails EWOULDBLOCK');
    const waiter = locker(t, 'flock', on(m2, 'flocked'), 'ex');
    await waiter.line(/^trying$/);
    await pause(500);
    t.notOk(waiter.lines.includes('locked'), 'a blocking flock on mount 2 waits while mount 1 holds it');
    holder.send('go');
    await holder.wait();
    await waiter.line(/^locked$/);
    t.pass('it gets the lock once mount 1 lets go');
    // Now mount 1 is the one refused.
    const back = await sh(`flock -n -E 99 -x '${path}' true`);
    t.equal(back.code, 99, 'and mount 1 is refused while mount 2 holds it');
    waiter.send('go');
    await waiter.wait();
    const free = await sh(`flock -n -E 99 -x '${path}' true`);
    t.equal(free.code, 0, 'free again');
  });

  t.test('fcntl() locks exclude across mounts, by range', async (t) => {
    const path = on(m1, 'fcntl');
    await writeFile(path, Buffer.alloc(4096));
    const holder = locker(t, 'fcntl', path, 'ex', 0, 100);
    await holder.line(/^locked$/);
    const overlap = locker(t, 'fcntl', on(m2, 'fcntl'), 'ex-nb', 50, 100);
    t.match(await overlap.line(/^(locked|refused)/), /^refused (EAGAIN|EACCES)$/, 'F_SETLK of an overlapping range on mount 2 fails EAGAIN');
    const overlapRead = locker(t, 'fcntl', on(m2, 'fcntl'), 'sh-nb', 99, 1);
    t.match(await overlapRead.line(/^(locked|refused)/), /^refused (EAGAIN|EACCES)$/, 'a read lock of its last byte too');
    const beside = locker(t, 'fcntl', on(m2, 'fcntl'), 'ex-nb', 100, 100);
    t.equal(await beside.line(/^(locked|refused)/), 'locked', 'the range just after it is free on mount 2');
    const waiter = locker(t, 'fcntl', on(m2, 'fcntl'), 'ex', 0, 10);
    await waiter.line(/^trying$/);
    await pause(500);
    t.notOk(waiter.lines.includes('locked'), 'F_SETLKW on mount 2 waits while mount 1 holds the range');
    holder.send('go');
    await holder.wait();
    await waiter.line(/^locked$/);
    t.pass('it gets the lock once mount 1 lets go');
    for (const c of [waiter, beside]) c.send('go');
    await Promise.all([waiter.wait(), beside.wait()]);
    // Read locks from both mounts share a range.
    const r1 = locker(t, 'fcntl', path, 'sh-nb', 0, 4096);
    const r2 = locker(t, 'fcntl', on(m2, 'fcntl'), 'sh-nb', 0, 4096);
    t.same(await Promise.all([r1.line(/^(locked|refused)/), r2.line(/^(locked|refused)/)]), ['locked', 'locked'], 'read locks on both mounts share a range');
    const w = locker(t, 'fcntl', on(m[2]!, 'fcntl'), 'ex-nb', 0, 0);
    t.match(await w.line(/^(locked|refused)/), /^refused (EAGAIN|EACCES)$/, 'a write lock from a third mount is refused while they hold it');
    for (const c of [r1, r2]) c.send('go');
    await Promise.all([r1.wait(), r2.wait()]);
  });

  /**
   * Four mounts write disjoint pieces of one file at once, each through a handle it keeps open.
   * With `openReads` each then reads the whole file through that handle before any close (what
   * needs locks: every writer's data reached); after the closes every mount reads it by path.
   */
  const fourWriters = async (t: Test, name: string, runSeed: number, openReads: boolean): Promise<void> => {
    const r = prng(runSeed);
    const size = 1024 * KiB + r.int(64 * KiB);
    const want = r.bytes(size);
    // Pieces of 1 byte to 16 KiB, never page aligned on purpose, each given to one mount.
    const pieces: Array<Array<{ offset: number; length: number }>> = [[], [], [], []];
    for (let offset = 0; offset < size;) {
      const length = Math.min(size - offset, 1 + r.int(16 * KiB));
      pieces[r.int(4)]!.push({ offset, length });
      offset += length;
    }
    for (const list of pieces) for (let i = list.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    await writeFile(on(m1, name), '');
    const handles = await Promise.all(m.map((mnt) => open(on(mnt, name), 'r+')));
    t.teardown(() => Promise.all(handles.map((h) => h.close().catch(() => undefined))));
    const t0 = Date.now();
    await Promise.all(handles.map(async (h, i) => {
      for (const p of pieces[i]!) await h.write(want, p.offset, p.length, p.offset);
    }));
    t.comment(`writes ${Date.now() - t0} ms`);
    t.comment(`pieces per mount: ${pieces.map((l) => l.length).join(', ')} (seed ${runSeed})`);
    if (openReads) for (const [i, h] of handles.entries()) {
      const got = Buffer.alloc(size + 1);
      const n = (await h.read(got, 0, got.length, 0)).bytesRead;
      t.equal(n, size, `mount ${i + 1}'s open handle reads ${size} bytes`);
      t.ok(got.subarray(0, n).equals(want), `and every byte right (seed ${runSeed})`);
    }
    for (const h of handles) await h.close();
    for (const [i, mnt] of m.entries()) t.ok((await readFile(on(mnt, name))).equals(want), `mount ${i + 1} reads every byte right after the closes (seed ${runSeed})`);
  };

  t.test('four mounts writing disjoint ranges of one file leave every byte right', (t) => fourWriters(t, 'four', (seed + 2) >>> 0, false));
  t.test('four mounts writing disjoint ranges of one file: each writer reads every byte right before its close',
    (t) => fourWriters(t, 'four-open', (seed + 3) >>> 0, true));

  /**
   * Runs `fn` while the process `pid` is stopped (SIGSTOP), and lets it go on (SIGCONT) however
   * `fn` ends: before any teardown, which could otherwise wait on the stopped mount forever. A
   * detached watchdog sends SIGCONT after `limitMs` even if this test process dies meanwhile
   * (a stopped client kernel would leave its mount hanging, and every reader of /proc with it).
   */
  const whileStopped = async <T>(pid: number, limitMs: number, fn: () => Promise<T>): Promise<T> => {
    const watchdog = spawn('sh', ['-c', `sleep ${Math.ceil(limitMs / 1000)}; kill -CONT ${pid}`], { detached: true, stdio: 'ignore' });
    watchdog.unref();
    process.kill(pid, 'SIGSTOP');
    try {
      return await fn();
    } finally {
      process.kill(pid, 'SIGCONT');
      if (watchdog.pid !== undefined) try { process.kill(-watchdog.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  };
  /** Clients the servers evicted for not giving a lock back in time: ldlm.namespaces.*.lock_timeouts, summed. */
  const lockTimeouts = async (): Promise<number> => {
    const r = await c.tool('lctl', ['get_param', 'ldlm.namespaces.*.lock_timeouts'], { allowFailure: true });
    return r.stdout.split('\n').reduce((sum, l) => sum + Number(/=(\d+)$/.exec(l.trim())?.[1] ?? 0), 0);
  };
  const evictionLines = (log: string): string => log.split('\n').filter((l) => /evict/i.test(l)).join('\n');
  const lockTimeoutS = LOCK_TIMEOUT_S;
  // The conflicting request must be done within the lock timeout; the bound here leaves room
  // for the timer's period and a loaded machine, and fails only a request that never ends.
  const evictionLimitMs = (lockTimeoutS * 2 + 30) * 1000;
  /** How long a client is kept stopped at most, whatever happens. */
  const stopLimitMs = evictionLimitMs + 30_000;

  t.test('a client stopped while caching a write is evicted within the lock timeout, the other mount\'s read completes', async (t) => {
    // A short lock timeout for this case only (the others keep Lustre's default: a busy client
    // flushing under a lock may take seconds to give it back).
    await c.tool('lctl', ['set_param', `ldlm.namespaces.*.lock_timeout=${lockTimeoutS}`]);
    t.teardown(() => c.tool('lctl', ['set_param', `ldlm.namespaces.*.lock_timeout=${DEFAULT_LOCK_TIMEOUT_S}`]).then(() => undefined));
    await writeFile(on(m1, 'evict-data'), Buffer.alloc(8192, 0x31));
    // Mount 2's writer is a child of its own: a process holding a file of the stopped mount open
    // would hang in every fork+exec (exec closes it, and the close waits for the stopped mount).
    const writer = startLineChild(t, PYTHON, ['-c', HOLDING_WRITER, on(m2, 'evict-data'), '4096', '2']);
    await writer.line(/^written$/);
    const logBefore = serverLog(c).length;
    const timeoutsBefore = await lockTimeouts();
    await whileStopped(clientKernelPid(c, m2), stopLimitMs, async () => {
      // The read needs the lock mount 2 holds over the range: it is answered once mount 2 is evicted.
      const started = Date.now();
      const reader = startLineChild(t, 'bash', ['-c', `head -c 8192 '${on(m1, 'evict-data')}' | wc -c`]);
      t.equal(await reader.line(/^\d+$/, evictionLimitMs), '8192', 'the read on mount 1 completes while mount 2\'s client is stopped');
      t.comment(`the read took ${Date.now() - started} ms with lock_timeout=${lockTimeoutS} s`);
      t.ok(await lockTimeouts() > timeoutsBefore, 'ldlm.namespaces.*.lock_timeouts counts the eviction');
      const evictions = evictionLines(serverLog(c).slice(logBefore));
      t.match(evictions, new RegExp(`evicting client .*(not cancelled ${lockTimeoutS * 1000} ms after its blocking callback|callback .* failed: .* no reply within ${lockTimeoutS * 1000} ms)`),
        'the server evicted mount 2 for keeping its lock past the lock timeout');
      t.comment(`the server's log: ${evictions}`);
    });
    writer.send('go');
    await writer.wait(60_000).catch(() => undefined); // its close may fail: its mount was evicted
    await until('mount 2 to answer again after its eviction', async () => (await stat(on(m2, 'evict-data')).then(() => true, () => false)), 60_000);
    t.equal((await readFile(on(m1, 'evict-data'))).length, 8192, 'the file keeps its size');
  });
}
