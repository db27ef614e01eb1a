// The file system library, call by call, with its success and its error cases, against an
// MGS+MDT and two OSTs on loopback NIDs: open flags, file handles, stat merged from the OSTs,
// the namespace, symlinks, permissions for a user who is not root, xattrs, statfs, striping,
// the dirty and read-ahead bounds and the tunables.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { constants, FsError, mount, parseDevice, XATTR_CREATE, XATTR_REPLACE } from '../../src/client/index.js';
import { patternBytes, prng, seedFrom } from '../lib/prng.js';
import { until } from '../lib/net.js';
import { rejection, startFs } from './fs-helpers.js';

const SEED = seedFrom('LUSTRE_FS_SEED');
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOFOLLOW } = {
  O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 0o100, O_EXCL: 0o200, O_TRUNC: 0o1000, O_APPEND: 0o2000, O_DIRECTORY: 0o200000, O_NOFOLLOW: 0o400000,
};
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function expectCode(t: Test, p: Promise<unknown>, code: string, syscall: string, what: string): Promise<void> {
  const err = await rejection(p);
  t.equal(err.code, code, `${what}: ${code}`);
  t.equal(err.syscall, syscall, `${what}: syscall ${syscall}`);
}

t.test(`the POSIX calls of the library (seed ${SEED})`, async (t) => {
  const random = prng(SEED);
  const sys = await startFs(t);
  const fs = await sys.mount(5);

  t.test('device names', async (t) => {
    t.same(parseDevice('127.0.0.2@tcp,10.0.0.2@tcp:127.0.0.9@tcp:/testfs'), { mgsNids: ['127.0.0.2@tcp', '10.0.0.2@tcp', '127.0.0.9@tcp'], fsname: 'testfs', path: '/' }, 'NIDs and failover MGSs');
    t.same(parseDevice('127.0.0.2@tcp:/testfs/a/b/').path, '/a/b', 'a path after the fsname');
    t.throws(() => parseDevice('testfs'), { code: 'EINVAL' }, 'no MGS NID');
    t.throws(() => parseDevice('127.0.0.2@tcp:/name-too-long'), { code: 'EINVAL' }, 'an fsname over 8 characters');
    t.equal((await rejection(mount(`${sys.device}/sub`, { nid: '127.0.0.9@tcp', port: sys.port }))).code, 'EINVAL', 'a subdirectory mount is refused');
    t.equal((await rejection(mount('127.0.0.2@tcp:/nofs', { nid: '127.0.0.9@tcp', port: sys.port, connectDeadlineMs: 2000 }))).code, 'ENODEV', 'a file system the MGS does not know');
  });

  t.test('errors are shaped as node:fs gives them', async (t) => {
    const err = await rejection(fs.stat('/no/such'));
    t.ok(err instanceof FsError && err instanceof Error, 'an Error');
    t.equal(err.code, 'ENOENT');
    t.equal(err.errno, -2);
    t.equal(err.syscall, 'stat');
    t.equal(err.path, '/no/such');
    t.match(err.message, /^ENOENT: no such file or directory, stat '\/no\/such'/);
    const r = await rejection(fs.rename('/no/a', '/b'));
    t.equal(r.dest, '/b', 'a two-path call names its destination');
  });

  t.test('open, read, write, positions and the handle calls', async (t) => {
    const fh = await fs.open('/f1', 'w+', 0o640);
    t.type(fh.fd, 'number');
    t.same((await fh.write(Buffer.from('hello world'))).bytesWritten, 11);
    t.same((await fh.write('!!', null)).bytesWritten, 2, 'a string at the current position');
    const buf = Buffer.alloc(20);
    t.equal((await fh.read(buf, 0, 20, 0)).bytesRead, 13, 'a read at a position stops at the end of the file');
    t.equal(buf.subarray(0, 13).toString(), 'hello world!!');
    t.equal((await fh.read(buf, 0, 5, null)).bytesRead, 0, 'the handle position is at the end');
    await fh.write(Buffer.from('HELLO'), 0, 5, 0);
    t.equal((await fh.stat()).size, 13, 'fstat sees buffered data');
    t.equal((await fh.stat()).mode & 0o7777, 0o640 & ~0o022, 'mode less the umask');
    fh.position = 0;
    t.equal(await fh.readFile('utf8'), 'HELLO world!!', 'readFile from the position');
    await fh.truncate(5);
    t.equal((await fh.stat()).size, 5, 'ftruncate');
    await fh.sync();
    await fh.datasync();
    await fh.chmod(0o600);
    t.equal((await fs.stat('/f1')).mode & 0o7777, 0o600, 'fchmod');
    await fh.utimes(1_000_000, 2_000_000);
    const st = await fs.stat('/f1');
    t.equal(st.mtimeMs, 2_000_000_000, 'futimes mtime');
    t.equal(st.atimeMs, 1_000_000_000, 'futimes atime');
    await fh.close();
    await expectCode(t, fh.read(buf, 0, 1, 0), 'EBADF', 'read', 'a read after close');
    await fh.close(); // twice is harmless
    const ro = await fs.open('/f1', 'r');
    await expectCode(t, ro.write('x'), 'EBADF', 'write', 'a write on a read-only handle');
    await ro.close();
    const wo = await fs.open('/f1', O_WRONLY);
    await expectCode(t, wo.read(buf, 0, 1, 0), 'EBADF', 'read', 'a read on a write-only handle');
    await wo.close();
    const d = await fs.open('/', O_RDONLY | O_DIRECTORY);
    await expectCode(t, d.read(buf, 0, 1, 0), 'EISDIR', 'read', 'a read of a directory handle');
    await d.close();
  });

  t.test('open flags behave as POSIX says', async (t) => {
    await fs.mkdir('/flags');
    await expectCode(t, fs.open('/flags/none', O_RDONLY), 'ENOENT', 'open', 'no O_CREAT, no file');
    const c = await fs.open('/flags/x', O_CREAT | O_EXCL | O_RDWR, 0o644);
    await c.write('abcdef');
    await c.close();
    await expectCode(t, fs.open('/flags/x', O_CREAT | O_EXCL | O_RDWR), 'EEXIST', 'open', 'O_CREAT|O_EXCL on a file');
    const tr = await fs.open('/flags/x', O_RDWR | O_TRUNC);
    t.equal((await tr.stat()).size, 0, 'O_TRUNC empties the file');
    await tr.write('12345');
    await tr.close();
    const ap = await fs.open('/flags/x', O_WRONLY | O_APPEND);
    await ap.write('678', 0);
    await ap.write(Buffer.from('9'), 0, 1, 1);
    await ap.close();
    t.equal(await fs.readFile('/flags/x', 'utf8'), '123456789', 'O_APPEND writes at the end, whatever the position');
    await fs.appendFile('/flags/x', 'A');
    t.equal(await fs.readFile('/flags/x', 'utf8'), '123456789A', 'appendFile');
    const many = await fs.open('/flags/appends', 'a+');
    const blocks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000, 65 + i));
    await Promise.all(blocks.map((b) => many.write(b)));
    const all = (await fs.readFile('/flags/appends')) as Buffer;
    t.equal(all.length, 20_000, 'concurrent appends through one handle all land');
    const starts = blocks.map((b) => all.indexOf(b));
    t.ok(starts.every((at) => at >= 0 && at % 1000 === 0) && new Set(starts).size === 20, 'each whole, none over another');
    await many.close();
    await expectCode(t, fs.open('/flags/x', O_RDONLY | O_DIRECTORY), 'ENOTDIR', 'open', 'O_DIRECTORY on a file');
    await expectCode(t, fs.open('/flags', O_WRONLY), 'EISDIR', 'open', 'a directory for writing');
    await fs.symlink('x', '/flags/lnk');
    await expectCode(t, fs.open('/flags/lnk', O_RDONLY | O_NOFOLLOW), 'ELOOP', 'open', 'O_NOFOLLOW on a symlink');
    await expectCode(t, fs.open('/flags/lnk', O_CREAT | O_EXCL | O_WRONLY), 'EEXIST', 'open', 'O_CREAT|O_EXCL on a symlink');
    t.equal(await fs.readFile('/flags/lnk', 'utf8'), '123456789A', 'open follows a symlink');
    const viaLink = await fs.open('/flags/dangling', 'w');
    await viaLink.close();
    await fs.symlink('/flags/made-through-link', '/flags/dl');
    await fs.writeFile('/flags/dl', 'through');
    t.equal(await fs.readFile('/flags/made-through-link', 'utf8'), 'through', 'O_CREAT through a dangling symlink creates its target');
    await expectCode(t, fs.open('/flags/x/', O_RDONLY), 'ENOTDIR', 'open', 'a file with a trailing slash');
    await expectCode(t, fs.open('/flags/x/y', O_RDONLY), 'ENOTDIR', 'open', 'a file as a directory');
    await expectCode(t, fs.open('/flags/' + 'n'.repeat(256), O_CREAT | O_WRONLY), 'ENAMETOOLONG', 'open', 'a name of 256 bytes');
    await expectCode(t, fs.open('/flags/x', 'bogus'), 'EINVAL', 'open', 'an unknown flag string');
    await expectCode(t, fs.writeFile('/flags/x', 'y', { flag: 'wx' }), 'EEXIST', 'open', "writeFile with flag 'wx'");
  });

  t.test('stat and lstat merge the MDT with the OSTs', async (t) => {
    const data = patternBytes(random.int(2 ** 31), 3 * 1024 * 1024 + 17);
    const before = Date.now();
    await fs.writeFile('/big', data);
    const st = await fs.stat('/big');
    t.equal(st.size, data.length, 'size from the OST objects');
    t.ok(st.isFile() && !st.isDirectory() && !st.isSymbolicLink(), 'a regular file');
    t.equal(st.nlink, 1);
    t.equal(st.uid, 0);
    t.ok(st.blocks * 512 >= data.length, 'blocks cover the data');
    t.equal(st.blksize, 4 * 1024 * 1024);
    t.ok(st.mtimeMs >= before - 1000, 'mtime from the writes');
    t.ok(st.mtime instanceof Date && st.mtime.getTime() === st.mtimeMs, 'Date fields');
    t.type(st.ino, 'number');
    t.not(st.ino, (await fs.stat('/f1')).ino, 'inode numbers differ');
    t.equal(st.dev, (await fs.stat('/')).dev, 'one device');
    t.ok((await fs.stat('/')).isDirectory(), 'the root is a directory');
    await fs.symlink('/big', '/big-link');
    t.ok((await fs.lstat('/big-link')).isSymbolicLink(), 'lstat sees the link');
    t.equal((await fs.stat('/big-link')).size, data.length, 'stat follows it');
    t.equal(sha((await fs.readFile('/big')) as Buffer), sha(data), 'the bytes read are the bytes written');
    await new Promise((r) => setTimeout(r, 20));
    await fs.appendFile('/big', 'x');
    t.ok((await fs.stat('/big')).mtimeMs > st.mtimeMs, 'a write moves mtime');
    await expectCode(t, fs.stat('/big/'), 'ENOTDIR', 'stat', 'a file with a trailing slash');
    await expectCode(t, fs.lstat('/nope'), 'ENOENT', 'lstat', 'lstat of nothing');
  });

  t.test('directories: mkdir, readdir, opendir, rmdir', async (t) => {
    await fs.mkdir('/d', 0o750);
    t.equal((await fs.stat('/d')).mode & 0o7777, 0o750 & ~0o022);
    t.equal((await fs.stat('/d')).nlink, 2, 'a new directory has two links');
    await expectCode(t, fs.mkdir('/d'), 'EEXIST', 'mkdir', 'mkdir of an existing directory');
    await expectCode(t, fs.mkdir('/nodir/x'), 'ENOENT', 'mkdir', 'mkdir under nothing');
    await expectCode(t, fs.mkdir('/f1/x'), 'ENOTDIR', 'mkdir', 'mkdir under a file');
    await expectCode(t, fs.mkdir('/'), 'EEXIST', 'mkdir', 'mkdir of the root');
    t.equal(await fs.mkdir('/d/p/q/r', { recursive: true }), '/d/p', 'recursive mkdir gives the first directory made');
    t.equal(await fs.mkdir('/d/p/q/r', { recursive: true }), undefined, 'and nothing when all exist');
    await expectCode(t, fs.mkdir('/f1/a/b', { recursive: true }), 'ENOTDIR', 'mkdir', 'recursive mkdir through a file');
    await fs.writeFile('/d/file', 'x');
    await fs.symlink('file', '/d/sl');
    t.same((await fs.readdir('/d')).sort(), ['file', 'p', 'sl'], 'readdir: names without . and ..');
    const typed = (await fs.readdir('/d', { withFileTypes: true })) as Array<{ name: string; isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }>;
    const byName = new Map(typed.map((e) => [e.name, e]));
    t.ok(byName.get('file')!.isFile() && byName.get('p')!.isDirectory() && byName.get('sl')!.isSymbolicLink(), 'withFileTypes');
    const seen: string[] = [];
    for await (const e of await fs.opendir('/d')) seen.push(e.name);
    t.same(seen.sort(), ['file', 'p', 'sl'], 'opendir iterates the entries');
    await expectCode(t, fs.readdir('/d/file'), 'ENOTDIR', 'scandir', 'readdir of a file');
    await expectCode(t, fs.readdir('/none'), 'ENOENT', 'scandir', 'readdir of nothing');
    await expectCode(t, fs.opendir('/d/file'), 'ENOTDIR', 'opendir', 'opendir of a file');
    await expectCode(t, fs.rmdir('/d/p'), 'ENOTEMPTY', 'rmdir', 'rmdir of a non-empty directory');
    await expectCode(t, fs.rmdir('/d/file'), 'ENOTDIR', 'rmdir', 'rmdir of a file');
    await expectCode(t, fs.rmdir('/d/none'), 'ENOENT', 'rmdir', 'rmdir of nothing');
    await expectCode(t, fs.rmdir('/'), 'EBUSY', 'rmdir', 'rmdir of the root');
    await fs.rmdir('/d/p/q/r');
    await expectCode(t, fs.stat('/d/p/q/r'), 'ENOENT', 'stat', 'gone after rmdir');
  });

  t.test('unlink, rename, link', async (t) => {
    await fs.mkdir('/n');
    await fs.writeFile('/n/a', 'A');
    await fs.writeFile('/n/b', 'B');
    await fs.mkdir('/n/dir');
    await fs.rename('/n/a', '/n/b');
    t.equal(await fs.readFile('/n/b', 'utf8'), 'A', 'rename over a file replaces it');
    await expectCode(t, fs.stat('/n/a'), 'ENOENT', 'stat', 'the old name is gone');
    await expectCode(t, fs.rename('/n/a', '/n/c'), 'ENOENT', 'rename', 'rename of nothing');
    await expectCode(t, fs.rename('/n/dir', '/n/dir/sub'), 'EINVAL', 'rename', 'a directory into itself');
    await expectCode(t, fs.rename('/n/b', '/n/dir'), 'EISDIR', 'rename', 'a file over a directory');
    await expectCode(t, fs.rename('/n/dir', '/n/b'), 'ENOTDIR', 'rename', 'a directory over a file');
    await fs.rename('/n/dir', '/n/dir2');
    t.ok((await fs.stat('/n/dir2')).isDirectory(), 'a directory renamed');
    await fs.link('/n/b', '/n/b2');
    t.equal((await fs.stat('/n/b')).nlink, 2, 'link adds a name');
    t.equal(await fs.readFile('/n/b2', 'utf8'), 'A');
    await expectCode(t, fs.link('/n/b', '/n/b2'), 'EEXIST', 'link', 'link over a name');
    await expectCode(t, fs.link('/n/dir2', '/n/dl'), 'EPERM', 'link', 'link to a directory');
    await expectCode(t, fs.link('/n/none', '/n/x'), 'ENOENT', 'link', 'link to nothing');
    await fs.unlink('/n/b2');
    t.equal((await fs.stat('/n/b')).nlink, 1, 'unlink drops a name');
    await expectCode(t, fs.unlink('/n/dir2'), 'EISDIR', 'unlink', 'unlink of a directory');
    await expectCode(t, fs.unlink('/n/none'), 'ENOENT', 'unlink', 'unlink of nothing');
    // An unlinked file still reads and writes through its open handle, until its last close.
    await fs.writeFile('/n/open', patternBytes(7, 200_000));
    const fh = await fs.open('/n/open', 'r+');
    await fs.unlink('/n/open');
    const back = Buffer.alloc(200_000);
    await fh.read(back, 0, back.length, 0);
    t.ok(back.equals(patternBytes(7, 200_000)), 'an unlinked file reads through its open handle');
    await fh.write('still', 0, 'utf8');
    await fh.close();
    await expectCode(t, fs.stat('/n/open'), 'ENOENT', 'stat', 'gone by name');
  });

  t.test('symlinks: readlink, intermediate components, loops, realpath', async (t) => {
    await fs.mkdir('/s/real/deep', { recursive: true });
    await fs.writeFile('/s/real/deep/f', 'deep');
    await fs.symlink('real', '/s/rel');
    await fs.symlink('/s/real/deep', '/s/abs');
    t.equal(await fs.readlink('/s/rel'), 'real');
    t.equal(await fs.readFile('/s/rel/deep/f', 'utf8'), 'deep', 'a relative symlink in the middle of a path');
    t.equal(await fs.readFile('/s/abs/f', 'utf8'), 'deep', 'an absolute one');
    t.equal(await fs.readFile('/s/abs/../deep/./f', 'utf8'), 'deep', "'..' after a symlink goes to its target's parent");
    t.equal(await fs.realpath('/s/abs/../../rel/deep/f'), '/s/real/deep/f', 'realpath');
    t.equal(await fs.realpath('/../..'), '/', "the root's parent is the root");
    await fs.symlink('loop2', '/s/loop1');
    await fs.symlink('loop1', '/s/loop2');
    await expectCode(t, fs.stat('/s/loop1'), 'ELOOP', 'stat', 'a symlink loop');
    await expectCode(t, fs.readFile('/s/loop1/x'), 'ELOOP', 'open', 'a loop in the middle');
    t.ok((await fs.lstat('/s/loop1')).isSymbolicLink(), 'lstat of a loop is fine');
    await expectCode(t, fs.readlink('/s/real'), 'EINVAL', 'readlink', 'readlink of a directory');
    await expectCode(t, fs.symlink('x', '/s/rel'), 'EEXIST', 'symlink', 'symlink over a name');
    await fs.symlink('/s/dangling-target', '/s/dangling');
    await expectCode(t, fs.stat('/s/dangling'), 'ENOENT', 'stat', 'a dangling symlink');
  });

  t.test('attributes and permissions for a user who is not root', async (t) => {
    await fs.mkdir('/perm');
    await fs.writeFile('/perm/root-only', 'secret', { mode: 0o600 });
    await fs.chmod('/perm', 0o777);
    const user = fs.as({ uid: 1000, gid: 1000, groups: [] });
    await expectCode(t, user.readFile('/perm/root-only'), 'EACCES', 'open', 'a 0600 root file for uid 1000');
    await expectCode(t, user.access('/perm/root-only', constants.R_OK), 'EACCES', 'access', 'access R_OK');
    await user.access('/perm/root-only', constants.F_OK);
    await expectCode(t, user.access('/perm/none'), 'ENOENT', 'access', 'access of nothing');
    await user.writeFile('/perm/mine', 'mine');
    const st = await fs.stat('/perm/mine');
    t.equal(st.uid, 1000, 'created by uid 1000');
    t.equal(st.gid, 1000);
    await user.chmod('/perm/mine', 0o640);
    await expectCode(t, user.chmod('/perm/root-only', 0o666), 'EPERM', 'chmod', 'chmod of another user\'s file');
    await expectCode(t, user.chown('/perm/mine', 0, 0), 'EPERM', 'chown', 'chown to root by a user');
    await expectCode(t, user.truncate('/perm/root-only', 0), 'EACCES', 'truncate', 'truncate without write permission');
    await expectCode(t, user.utimes('/perm/root-only', 1, 1), 'EPERM', 'utime', 'explicit times on another user\'s file');
    await fs.chown('/perm/mine', 1001, 1001);
    t.equal((await fs.stat('/perm/mine')).uid, 1001, 'root chowns');
    await fs.lchown('/perm/mine', -1, 1002);
    t.equal((await fs.stat('/perm/mine')).gid, 1002, 'lchown of the group only');
    await fs.mkdir('/perm/closed', 0o700);
    await fs.writeFile('/perm/closed/f', 'x');
    await expectCode(t, user.stat('/perm/closed/f'), 'EACCES', 'stat', 'a lookup through a directory without search permission');
    await fs.utimes('/perm/mine', new Date(5_000_000), new Date(6_000_000));
    t.equal((await fs.stat('/perm/mine')).mtimeMs, 6_000_000, 'utimes with Dates');
    await fs.symlink('mine', '/perm/ml');
    await fs.lutimes('/perm/ml', 7, 8);
    t.equal((await fs.lstat('/perm/ml')).mtimeMs, 8000, 'lutimes sets the link');
    t.equal((await fs.stat('/perm/ml')).mtimeMs, 6_000_000, 'not its target');
  });

  t.test('truncate', async (t) => {
    await fs.writeFile('/tr', 'abcdefgh');
    await fs.truncate('/tr', 3);
    t.equal(await fs.readFile('/tr', 'utf8'), 'abc', 'shrinks');
    await fs.truncate('/tr', 3 * 1024 * 1024);
    const back = (await fs.readFile('/tr')) as Buffer;
    t.equal(back.length, 3 * 1024 * 1024, 'extends');
    t.equal(back.subarray(3).every((b) => b === 0), true, 'the extension reads as zeros');
    await fs.truncate('/tr');
    t.equal((await fs.stat('/tr')).size, 0, 'to zero by default');
    const huge = await fs.open('/huge', 'w+', 0o644, { stripeCount: 2 });
    const far = 5 * 1024 ** 3 + 7;
    await huge.write('end', far);
    t.equal((await huge.stat()).size, far + 3, 'a sparse file over 4 GiB');
    const tail = Buffer.alloc(8);
    t.equal((await huge.read(tail, 0, 8, far - 5)).bytesRead, 8);
    t.same([...tail], [0, 0, 0, 0, 0, 0x65, 0x6e, 0x64], 'its hole reads as zeros, its end as written');
    await huge.close();
    await expectCode(t, fs.truncate('/d'), 'EISDIR', 'truncate', 'truncate of a directory');
    await expectCode(t, fs.truncate('/none'), 'ENOENT', 'truncate', 'truncate of nothing');
    await expectCode(t, fs.truncate('/tr', -1), 'EINVAL', 'truncate', 'a negative length');
  });

  t.test('extended attributes', async (t) => {
    await fs.writeFile('/xa', '');
    await fs.setxattr('/xa', 'user.color', 'blue');
    t.equal((await fs.getxattr('/xa', 'user.color')).toString(), 'blue');
    t.ok((await fs.listxattr('/xa')).includes('user.color'), 'listed');
    await expectCode(t, fs.setxattr('/xa', 'user.color', 'red', XATTR_CREATE), 'EEXIST', 'setxattr', 'XATTR_CREATE over one');
    await expectCode(t, fs.setxattr('/xa', 'user.size', 'L', XATTR_REPLACE), 'ENODATA', 'setxattr', 'XATTR_REPLACE of none');
    await fs.setxattr('/xa', 'user.color', 'red', XATTR_REPLACE);
    t.equal((await fs.getxattr('/xa', 'user.color')).toString(), 'red', 'replaced');
    await fs.removexattr('/xa', 'user.color');
    await expectCode(t, fs.getxattr('/xa', 'user.color'), 'ENODATA', 'getxattr', 'a removed xattr');
    await expectCode(t, fs.removexattr('/xa', 'user.color'), 'ENODATA', 'removexattr', 'removing none');
    await expectCode(t, fs.setxattr('/xa', 'bogus.ns', 'v'), 'EOPNOTSUPP', 'setxattr', 'an unknown namespace');
    await expectCode(t, fs.getxattr('/none', 'user.x'), 'ENOENT', 'getxattr', 'of nothing');
  });

  t.test('statfs and path checks', async (t) => {
    const s = await fs.statfs('/');
    t.equal(s.type, 0x0bd00bd0, 'LL_SUPER_MAGIC');
    t.ok(s.blocks > 0 && s.bfree <= s.blocks && s.bavail <= s.bfree, 'blocks from the OSTs');
    t.ok(s.files > 0 && s.ffree <= s.files, 'files from the MDT');
    await expectCode(t, fs.statfs('/none'), 'ENOENT', 'statfs', 'statfs of nothing');
    await expectCode(t, fs.stat('/a\0b'), 'EINVAL', 'stat', 'a NUL in a path');
    await expectCode(t, fs.stat('/' + 'a/'.repeat(2100)), 'ENAMETOOLONG', 'stat', 'a path over PATH_MAX');
    t.equal((await fs.stat('big')).ino, (await fs.stat('/big')).ino, 'a relative path starts at the root');
    await expectCode(t, fs.stat('/none/..'), 'ENOENT', 'stat', "'..' after a missing component");
  });

  t.test('striped IO goes to both OSTs, in parallel, and reads back', async (t) => {
    const data = patternBytes(random.int(2 ** 31), 8 * 1024 * 1024 + 12345);
    const before = [...fs.core.oscs.values()].map((o) => o.counters.writeRpcs);
    const fh = await fs.open('/striped', 'w+', 0o644, { stripeCount: 2, stripeSize: 1024 * 1024 });
    for (let at = 0; at < data.length; at += 300_000) await fh.write(data, at, Math.min(300_000, data.length - at), at);
    await fh.close();
    const layout = (await fs.layout('/striped'))!;
    t.equal(layout.objects.length, 2, 'two stripes');
    t.same(new Set(layout.objects.map((o) => o.ostIndex)), new Set([0, 1]), 'on both OSTs');
    const after = [...fs.core.oscs.values()].map((o) => o.counters.writeRpcs);
    t.ok(after.every((n, i) => n > before[i]!), 'each OSC sent writes');
    t.ok(after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0) <= 2 * 9 + 4, 'in RPCs of up to 1 MiB, not one per write');
    t.equal(sha((await fs.readFile('/striped')) as Buffer), sha(data), 'reads back');
  });

  t.test('sequential reads are read ahead; random reads are not', async (t) => {
    const data = patternBytes(random.int(2 ** 31), 6 * 1024 * 1024);
    await fs.writeFile('/ra', data);
    const readRpcs = (): number => [...fs.core.oscs.values()].reduce((n, o) => n + o.counters.readRpcs, 0);
    const fh = await fs.open('/ra', 'r');
    const before = readRpcs();
    const chunk = Buffer.alloc(64 * 1024);
    const parts: Buffer[] = [];
    for (let at = 0; at < data.length; at += chunk.length) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      parts.push(Buffer.from(chunk.subarray(0, bytesRead)));
    }
    t.equal(sha(Buffer.concat(parts)), sha(data), 'the bytes read ahead are the file\'s');
    const sequentialRpcs = readRpcs() - before;
    t.ok(sequentialRpcs < data.length / chunk.length / 4, `96 reads of 64 KiB took ${sequentialRpcs} read RPCs`);
    t.ok(fs.core.readAhead.used <= fs.params.values.maxReadAheadMb * 1024 * 1024, 'within max_read_ahead_mb');
    await fh.close();
    t.equal(fs.core.readAhead.used, 0, 'read-ahead released at close');
    // A write through another handle drops what was read ahead: the new bytes are read.
    const r = await fs.open('/ra', 'r');
    const w = await fs.open('/ra', 'r+');
    for (let at = 0; at < 4 * chunk.length; at += chunk.length) await r.read(chunk, 0, chunk.length, null);
    await w.write(Buffer.alloc(chunk.length, 0xab), 0, chunk.length, 4 * chunk.length);
    await r.read(chunk, 0, chunk.length, null);
    t.ok(chunk.every((b) => b === 0xab), 'a write of this mount is seen by a handle reading ahead');
    await r.close();
    await w.close();
  });

  t.test('tunables: listed, read and set as lctl names them; the dirty bound holds', async (t) => {
    const names = fs.params.list().map((p) => p.name);
    t.ok(names.some((n) => /^osc\.testfs-OST0000-osc-ffff[0-9a-f]{12}\.max_dirty_mb$/.test(n)), 'osc.*.max_dirty_mb');
    t.ok(names.some((n) => /^llite\.testfs-ffff[0-9a-f]{12}\.max_read_ahead_mb$/.test(n)), 'llite.*.max_read_ahead_mb');
    t.same(fs.params.get('osc.*.max_rpcs_in_flight').map((p) => p.value), ['8', '8'], 'one per OSC');
    t.equal(fs.params.set('osc.*.max_rpcs_in_flight', '2'), 2);
    t.same([...fs.core.oscs.values()].map((o) => o.maxRpcsInFlight), [2, 2], 'the OSCs follow');
    t.throws(() => fs.params.set('osc.*.max_rpcs_in_flight', '0'), { code: 'EINVAL' }, 'out of range');
    // BRW RPCs on the wire to one OST, sampled while a file is written: never more than the bound.
    const imports = [...fs.core.oscs.values()].map((o) => o.imports.io);
    let most = 0;
    const sampler = setInterval(() => {
      for (const imp of imports) most = Math.max(most, imp.inFlight);
    }, 0);
    try {
      const big = await fs.open('/in-flight', 'w', 0o644, { stripeCount: 2 });
      await big.write(patternBytes(5, 16 * 1024 * 1024), 0, 16 * 1024 * 1024, 0);
      await big.close();
    } finally {
      clearInterval(sampler);
    }
    t.ok(most >= 1 && most <= 2, `at most max_rpcs_in_flight (2) BRW RPCs on the wire to one OST (saw ${most})`);
    t.throws(() => fs.params.set('osc.*.no_such', '1'), { code: 'ENOENT' }, 'an unknown name');
    fs.params.set('osc.*.max_dirty_mb', 1);
    const fh = await fs.open('/dirty', 'w', 0o644, { stripeCount: 1 });
    const block = patternBytes(3, 256 * 1024);
    let dirtiest = 0;
    for (let i = 0; i < 32; i++) {
      await fh.write(block, 0, block.length, i * block.length);
      dirtiest = Math.max(dirtiest, fh.file!.dirtyBytes);
    }
    t.ok(dirtiest <= 1024 * 1024, `at most max_dirty_mb dirty in the file after each write (${dirtiest})`);
    t.ok(fs.core.dirty.used <= 2 * 1024 * 1024, 'and in the mount');
    await fh.close();
    t.equal(fs.core.dirty.used, 0, 'nothing dirty after close');
    t.equal((await fs.stat('/dirty')).size, 32 * block.length, 'all of it written');
    fs.params.set('osc.*.max_dirty_mb', 32);
    fs.params.set('osc.*.max_rpcs_in_flight', 8);
    // lctl set_param -P on the MGS reaches a mounted client through its config log.
    await fs.core.mgc.setParams('set_param', [['llite.testfs-*.max_read_ahead_mb', '48']]);
    await until('the client applied set_param -P', () => fs.params.values.maxReadAheadMb === 48);
    t.same(fs.params.get('llite.*.max_read_ahead_mb').map((p) => p.value), ['48'], 'llite.*.max_read_ahead_mb from the MGS');
  });

  t.test('after umount, calls fail with ENOTCONN', async (t) => {
    const other = await sys.mount(6);
    await other.writeFile('/from-other', 'x');
    const fh = await other.open('/from-other', 'r+');
    await fh.write('y', 0, 'utf8');
    await other.umount();
    t.equal(await fs.readFile('/from-other', 'utf8'), 'y', 'umount closed the open handle and sent its data');
    await expectCode(t, other.stat('/'), 'ENOTCONN', 'stat', 'stat after umount');
  });
});

