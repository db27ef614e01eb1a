// Caching on locks, with two library mounts of one file system (clients on 127.0.0.5 and .6):
// the lock namespaces and their parameters, data written on one mount read at once on the
// other (the writer keeps its file open, its data dirty), O_APPEND from both without loss, the
// size of dirty data elsewhere, application locks (fcntl and flock through llite's getlk/setlk),
// and an evicted client's locks.
import t from 'tap';
import { Llite } from '../../src/client/llite.js';
import { LISTED_NAMES_MAX } from '../../src/client/md-cache.js';
import { LOOKUP_NAMES_MAX } from '../../src/services/mdt/protocol.js';
import { objectResId } from '../../src/client/locks.js';
import type { FileSystem } from '../../src/client/index.js';
import { lockPool, LockType } from '../../src/ldlm/index.js';
import { OFFSET_MAX, type RequestContext } from '../../src/client/fuse/index.js';
import { until } from '../lib/net.js';
import { prng, seedFrom } from '../lib/prng.js';
import { rejection, startFs } from './fs-helpers.js';

const ctx = (pid: number, signal = new AbortController().signal): RequestContext => ({ uid: 0, gid: 0, pid, unique: 1n, signal });

function locksOf(fs: FileSystem, type: number): number {
  return fs.core.namespaces().reduce((n, ns) => n + ns.cache.locks().filter((l) => l.type === type).length, 0);
}

t.test('client caching on locks, two mounts', async (t) => {
  const tfs = await startFs(t);
  const a = await tfs.mount(5);
  const b = await tfs.mount(6);

  t.test('namespaces named as Lustre names them, with their parameters', async (t) => {
    const names = a.core.namespaces().map((ns) => ns.name);
    t.same(names, [`testfs-MDT0000-mdc-${a.core.instance}`, `testfs-OST0000-osc-${a.core.instance}`, `testfs-OST0001-osc-${a.core.instance}`]);
    const listed = a.params.get('ldlm.namespaces.*.lru_size').map((p) => p.name);
    t.same(listed, names.map((n) => `ldlm.namespaces.${n}.lru_size`));
    t.equal(a.params.set(`ldlm.namespaces.testfs-OST0000-osc-${a.core.instance}.lru_size`, '7'), 1);
    t.equal(a.params.get(`ldlm.namespaces.testfs-OST0000-osc-*.lru_size`)[0]!.value, '7');
    t.throws(() => a.params.set('ldlm.namespaces.*.lock_count', '3'), { code: 'EINVAL' }, 'lock_count is read-only');
    a.params.set('ldlm.namespaces.*.lru_size', '0');
  });

  t.test('a write on one mount is read at once on the other, the writer holding its file open', async (t) => {
    const w = await a.open('/shared', 'w+');
    await w.write(Buffer.from('first words'), 0, 11, 0);
    t.ok(w.file!.dirtyBytes > 0, 'the data is still dirty on the writer');
    t.equal(locksOf(a, LockType.EXTENT) > 0, true, 'the writer holds an extent lock');
    t.equal(await b.readFile('/shared', 'utf8'), 'first words', 'the reader sees it: the writer wrote back on the blocking callback');
    t.equal(w.file!.dirtyBytes, 0, 'nothing dirty on the writer any more');
    const r = await b.open('/shared', 'r');
    const buf = Buffer.alloc(64);
    t.equal((await r.read(buf, 0, 64, 0)).bytesRead, 11);
    await w.write(Buffer.from('WORDS'), 0, 5, 6);
    t.equal((await r.stat()).size, 11, 'stat on the reader while the writer has dirty data');
    const { bytesRead } = await r.read(buf, 0, 64, 0);
    t.equal(buf.subarray(0, bytesRead).toString(), 'first WORDS', 'the open reader reads the new data at once');
    await w.write(Buffer.from(' and more'), 0, 9, 11);
    t.equal((await b.stat('/shared')).size, 20, 'the size of dirty data elsewhere');
    await r.close();
    await w.close();
  });

  t.test('O_APPEND from both mounts interleaves without loss', async (t) => {
    const seed = seedFrom('LDLM_CLIENT_SEED');
    t.comment(`seed ${seed} (LDLM_CLIENT_SEED)`);
    const rng = prng(seed);
    const rand = (): number => rng.next();
    const ha = await a.open('/log', 'a');
    const hb = await b.open('/log', 'a');
    const lines: string[] = [];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      const who = rand() < 0.5 ? 'a' : 'b';
      const line = `${who}${String(i).padStart(3, '0')}${'.'.repeat(Math.floor(rand() * 40))}\n`;
      lines.push(line);
      writes.push((who === 'a' ? ha : hb).write(line));
      if (rand() < 0.3) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    await ha.close();
    await hb.close();
    const got = String(await a.readFile('/log', 'utf8'));
    t.equal(got.length, lines.join('').length, 'every byte is there');
    t.same(got.split('\n').filter(Boolean).sort(), lines.map((l) => l.slice(0, -1)).sort(), 'every line whole, none overwritten');
  });

  t.test('truncate on one mount, stat and read on the other', async (t) => {
    const h = await b.open('/trunc', 'w+');
    await h.write(Buffer.alloc(100_000, 7), 0, 100_000, 0);
    t.equal((await a.stat('/trunc')).size, 100_000);
    await a.truncate('/trunc', 10);
    t.equal((await h.stat()).size, 10);
    t.equal((await b.readFile('/trunc')).length, 10);
    await h.close();
  });

  t.test('fcntl and flock locks through llite exclude each other across mounts', async (t) => {
    const la = new Llite(a);
    const lb = new Llite(b);
    await a.writeFile('/locked', 'x');
    const na = (await la.lookup(ctx(1), 1, 'locked')).nodeid;
    const nb = (await lb.lookup(ctx(2), 1, 'locked')).nodeid;
    const noWait = { wait: false, flock: false, close: false };
    const whole = (type: 'read' | 'write' | 'unlock') => ({ start: 0n, end: OFFSET_MAX, type, pid: 0 });

    await la.setlk(ctx(101), na, 0, 11n, { start: 0n, end: 99n, type: 'write', pid: 101 }, noWait);
    t.same(await lb.getlk(ctx(202), nb, 0, 22n, { start: 50n, end: 60n, type: 'read', pid: 202 }),
      { start: 0n, end: 99n, type: 'write', pid: 0 }, 'F_GETLK on the other mount names the holder (no pid: another node)');
    t.same(await la.getlk(ctx(102), na, 0, 12n, { start: 50n, end: 60n, type: 'read', pid: 102 }),
      { start: 0n, end: 99n, type: 'write', pid: 101 }, 'F_GETLK on the same mount gives the local holder its pid');
    t.equal(await lb.getlk(ctx(202), nb, 0, 22n, { start: 100n, end: 200n, type: 'write', pid: 202 }), null, 'past the range: free');
    t.match(await rejection(lb.setlk(ctx(202), nb, 0, 22n, { start: 10n, end: 20n, type: 'read', pid: 202 }, noWait)), { code: 'EAGAIN' });
    await lb.setlk(ctx(202), nb, 0, 22n, { start: 100n, end: 200n, type: 'write', pid: 202 }, noWait);

    // SETLKW waits for the holder's unlock.
    let granted = false;
    const waiting = lb.setlk(ctx(202), nb, 0, 22n, { start: 0n, end: 10n, type: 'write', pid: 202 }, { ...noWait, wait: true }).then(() => { granted = true; });
    await new Promise((r) => setTimeout(r, 100));
    t.equal(granted, false, 'the waiter waits');
    await la.setlk(ctx(101), na, 0, 11n, whole('unlock'), { ...noWait, close: true });
    await waiting;
    t.ok(granted, 'granted once the holder closed');

    // An interrupted wait holds nothing; the waiter behind it is served.
    const ac = new AbortController();
    const interrupted = la.setlk(ctx(104, ac.signal), na, 0, 14n, { start: 0n, end: 5n, type: 'read', pid: 104 }, { ...noWait, wait: true });
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    t.match(await rejection(interrupted), { code: 'EINTR' }, 'an interrupted SETLKW fails with EINTR');
    await lb.setlk(ctx(202), nb, 0, 22n, whole('unlock'), { ...noWait, close: true });
    t.equal(await lb.getlk(ctx(202), nb, 0, 22n, { start: 0n, end: 5n, type: 'write', pid: 202 }), null, 'nothing left behind by the interrupted waiter');

    // flock(): whole file, owned by the open file.
    await la.setlk(ctx(101), na, 0, 31n, whole('write'), { wait: false, flock: true, close: false });
    t.match(await rejection(lb.setlk(ctx(202), nb, 0, 32n, whole('read'), { wait: false, flock: true, close: false })), { code: 'EAGAIN' });
    await la.setlk(ctx(101), na, 0, 31n, whole('unlock'), { wait: false, flock: true, close: true });
    await lb.setlk(ctx(202), nb, 0, 32n, whole('read'), { wait: false, flock: true, close: false });
    await lb.setlk(ctx(202), nb, 0, 32n, whole('unlock'), { wait: false, flock: true, close: true });

    const before = b.core.mdcNamespace!.counters.enqueues;
    await lb.setlk(ctx(202), nb, 0, 99n, whole('unlock'), { wait: false, flock: false, close: true });
    t.equal(b.core.mdcNamespace!.counters.enqueues, before, 'a close of an owner that holds nothing asks nothing of the MDT');
  });

  t.test('attributes under inodebits locks, revoked by the other mount', async (t) => {
    const la = new Llite(a);
    const told: string[] = [];
    la.attach({
      invalInode: async (nodeid, offset = 0) => { told.push(`inode ${nodeid}${offset < 0 ? ' attr' : ''}`); return true; },
      invalEntry: async (parent, name) => { told.push(`entry ${parent}/${name}`); return true; },
    });
    await b.mkdir('/md');
    await b.writeFile('/md/x', 'x');
    const dir = await la.lookup(ctx(1), 1, 'md');
    t.ok(dir.entryTimeoutMs! > 0, 'a name under its child\'s LOOKUP lock gets validity');
    t.ok((await la.getattr(ctx(1), dir.nodeid, undefined)).attrTimeoutMs! > 0, 'a directory\'s attributes under its lock get validity');
    const x = await la.lookup(ctx(1), dir.nodeid, 'x');
    t.ok(x.entryTimeoutMs! > 0, 'so does a file\'s name');
    const hits = a.core.mdCache.counters.nameHits;
    t.equal((await la.lookup(ctx(1), dir.nodeid, 'x')).nodeid, x.nodeid);
    t.equal(a.core.mdCache.counters.nameHits, hits + 1, 'a second lookup is served from the name cache');
    t.ok((await la.getattr(ctx(1), x.nodeid, undefined)).attrTimeoutMs! > 0, 'a file\'s too, its data being under extent locks');
    const before = a.core.mdCache.counters.hits;
    t.equal((await la.getattr(ctx(1), x.nodeid, undefined)).attr.mode & 0o777, 0o644);
    t.equal(a.core.mdCache.counters.hits, before + 1, 'getattr served from the attributes the lock vouches for');

    await b.chmod('/md/x', 0o600);
    await until('the chmod revoked the lock', () => told.includes(`inode ${x.nodeid} attr`));
    t.equal((await la.getattr(ctx(1), x.nodeid, undefined)).attr.mode & 0o777, 0o600, 'the next getattr asks again');

    await la.lookup(ctx(1), dir.nodeid, 'x'); // cached again after the chmod took its lock
    await b.rename('/md/x', '/md/y');
    await until('the rename changed the directory under the lock on it', () => told.includes(`inode ${dir.nodeid} attr`));
    t.ok(told.includes(`entry ${dir.nodeid}/x`), 'and revoked the name x (its child\'s LOOKUP lock)');
    t.match(await rejection(la.lookup(ctx(1), dir.nodeid, 'x')), { code: 'ENOENT' });
    t.equal((await la.lookup(ctx(1), dir.nodeid, 'y')).nodeid, x.nodeid, 'the same inode under its new name');
    await b.writeFile('/md/z', 'z');
    const after = (await la.getattr(ctx(1), dir.nodeid, undefined)).attr;
    told.length = 0;
    await b.unlink('/md/z');
    await until('the unlink revoked the directory\'s attributes', () => told.includes(`inode ${dir.nodeid} attr`));
    t.ok((await la.getattr(ctx(1), dir.nodeid, undefined)).attr.mtimeNs >= after.mtimeNs, 'read again after the change');
  });

  t.test('early lock cancel: an update carries the mount\'s own locks it would call back', async (t) => {
    const la = new Llite(a);
    la.attach({ invalInode: async () => true, invalEntry: async () => true });
    await a.mkdir('/elc');
    await a.writeFile('/elc/f', 'f');
    const dir = await la.lookup(ctx(1), 1, 'elc');
    const f = await la.lookup(ctx(1), dir.nodeid, 'f');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    const mdcNs = a.core.namespaces()[0]!;
    const held = mdcNs.cache.stats().lock_count;
    t.ok(held >= 3, `the mount holds ${held} MDC locks (the names and the directory's attributes)`);
    const revokedBefore = mdcNs.counters.revoked;
    const early = tfs.mdt.ldlm.counters.earlyCancels;
    await la.setattr(ctx(1), f.nodeid, { mode: 0o600 });
    t.ok(tfs.mdt.ldlm.counters.earlyCancels > early, 'the chmod carried the file\'s lock');
    const afterChmod = tfs.mdt.ldlm.counters.earlyCancels;
    await la.lookup(ctx(1), dir.nodeid, 'f');
    await la.unlink(ctx(1), dir.nodeid, 'f');
    t.ok(tfs.mdt.ldlm.counters.earlyCancels > afterChmod, 'the unlink carried the name\'s lock');
    t.ok(a.core.mdCache.attrLock(a.core.mdCache.childOf(a.core.rootFid, 'elc')!), 'the directory\'s it keeps (keepParentLock)');
    t.equal(mdcNs.counters.revoked, revokedBefore, 'no blocking callback came to this mount');
    t.match(await rejection(b.stat('/elc/f')), { code: 'ENOENT' }, 'the other mount sees it gone');
  });

  t.test('a create brings its name\'s lock with the open: one request to the MDT, the name cached, the other mount\'s unlink seen at once', async (t) => {
    const la = new Llite(a);
    const told: string[] = [];
    la.attach({
      invalInode: async (nodeid, offset = 0) => { told.push(`inode ${nodeid}${offset < 0 ? ' attr' : ''}`); return true; },
      invalEntry: async (parent, name) => { told.push(`entry ${parent}/${name}`); return true; },
    });
    await a.mkdir('/made');
    const dir = await la.lookup(ctx(1), 1, 'made');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    const mdt = tfs.mdt.ldlm.service.counters;
    const before = { sent: a.core.mdc.import.counters.sent, enqueues: mdt.enqueues, replaced: mdt.intentsReplaced };
    const { entry, open } = await la.create(ctx(1), dir.nodeid, 'new', 0o100644, 0o1101 /* O_WRONLY|O_CREAT|O_TRUNC */, 0o022);
    t.equal(a.core.mdc.import.counters.sent - before.sent, 1, 'one request to the MDT: the open intent (no lookup of the new name after it)');
    t.equal(mdt.enqueues - before.enqueues, 1);
    t.equal(mdt.intentsReplaced - before.replaced, 1, 'the open handed out the new file\'s lock');
    t.ok(entry.entryTimeoutMs! > 0, 'the new name has a validity: its child\'s lock vouches for it');
    t.ok(entry.attrTimeoutMs! > 0, 'so have its attributes');
    t.equal(entry.attr.mode, 0o100644);
    await la.release(ctx(1), entry.nodeid, open.fh);
    const hits = a.core.mdCache.counters.nameHits;
    t.equal((await la.lookup(ctx(1), dir.nodeid, 'new')).nodeid, entry.nodeid, 'a lookup of the name finds it cached');
    t.equal(a.core.mdCache.counters.nameHits, hits + 1);
    await b.unlink('/made/new');
    await until('the other mount\'s unlink revoked the name', () => told.includes(`entry ${dir.nodeid}/new`));
    t.match(await rejection(la.lookup(ctx(1), dir.nodeid, 'new')), { code: 'ENOENT' });
    // An O_CREAT open of a name that exists creates nothing and hands out no lock.
    await b.writeFile('/made/old', 'x');
    const replaced = mdt.intentsReplaced;
    const again = await la.create(ctx(1), dir.nodeid, 'old', 0o100644, 0o101 /* O_WRONLY|O_CREAT */, 0o022);
    t.equal(mdt.intentsReplaced, replaced, 'no lock for a file the open did not create');
    await la.release(ctx(1), again.entry.nodeid, again.open.fh);
  });

  t.test('an unlink\'s early cancels: the directory\'s attributes go at once, the name is the kernel\'s own, the child\'s attributes only if it outlives the unlink; a failed rmdir\'s or unlink\'s are told', async (t) => {
    const la = new Llite(a);
    const told: string[] = [];
    la.attach({
      invalInode: async (nodeid, offset = 0) => { told.push(`inode ${nodeid}${offset < 0 ? ' attr' : ''}`); return true; },
      invalEntry: async (parent, name) => { told.push(`entry ${parent}/${name}`); return true; },
      invalAttrsNow: (nodeid) => { told.push(`now ${nodeid}`); return true; },
    });
    await a.mkdir('/rm');
    const dir = await la.lookup(ctx(1), 1, 'rm');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    const { entry: f, open } = await la.create(ctx(1), dir.nodeid, 'f', 0o100644, 0o1101, 0o022);
    await la.release(ctx(1), f.nodeid, open.fh);
    await la.getattr(ctx(1), dir.nodeid, undefined);
    t.equal((await la.lookup(ctx(1), dir.nodeid, 'f')).nodeid, f.nodeid);
    told.length = 0;
    await la.unlink(ctx(1), dir.nodeid, 'f');
    t.same(told, [`now ${dir.nodeid}`],
      'the directory\'s attributes at once, from no thread; nothing of the child, whose last name went (the kernel drops the name and the nlink itself)');

    // A name of two: the child outlives the unlink, so its attributes are told, once the answer came.
    await b.writeFile('/rm/two', 'x');
    await b.link('/rm/two', '/rm/two2');
    const two = await la.lookup(ctx(1), dir.nodeid, 'two');
    await la.getattr(ctx(1), two.nodeid, undefined);
    told.length = 0;
    await la.unlink(ctx(1), dir.nodeid, 'two');
    t.ok(told.includes(`now ${two.nodeid}`), 'a file with a name left: its attributes (nlink) are told after the UNLINK');
    t.equal((await la.getattr(ctx(1), two.nodeid, undefined)).attr.nlink, 1, 'and read again: nlink 1');

    // A failed unlink (of a directory): the child's lock went with the request, so its attributes are told.
    await a.mkdir('/rm/d');
    const d = await la.lookup(ctx(1), dir.nodeid, 'd');
    await la.getattr(ctx(1), d.nodeid, undefined);
    told.length = 0;
    t.ok(await rejection(la.unlink(ctx(1), dir.nodeid, 'd')), 'unlink of a directory fails');
    t.ok(told.includes(`now ${d.nodeid}`), 'the UNLINK failed: the child\'s attributes, whose lock went, are told');
    t.ok(told.includes(`entry ${dir.nodeid}/d`), 'and so is its name');
    await la.rmdir(ctx(1), dir.nodeid, 'd');

    await a.mkdir('/rm/sub');
    await b.writeFile('/rm/sub/x', 'x');
    const sub = await la.lookup(ctx(1), dir.nodeid, 'sub');
    told.length = 0;
    t.match(await rejection(la.rmdir(ctx(1), dir.nodeid, 'sub')), { code: 'ENOTEMPTY' });
    t.ok(told.includes(`now ${sub.nodeid}`), 'the directory\'s lock went with the RMDIR: its attributes at once');
    t.ok(told.includes(`entry ${dir.nodeid}/sub`), 'the RMDIR failed: the kernel keeps the name, so it is told the name\'s lock went');
    await b.rename('/rm/sub', '/rm/sub2');
    t.match(await rejection(la.lookup(ctx(1), dir.nodeid, 'sub')), { code: 'ENOENT' }, 'the other mount\'s rename is seen');
  });

  t.test('a create, mkdir, rmdir or unlink keeps the mount\'s lock on its directory, whose new attributes come with the reply; the other mount\'s change still calls it back', async (t) => {
    const la = new Llite(a);
    const told: string[] = [];
    la.attach({
      invalInode: async (nodeid, offset = 0) => { told.push(`inode ${nodeid}${offset < 0 ? ' attr' : ''}`); return true; },
      invalEntry: async () => true,
      invalAttrsNow: (nodeid) => { told.push(`now ${nodeid}`); return true; },
    });
    await a.mkdir('/keep');
    const dir = await la.lookup(ctx(1), 1, 'keep');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    const mdcNs = a.core.mdcNamespace!;
    const revoked = mdcNs.counters.revoked;
    const early = tfs.mdt.ldlm.counters.earlyCancels;
    let hits = 0;
    /** The directory as this mount's cache answers it (no request), beside the MDT's own answer. */
    const both = async (what: string) => {
      const sent = a.core.mdc.import.counters.sent;
      const cached = await la.getattr(ctx(1), dir.nodeid, undefined);
      t.equal(a.core.mdc.import.counters.sent, sent, `${what}: the directory's attributes ask the MDT nothing`);
      t.ok(cached.attrTimeoutMs! > 0, `${what}: under the lock kept`);
      const truth = await b.stat('/keep');
      t.equal(cached.attr.nlink, truth.nlink, `${what}: nlink as the MDT has it`);
      t.equal(cached.attr.mtimeNs, BigInt(Math.round(truth.mtimeMs * 1e3)) * 1000n, `${what}: mtime as the MDT has it`);
    };
    const { entry, open } = await la.create(ctx(1), dir.nodeid, 'f', 0o100644, 0o1101 /* O_WRONLY|O_CREAT|O_TRUNC */, 0o022);
    await la.release(ctx(1), entry.nodeid, open.fh);
    t.ok(told.includes(`now ${dir.nodeid}`), 'the kernel is told the directory changed before the create is answered');
    await both('after a create');
    await la.mkdir(ctx(1), dir.nodeid, 'sub', 0o755, 0o022);
    await both('after a mkdir');
    await la.rmdir(ctx(1), dir.nodeid, 'sub');
    await both('after an rmdir');
    await la.unlink(ctx(1), dir.nodeid, 'f');
    await both('after an unlink');
    hits = a.core.mdCache.counters.hits;
    await Promise.all([0, 1, 2, 3].map(async (i) => {
      const c = await la.create(ctx(1), dir.nodeid, `g${i}`, 0o100644, 0o1101, 0o022);
      await la.release(ctx(1), c.entry.nodeid, c.open.fh);
    }));
    t.equal((await la.getattr(ctx(1), dir.nodeid, undefined)).attr.nlink, 2);
    t.equal(a.core.mdCache.counters.hits, hits, 'after four creates at once the attributes are asked again: the replies may come in another order than the MDT applied them');
    await both('then');
    t.equal(mdcNs.counters.revoked, revoked, 'no blocking callback came to this mount');
    t.equal(tfs.mdt.ldlm.counters.earlyCancels, early + 1, 'and no early cancel of the directory\'s lock went (one: the unlinked file\'s)');

    told.length = 0;
    await b.writeFile('/keep/other', 'x');
    await until('the other mount\'s create called the lock back', () => told.includes(`now ${dir.nodeid}`) || told.includes(`inode ${dir.nodeid} attr`));
    t.equal(mdcNs.counters.revoked, revoked + 1);
    const after = await la.getattr(ctx(1), dir.nodeid, undefined);
    t.equal(after.attr.mtimeNs, BigInt(Math.round((await b.stat('/keep')).mtimeMs * 1e3)) * 1000n, 'asked again: the other mount\'s change is seen');
  });

  t.test('security.capability, as Lustre\'s llite: a getxattr is ENODATA and a setxattr or removexattr does nothing, with no request (the kernel asks before every write)', async (t) => {
    const la = new Llite(a);
    la.attach({ invalInode: async () => true, invalEntry: async () => true, invalAttrsNow: () => true });
    await a.writeFile('/caps', 'x');
    const f = await la.lookup(ctx(1), 1, 'caps');
    const sent = a.core.mdc.import.counters.sent;
    t.match(await rejection(la.getxattr(ctx(1), f.nodeid, 'security.capability')), { code: 'ENODATA' });
    await la.setxattr(ctx(1), f.nodeid, 'security.capability', Buffer.from([1, 0, 0, 2]), 0);
    t.match(await rejection(la.getxattr(ctx(1), f.nodeid, 'security.capability')), { code: 'ENODATA' }, 'set, and still not there');
    await la.removexattr(ctx(1), f.nodeid, 'security.capability');
    t.equal(a.core.mdc.import.counters.sent, sent, 'no request to the MDT');
    t.notOk((await la.listxattr(ctx(1), f.nodeid)).includes('security.capability'), 'nothing was stored');
    await la.setxattr(ctx(1), f.nodeid, 'security.selinux', Buffer.from('x'), 0);
    t.same(await la.getxattr(ctx(1), f.nodeid, 'security.selinux'), Buffer.from('x'), 'other security xattrs are kept');
  });

  t.test('a lookup of a name not there is answered from the directory\'s list of names while its lock holds; the other mount\'s change, a rename, a denied search and a large directory ask the MDT', async (t) => {
    const la = new Llite(a);
    la.attach({ invalInode: async () => true, invalEntry: async () => true, invalAttrsNow: () => true });
    await a.mkdir('/listed');
    const dir = await la.lookup(ctx(1), 1, 'listed');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    const sent = () => a.core.mdc.import.counters.sent;
    const counters = a.core.mdCache.counters;
    /** A lookup of `name` in /listed: what it found (or its errno code) and the MDT requests it sent. */
    const look = async (name: string, c = ctx(1)) => {
      const before = sent();
      try {
        const e = await la.lookup(c, dir.nodeid, name);
        return { found: e.attr.ino !== undefined, sent: sent() - before };
      } catch (err) {
        return { code: (err as { code?: string }).code, sent: sent() - before };
      }
    };
    t.same(await look('n0'), { code: 'ENOENT', sent: 1 }, 'the first lookup asks, and lists the empty directory');
    const hits = counters.absentHits;
    t.same(await look('n1'), { code: 'ENOENT', sent: 0 }, 'the next is answered here');
    const c1 = await la.create(ctx(1), dir.nodeid, 'n1', 0o100644, 0o1101, 0o022);
    await la.release(ctx(1), c1.entry.nodeid, c1.open.fh);
    await la.mkdir(ctx(1), dir.nodeid, 'd1', 0o755, 0o022);
    t.same(await look('n2'), { code: 'ENOENT', sent: 0 }, 'after this mount\'s create and mkdir, the list holds');
    t.equal(counters.absentHits, hits + 2);
    t.match(await look('n1'), { found: true }, 'what it created is found');
    await la.rmdir(ctx(1), dir.nodeid, 'd1');
    t.same(await look('d1'), { code: 'ENOENT', sent: 0 }, 'what it removed is not');
    t.match(await look('..'), { found: true }, '.. is not in the list, and is found');

    await b.writeFile('/listed/fromb', 'x');
    t.match(await look('fromb'), { found: true }, 'the other mount\'s create called the lock back: its name is found');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    t.same(await look('n3'), { code: 'ENOENT', sent: 1 }, 'listed again under the new lock');
    await la.unlink(ctx(1), dir.nodeid, 'n1');
    t.same(await look('n1'), { code: 'ENOENT', sent: 0 }, 'this mount\'s unlink removed it from the list');
    await a.rename('/listed/fromb', '/listed/renamed');
    t.match(await look('renamed'), { found: true }, 'a rename (which gives the lock back) is seen');
    await la.getattr(ctx(1), dir.nodeid, undefined);
    t.same(await look('n4'), { code: 'ENOENT', sent: 1 }, 'listed once more');

    // Search permission: the list is root's; another user is answered by the MDT.
    await a.chmod('/listed', 0o700);
    await la.getattr(ctx(1), dir.nodeid, undefined);
    t.same(await look('n5'), { code: 'ENOENT', sent: 1 });
    const user: RequestContext = { ...ctx(2), uid: 1000, gid: 1000 };
    t.same(await look('n5', user), { code: 'EACCES', sent: 1 }, 'a user who may not search the directory is refused, not told ENOENT');

    // The MDT lists at most LISTED_NAMES_MAX names; a larger directory is asked each time, and not listed again.
    await a.mkdir('/crowded');
    for (let i = 0; i < LISTED_NAMES_MAX + 1; i++) await a.writeFile(`/crowded/m${i}`, '');
    const many = await la.lookup(ctx(1), 1, 'crowded');
    await la.getattr(ctx(1), many.nodeid, undefined);
    const absentHits = counters.absentHits;
    for (const name of ['x0', 'x1', 'x2']) {
      const before = sent();
      t.equal((await rejection(la.lookup(ctx(1), many.nodeid, name))).code, 'ENOENT');
      t.equal(sent() - before, 1, `${name}: asked`);
    }
    t.equal(counters.absentHits, absentHits, 'nothing answered from a list');
    // The largest list the MDT sends: LISTED_NAMES_MAX names of 255 bytes fit an MDC's reply.
    await a.mkdir('/long');
    for (let i = 0; i < LISTED_NAMES_MAX; i++) await a.writeFile(`/long/${String(i).padStart(3, '0')}${'n'.repeat(252)}`, '');
    const long = await la.lookup(ctx(1), 1, 'long');
    await la.getattr(ctx(1), long.nodeid, undefined);
    t.equal((await rejection(la.lookup(ctx(1), long.nodeid, 'absent0'))).code, 'ENOENT', 'listed: 256 names of 255 bytes');
    const before = sent();
    t.equal((await rejection(la.lookup(ctx(1), long.nodeid, 'absent1'))).code, 'ENOENT');
    t.equal(sent(), before, 'answered from the list');
    t.match(await la.lookup(ctx(1), long.nodeid, `007${'n'.repeat(252)}`), { nodeid: Number }, 'a listed name is found');
    const listed = await a.core.mdc.lookupOrNames(a.core.rootFid, 'nosuch', 1);
    t.same(listed, {}, 'the root holds more than 1 name: not listed');
    t.same(await a.core.mdc.lookupOrNames(a.core.rootFid, 'listed', 1).then((r) => 'attr' in r), true, 'a name there is answered with its attributes');
    t.equal((await rejection(a.core.mdc.lookupOrNames(a.core.rootFid, 'nosuch', LOOKUP_NAMES_MAX + 1))).code, 'EINVAL', 'more than the MDT lists: EINVAL');

    // A directory the other mount creates in as well: each list goes at the other's next
    // create, having answered nothing, so the MDT is asked for it less and less often.
    await a.mkdir('/contended');
    const shared = await la.lookup(ctx(1), 1, 'contended');
    const listings = counters.listings;
    for (let i = 0; i < 24; i++) {
      await la.getattr(ctx(1), shared.nodeid, undefined); // the kernel's GETATTR before a create takes the lock again
      t.equal((await rejection(la.lookup(ctx(1), shared.nodeid, `a${i}`))).code, 'ENOENT');
      const c = await la.create(ctx(1), shared.nodeid, `a${i}`, 0o100644, 0o1101, 0o022);
      await la.release(ctx(1), c.entry.nodeid, c.open.fh);
      await b.writeFile(`/contended/b${i}`, '');
      t.ok((await la.lookup(ctx(1), shared.nodeid, `b${i}`)).attr.ino !== undefined, `b${i}, the other mount's, is found`);
    }
    t.equal(counters.listings - listings, 2, 'listed twice in 24 creates: again after 8 lookups, then not within 16');
  });

  /**
   * A revocation of the lock on /pages while a READ of [READ.start, READ.end) starts, as the
   * kernel's readahead sends one just as the lock goes; what the kernel was told, and the READ.
   * `before` reads through the handle first (a sequential run makes the next READ go through a
   * read-ahead window).
   */
  async function revokeAroundRead(name: string, READ: { start: number; end: number }, before: Array<[number, number]>) {
    const la = new Llite(a);
    await b.writeFile(name, Buffer.alloc(4 * 1024 * 1024, 1));
    const f = await la.lookup(ctx(1), 1, name.slice(1));
    const { fh } = await la.open(ctx(1), f.nodeid, 0);
    for (const [at, n] of before) await la.read(ctx(1), f.nodeid, fh, at, n);
    const told: string[] = [];
    let inFlight: Promise<Buffer> | undefined;
    let blocked: (() => void) | undefined;
    la.attach({
      invalInode: (nodeid, offset = 0, length = 0, entered) => {
        if (nodeid !== f.nodeid) return Promise.resolve(true);
        if (offset < 0) {
          // The READ starts as the lock goes: it waits for a new lock, queued behind the other
          // mount's PW, which waits for this revocation.
          inFlight ??= la.read(ctx(1), f.nodeid, fh, READ.start, READ.end - READ.start);
          return Promise.resolve(true);
        }
        told.push(`${offset}+${length}`);
        entered?.();
        // As the kernel does: a notification over the READ's pages waits for its reply.
        const end = length === 0 ? Infinity : offset + length;
        if (offset < READ.end && end > READ.start) return new Promise((resolve) => { blocked = () => resolve(true); });
        return Promise.resolve(true);
      },
      invalEntry: async () => true,
    });
    const w = await b.open(name, 'r+');
    await w.write(Buffer.from('NEW'), 0, 3, READ.start);
    const toldThen = told.sort();
    const blockedThen = blocked !== undefined;
    await w.close();
    const read = (await inFlight!).subarray(0, 3).toString();
    blocked?.();
    return { inFlight: inFlight !== undefined, told: toldThen, blocked: blockedThen, read };
  }

  t.test('a revoked lock\'s pages: a READ waiting for a lock as it goes needs no notification, the gaps around it are dropped and waited for', async (t) => {
    const READ = { start: 8192, end: 12288 };
    const r = await revokeAroundRead('/pages', READ, [[0, 4096]]);
    t.ok(r.inFlight, 'a READ was in flight as the lock went');
    t.same(r.told, ['0+8192', '12288+0'], 'the gaps before and after the READ, each a notification; none for the READ\'s own pages');
    t.notOk(r.blocked, 'so nothing the lock waited for waits for the READ');
    t.equal(r.read, 'NEW', 'the READ, granted after the write, read the new data (its pages get it)');
  });

  t.test('a revoked lock\'s pages: a READ whose state is not known (served by a read-ahead window) has its own range handed over', async (t) => {
    const READ = { start: 8192, end: 12288 };
    // Sequential READs before it: the next goes through a read-ahead window, read for it.
    const r = await revokeAroundRead('/pages-ra', READ, [[0, 4096], [4096, 4096]]);
    t.ok(r.inFlight, 'a READ was in flight as the lock went');
    t.same(r.told, ['0+8192', '12288+0', '8192+4096'], 'the gaps before and after the READ, and the READ\'s own range, each a notification');
    t.ok(r.blocked, 'the lock went back while the READ\'s own range still waited for it');
    t.equal(r.read, 'NEW', 'the READ, granted after the write, read the new data');
  });

  t.test('the library walks paths through names cached under locks; an unlink gives its extent locks back unasked', async (t) => {
    await a.mkdir('/walk/d', { recursive: true });
    await a.writeFile('/walk/d/f', 'abc');
    t.equal((await a.stat('/walk/d/f')).size, 3);
    const hits = a.core.mdCache.counters.nameHits;
    t.equal((await a.stat('/walk/d/f')).size, 3);
    t.ok(a.core.mdCache.counters.nameHits >= hits + 2, 'the directories on the way come from the name cache');
    await b.rename('/walk/d', '/walk/e');
    t.match(await rejection(a.stat('/walk/d/f')), { code: 'ENOENT' }, 'the other mount\'s rename revoked the cached name');
    t.equal((await a.stat('/walk/e/f')).size, 3, 'the new name is found');
    const objects = (await a.layout('/walk/e/f'))!.objects;
    const locksOnObjects = (): number => objects.reduce((n, o) => n + a.core.oscNamespaces.get(o.ostIndex)!.locksOn(objectResId({ seq: o.fid.seq, oid: o.fid.oid })).length, 0);
    t.ok(locksOnObjects() > 0, 'the stats left extent locks on the file\'s objects');
    const revoked = (): number => objects.reduce((n, o) => n + a.core.oscNamespaces.get(o.ostIndex)!.counters.revoked, 0);
    const before = revoked();
    await a.unlink('/walk/e/f');
    await until('the unlink gave the extent locks back', () => locksOnObjects() === 0);
    await new Promise((r) => setTimeout(r, 1500)); // the MDT destroys the objects once the unlink is on disk
    t.equal(revoked(), before, 'no blocking callback came for them');
    t.match(await rejection(b.stat('/walk/e/f')), { code: 'ENOENT' });
  });

  t.test('a stat answered from what fresh extent locks said sees the other mount\'s write and utimes', async (t) => {
    await a.writeFile('/kept', 'abc');
    t.equal((await a.stat('/kept')).size, 3);
    const enqueues = a.core.oscNamespaces.get(0)!.counters.enqueues + a.core.oscNamespaces.get(1)!.counters.enqueues;
    t.equal((await a.stat('/kept')).size, 3, 'a second stat');
    t.equal(a.core.oscNamespaces.get(0)!.counters.enqueues + a.core.oscNamespaces.get(1)!.counters.enqueues, enqueues, 'asks no lock again');
    await b.writeFile('/kept', 'abcdef');
    t.equal((await a.stat('/kept')).size, 6, 'the other mount\'s write is seen');
    await b.utimes('/kept', 1000, 2000);
    const s = await a.stat('/kept');
    t.equal(s.mtimeMs, 2_000_000, 'the other mount\'s utimes (to an older time) is seen');
    t.equal(s.atimeMs, 1_000_000);
  });

  t.test('lru_size 0 keeps every unused lock; memory pressure gives back the older half', async (t) => {
    await a.mkdir('/many');
    // Each file's one object on either OST: more than the 100 unused locks a namespace kept
    // before (Lustre's LDLM_DEFAULT_LRU_SIZE per CPU) on at least one of them.
    for (let i = 0; i < 250; i++) await a.writeFile(`/many/f${i}`, 'x');
    const unused = (): number => a.core.namespaces().reduce((n, ns) => n + ns.cache.stats().lock_unused_count, 0);
    const before = unused();
    const most = Math.max(...a.core.namespaces().map((ns) => ns.cache.stats().lock_unused_count));
    t.ok(most > 100, `a namespace keeps ${most} unused locks (lru_size 0: no fixed limit)`);
    const probe = lockPool.probe;
    lockPool.probe = () => 'heap 900 MiB of its 1000 MiB limit';
    try {
      const tick = lockPool.tick();
      t.ok(tick.cancelled >= Math.floor(before / 2), `under pressure ${tick.cancelled} of ${before} unused locks go back`);
    } finally {
      lockPool.probe = probe;
    }
    await Promise.all(a.core.namespaces().map((ns) => ns.settled()));
    t.ok(unused() <= Math.ceil(before / 2), `${unused()} unused locks left`);
    t.ok(a.core.namespaces().some((ns) => ns.counters.pressureCancels > 0), 'counted as given back for memory');
    t.equal(await b.readFile('/many/f249', 'utf8'), 'x', 'the files are intact');
    t.equal((await a.stat('/many/f0')).size, 1, 'and stat asks again');
  });

  t.test('eviction drops the locks and what they covered', async (t) => {
    const h = await a.open('/evict', 'w+');
    await h.write(Buffer.from('abc'), 0, 3, 0);
    const ost0 = a.core.oscNamespaces.get(0)!;
    const ost1 = a.core.oscNamespaces.get(1)!;
    await until('the writer holds an extent lock', () => ost0.cache.locks().length + ost1.cache.locks().length > 0);
    const seen: string[] = [];
    const off = a.core.onInvalidate((w) => { seen.push(w.kind); });
    // Both OSTs forget the client; its imports learn it when they reconnect.
    for (const target of tfs.targets.slice(1)) {
      for (const r of target.running) for (const s of r.services) s.evict(a.core.clientUuid, 'the test evicts it');
    }
    for (const osc of a.core.oscs.values()) for (const imp of [osc.imports.ost, osc.imports.io]) imp.forceReconnect();
    await until('the locks are gone', () => ost0.cache.locks().length + ost1.cache.locks().length === 0);
    t.ok(seen.includes('data'), 'the data they covered is dropped');
    off();
    await h.close().catch(() => undefined);
    t.equal(await a.readFile('/evict', 'utf8').catch(() => 'reconnected'), await b.readFile('/evict', 'utf8'), 'both mounts read the same afterwards');
  });
});
