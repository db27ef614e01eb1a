// A POSIX suite through the FUSE mount (issue 6's proof): one lustre.kernel hosting an MGS+MDT
// and two OSTs, FUSE client mounts of it, driven as a user drives a local file system: with
// node:fs/promises from this process (the FUSE daemon is the kernel, another process) and with
// the everyday tools in child processes. Each call with its errors, a caller that is not root,
// two mounts seeing each other's closed files, sparse files and one over 4 GiB, 10,000 files
// in one directory, a deep tree, rename over an open file, an unlinked open file.
//
// Needs /dev/fuse and root; skipped otherwise. setfattr/getfattr (Debian's `attr`) and rsync are
// installed with apt-get when missing, as test/lnet installs tshark; a tool still missing skips
// its assertions, said so in a comment.
import { execFile, spawnSync } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import {
  appendFile, chmod, chown, link, lstat, mkdir, mkdtemp, open, readFile, readdir, readlink, rename, rm, rmdir,
  stat, statfs, symlink, truncate, unlink, utimes, writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { fuseAvailable, startCluster } from '../lib/cluster.js';
import { prng, seedFrom } from '../lib/prng.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const NOBODY = 65534;

interface Run { code: number; stdout: string; stderr: string }

/** A shell script in a child process (as root, or as `uid` and `gid`), in `dir` when given. */
function sh(script: string, opts: { dir?: string; uid?: number } = {}): Promise<Run> {
  const full = opts.dir === undefined ? script : `cd '${opts.dir}' && ${script}`;
  const ids = opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid };
  return new Promise((resolve) => {
    execFile('bash', ['-c', full], { maxBuffer: 1 << 26, timeout: 120_000, env: { ...process.env, LC_ALL: 'C', HOME: '/tmp' }, ...ids }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const have = (bin: string): boolean => spawnSync('bash', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

/** Whether `bin` is here, after `apt-get install PKG` when it was not. */
function ensureTool(bin: string, pkg: string): boolean {
  if (have(bin)) return true;
  const opts = { stdio: 'ignore' as const, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 };
  if (spawnSync('apt-get', ['install', '-y', '-qq', pkg], opts).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], opts);
    spawnSync('apt-get', ['install', '-y', '-qq', pkg], opts);
  }
  return have(bin);
}

/** Runs `fn` over items with at most `width` calls in flight. */
async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

if (!fuseAvailable()) {
  t.comment('skipped: FUSE mounts need /dev/fuse and root');
  t.pass('skipped: FUSE mounts need /dev/fuse and root');
} else {
  const c = await startCluster(t);
  // The cluster's folder is the test's own (mkdtemp, 0700): a caller that is not root must reach the mount in it.
  await chmod(c.root, 0o755);
  const mnt = await c.mountClient();
  const mnt2 = await c.mountClient();
  const outside = await mkdtemp(join(tmpdir(), 'posix-fuse-'));
  t.teardown(() => rm(outside, { recursive: true, force: true }));
  const at = (...parts: string[]): string => join(mnt, ...parts);

  t.test('the root: a directory, statfs and df', async (t) => {
    const s = await stat(mnt);
    t.ok(s.isDirectory());
    const f = await statfs(mnt);
    t.ok(f.blocks > 0 && f.bfree <= f.blocks && f.bavail <= f.blocks, `blocks ${f.blocks} free ${f.bfree} avail ${f.bavail}`);
    t.ok(f.files > 0 && f.ffree <= f.files, `files ${f.files} free ${f.ffree}`);
    const df = await sh(`df -P ${mnt}`);
    t.equal(df.code, 0, df.stderr);
    const row = df.stdout.trim().split('\n')[1]!.split(/\s+/);
    t.equal(row[5], mnt, 'df names the mount point');
    t.equal(Number(row[1]) * 1024, f.blocks * f.bsize, 'df reports the size statfs gives');
  });

  t.test('open, read, write, pread/pwrite, close, and their errors', async (t) => {
    await mkdir(at('files'));
    const p = at('files/a.txt');
    await writeFile(p, 'hello world');
    t.equal(await readFile(p, 'utf8'), 'hello world');
    const fh = await open(p, 'r+');
    t.equal((await fh.write(Buffer.from('WORLD'), 0, 5, 6)).bytesWritten, 5, 'pwrite');
    const b = Buffer.alloc(5);
    t.equal((await fh.read(b, 0, 5, 0)).bytesRead, 5, 'pread');
    t.equal(b.toString(), 'hello');
    t.equal((await fh.read(b, 0, 5, 100)).bytesRead, 0, 'a read past the end reads nothing');
    t.equal((await fh.stat()).size, 11, 'fstat');
    await fh.close();
    t.equal(await readFile(p, 'utf8'), 'hello WORLD');

    const made = await open(at('files/mode'), 'wx', 0o640);
    await made.close();
    t.equal((await stat(at('files/mode'))).mode & 0o7777, 0o640 & ~process.umask(), 'a created file takes open\'s mode less the umask');
    await t.rejects(open(at('files/missing'), 'r'), { code: 'ENOENT' }, 'ENOENT: open of a missing file');
    await t.rejects(open(at('nodir/x'), 'w'), { code: 'ENOENT' }, 'ENOENT: create in a missing directory');
    await t.rejects(open(p, 'wx'), { code: 'EEXIST' }, 'EEXIST: O_CREAT|O_EXCL of an existing file');
    await t.rejects(open(at('files'), 'r+'), { code: 'EISDIR' }, 'EISDIR: a directory opened for writing');
    await t.rejects(open(join(p, 'x'), 'r'), { code: 'ENOTDIR' }, 'ENOTDIR: a file as a path component');
    await t.rejects(open(at('files', 'n'.repeat(256)), 'w'), { code: 'ENAMETOOLONG' }, 'ENAMETOOLONG: a 256-byte name');
    await writeFile(at('files', 'n'.repeat(255)), 'max');
    t.equal(await readFile(at('files', 'n'.repeat(255)), 'utf8'), 'max', 'a 255-byte name is fine');

    const ro = await open(p, 'r');
    await t.rejects(ro.write(Buffer.from('x'), 0, 1, 0), { code: 'EBADF' }, 'EBADF: a write through a read-only descriptor');
    await ro.close();
    const wo = await open(p, 'a');
    await t.rejects(wo.read(Buffer.alloc(1), 0, 1, 0), { code: 'EBADF' }, 'EBADF: a read through a write-only descriptor');
    await wo.close();
    t.equal(await readFile(p, 'utf8'), 'hello WORLD', 'the refused calls changed nothing');
  });

  t.test('mkdir, readdir, rmdir, unlink, stat, and their errors', async (t) => {
    await mkdir(at('dirs/a/b'), { recursive: true });
    await writeFile(at('dirs/a/f'), 'f');
    t.same((await readdir(at('dirs/a'))).sort(), ['b', 'f']);
    const types = Object.fromEntries((await readdir(at('dirs/a'), { withFileTypes: true })).map((d) => [d.name, d.isDirectory() ? 'dir' : d.isFile() ? 'file' : '?']));
    t.same(types, { b: 'dir', f: 'file' }, 'readdir gives the types');
    t.equal((await stat(at('dirs/a'))).nlink, 3, 'a directory with one subdirectory has 3 links');

    await t.rejects(mkdir(at('dirs/a')), { code: 'EEXIST' }, 'EEXIST: mkdir of an existing directory');
    await t.rejects(mkdir(at('dirs/a/f')), { code: 'EEXIST' }, 'EEXIST: mkdir over a file');
    await t.rejects(mkdir(at('dirs/missing/x')), { code: 'ENOENT' }, 'ENOENT: mkdir in a missing directory');
    await t.rejects(mkdir(at('dirs/a/f/x')), { code: 'ENOTDIR' }, 'ENOTDIR: mkdir under a file');
    await t.rejects(readdir(at('dirs/a/f')), { code: 'ENOTDIR' }, 'ENOTDIR: readdir of a file');
    await t.rejects(readdir(at('dirs/missing')), { code: 'ENOENT' }, 'ENOENT: readdir of a missing directory');
    await t.rejects(rmdir(at('dirs/a')), { code: 'ENOTEMPTY' }, 'ENOTEMPTY: rmdir of a directory with entries');
    await t.rejects(rmdir(at('dirs/a/f')), { code: 'ENOTDIR' }, 'ENOTDIR: rmdir of a file');
    await t.rejects(rmdir(at('dirs/missing')), { code: 'ENOENT' }, 'ENOENT: rmdir of a missing directory');
    await t.rejects(unlink(at('dirs/a/b')), { code: 'EISDIR' }, 'EISDIR: unlink of a directory');
    await t.rejects(unlink(at('dirs/a/missing')), { code: 'ENOENT' }, 'ENOENT: unlink of a missing file');
    await t.rejects(stat(at('dirs/a/missing')), { code: 'ENOENT' }, 'ENOENT: stat');
    await t.rejects(lstat(at('dirs/a/f/x')), { code: 'ENOTDIR' }, 'ENOTDIR: lstat under a file');
    await t.rejects(stat(at('dirs', 'd'.repeat(300))), { code: 'ENAMETOOLONG' }, 'ENAMETOOLONG: stat');

    await rmdir(at('dirs/a/b'));
    await unlink(at('dirs/a/f'));
    t.same(await readdir(at('dirs/a')), [], 'empty again');
    t.equal((await stat(at('dirs/a'))).nlink, 2);
    await rmdir(at('dirs/a'));
    await t.rejects(stat(at('dirs/a')), { code: 'ENOENT' }, 'gone');
  });

  t.test('rename and its errors', async (t) => {
    await mkdir(at('ren'));
    await writeFile(at('ren/one'), '1');
    await writeFile(at('ren/two'), '22');
    await rename(at('ren/one'), at('ren/two'));
    t.equal(await readFile(at('ren/two'), 'utf8'), '1', 'a rename over a file replaces it');
    await t.rejects(stat(at('ren/one')), { code: 'ENOENT' });
    await mkdir(at('ren/d1/sub'), { recursive: true });
    await mkdir(at('ren/empty'));
    await mkdir(at('ren/full/x'), { recursive: true });
    await t.rejects(rename(at('ren/d1'), at('ren/full')), { code: 'ENOTEMPTY' }, 'ENOTEMPTY: a directory over one with entries');
    await t.rejects(rename(at('ren/two'), at('ren/empty')), { code: 'EISDIR' }, 'EISDIR: a file over a directory');
    await t.rejects(rename(at('ren/d1'), at('ren/two')), { code: 'ENOTDIR' }, 'ENOTDIR: a directory over a file');
    await t.rejects(rename(at('ren/d1'), at('ren/d1/sub/in')), { code: 'EINVAL' }, 'EINVAL: a directory into itself');
    await t.rejects(rename(at('ren/missing'), at('ren/x')), { code: 'ENOENT' }, 'ENOENT: the source is missing');
    await t.rejects(rename(at('ren/two'), at('ren/missing/x')), { code: 'ENOENT' }, 'ENOENT: the target directory is missing');
    await t.rejects(rename(at('ren/two'), join(outside, 'two')), { code: 'EXDEV' }, 'EXDEV: out of the mount');
    await rename(at('ren/d1'), at('ren/empty'));
    t.same(await readdir(at('ren/empty')), ['sub'], 'a directory over an empty one replaces it');
    await rename(at('ren/empty/sub'), at('ren/full/x/moved'));
    t.ok((await stat(at('ren/full/x/moved'))).isDirectory(), 'a directory moved to another parent');
    t.equal((await stat(at('ren/empty'))).nlink, 2, 'the old parent lost the link of ..');
    t.equal((await stat(at('ren/full/x'))).nlink, 3, 'the new parent gained it');
  });

  t.test('hard links, symlinks, readlink, ELOOP', async (t) => {
    await mkdir(at('links'));
    await writeFile(at('links/f'), 'data');
    await link(at('links/f'), at('links/h'));
    t.equal((await stat(at('links/f'))).nlink, 2, 'nlink 2 after link');
    t.equal((await stat(at('links/h'))).ino, (await stat(at('links/f'))).ino, 'one inode');
    await appendFile(at('links/h'), '+');
    t.equal(await readFile(at('links/f'), 'utf8'), 'data+', 'a write through one name is seen through the other');
    await t.rejects(link(at('links/f'), at('links/h')), { code: 'EEXIST' }, 'EEXIST: link over a name');
    await t.rejects(link(at('links'), at('links/dirlink')), { code: 'EPERM' }, 'EPERM: a hard link to a directory');
    await t.rejects(link(at('links/missing'), at('links/x')), { code: 'ENOENT' }, 'ENOENT: link of a missing file');
    await unlink(at('links/f'));
    t.equal((await stat(at('links/h'))).nlink, 1, 'nlink 1 after one name is gone');
    t.equal(await readFile(at('links/h'), 'utf8'), 'data+');

    await symlink('h', at('links/s'));
    t.equal(await readlink(at('links/s')), 'h');
    t.ok((await lstat(at('links/s'))).isSymbolicLink(), 'lstat sees the link');
    t.equal((await lstat(at('links/s'))).size, 1, 'a symlink\'s size is its target\'s length');
    t.ok((await stat(at('links/s'))).isFile(), 'stat follows it');
    t.equal(await readFile(at('links/s'), 'utf8'), 'data+', 'open follows it');
    await symlink('../links', at('links/up'));
    t.equal(await readFile(at('links/up/up/up/h'), 'utf8'), 'data+', 'symlinks to directories in the middle of a path');
    await t.rejects(symlink('x', at('links/s')), { code: 'EEXIST' }, 'EEXIST: symlink over a name');
    await symlink('nowhere', at('links/dangling'));
    await t.rejects(stat(at('links/dangling')), { code: 'ENOENT' }, 'ENOENT: a dangling symlink followed');
    t.ok((await lstat(at('links/dangling'))).isSymbolicLink());
    await symlink('loop2', at('links/loop1'));
    await symlink('loop1', at('links/loop2'));
    await t.rejects(readFile(at('links/loop1')), { code: 'ELOOP' }, 'ELOOP: open of a symlink loop');
    await t.rejects(stat(at('links/loop1/x')), { code: 'ELOOP' }, 'ELOOP: a loop in a path');
    await t.rejects(open(at('links/s'), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW), { code: 'ELOOP' }, 'ELOOP: O_NOFOLLOW of a symlink');
    await t.rejects(readlink(at('links/h')), { code: 'EINVAL' }, 'EINVAL: readlink of a regular file');
    await t.rejects(readlink(at('links/missing')), { code: 'ENOENT' }, 'ENOENT: readlink of a missing name');
    const long = 'x'.repeat(1000);
    await symlink(long, at('links/long'));
    t.equal(await readlink(at('links/long')), long, 'a 1000-byte target');
  });

  t.test('chmod, chown, utimes and touch -d, truncate up and down, O_APPEND', async (t) => {
    await mkdir(at('attrs'));
    const p = at('attrs/f');
    await writeFile(p, 'abcdef');
    await chmod(p, 0o640);
    t.equal((await stat(p)).mode & 0o7777, 0o640, 'chmod');
    await chmod(p, 0o4755);
    t.equal((await stat(p)).mode & 0o7777, 0o4755, 'chmod with setuid');
    await chown(p, 1234, 5678);
    const s = await stat(p);
    t.same([s.uid, s.gid], [1234, 5678], 'chown');
    await utimes(p, 1_000_000_000, 1_500_000_000);
    const u = await stat(p);
    t.same([u.atimeMs, u.mtimeMs], [1_000_000_000_000, 1_500_000_000_000], 'utimes');
    const r = await sh(`touch -d '2001-02-03 04:05:06 UTC' ${p} && stat -c '%X %Y' ${p} && touch -m -d @1700000000.25 ${p} && stat -c '%.2Y' ${p}`);
    t.equal(r.stdout, '981173106 981173106\n1700000000.25\n', `touch -d sets atime and mtime, -m mtime alone ${r.stderr}`);
    // A write and a truncate set mtime to now (the clock of this machine, where the servers run too).
    const before = Math.floor(Date.now() / 1000) * 1000;
    await appendFile(p, 'x');
    t.ok((await stat(p)).mtimeMs >= before, 'a write sets mtime to now');
    await utimes(p, 1_000_000_000, 1_500_000_000);
    await truncate(p, 2);
    t.ok((await stat(p)).mtimeMs >= before, 'a truncate sets mtime to now');
    await writeFile(p, 'abcdef');
    await t.rejects(chmod(at('attrs/missing'), 0o600), { code: 'ENOENT' }, 'ENOENT: chmod');
    await t.rejects(utimes(at('attrs/missing'), 1, 1), { code: 'ENOENT' }, 'ENOENT: utimes');

    await truncate(p, 3);
    t.equal(await readFile(p, 'utf8'), 'abc', 'truncate down');
    await truncate(p, 10);
    t.same(await readFile(p), Buffer.concat([Buffer.from('abc'), Buffer.alloc(7)]), 'truncate up reads zeros');
    await truncate(p, 0);
    t.equal((await stat(p)).size, 0, 'truncate to 0');
    await t.rejects(truncate(at('attrs')), { code: 'EISDIR' }, 'EISDIR: truncate of a directory');
    const fh = await open(p, 'r+');
    await fh.truncate(2 * MiB + 5);
    t.equal((await fh.stat()).size, 2 * MiB + 5, 'ftruncate up');
    await fh.write(Buffer.from('tail'), 0, 4, MiB);
    await fh.truncate(MiB + 2);
    t.equal((await fh.stat()).size, MiB + 2, 'ftruncate down');
    await fh.close();
    const back = await readFile(p);
    t.equal(back.length, MiB + 2);
    t.equal(back.subarray(MiB).toString(), 'ta', 'the bytes before the new end stay');

    await writeFile(p, 'start');
    const ap = await open(p, 'a');
    await ap.write('+one');
    await ap.write(Buffer.from('+two'), 0, 4, 0);
    await ap.close();
    await appendFile(p, '+three');
    t.equal(await readFile(p, 'utf8'), 'start+one+two+three', 'O_APPEND writes at the end whatever the offset');
  });

  t.test('extended attributes with setfattr/getfattr', async (t) => {
    if (!ensureTool('setfattr', 'attr')) {
      t.comment('skipped: setfattr/getfattr (Debian package attr) are missing and apt-get could not install them');
      return;
    }
    await mkdir(at('xattr'));
    await writeFile(at('xattr/f'), 'x');
    let r = await sh('setfattr -n user.color -v blue f && setfattr -n user.size -v 0x0102ff f && getfattr --only-values -n user.color f', { dir: at('xattr') });
    t.equal(r.stdout, 'blue', r.stderr);
    r = await sh('getfattr -d -e hex f', { dir: at('xattr') });
    t.match(r.stdout, /user\.color=0x626c7565/);
    t.match(r.stdout, /user\.size=0x0102ff/, 'binary values');
    r = await sh('getfattr -n user.color f', { dir: mnt2 + '/xattr' });
    t.match(r.stdout, /user\.color="blue"/, 'the other mount sees it');
    r = await sh('setfattr -x user.color f && getfattr -n user.color f', { dir: at('xattr') });
    t.match(r.stderr, /No such attribute/, 'removed');
    r = await sh('setfattr -x user.color f', { dir: at('xattr') });
    t.match(r.stderr, /No such attribute/, 'removing a missing attribute fails with ENODATA');
    r = await sh('getfattr -n user.none f', { dir: at('xattr') });
    t.match(r.stderr, /No such attribute/, 'getting a missing attribute fails with ENODATA');
    r = await sh('getfattr -d nope', { dir: at('xattr') });
    t.match(r.stderr, /No such file or directory/);
    r = await sh('mkdir d && setfattr -n user.on.dir -v 1 d && getfattr --only-values -n user.on.dir d', { dir: at('xattr') });
    t.equal(r.stdout, '1', `on a directory ${r.stderr}`);
    r = await sh('setfattr -n security.capability -v 0x0000000200200000000000000000000000000000 f && getfattr -n security.capability f', { dir: at('xattr') });
    t.match(r.stderr, /No such attribute/, 'file capabilities are not kept, as on Lustre: the set succeeds, the get finds none');
  });

  t.test('permissions as uid 65534 (allow_other, default_permissions)', async (t) => {
    const d = at('perm');
    await mkdir(d);
    await chmod(d, 0o755);
    await writeFile(join(d, 'secret'), 'secret');
    await chmod(join(d, 'secret'), 0o600);
    await writeFile(join(d, 'public'), 'public');
    await chmod(join(d, 'public'), 0o644);
    await mkdir(join(d, 'open'));
    await chmod(join(d, 'open'), 0o777);
    await mkdir(join(d, 'closed'));
    await chmod(join(d, 'closed'), 0o700);
    await mkdir(join(d, 'sticky'));
    await chmod(join(d, 'sticky'), 0o1777);
    await writeFile(join(d, 'sticky/roots'), 'r');
    await chmod(join(d, 'sticky/roots'), 0o666);
    const as = (script: string): Promise<Run> => sh(script, { dir: d, uid: NOBODY });

    let r = await as('cat public');
    t.equal(r.stdout, 'public', `a mode 644 file is readable ${r.stderr}`);
    r = await as('cat secret');
    t.match(r.stderr, /Permission denied/, 'EACCES: reading a 600 file of root');
    r = await as('echo x >> public');
    t.match(r.stderr, /Permission denied/, 'EACCES: writing a 644 file of root');
    r = await as('touch new');
    t.match(r.stderr, /Permission denied/, 'EACCES: creating in a 755 directory of root');
    r = await as('rm -f public');
    t.match(r.stderr, /Permission denied/, 'EACCES: unlinking in a 755 directory of root');
    r = await as('ls closed');
    t.match(r.stderr, /Permission denied/, 'EACCES: listing a 700 directory of root');
    r = await as('cat closed/anything');
    t.match(r.stderr, /Permission denied/, 'EACCES: looking up in a 700 directory of root');
    r = await as('chmod 777 public');
    t.match(r.stderr, /Operation not permitted/, 'EPERM: chmod of a file of root');
    r = await as('touch -d @1 public');
    t.match(r.stderr, /Operation not permitted|Permission denied/, 'setting times of a file of root is refused');

    r = await as('umask 022 && echo mine > open/mine && mkdir open/sub && stat -c "%u %g %a" open/mine open/sub && cat open/mine');
    t.equal(r.stdout, `${NOBODY} ${NOBODY} 644\n${NOBODY} ${NOBODY} 755\nmine\n`, `what the caller creates is its own ${r.stderr}`);
    r = await as('chown 0 open/mine');
    t.match(r.stderr, /Operation not permitted/, 'EPERM: giving a file away');
    r = await as('chmod 000 open/mine && cat open/mine');
    t.match(r.stderr, /Permission denied/, 'EACCES: the owner without read permission');
    t.equal(await readFile(join(d, 'open/mine'), 'utf8'), 'mine\n', 'root still reads it');
    r = await as('chmod 600 open/mine && touch -d @1700000000 open/mine && stat -c %Y open/mine');
    t.equal(r.stdout, '1700000000\n', `the owner sets its own file's mode and times ${r.stderr}`);
    r = await as('rm sticky/roots');
    t.match(r.stderr, /Operation not permitted/, 'EPERM: a file of another owner in a sticky directory');
    r = await as('echo more >> sticky/roots && cat sticky/roots');
    t.equal(r.stdout, 'rmore\n', `a 666 file is writable by anyone ${r.stderr}`);
    r = await as('mv open/mine open/sub/moved && rm -r open/sub');
    t.equal(r.code, 0, `the owner renames and removes in a 777 directory ${r.stderr}`);

    // A write by someone else takes setuid away, and setgid where it means "group exec", as on
    // a local file system; the write itself succeeds. Written with >> (O_APPEND: through the
    // page cache, the kernel asks for the mode change) and with > (write-only: direct, the
    // WRITE carries FUSE_WRITE_KILL_SUIDGID).
    for (const [redirect, how] of [['>>', 'appended (cached)'], ['>', 'written write-only (direct)']] as const) {
      for (const [mode, left] of [[0o4777, 0o777], [0o6777, 0o777], [0o6767, 0o2767]] as const) {
        const f = join(d, 'open/suid');
        await writeFile(f, 'x\n');
        await chmod(f, mode);
        r = await as(`echo more ${redirect} open/suid && stat -c %a open/suid`);
        t.equal(r.stdout, `${left.toString(8)}\n`, `mode ${mode.toString(8)} ${how} by uid ${NOBODY}: ${left.toString(8)} left ${r.stderr}`);
        t.equal(await readFile(f, 'utf8'), redirect === '>>' ? 'x\nmore\n' : 'more\n', 'and the write went through');
      }
    }
    await chmod(join(d, 'open/suid'), 0o4777);
    await writeFile(join(d, 'open/suid'), 'root writes\n');
    t.equal((await stat(join(d, 'open/suid'))).mode & 0o7777, 0o4777, 'a write by root (CAP_FSETID) keeps setuid');
  });

  t.test('two mounts of one file system see each other\'s closed files', async (t) => {
    const p1 = at('shared.txt');
    const p2 = join(mnt2, 'shared.txt');
    await writeFile(p1, 'from one');
    t.equal(await readFile(p2, 'utf8'), 'from one', 'mount 2 reads what mount 1 wrote and closed');
    await writeFile(p2, 'from two, longer');
    t.equal(await readFile(p1, 'utf8'), 'from two, longer', 'and the other way');
    await truncate(p1, 4);
    t.equal(await readFile(p2, 'utf8'), 'from', 'a truncate is seen');
    const big = prng(seedFrom('LUSTRE_POSIX_SEED')).bytes(3 * MiB + 17);
    await writeFile(p2, big);
    t.ok((await readFile(p1)).equals(big), '3 MiB written on mount 2 read whole on mount 1');
    await mkdir(join(mnt2, 'made-on-2'));
    t.ok((await readdir(mnt)).includes('made-on-2'), 'a directory made on mount 2 is listed on mount 1');
    await rename(at('made-on-2'), at('renamed-on-1'));
    t.ok((await stat(join(mnt2, 'renamed-on-1'))).isDirectory(), 'a rename on 1 is seen on 2');
    await t.rejects(stat(join(mnt2, 'made-on-2')), { code: 'ENOENT' });
    await chmod(p1, 0o600);
    t.equal((await stat(p2)).mode & 0o777, 0o600, 'a chmod is seen');
    await unlink(p2);
    await t.rejects(readFile(p1), { code: 'ENOENT' }, 'an unlink on 2 is seen on 1');
  });

  t.test('sparse files: holes read as zeros', async (t) => {
    const p = at('sparse');
    const fh = await open(p, 'w+');
    await fh.write(Buffer.from('head'), 0, 4, 0);
    await fh.write(Buffer.from('middle'), 0, 6, 5 * MiB);
    await fh.write(Buffer.from('end'), 0, 3, 9 * MiB);
    await fh.close();
    const s = await stat(p);
    t.equal(s.size, 9 * MiB + 3);
    t.ok(s.blocks * 512 < s.size / 2, `the holes take no space (${s.blocks} blocks for ${s.size} bytes)`);
    const all = await readFile(p);
    const want = Buffer.alloc(9 * MiB + 3);
    want.write('head', 0);
    want.write('middle', 5 * MiB);
    want.write('end', 9 * MiB);
    t.ok(all.equals(want), 'data where written, zeros in the holes');
    const r = await sh(`cp --sparse=always ${p} ${outside}/sparse.copy && cmp ${p} ${outside}/sparse.copy`);
    t.equal(r.code, 0, `cp and cmp read it as written ${r.stderr}`);
  });

  t.test('a sparse file over 4 GiB', async (t) => {
    const p = at('huge');
    const off = 4 * GiB + 12345;
    const fh = await open(p, 'w+');
    await fh.write(Buffer.from('beyond4G'), 0, 8, off);
    await fh.write(Buffer.from('below'), 0, 5, 4 * GiB - 2);
    await fh.close();
    t.equal((await stat(p)).size, off + 8, 'the size is past 4 GiB');
    t.equal((await stat(join(mnt2, 'huge'))).size, off + 8, 'the other mount sees it too');
    const rh = await open(join(mnt2, 'huge'), 'r');
    // From 8 KiB before the bytes past 4 GiB (after the ones below it) to beyond the end.
    const b = Buffer.alloc(64 * 1024);
    const { bytesRead } = await rh.read(b, 0, b.length, off - 8 * 1024);
    t.equal(bytesRead, 8 * 1024 + 8, 'a read running into the end is short');
    t.ok(b.subarray(0, 8 * 1024).equals(Buffer.alloc(8 * 1024)), 'zeros before the bytes');
    t.equal(b.subarray(8 * 1024, 8 * 1024 + 8).toString(), 'beyond4G', 'the bytes past 4 GiB');
    const c = Buffer.alloc(16);
    await rh.read(c, 0, 16, 4 * GiB - 8);
    t.same([...c], [0, 0, 0, 0, 0, 0, ...Buffer.from('below'), 0, 0, 0, 0, 0], 'a read across the 4 GiB boundary');
    const z = Buffer.alloc(MiB, 1);
    await rh.read(z, 0, MiB, 2 * GiB);
    t.ok(z.equals(Buffer.alloc(MiB)), 'a hole in the middle reads zeros');
    await rh.close();
    const r = await sh(`dd if=${p} bs=1 skip=${off} count=8 status=none`);
    t.equal(r.stdout, 'beyond4G', `dd skips to it ${r.stderr}`);
    await truncate(p, 4 * GiB + 1);
    t.equal((await stat(p)).size, 4 * GiB + 1, 'truncate down stays past 4 GiB');
    await unlink(p);
  });

  t.test('10,000 files in one directory', async (t) => {
    const d = at('many');
    await mkdir(d);
    const names = Array.from({ length: 10_000 }, (_, i) => `file-${i}`);
    // Empty creates (open O_CREAT|O_EXCL, close), every 100th with its name as content.
    await pool(names, 32, async (n) => {
      const fh = await open(join(d, n), 'wx');
      if (n.endsWith('00')) await fh.write(n);
      await fh.close();
    });
    const listed = await readdir(d);
    t.equal(listed.length, 10_000, 'readdir lists 10,000 entries');
    t.equal(new Set(listed).size, 10_000, 'each once');
    t.same(listed.filter((n) => !n.startsWith('file-')), [], 'and nothing else');
    const r = await sh(`ls -f ${d} | wc -l && find ${d} -type f | wc -l`);
    t.equal(r.stdout, '10002\n10000\n', `ls -f (with . and ..) and find count them ${r.stderr}`);
    const rnd = prng(seedFrom('LUSTRE_POSIX_SEED'));
    for (let i = 0; i < 100; i++) {
      const n = names[rnd.int(names.length)]!;
      const s = await stat(join(d, n));
      if (!s.isFile() || s.size !== (n.endsWith('00') ? n.length : 0)) t.fail(`${n}: size ${s.size}`);
    }
    t.equal(await readFile(join(d, 'file-9900'), 'utf8'), 'file-9900', 'a written one\'s content');
    t.equal((await readdir(join(mnt2, 'many'))).length, 10_000, 'the other mount lists them all');
    await pool(names, 32, (n) => unlink(join(d, n)));
    t.same(await readdir(d), [], 'all unlinked');
    await rmdir(d);
  });

  t.test('a tree 64 levels deep', async (t) => {
    const levels = Array.from({ length: 64 }, (_, i) => `level-${i}`);
    const deep = at('deep', ...levels);
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'bottom'), 'deepest');
    t.equal(await readFile(join(deep, 'bottom'), 'utf8'), 'deepest');
    t.equal(await readFile(join(mnt2, 'deep', ...levels, 'bottom'), 'utf8'), 'deepest', 'through the other mount');
    let r = await sh('find deep -type d | wc -l && find deep -name bottom', { dir: mnt });
    t.equal(r.stdout, `65\ndeep/${levels.join('/')}/bottom\n`, `find walks it ${r.stderr}`);
    r = await sh(`cd deep/${levels.join('/')} && pwd && cat bottom`, { dir: mnt });
    t.equal(r.stdout, `${deep}\ndeepest`, `a shell changes into it ${r.stderr}`);
    await rename(at('deep', 'level-0'), at('deep', 'moved'));
    t.equal(await readFile(at('deep', 'moved', ...levels.slice(1), 'bottom'), 'utf8'), 'deepest', 'renaming the top moves it all');
    r = await sh('rm -r deep && test ! -e deep', { dir: mnt });
    t.equal(r.code, 0, `rm -r removes it ${r.stderr}`);
  });

  t.test('rename over an open file: the open handle still reads the old data', async (t) => {
    const old = at('victim');
    await writeFile(old, 'old data');
    const fh = await open(old, 'r');
    await writeFile(at('newcomer'), 'new data, longer');
    await rename(at('newcomer'), old);
    const b = Buffer.alloc(64);
    const { bytesRead } = await fh.read(b, 0, 64, 0);
    t.equal(b.subarray(0, bytesRead).toString(), 'old data', 'the handle reads the replaced file');
    t.equal((await fh.stat()).size, 8, 'and fstat gives its size');
    t.equal(await readFile(old, 'utf8'), 'new data, longer', 'the name opens the new file');
    t.equal(await readFile(join(mnt2, 'victim'), 'utf8'), 'new data, longer', 'on the other mount too');
    await fh.close();
    t.equal(await readFile(old, 'utf8'), 'new data, longer');
  });

  t.test('an unlinked file is still readable and writable through its open handle', async (t) => {
    const p = at('doomed');
    await writeFile(p, 'still here');
    const fh = await open(p, 'r+');
    await unlink(p);
    await t.rejects(stat(p), { code: 'ENOENT' }, 'the name is gone');
    const b = Buffer.alloc(32);
    let n = (await fh.read(b, 0, 32, 0)).bytesRead;
    t.equal(b.subarray(0, n).toString(), 'still here');
    await fh.write(Buffer.from(' and more'), 0, 9, 10);
    n = (await fh.read(b, 0, 32, 0)).bytesRead;
    t.equal(b.subarray(0, n).toString(), 'still here and more', 'a write after the unlink reads back');
    const s = await fh.stat();
    t.equal(s.size, 19);
    t.equal(s.nlink, 0, 'fstat: no links left');
    await fh.close();
    t.notOk((await readdir(mnt)).includes('doomed'));
  });

  t.test('everyday tools: cp -a, mv, tar, rsync, git, find, du, make', async (t) => {
    const src = join(outside, 'src');
    await mkdir(join(src, 'sub/deeper'), { recursive: true });
    const rnd = prng(seedFrom('LUSTRE_POSIX_SEED'));
    for (let i = 0; i < 30; i++) await writeFile(join(src, i % 3 ? 'sub' : '', i % 3 && !(i % 5) ? 'deeper' : '', `f${i}`), rnd.bytes(rnd.int(300_000)));
    await chmod(join(src, 'f0'), 0o751);
    await symlink('f0', join(src, 'link'));
    await utimes(join(src, 'f0'), 1_000_000, 1_234_567);
    // Directories' own sizes differ between file systems (4096 on ext4, 0 here): not compared.
    const listing = (dir: string): Promise<Run> =>
      sh(`find . \\( -type d -printf '%p d %m\\n' \\) -o -printf '%p %y %m %s %l\\n' | sort && stat -c '%Y' f0`, { dir });

    let r = await sh(`cp -a ${src} ${at('cpa')} && diff -r --no-dereference ${src} ${at('cpa')}`);
    t.equal(r.code, 0, `cp -a, diff -r ${r.stderr}${r.stdout}`);
    const want = (await listing(src)).stdout;
    t.equal((await listing(at('cpa'))).stdout, want, 'cp -a kept types, modes, sizes, symlinks and times');

    r = await sh(`mv ${at('cpa')} ${at('moved')} && mv ${at('moved')} ${outside}/out && diff -r --no-dereference ${src} ${outside}/out && test ! -e ${at('moved')}`);
    t.equal(r.code, 0, `mv inside the mount, then out of it (a copy after EXDEV) ${r.stderr}${r.stdout}`);
    r = await sh(`mv ${outside}/out ${at('in')} && diff -r --no-dereference ${src} ${at('in')}`);
    t.equal(r.code, 0, `mv into the mount ${r.stderr}${r.stdout}`);

    r = await sh(`mkdir ${at('tarred')} && tar -C ${src} -cf - . | tar -C ${at('tarred')} -xpf - && diff -r --no-dereference ${src} ${at('tarred')}`);
    t.equal(r.code, 0, `tar into the mount ${r.stderr}${r.stdout}`);
    r = await sh(`tar -C ${at('tarred')} -czf ${outside}/t.tgz . && mkdir ${outside}/untar && tar -C ${outside}/untar -xzf ${outside}/t.tgz && diff -r --no-dereference ${src} ${outside}/untar`);
    t.equal(r.code, 0, `tar out of the mount ${r.stderr}${r.stdout}`);
    // du's apparent size of the copy: its files' and symlinks' sizes (directories count 0 here).
    const [viaMount, local] = await Promise.all([
      sh(`du -s --apparent-size -B1 ${at('tarred')}`), sh(`find ${src} ! -type d -printf '%s\\n' | awk '{ s += $1 } END { print s }'`),
    ]);
    t.equal(viaMount.stdout.split('\t')[0], local.stdout.trim(), 'du --apparent-size counts what the local copy holds');
    const blocks = await sh(`du -s -B1 ${at('tarred')}`);
    t.ok(Number(blocks.stdout.split('\t')[0]) > 0, 'du counts allocated blocks');
    const finds = "find . -name 'f1*' -type f | sort && find . -type l && find . -newermt @2000000 -name f0 | wc -l && find . -size +200k | sort";
    const [found, foundLocal] = await Promise.all([sh(finds, { dir: at('in') }), sh(finds, { dir: src })]);
    t.equal(found.stdout, foundLocal.stdout, `find by name, type, time and size finds what it finds in the local copy ${found.stderr}`);
    t.match(found.stdout, /\.\/sub\/f1\n/);

    if (ensureTool('rsync', 'rsync')) {
      r = await sh(`rsync -a ${src}/ ${at('rsynced')}/ && diff -r --no-dereference ${src} ${at('rsynced')}`);
      t.equal(r.code, 0, `rsync -a into the mount ${r.stderr}${r.stdout}`);
      t.equal((await listing(at('rsynced'))).stdout, want, 'rsync -a kept modes and times');
      await writeFile(join(src, 'sub/f1'), 'changed');
      r = await sh(`rsync -a --itemize-changes ${src}/ ${at('rsynced')}/`);
      t.match(r.stdout, /sub\/f1/, 'a second rsync sends the changed file');
      t.equal(await readFile(at('rsynced/sub/f1'), 'utf8'), 'changed');
    } else {
      t.comment('skipped: rsync is missing and apt-get could not install it');
    }

    if (!have('git')) t.comment('skipped: git is not installed here');
    else await gitChecks(t);
    if (!have('make')) t.comment('skipped: make is not installed here');
    else await makeChecks(t);
  });

  async function gitChecks(t: Test): Promise<void> {
    let r = await sh([
      'mkdir repo', 'cd repo', 'git init -q', 'echo hello > README', 'cp -r ../tarred/sub .', 'git add .',
      'git -c user.name=t -c user.email=t@t commit -qm first', 'echo more >> README', 'git mv sub moved', 'git status --porcelain',
      'git -c user.name=t -c user.email=t@t commit -qam second', 'git status --porcelain', 'git log --oneline | wc -l', 'git fsck --no-progress 2>&1 | wc -l',
    ].join(' && '), { dir: mnt });
    t.equal(r.code, 0, r.stderr);
    const status = r.stdout.split('\n');
    t.ok(status.includes(' M README') || status.includes('M  README'), `git status shows the change: ${r.stdout}`);
    t.match(r.stdout, /\n2\n0\n$/, 'two commits, a clean status and a clean fsck');
    r = await sh(`git clone -q ${at('repo')} ${at('clone')} && cd ${at('clone')} && git log --oneline | wc -l && cat README`);
    t.equal(r.stdout, '2\nhello\nmore\n', `git clone within the mount ${r.stderr}`);
  }

  async function makeChecks(t: Test): Promise<void> {
    await mkdir(at('build'));
    await writeFile(at('build/Makefile'), 'out.txt: in.txt\n\ttr a-z A-Z < in.txt > out.txt\n\nclean:\n\trm -f out.txt\n');
    await writeFile(at('build/in.txt'), 'make me loud\n');
    let r = await sh('make -s && cat out.txt && make', { dir: at('build') });
    t.match(r.stdout, /^MAKE ME LOUD\nmake: 'out.txt' is up to date\.\n$/, `make builds, then has nothing to do ${r.stderr}`);
    r = await sh('echo again > in.txt && touch -d @1000000000 out.txt && make -s && cat out.txt', { dir: at('build') });
    t.equal(r.stdout, 'AGAIN\n', `make rebuilds after a change ${r.stderr}`);
  }
}
