// The FUSE session through the kernel: the passthrough of a temporary directory mounted at a
// temporary mount point, used by the everyday tools as a user would (cp, cmp, mv, tar, find,
// du, ls, ln, chmod, chown, touch, truncate, dd, setfattr/getfattr, git), a caller that is not
// root (setpriv) under the kernel's permission checks, their errors, an op that never
// answers (the tool fails EIO instead of hanging), and unmount leaving no mount behind.
//
// Needs /dev/fuse and root (mount(8) with fd=3); skipped otherwise. setfattr/getfattr come
// from Debian's `attr` package, installed here with apt-get when missing (as test/lnet installs
// tshark); without it the xattr checks are skipped, said so.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import t from 'tap';
import { whyNoFuse } from '../lib/fuse.js';
import { until } from '../lib/net.js';
import { FuseSession, Opcode, Passthrough, fuseMountAt, type DebugEvent, type Entry, type RequestContext } from '../../src/client/fuse/index.js';

const MiB = 1024 * 1024;

function haveAttrTools(): boolean {
  return spawnSync('setfattr', ['--version'], { stdio: 'ignore' }).status === 0;
}

function installAttrTools(): boolean {
  if (haveAttrTools()) return true;
  const opts = { stdio: 'ignore' as const, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 };
  if (spawnSync('apt-get', ['install', '-y', '-qq', 'attr'], opts).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], opts);
    spawnSync('apt-get', ['install', '-y', '-qq', 'attr'], opts);
  }
  return haveAttrTools();
}

interface Run { code: number; stdout: string; stderr: string }

/**
 * A shell command in a child process, awaited: the test process is also the FUSE daemon, so it
 * must never block on the mount. The child changes into `dir` itself: spawn's own cwd option
 * would chdir between fork and exec, while libuv waits synchronously for the exec, and a chdir
 * into the mount waits for this very process to answer.
 */
function sh(cmd: string, dir?: string): Promise<Run> {
  const script = dir === undefined ? cmd : `cd '${dir}' && ${cmd}`;
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { maxBuffer: 1 << 26, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The passthrough, recording the size of every WRITE and never answering a lookup of a name in `hang`. */
class Recording extends Passthrough {
  readonly writes: number[] = [];
  readonly hang = new Set<string>();
  /** Names whose lookup waits for the kernel's INTERRUPT, then fails EINTR. */
  readonly heedInterrupt = new Set<string>();
  interruptibleStarted = 0;
  override async write(ctx: RequestContext, nodeid: number, fh: number, offset: number, data: Buffer): Promise<number> {
    this.writes.push(data.length);
    return super.write(ctx, nodeid, fh, offset, data);
  }
  override async lookup(ctx: RequestContext, parent: number, name: string): Promise<Entry> {
    if (this.hang.has(name)) return new Promise<Entry>(() => {});
    if (this.heedInterrupt.has(name)) {
      this.interruptibleStarted++;
      return new Promise<Entry>((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
    }
    return super.lookup(ctx, parent, name);
  }
}

/** The passthrough, each WRITE held 20 ms, counting the most WRITEs running at once. */
class Overlapping extends Passthrough {
  running = 0;
  most = 0;
  override async write(ctx: RequestContext, nodeid: number, fh: number, offset: number, data: Buffer): Promise<number> {
    this.most = Math.max(this.most, ++this.running);
    try {
      await new Promise((r) => setTimeout(r, 20));
      return await super.write(ctx, nodeid, fh, offset, data);
    } finally {
      this.running--;
    }
  }
}

const skip = whyNoFuse();
if (skip) {
  t.comment(`skipped: ${skip}`);
  t.pass(`skipped: ${skip}`);
} else {
  const top = mkdtempSync(join(tmpdir(), 'fuse-test-'));
  const back = join(top, 'back');
  const mnt = join(top, 'mnt');
  const outside = join(top, 'outside');
  const sessions: FuseSession[] = [];

  t.teardown(async () => {
    // Also when a test failed: nothing may stay mounted.
    for (const s of sessions) {
      if (fuseMountAt(s.mountpoint)) await s.unmount({ lazy: true }).catch(() => {});
    }
    for (const m of [mnt, join(top, 'mnt2'), join(top, 'mnt3'), join(top, 'mnt-r0'), join(top, 'mnt-r1'), join(top, 'mnt-spin5'), join(top, 'mnt-spin0')]) {
      if (fuseMountAt(m)) spawnSync('umount', ['-l', m]);
    }
    await rm(top, { recursive: true, force: true });
  });

  await Promise.all([back, mnt, outside, join(top, 'back2'), join(top, 'mnt2')].map((d) => mkdir(d)));
  const ops = new Recording(back);
  // Every request that has a reply gets exactly one: followed through the debug hook.
  const NO_REPLY = new Set([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT]);
  const unanswered = new Map<bigint, number>();
  const replies = { count: 0, twice: 0 };
  const debug = (e: DebugEvent): void => {
    if (e.dir === 'request') {
      if (!NO_REPLY.has(e.opcode as never)) unanswered.set(e.unique, e.opcode);
    } else {
      replies.count++;
      if (!unanswered.delete(e.unique)) replies.twice++;
    }
  };
  const session = await FuseSession.mount(mnt, ops, { fsName: 'fusetest', subtype: 'passthrough', allowOther: true, debug });
  sessions.push(session);
  const inMnt = (cmd: string) => sh(cmd, mnt);

  t.test('mounted: INIT negotiated 1 MiB writes, the mount listed', async (t) => {
    t.equal(session.conn?.maxWrite, MiB);
    t.equal(session.conn?.maxPages, 257, 'max_pages: 1 MiB and a page more, for a writer\'s buffer that does not start a page');
    const m = fuseMountAt(mnt);
    t.equal(m?.fstype, 'fuse.passthrough');
    t.equal(m?.source, 'fusetest');
    const df = await sh(`df -P ${mnt}`);
    t.match(df.stdout, /fusetest/, 'df shows the file system');
  });

  t.test('cp of a 64 MiB random file, cmp, and dd with bs=1M reaching the ops in 1 MiB writes', async (t) => {
    const src = join(outside, 'random.bin');
    await writeFile(src, randomBytes(64 * MiB));
    let r = await inMnt(`cp ${src} copy.bin && cmp ${src} copy.bin && cmp ${src} ${join(back, 'copy.bin')}`);
    t.equal(r.code, 0, `cp and cmp through the mount and on the backing directory ${r.stderr}`);
    ops.writes.length = 0;
    r = await inMnt('dd if=copy.bin of=dd.bin bs=1M count=16 status=none && cmp -n 16777216 copy.bin dd.bin');
    t.equal(r.code, 0, r.stderr);
    t.equal(Math.max(...ops.writes), MiB, 'the largest WRITE is 1 MiB (max_pages negotiated)');
    t.ok(ops.writes.filter((n) => n === MiB).length >= 16, `16 writes of 1 MiB (${ops.writes.length} writes)`);
    t.equal(session.stats.largestWriteBytes, MiB);
    t.equal((await stat(join(back, 'dd.bin'))).size, 16 * MiB);
  });

  t.test("requests read on the session's event loop, or by a reader thread: 1 MiB writes intact, never more than maxInFlight at once", async (t) => {
    t.equal(session.readerKind, 'loop', "by default on the session's thread (Node's pipe_wrap binding works on this Node)");
    const src = join(outside, 'four.bin');
    await writeFile(src, randomBytes(4 * MiB));
    for (const readers of [0, 1]) {
      const dir = join(top, `back-r${readers}`);
      const m = join(top, `mnt-r${readers}`);
      await Promise.all([mkdir(dir), mkdir(m)]);
      const ops = new Overlapping(dir);
      const s = await FuseSession.mount(m, ops, { readers, maxInFlight: 2 });
      sessions.push(s);
      t.equal(s.readerKind, readers === 0 ? 'loop' : 'threads');
      const r = await sh(`for i in 1 2 3 4; do dd if=${src} of=$i bs=1M status=none & done; wait; for i in 1 2 3 4; do cmp ${src} $i || exit 1; done`, m);
      t.equal(r.code, 0, `4 writers at once, each file intact ${r.stderr}`);
      t.equal(ops.most, 2, `${s.readerKind}: WRITEs ran two at once, never more`);
      await s.unmount();
      t.equal(fuseMountAt(m), undefined);
    }
  });

  t.test('a synchronous caller\'s next request read by the spin after each reply: answers and 1 MiB writes intact; spinMs 0 never spins', async (t) => {
    const src = join(outside, 'spin.bin');
    await writeFile(src, randomBytes(4 * MiB));
    // 300 open+close in a loop (OPEN, FLUSH, RELEASE each), then a file copied in 1 MiB writes.
    const loop = `for (let i = 0; i < 300; i++) fs.closeSync(fs.openSync('f', 'r'));`;
    for (const spinMs of [5, 0]) {
      const dir = join(top, `back-spin${spinMs}`);
      const m = join(top, `mnt-spin${spinMs}`);
      await Promise.all([mkdir(dir), mkdir(m)]);
      await writeFile(join(dir, 'f'), 'x');
      const s = await FuseSession.mount(m, new Passthrough(dir), { spinMs });
      sessions.push(s);
      try {
        const r = await sh(`${JSON.stringify(process.execPath)} -e "const fs = require('node:fs'); ${loop}" && dd if=${src} of=copy bs=1M status=none && cmp ${src} copy`, m);
        t.equal(r.code, 0, `spinMs ${spinMs}: the loop ran, the copy is intact ${r.stderr}`);
        t.same(await readFile(join(dir, 'copy')), await readFile(src), `spinMs ${spinMs}: the backing file holds every byte`);
        if (spinMs > 0) {
          t.ok(s.stats.spinHits > 100, `requests read by the spin: ${s.stats.spinHits} of ${s.stats.requests} (${s.stats.spins} spins)`);
        } else t.equal(s.stats.spins, 0, 'no spin with spinMs 0');
      } finally {
        await s.unmount();
      }
    }
  });

  t.test('mkdir, mv, ln, ln -s, chmod, truncate, ls -l, find, du', async (t) => {
    let r = await inMnt([
      'mkdir -p tree/a/b tree/c', 'echo one > tree/a/one', 'echo two > tree/a/b/two', 'mv tree/a/one tree/c/uno',
      'mv tree/c tree/d', 'ln tree/d/uno tree/hard', 'ln -s d/uno tree/soft', 'chmod 640 tree/hard', 'truncate -s 10000 tree/a/b/two',
    ].join(' && '));
    t.equal(r.code, 0, r.stderr);
    t.equal(await readFile(join(back, 'tree/d/uno'), 'utf8'), 'one\n', 'mv moved the file on the backing directory');
    r = await inMnt('stat -c "%h %a %s" tree/d/uno; readlink tree/soft; cat tree/soft; stat -c %s tree/a/b/two');
    t.equal(r.stdout, '2 640 4\nd/uno\none\n10000\n', 'link count, mode, size, symlink target and content');
    r = await inMnt('ls -l tree');
    t.match(r.stdout, /^-rw-r----- 2 root root\s+4 .* hard$/m);
    t.match(r.stdout, /^lrwxrwxrwx 1 root root\s+5 .* soft -> d\/uno$/m);
    r = await inMnt('find tree | sort');
    t.equal(r.stdout, ['tree', 'tree/a', 'tree/a/b', 'tree/a/b/two', 'tree/d', 'tree/d/uno', 'tree/hard', 'tree/soft', ''].join('\n'));
    r = await inMnt('find tree -type f -size +1k');
    t.equal(r.stdout, 'tree/a/b/two\n');
    const [viaMount, direct] = await Promise.all([inMnt('du -s --apparent-size -B1 tree'), sh(`du -s --apparent-size -B1 ${join(back, 'tree')}`)]);
    t.equal(viaMount.stdout.split('\t')[0], direct.stdout.split('\t')[0], 'du counts what the backing directory holds (hard link once)');
  });

  t.test('tar of a tree into the mount and out of it', async (t) => {
    await mkdir(join(outside, 'src/x/y'), { recursive: true });
    await Promise.all(Array.from({ length: 50 }, (_, i) => writeFile(join(outside, `src/x${i % 2 ? '/y' : ''}/f${i}`), randomBytes(i * 997))));
    let r = await sh(`tar -C ${outside} -cf - src | tar -C ${mnt} -xf - && diff -r ${join(outside, 'src')} ${join(mnt, 'src')}`);
    t.equal(r.code, 0, `tar in, diff -r ${r.stderr}${r.stdout}`);
    r = await sh(`mkdir ${outside}/back && tar -C ${mnt} -cf - src | tar -C ${outside}/back -xf - && diff -r ${join(outside, 'src')} ${join(outside, 'back/src')}`);
    t.equal(r.code, 0, `tar out, diff -r ${r.stderr}${r.stdout}`);
  });

  t.test('git init, add, commit, status', async (t) => {
    const r = await inMnt([
      'mkdir repo', 'cd repo', 'git init -q', 'echo hello > README', 'git add README',
      'git -c user.name=t -c user.email=t@t commit -qm first', 'echo more >> README', 'git status --porcelain', 'git log --oneline | wc -l',
    ].join(' && '));
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, ' M README\n1\n');
  });

  t.test('owners, times and permissions: chown, touch -d, a non-root caller under default_permissions', async (t) => {
    let r = await inMnt('echo s > secret && chmod 600 secret && echo p > public && chown 1234:5678 public && touch -d @1700000000 public && stat -c "%u %g %Y" public');
    t.equal(r.stdout, '1234 5678 1700000000\n', r.stderr);
    r = await inMnt('mkdir pub && chmod 777 pub');
    t.equal(r.code, 0, r.stderr);
    const nobody = 'setpriv --reuid=65534 --regid=65534 --clear-groups';
    r = await inMnt(`${nobody} bash -c 'cat secret'`);
    t.match(r.stderr, /Permission denied/, 'the kernel checks the mode bits (default_permissions)');
    r = await inMnt(`${nobody} bash -c 'umask 022 && echo mine > pub/mine && mkdir pub/dir && stat -c "%u %g %a" pub/mine pub/dir'`);
    t.equal(r.stdout, '65534 65534 644\n65534 65534 755\n', `what a caller creates is its own, with its umask ${r.stderr}`);
    r = await sh(`stat -c "%u %a" ${join(back, 'pub/mine')}`);
    t.equal(r.stdout, '65534 644\n', 'on the backing directory too');
  });

  t.test('8 writers at once, each file intact', async (t) => {
    const src = join(outside, 'par.bin');
    await writeFile(src, randomBytes(8 * MiB));
    const r = await inMnt(`mkdir par && for i in 1 2 3 4 5 6 7 8; do dd if=${src} of=par/$i bs=1M status=none & done; wait; for i in 1 2 3 4 5 6 7 8; do cmp ${src} par/$i || exit 1; done`);
    t.equal(r.code, 0, r.stderr);
  });

  t.test('errors the tools see (ENOENT, EEXIST, ENOTEMPTY), rename over a file, mv -n', async (t) => {
    let r = await inMnt('cat missing');
    t.match(r.stderr, /No such file or directory/);
    r = await inMnt('mkdir e1 && mkdir e1');
    t.match(r.stderr, /File exists/);
    r = await inMnt('mkdir -p e2/sub && rmdir e2');
    t.match(r.stderr, /Directory not empty/);
    r = await inMnt('ln -s x e3 && ln -s x e3');
    t.match(r.stderr, /File exists/);
    r = await inMnt('echo a > r1 && echo b > r2 && mv -f r1 r2 && cat r2 && test ! -e r1');
    t.equal(r.stdout, 'a\n', 'rename over an existing file replaces it');
    r = await inMnt('echo c > n1 && echo d > n2 && mv -n n1 n2; cat n2 n1');
    t.equal(r.stdout, 'd\nc\n', 'mv -n (RENAME_NOREPLACE) leaves both files as they were');
  });

  t.test('an open, unlinked file stays readable and writable through its handle', async (t) => {
    const js = "const fs=require('fs');const fd=fs.openSync('gone','w+');fs.writeSync(fd,'data');fs.unlinkSync('gone');"
      + "const b=Buffer.alloc(4);fs.readSync(fd,b,0,4,0);console.log(b.toString(),fs.existsSync('gone'),fs.fstatSync(fd).size);fs.closeSync(fd)";
    const r = await inMnt(`node -e "${js}"`);
    t.equal(r.stdout, 'data false 4\n', r.stderr);
  });

  t.test('extended attributes with setfattr/getfattr', async (t) => {
    if (!installAttrTools()) {
      t.comment('skipped: setfattr is missing and `apt-get install -y attr` did not work here');
      return;
    }
    let r = await inMnt('echo x > xf && setfattr -n user.color -v blue xf && getfattr --only-values -n user.color xf');
    t.equal(r.stdout, 'blue', r.stderr);
    r = await inMnt('setfattr -n user.size -v 1 xf && getfattr -d xf');
    t.match(r.stdout, /user\.color="blue"/);
    t.match(r.stdout, /user\.size="1"/);
    r = await inMnt('setfattr -x user.color xf && getfattr -n user.color xf');
    t.match(r.stderr, /No such attribute/);
    r = await inMnt('setfattr -x user.color xf');
    t.not(r.code, 0, 'removing a missing attribute fails');
  });

  t.test('an op that never answers fails the tool with EIO within the timeout, an interrupted one ends at once, and unmount still works', async (t) => {
    const ops2 = new Recording(join(top, 'back2'));
    ops2.hang.add('stuck');
    const s2 = await FuseSession.mount(join(top, 'mnt2'), ops2, { opTimeoutMs: 2000, logger: pino({ level: 'silent' }) });
    sessions.push(s2);
    const r = await sh('stat stuck', join(top, 'mnt2'));
    t.not(r.code, 0);
    t.match(r.stderr, /Input\/output error/, 'the caller saw EIO');
    t.equal(s2.stats.timeouts, 1);
    t.equal(s2.stats.abandoned, 1, 'the op is still counted as abandoned');
    const r2 = await sh('echo fine > ok && cat ok', join(top, 'mnt2'));
    t.equal(r2.stdout, 'fine\n', 'the mount keeps working after a timed-out op');

    // A caller killed by a signal while its request runs: the kernel sends INTERRUPT, the op's
    // signal aborts, and the op's EINTR answers the request long before the op timeout.
    ops2.heedInterrupt.add('slow');
    const child = execFile('stat', [join(top, 'mnt2', 'slow')]);
    const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    await until('the lookup of slow to reach the ops', () => ops2.interruptibleStarted === 1);
    child.kill('SIGINT');
    t.equal(await exited, 'SIGINT', 'the caller ended by its signal');
    t.equal(s2.stats.interrupts, 1, 'the INTERRUPT reached the running op');
    t.equal(s2.stats.timeouts, 1, 'and it did not have to time out');

    await s2.unmount();
    t.equal(fuseMountAt(join(top, 'mnt2')), undefined, 'unmounted');
  });

  t.test('with the kernel writeback cache: cp and cmp, appends, write-only opens, data on the backing directory after unmount', async (t) => {
    const back3 = join(top, 'back3');
    const mnt3 = join(top, 'mnt3');
    await Promise.all([mkdir(back3), mkdir(mnt3)]);
    const s3 = await FuseSession.mount(mnt3, new Passthrough(back3), { writebackCache: true });
    sessions.push(s3);
    t.ok((s3.conn!.flags & (1 << 16)) !== 0, 'FUSE_WRITEBACK_CACHE negotiated');
    const src = join(outside, 'random.bin');
    const r = await sh(`cp ${src} c.bin && cmp ${src} c.bin && echo a >> log && echo b >> log && cat log && echo w > wo && cat wo`, mnt3);
    t.equal(r.stdout, 'a\nb\nw\n', r.stderr);
    await s3.unmount();
    t.equal((await sh(`cmp ${src} ${join(back3, 'c.bin')}`)).code, 0, 'every cached write reached the backing file');
  });

  t.test('a mount that fails is an error, and leaves nothing running', async (t) => {
    await t.rejects(FuseSession.mount(join(top, 'no-such-dir'), new Passthrough(back), { logger: pino({ level: 'silent' }) }), { code: 'EMOUNT' });
    t.equal(fuseMountAt(join(top, 'no-such-dir')), undefined);
  });

  t.test('unmount leaves no mount behind and ends the session', async (t) => {
    // RELEASEs of the last tools' files may still be on their way (the kernel sends them in the background).
    await until('the last requests to be answered', () => unanswered.size === 0, 5000).catch(() => {});
    t.same([...unanswered.values()], [], 'no request of the main mount was left without its reply');
    t.equal(replies.twice, 0, 'and none was answered twice');
    t.ok(replies.count > 1000, `${replies.count} replies followed`);
    await session.unmount();
    t.equal(fuseMountAt(mnt), undefined, 'not in /proc/self/mountinfo');
    // Through a child, as every look at the mount point here: a synchronous call from this
    // process would wait on the daemon it runs itself, should the unmount have failed.
    t.equal((await sh(`test -e ${join(mnt, 'copy.bin')}`)).code, 1, 'the mount point is the empty directory again');
    t.equal((await sh(`test -e ${join(back, 'copy.bin')}`)).code, 0, 'the data stays on the backing directory');
  });
}

