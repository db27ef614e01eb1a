// The MDT's namespace over real LNet on 127.x.y.z: every RPC through the MDC, each POSIX error
// case, permissions (uid/gid/mode, sticky directories, root squash), readdir cookies over a
// large directory, xattrs, statfs, open handles of unlinked files and the orphans a restart
// finds, FIDs never reused after a restart.
import t from 'tap';
import { Mdc, OpenFlag, XattrFlag } from '../../../src/client/mdc.js';
import type { LNetNI } from '../../../src/lnet/index.js';
import { parseFid } from '../../../src/osd/index.js';
import {
  connectMdc, freePort, hosts, newDir, removeDir, startClientNi, startMdtNode, type MdtNode,
} from './helpers.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return 'resolved';
}

const alice = { uid: 1000, gid: 1000, groups: [] };
const bob = { uid: 1001, gid: 1001, groups: [100] };

t.test('MDT namespace over LNet', async (t) => {
  const port = await freePort();
  const [mdtHost, clientHost, squashedHost] = hosts(3, 1);
  const mdtNid = `${mdtHost}@tcp`;
  const dir = await newDir('mdt-ns-');
  t.teardown(() => removeDir(dir));
  let node: MdtNode = await startMdtNode(dir, mdtNid, port, { 'mdt.root_squash': '99:99', 'mdt.nosquash_nids': `${clientHost}@tcp` });
  const clientNi: LNetNI = await startClientNi(`${clientHost}@tcp`, port);
  const squashNi: LNetNI = await startClientNi(`${squashedHost}@tcp`, port);
  let root: Mdc = await connectMdc(clientNi, mdtNid, 'client-1');
  let squashed: Mdc = await connectMdc(squashNi, mdtNid, 'client-2');
  t.teardown(async () => {
    await root.disconnect().catch(() => {});
    await squashed.disconnect().catch(() => {});
    await node.stop().catch(() => {});
    await clientNi.stop();
    await squashNi.stop();
    await node.ni.stop();
  });

  const rootFid = await root.root();
  t.equal(rootFid, '[0x200000007:0x1:0x0]', 'the root is Lustre\'s ROOT FID');

  await t.test('create, mkdir, mknod, symlink, lookup, getattr, readlink', async (t) => {
    const d = await root.mkdir(rootFid, 'd', 0o755);
    t.equal(d.mode, 0o040755);
    t.equal(d.nlink, 2);
    t.equal((await root.getattr(rootFid)).nlink, 3, 'the parent counts the new subdirectory');
    t.ok(parseFid(d.fid).seq >= 0x200000400, 'FIDs come from the normal sequences');
    const f = await root.create(d.fid, 'f', 0o640);
    t.equal(f.mode, 0o100640);
    t.same(await root.lookup(d.fid, 'f'), f, 'lookup answers the created attributes');
    t.same(await root.getattr(f.fid), f);
    t.equal((await root.lookup(d.fid, '..')).fid, rootFid, '.. of a directory is its parent');
    t.equal((await root.lookup(d.fid, '.')).fid, d.fid);
    const c = await root.mknod(d.fid, 'chr', 0o020600, 0x0501);
    t.equal(c.mode, 0o020600);
    t.equal(c.rdev, 0x0501);
    t.equal((await root.mknod(d.fid, 'fifo', 0o010644)).mode, 0o010644);
    t.equal((await root.mknod(d.fid, 'sock', 0o140644)).mode, 0o140644);
    const l = await root.symlink(d.fid, 'l', '../some/where');
    t.equal(l.mode & 0o170000, 0o120000);
    t.equal(l.size, '../some/where'.length);
    t.equal(await root.readlink(l.fid), '../some/where');
    t.equal(await code(root.readlink(f.fid)), 'EINVAL', 'readlink of a regular file');
    t.equal(await code(root.create(d.fid, 'f', 0o644)), 'EEXIST');
    t.equal(await code(root.mkdir(d.fid, 'f', 0o755)), 'EEXIST');
    t.equal(await code(root.mkdir(d.fid, '.', 0o755)), 'EEXIST');
    t.equal(await code(root.lookup(d.fid, 'nope')), 'ENOENT');
    t.equal(await code(root.lookup(f.fid, 'x')), 'ENOTDIR', 'lookup in a file');
    t.equal(await code(root.create(f.fid, 'x', 0o644)), 'ENOTDIR', 'create in a file');
    t.equal(await code(root.create(d.fid, 'a'.repeat(256), 0o644)), 'ENAMETOOLONG');
    t.ok(await root.create(d.fid, 'b'.repeat(255), 0o644), 'a 255-byte name is fine');
    t.equal(await code(root.create(d.fid, 'a/b', 0o644)), 'EINVAL');
    t.equal(await code(root.symlink(d.fid, 'long', 'x'.repeat(4096))), 'ENAMETOOLONG');
    t.equal(await code(root.getattr('[0x200000400:0xfffff:0x0]')), 'ENOENT');
    t.equal(await code(root.mknod(d.fid, 'bad', 0o170644)), 'EINVAL', 'an unknown file type');
  });

  await t.test('link, unlink, rmdir', async (t) => {
    const d = await root.mkdir(rootFid, 'links', 0o755);
    const f = await root.create(d.fid, 'f', 0o644);
    const l = await root.link(f.fid, d.fid, 'g');
    t.equal(l.nlink, 2);
    t.equal(await code(root.link(f.fid, d.fid, 'g')), 'EEXIST');
    t.equal(await code(root.link(d.fid, rootFid, 'dirlink')), 'EPERM', 'hard link to a directory');
    t.equal(await code(root.link('[0x300000400:0x1:0x0]', d.fid, 'x')), 'EXDEV', 'a FID another MDT serves');
    t.same(await root.unlink(d.fid, 'f'), { orphan: false, destroyed: false }, 'a name of two: the file stays');
    t.equal((await root.lookup(d.fid, 'g')).nlink, 1);
    t.same(await root.unlink(d.fid, 'g'), { orphan: false, destroyed: true }, 'the last name: the file is destroyed');
    t.equal(await code(root.getattr(f.fid)), 'ENOENT', 'the last unlink destroys the file');
    t.equal(await code(root.unlink(d.fid, 'g')), 'ENOENT');
    const sub = await root.mkdir(d.fid, 'sub', 0o755);
    await root.create(sub.fid, 'x', 0o644);
    t.equal(await code(root.unlink(d.fid, 'sub')), 'EISDIR', 'unlink of a directory');
    t.equal(await code(root.rmdir(d.fid, 'sub')), 'ENOTEMPTY');
    t.equal(await code(root.rmdir(sub.fid, 'x')), 'ENOTDIR', 'rmdir of a file');
    t.equal(await code(root.rmdir(sub.fid, '.')), 'EINVAL');
    t.equal(await code(root.rmdir(sub.fid, '..')), 'ENOTEMPTY');
    await root.unlink(sub.fid, 'x');
    t.equal((await root.getattr(d.fid)).nlink, 3);
    await root.rmdir(d.fid, 'sub');
    t.equal((await root.getattr(d.fid)).nlink, 2, 'rmdir drops the parent\'s link count');
    t.equal(await code(root.getattr(sub.fid)), 'ENOENT');
    t.equal(await code(root.create(sub.fid, 'y', 0o644)), 'ENOENT', 'create in a removed directory');
  });

  await t.test('rename', async (t) => {
    const a = await root.mkdir(rootFid, 'ra', 0o755);
    const b = await root.mkdir(rootFid, 'rb', 0o755);
    const f = await root.create(a.fid, 'f', 0o644);
    await root.rename(a.fid, 'f', a.fid, 'f2');
    t.equal((await root.lookup(a.fid, 'f2')).fid, f.fid, 'within a directory');
    t.equal(await code(root.lookup(a.fid, 'f')), 'ENOENT');
    await root.rename(a.fid, 'f2', b.fid, 'f');
    t.equal((await root.lookup(b.fid, 'f')).fid, f.fid, 'across directories');
    const g = await root.create(a.fid, 'g', 0o644);
    await root.rename(b.fid, 'f', a.fid, 'g');
    t.equal((await root.lookup(a.fid, 'g')).fid, f.fid, 'over an existing file');
    t.equal(await code(root.getattr(g.fid)), 'ENOENT', 'the replaced file is gone');
    const h = await root.link(f.fid, a.fid, 'h');
    await root.rename(a.fid, 'g', a.fid, 'h');
    t.equal((await root.getattr(h.fid)).nlink, 2, 'rename onto another name of the same file does nothing');
    // Directories.
    const sub = await root.mkdir(a.fid, 'sub', 0o755);
    const deep = await root.mkdir(sub.fid, 'deep', 0o755);
    await root.rename(a.fid, 'sub', b.fid, 'sub');
    t.equal((await root.lookup(deep.fid, '..')).fid, sub.fid);
    t.equal((await root.lookup(sub.fid, '..')).fid, b.fid, '.. follows a moved directory');
    t.equal((await root.getattr(a.fid)).nlink, 2);
    t.equal((await root.getattr(b.fid)).nlink, 3);
    t.equal(await code(root.rename(b.fid, 'sub', deep.fid, 'loop')), 'EINVAL', 'into its own subtree');
    t.equal(await code(root.rename(b.fid, 'sub', sub.fid, 'self')), 'EINVAL', 'into itself');
    const empty = await root.mkdir(a.fid, 'empty', 0o755);
    await root.rename(b.fid, 'sub', a.fid, 'empty');
    t.equal((await root.lookup(a.fid, 'empty')).fid, sub.fid, 'a directory over an empty one');
    t.equal(await code(root.getattr(empty.fid)), 'ENOENT');
    t.equal((await root.getattr(a.fid)).nlink, 3);
    t.equal((await root.getattr(b.fid)).nlink, 2);
    await root.mkdir(a.fid, 'full', 0o755);
    await root.create((await root.lookup(a.fid, 'full')).fid, 'x', 0o644);
    t.equal(await code(root.rename(a.fid, 'empty', a.fid, 'full')), 'ENOTEMPTY');
    t.equal(await code(root.rename(a.fid, 'empty', a.fid, 'h')), 'ENOTDIR', 'a directory over a file');
    t.equal(await code(root.rename(a.fid, 'h', a.fid, 'full')), 'EISDIR', 'a file over a directory');
    t.equal(await code(root.rename(a.fid, 'nope', a.fid, 'x')), 'ENOENT');
    t.equal(await code(root.rename(a.fid, '.', a.fid, 'x')), 'EINVAL');
    t.equal(await code(root.rename(a.fid, 'h', f.fid, 'x')), 'ENOTDIR', 'into a file');
  });

  await t.test('setattr and permissions', async (t) => {
    const d = await root.mkdir(rootFid, 'perm', 0o777);
    const a = root.asUser(alice);
    const b = root.asUser(bob);
    const f = await a.create(d.fid, 'f', 0o600);
    t.equal(f.uid, 1000);
    t.equal(f.gid, 1000);
    t.equal(await code(b.setattr(f.fid, { mode: 0o666 })), 'EPERM', 'chmod by another user');
    t.equal((await a.setattr(f.fid, { mode: 0o644 })).mode, 0o100644);
    t.equal(await code(a.setattr(f.fid, { uid: 1001 })), 'EPERM', 'chown by a user');
    t.equal(await code(a.setattr(f.fid, { gid: 100 })), 'EPERM', 'chgrp to a group the owner is not in');
    t.equal((await root.setattr(f.fid, { uid: 1001, gid: 100 })).uid, 1001, 'root chowns');
    t.equal((await b.setattr(f.fid, { gid: 1001 })).gid, 1001, 'the owner chgrps to one of their groups');
    const times = await b.setattr(f.fid, { atime: 1000, mtime: 2000 });
    t.equal(times.atime, 1000);
    t.equal(times.mtime, 2000);
    t.equal(await code(a.setattr(f.fid, { mtime: 5 })), 'EPERM', 'explicit times by another user');
    t.equal(await code(a.setattr(f.fid, { timesNow: true })), 'EACCES', 'utimes(NULL) without write permission');
    // A write by another user takes setuid away, and setgid only where the group may execute.
    const su = await a.create(d.fid, 'su', 0o666);
    await a.setattr(su.fid, { mode: 0o6777 });
    t.equal((await b.setattr(su.fid, { killSuidGid: true })).mode, 0o100777, 'killSuidGid by another user: setuid and setgid go');
    await a.setattr(su.fid, { mode: 0o6767 });
    t.equal((await b.setattr(su.fid, { killSuidGid: true })).mode, 0o102767, 'setgid without group exec stays');
    t.equal(await code(b.setattr(su.fid, { killSuidGid: true, mode: 0o777 })), 'EPERM', 'but it carries no chmod');
    await a.setattr(su.fid, { mode: 0o4755 });
    t.equal(await code(b.setattr(su.fid, { killSuidGid: true })), 'EACCES', 'nor is it for someone who may not write the file');
    t.equal((await root.getattr(su.fid)).mode, 0o104755, 'which leaves setuid');
    // Directory permissions.
    const priv = await a.mkdir(d.fid, 'private', 0o700);
    t.equal(await code(b.lookup(priv.fid, 'x')), 'EACCES', 'search without x');
    t.equal(await code(b.create(priv.fid, 'x', 0o644)), 'EACCES', 'create without w');
    t.equal(await code(b.readdir(priv.fid)), 'EACCES', 'readdir without r');
    await a.create(priv.fid, 'mine', 0o644);
    t.equal(await code(b.unlink(priv.fid, 'mine')), 'EACCES');
    const grp = await root.mkdir(d.fid, 'grp', 0o770);
    await root.setattr(grp.fid, { gid: 100 });
    t.ok(await b.create(grp.fid, 'x', 0o644), 'group member writes through group bits');
    t.equal(await code(a.create(grp.fid, 'y', 0o644)), 'EACCES');
    t.equal(await code(a.openFid(f.fid, OpenFlag.RDWR)), 'EACCES', 'open for write without w');
    // Sticky directory.
    const tmp = await root.mkdir(d.fid, 'tmp', 0o1777);
    await a.create(tmp.fid, 'alices', 0o666);
    t.equal(await code(b.unlink(tmp.fid, 'alices')), 'EPERM', 'sticky: not the owner');
    t.equal(await code(b.rename(tmp.fid, 'alices', tmp.fid, 'bobs')), 'EPERM', 'sticky: rename by another user');
    await a.unlink(tmp.fid, 'alices');
    await a.create(tmp.fid, 'again', 0o666);
    await root.unlink(tmp.fid, 'again');
    t.pass('sticky: the owner and root may remove');
    // Root squash: root from a NID not in nosquash_nids acts as 99:99.
    const s = await squashed.create(d.fid, 'squashed', 0o644);
    t.equal(s.uid, 99, 'root squashed to uid 99');
    t.equal(await code(squashed.setattr(f.fid, { uid: 0 })), 'EPERM', 'squashed root cannot chown');
    t.equal(await code(squashed.lookup(priv.fid, 'mine')), 'EACCES');
  });

  await t.test('xattrs', async (t) => {
    const d = await root.mkdir(rootFid, 'xa', 0o777);
    const a = root.asUser(alice);
    const b = root.asUser(bob);
    const f = await a.create(d.fid, 'f', 0o644);
    await a.setxattr(f.fid, 'user.color', Buffer.from('blue'));
    t.equal((await b.getxattr(f.fid, 'user.color')).toString(), 'blue');
    t.equal(await code(b.setxattr(f.fid, 'user.color', Buffer.from('red'))), 'EACCES');
    t.equal(await code(a.setxattr(f.fid, 'user.color', Buffer.from('red'), XattrFlag.CREATE)), 'EEXIST');
    t.equal(await code(a.setxattr(f.fid, 'user.size', Buffer.from('1'), XattrFlag.REPLACE)), 'ENODATA');
    t.equal(await code(a.getxattr(f.fid, 'user.none')), 'ENODATA');
    t.equal(await code(a.setxattr(f.fid, 'trusted.x', Buffer.from('1'))), 'EPERM');
    await root.setxattr(f.fid, 'trusted.x', Buffer.from('1'));
    t.equal(await code(a.getxattr(f.fid, 'trusted.x')), 'ENODATA', 'trusted xattrs are invisible to users');
    t.same((await a.listxattr(f.fid)).sort(), ['user.color']);
    t.same((await root.listxattr(f.fid)).sort(), ['trusted.x', 'user.color']);
    t.equal(await code(a.setxattr(f.fid, 'bogus.x', Buffer.from('1'))), 'EOPNOTSUPP');
    t.equal(await code(root.getxattr(f.fid, 'mdt.parent')), 'ENODATA', 'internal xattrs stay hidden');
    t.equal(await code(a.setxattr(f.fid, 'user.big', Buffer.alloc(65537))), 'E2BIG');
    await a.setxattr(f.fid, 'user.big', Buffer.alloc(65536, 7));
    t.same(await a.getxattr(f.fid, 'user.big'), Buffer.alloc(65536, 7), 'a 64 KiB value round-trips');
    await a.removexattr(f.fid, 'user.big');
    await a.removexattr(f.fid, 'user.color');
    t.equal(await code(a.removexattr(f.fid, 'user.color')), 'ENODATA');
  });

  await t.test('readdir with cookies over a large directory', async (t) => {
    const d = await root.mkdir(rootFid, 'big', 0o755);
    const names = Array.from({ length: 600 }, (_, i) => `file-${String(i).padStart(4, '0')}-${'x'.repeat(i % 50)}`);
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((n) => root.create(d.fid, n, 0o644)));
    const first = await root.readdir(d.fid, null, 4096);
    t.equal(first.entries[0]!.name, '.');
    t.equal(first.entries[1]!.name, '..');
    t.notOk(first.end, 'a 4 KiB page does not hold 600 entries');
    const all = await root.readdirAll(d.fid, 4096);
    t.same(all.slice(2).map((e) => e.name), [...names].sort(), 'every entry once, in order, across pages');
    t.ok(all.every((e) => e.fid.startsWith('[0x')));
    // A cookie stays valid across inserts and deletes.
    const p1 = await root.readdir(d.fid, null, 4096);
    await root.unlink(d.fid, names[0]!);
    await root.create(d.fid, 'zzz-late', 0o644);
    const rest = await root.readdirAll(d.fid, 4096);
    t.ok(rest.some((e) => e.name === 'zzz-late'));
    const p2 = await root.readdir(d.fid, p1.cookie, 4096);
    t.ok(p2.entries[0]!.name > p1.entries[p1.entries.length - 1]!.name, 'the next page starts after the cookie');
    t.equal(await code(root.readdir((await root.lookup(d.fid, 'zzz-late')).fid)), 'ENOTDIR');
  });

  await t.test('statfs', async (t) => {
    const s = await root.statfs();
    t.ok(s.bytesTotal > 0 && s.bytesFree > 0 && s.objectsTotal > 0);
    t.equal(s.namelen, 255);
  });

  await t.test('open, unlink while open, read, close; orphans after a restart', async (t) => {
    const d = await root.mkdir(rootFid, 'open', 0o777);
    const a = root.asUser(alice);
    const o = await a.open(d.fid, 'f', OpenFlag.CREAT | OpenFlag.RDWR, 0o600);
    t.ok(o.created);
    t.equal(o.attr.uid, 1000);
    t.equal(await code(a.open(d.fid, 'f', OpenFlag.CREAT | OpenFlag.EXCL | OpenFlag.RDWR)), 'EEXIST');
    t.equal(await code(a.open(d.fid, 'missing', OpenFlag.RDONLY)), 'ENOENT');
    t.equal(await code(a.open(d.fid, 'f', OpenFlag.RDONLY | OpenFlag.DIRECTORY)), 'ENOTDIR');
    t.equal(await code(a.openFid(d.fid, OpenFlag.RDWR)), 'EISDIR');
    await a.setxattr(o.attr.fid, 'user.data', Buffer.from('still here'));
    t.same(await a.unlink(d.fid, 'f'), { orphan: true, destroyed: false }, 'the open file becomes an orphan');
    t.equal(await code(a.lookup(d.fid, 'f')), 'ENOENT', 'its name is gone');
    const orphan = await a.getattr(o.attr.fid);
    t.equal(orphan.nlink, 0);
    t.equal((await a.getxattr(o.attr.fid, 'user.data')).toString(), 'still here', 'an open unlinked file is still read');
    const o2 = await a.openFid(o.attr.fid, OpenFlag.RDONLY);
    await a.close(o.handle);
    t.ok(await a.getattr(o.attr.fid), 'alive while another handle is open');
    await a.close(o2.handle);
    t.equal(await code(a.getattr(o.attr.fid)), 'ENOENT', 'the last close destroys it');
    t.equal(await code(a.close(o2.handle)), 'EBADF', 'a closed handle');
    // An orphan left open when the MDT stops is destroyed at the next start.
    const p = await a.open(d.fid, 'g', OpenFlag.CREAT | OpenFlag.WRONLY, 0o600);
    await a.unlink(d.fid, 'g');
    const lastFid = node.mdt.mdd.lastFid;
    await root.disconnect();
    await squashed.disconnect();
    await node.stop();
    node = await startMdtNode(dir, mdtNid, port, {}, {}, node.ni);
    root = await connectMdc(clientNi, mdtNid, 'client-1');
    squashed = await connectMdc(squashNi, mdtNid, 'client-2');
    t.equal(await code(root.getattr(p.attr.fid)), 'ENOENT', 'the orphan was destroyed at start');
    t.equal(await code(root.lookup(d.fid, 'g')), 'ENOENT');
    t.equal((await root.lookup(rootFid, 'open')).fid, d.fid, 'the namespace survived the restart');
    const n = await root.create(d.fid, 'new', 0o644);
    const nf = parseFid(n.fid);
    t.ok(nf.seq > lastFid.seq || (nf.seq === lastFid.seq && nf.oid > lastFid.oid), 'FIDs are not reused after a restart');
  });

  await t.test('concurrent creates, renames and removals keep the tree consistent', async (t) => {
    const seed = Number(process.env.MDT_SEED ?? Date.now() % 1_000_000);
    t.comment(`seed ${seed} (MDT_SEED reproduces)`);
    let s = seed;
    const random = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const top = await root.mkdir(rootFid, 'race', 0o755);
    const dirs = [top.fid];
    for (let i = 0; i < 4; i++) dirs.push((await root.mkdir(top.fid, `d${i}`, 0o755)).fid);
    const pick = <T>(a: T[]): T => a[Math.floor(random() * a.length)]!;
    const ops = Array.from({ length: 200 }, (_, i) => async () => {
      const r = random();
      const d = pick(dirs);
      const n = `n${Math.floor(random() * 8)}`;
      if (r < 0.3) return root.mkdir(d, n, 0o755).then((a) => void dirs.push(a.fid));
      if (r < 0.5) return root.create(d, `f${i}`, 0o644);
      if (r < 0.8) return root.rename(d, n, pick(dirs), `n${Math.floor(random() * 8)}`);
      return root.rmdir(d, n);
    });
    // 8 at a time; refusals (EEXIST, ENOENT, ENOTEMPTY, EINVAL loops, ...) are expected.
    const refused: Record<string, number> = {};
    for (let i = 0; i < ops.length; i += 8) {
      await Promise.all(ops.slice(i, i + 8).map((op) => op().catch((e: { code: string }) => void (refused[e.code] = (refused[e.code] ?? 0) + 1))));
    }
    t.comment(`refused: ${JSON.stringify(refused)}`);
    t.notOk('EIO' in refused || 'ETIMEDOUT' in refused, 'no failure beyond POSIX refusals');
    const seen = new Set<string>();
    const check = async (dir: string): Promise<void> => {
      const entries = (await root.readdirAll(dir)).slice(2);
      const subdirs = entries.filter((e) => e.type === 'dir');
      t.equal((await root.getattr(dir)).nlink, 2 + subdirs.length, `nlink of ${dir}`);
      for (const e of subdirs) {
        t.notOk(seen.has(e.fid), 'a directory is reachable once');
        seen.add(e.fid);
        t.equal((await root.lookup(e.fid, '..')).fid, dir, `.. of ${e.name}`);
        await check(e.fid);
      }
    };
    await check(top.fid);
  });

  await t.test('a resent create is executed once', async (t) => {
    const d = await root.mkdir(rootFid, 'once', 0o755);
    // Lose the replies of the next creates: the client resends, the MDT answers from its record.
    let drop = 3;
    const imp = root.import as unknown as { forceReconnect(): void };
    const created = await Promise.all(['a', 'b', 'c'].map(async (n) => {
      const p = root.create(d.fid, n, 0o644);
      if (drop-- > 0) imp.forceReconnect();
      return p;
    }));
    t.equal(created.length, 3);
    const names = (await root.readdirAll(d.fid)).map((e) => e.name).slice(2);
    t.same(names, ['a', 'b', 'c'], 'each create happened exactly once (no EEXIST on resend)');
  });
});
