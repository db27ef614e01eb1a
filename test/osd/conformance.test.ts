// Conformance of the OSD against a real device in a temp folder: every operation with its
// error cases, transactions, persistence (clean close and replay), sparse data, index cookies
// across layers, statfs/stats/ENOSPC, check() and device refusals.
import t from 'tap';
import { readFile, readdir, writeFile, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { readLog, LogCorruptError } from '../../src/log/index.js';
import {
  Osd, ROOT_INDEX_FID, fid, fidToString, parseFid, fidKey, parseFidKey,
  objectKey, xattrKey, indexKey, encodeValue, FORMAT_VERSION, DataFiles, type Fid,
} from '../../src/osd/index.js';
import { newDevice, removeDir, snapshot, tempDir, txn } from './helpers.js';

const F = (oid: number, seq = 0x200000400) => fid(seq, oid);

t.test('FIDs: Lustre text form, key order, validation', async (t) => {
  const f = fid(0x200000400, 1);
  t.equal(fidToString(f), '[0x200000400:0x1:0x0]');
  t.same(parseFid('[0x200000400:0x1:0x0]'), f);
  t.same(parseFid(fidToString(fid(2 ** 53 - 1, 0xffffffff, 7))), fid(2 ** 53 - 1, 0xffffffff, 7));
  for (const bad of ['', '[0x1:0x2]', '0x1:0x2:0x3', '[0x1:0x2:0x100000000]', '[1:2:3]']) {
    t.throws(() => parseFid(bad), { code: 'EINVAL' }, bad);
  }
  t.throws(() => fid(2 ** 53, 1), { code: 'EINVAL' });
  t.throws(() => fid(1, -1), { code: 'EINVAL' });
  t.throws(() => fid(1n as never, 2), { code: 'EINVAL', message: /not a valid FID: \{"seq":"1n"/ }, 'a bigint sequence is named, not a TypeError of JSON');
  const sorted = [fid(2, 0), fid(1, 5), fid(1, 0x10), fid(0x100000000, 0), fid(1, 5, 1)];
  const byKey = [...sorted].sort((a, b) => (fidKey(a) < fidKey(b) ? -1 : 1));
  t.same(byKey, [fid(1, 5), fid(1, 5, 1), fid(1, 0x10), fid(2, 0), fid(0x100000000, 0)]);
  t.same(parseFidKey(fidKey(f)), f);
  t.equal(fidKey(fid(2 ** 53 - 1, 0xffffffff, 0xffffffff)), '001fffffffffffff-ffffffff-ffffffff', 'the largest FID: every digit, fixed width');
  t.equal(fidKey(fid(0x1_0000_0001, 0xa0b, 0)), '0000000100000001-00000a0b-00000000', 'seq across its 32-bit halves');
  t.same(parseFidKey(fidKey(fid(2 ** 53 - 1, 0xffffffff, 0xffffffff))), fid(2 ** 53 - 1, 0xffffffff, 0xffffffff));
});

t.test('formats: LevelDB keys and values are pinned byte for byte', async (t) => {
  const f = fid(0x200000400, 1);
  const attrs = { type: 'reg', mode: 0o644, uid: 500, gid: 500, size: 4096, blocks: 8, atime: 1700000000, mtime: 1700000000, ctime: 1700000000, nlink: 1, flags: 0, version: 3, gen: 7 };
  const hex = (key: string, value: unknown) => Buffer.from(encodeValue(key, value as never)).toString('hex');
  t.equal(objectKey(f), 'o:0000000200000400-00000001-00000000');
  t.equal(hex(objectKey(f), attrs),
    'b9000d647479706563726567646d6f64651901a4637569641901f4636769641901f46473697a6519100066626c6f636b7308656174696d651a6553f100' +
    '656d74696d651a6553f100656374696d651a6553f100656e6c696e6b0165666c616773006776657273696f6e036367656e07');
  t.equal(indexKey(f, 'name'), 'i:0000000200000400-00000001-00000000:name');
  t.equal(hex(indexKey(f, 'name'), { fid: fid(0x200000400, 2), type: 'dir' }), 'b900026366696483fb42000000200000000200647479706563646972');
  t.equal(xattrKey(f, 'trusted.lma'), 'x:0000000200000400-00000001-00000000:trusted.lma');
  t.equal(hex(xattrKey(f, 'trusted.lma'), Buffer.from([1, 2, 3])), '43010203');
  t.equal(hex('m:checkpointTxg', 12345), '193039');
  t.equal(DataFiles.bucket(f), '01');
});

t.test('device: format layout, refusals that change nothing', async (t) => {
  const dir = await tempDir();
  t.teardown(() => removeDir(dir));
  const info = await Osd.format(dir, { label: 'OST0000', uuid: 'u-1' });
  t.match(info, { magic: 'lustre-osd-txg', formatVersion: FORMAT_VERSION, uuid: 'u-1', label: 'OST0000' });
  t.same(JSON.parse(await readFile(join(dir, 'osd.format'), 'utf8')).uuid, 'u-1');
  t.same((await readdir(dir)).sort(), ['base', 'data', 'db', 'log', 'osd.format']);
  t.equal((await readdir(join(dir, 'data'))).length, 256);
  await t.rejects(Osd.format(dir), { code: 'EALREADY' });

  // Put something on it, then reformat: it is gone.
  let osd = await Osd.open(dir);
  await txn(osd, (tx) => tx.create(F(1), { type: 'reg' }));
  await t.rejects(Osd.open(dir), { code: 'EBUSY' }, 'a device opens once');
  await osd.close();
  await Osd.format(dir, { reformat: true, uuid: 'u-2' });
  osd = await Osd.open(dir);
  t.equal(await osd.exists(F(1)), false);
  t.equal(osd.info.uuid, 'u-2');
  t.equal((await osd.getAttrs(ROOT_INDEX_FID)).type, 'idx');
  await osd.close();

  const missing = join(dir, 'nope');
  await t.rejects(Osd.open(missing), { code: 'ENODEV', message: missing });
  const empty = await tempDir();
  t.teardown(() => removeDir(empty));
  await t.rejects(Osd.open(empty), { code: 'ENODEV', message: empty });
  t.same(await readdir(empty), [], 'refused open created nothing');

  const fmt = join(dir, 'osd.format');
  const newer = JSON.stringify({ ...JSON.parse(await readFile(fmt, 'utf8')), formatVersion: FORMAT_VERSION + 1 });
  await writeFile(fmt, newer);
  const before = await treeState(dir);
  await t.rejects(Osd.open(dir), { code: 'EVERSION', message: `version ${FORMAT_VERSION + 1}` });
  t.same(await treeState(dir), before, 'refused open changed nothing');
  await writeFile(fmt, '{"magic":"something else"}');
  await t.rejects(Osd.open(dir), { code: 'ENODEV' });
});

async function treeState(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    out[p] = e.isFile() ? (await readFile(p)).toString('base64') + ':' + (await stat(p)).mtimeMs : 'dir';
  }
  return out;
}

t.test('objects: create, attributes, versions, destroy, and their errors', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const f = F(1);
  await txn(osd, async (tx) => {
    await tx.create(f, { type: 'reg', mode: 0o600, uid: 5, gid: 6, mtime: 100 });
    await t.rejects(tx.create(f, { type: 'reg' }), { code: 'EEXIST' });
    await t.rejects(tx.create(F(2), { type: 'bogus' as 'reg' }), { code: 'EINVAL' });
    await t.rejects(tx.create(F(2), { type: 'reg', blocks: 3 } as never), { code: 'EINVAL' });
    await t.rejects(tx.create({ seq: -1, oid: 0, ver: 0 }, { type: 'reg' }), { code: 'EINVAL' });
    await t.rejects(tx.create(F(2), { type: 'reg', mode: 0o170000 }), { code: 'EINVAL' });
  });
  t.match(await osd.getAttrs(f), { type: 'reg', mode: 0o600, uid: 5, gid: 6, size: 0, nlink: 1, mtime: 100, atime: 1_700_000_000, version: 1 });
  t.equal(await osd.exists(F(2)), false, 'failed creates applied nothing');
  await t.rejects(osd.getAttrs(F(2)), { code: 'ENOENT' });

  await txn(osd, async (tx) => {
    await tx.attrSet(f, { mode: 0o640, atime: 1.5, nlink: 2, flags: 4 });
    await t.rejects(tx.attrSet(f, { type: 'dir' } as never), { code: 'EINVAL' });
    await t.rejects(tx.attrSet(f, { uid: -1 }), { code: 'EINVAL' });
    await t.rejects(tx.attrSet(F(9), { uid: 1 }), { code: 'ENOENT' });
  });
  t.match(await osd.getAttrs(f), { mode: 0o640, atime: 1.5, nlink: 2, flags: 4, uid: 5, version: 2 });

  const d = F(3);
  await txn(osd, async (tx) => {
    await tx.create(d, { type: 'dir' });
    await tx.indexInsert(d, 'f', { fid: f, type: 'reg' });
    await tx.xattrSet(f, 'user.a', Buffer.from('x'));
  });
  t.match(await osd.getAttrs(d), { type: 'dir', mode: 0o755, nlink: 2, version: 2 });
  await txn(osd, async (tx) => {
    await t.rejects(tx.destroy(d), { code: 'ENOTEMPTY' });
    await t.rejects(tx.destroy(ROOT_INDEX_FID), { code: 'EINVAL' });
    await t.rejects(tx.destroy(F(99)), { code: 'ENOENT' });
    await tx.indexDelete(d, 'f');
    await tx.destroy(d);
    await tx.destroy(f);
  });
  t.equal(await osd.exists(d), false);
  t.equal(await osd.exists(f), false);
  // Re-created, the FID starts afresh: no xattrs, no data, version 1.
  await txn(osd, async (tx) => {
    await tx.create(f, { type: 'reg' });
  });
  t.same(await osd.xattrList(f), []);
  t.match(await osd.getAttrs(f), { version: 1, size: 0 });
  for (const type of ['idx', 'lnk', 'chr', 'blk', 'fifo', 'sock'] as const) {
    await txn(osd, (tx) => tx.create(F(100 + type.length * 10 + type.charCodeAt(0)), { type }));
  }
  t.equal(osd.stats().objects, 1 + 1 + 6);
});

t.test('xattrs: set, get, list, delete, flags and errors', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const f = F(1);
  await txn(osd, async (tx) => {
    await tx.create(f, { type: 'reg' });
    await tx.xattrSet(f, 'trusted.lma', Buffer.from([1, 2, 3]));
    await tx.xattrSet(f, 'user.b', new Uint8Array(0));
    await t.rejects(tx.xattrSet(f, 'user.b', Buffer.from('y'), { create: true }), { code: 'EEXIST' });
    await t.rejects(tx.xattrSet(f, 'user.c', Buffer.from('y'), { replace: true }), { code: 'ENODATA' });
    await tx.xattrSet(f, 'user.b', Buffer.from('z'), { replace: true });
    await t.rejects(tx.xattrSet(f, '', Buffer.from('y')), { code: 'EINVAL' });
    await t.rejects(tx.xattrSet(f, 'user.big', Buffer.alloc(65537)), { code: 'EINVAL' });
    await t.rejects(tx.xattrSet(F(2), 'user.a', Buffer.from('y')), { code: 'ENOENT' });
    await t.rejects(tx.xattrDel(f, 'user.none'), { code: 'ENODATA' });
  });
  t.same(await osd.xattrGet(f, 'trusted.lma'), Buffer.from([1, 2, 3]));
  t.same(await osd.xattrGet(f, 'user.b'), Buffer.from('z'));
  t.same(await osd.xattrList(f), ['trusted.lma', 'user.b']);
  await t.rejects(osd.xattrGet(f, 'user.none'), { code: 'ENODATA' });
  await t.rejects(osd.xattrGet(F(2), 'user.b'), { code: 'ENOENT' });
  t.equal(await osd.xattrFind(f, 'user.none'), undefined, 'xattrFind: an absent xattr is undefined, not ENODATA');
  t.same(await osd.xattrFind(f, 'user.b'), Buffer.from('z'));
  await t.rejects(osd.xattrFind(F(2), 'user.b'), { code: 'ENOENT' }, 'xattrFind: an absent object is still ENOENT');
  await txn(osd, (tx) => tx.xattrDel(f, 'trusted.lma'));
  t.same(await osd.xattrList(f), ['user.b']);
  t.equal((await osd.getAttrs(f)).version, 5, 'create + 3 sets + 1 delete');
});

t.test('data: sparse writes, holes, clamped reads, punch, truncate, trimming lost bytes', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const f = F(1);
  await txn(osd, async (tx) => {
    await tx.create(f, { type: 'reg' });
    await tx.write(f, 1 << 20, Buffer.from('far'));
    await tx.write(f, 0, Buffer.from('head'));
  });
  t.equal((await osd.getAttrs(f)).size, (1 << 20) + 3);
  t.same(await osd.read(f, 0, 6), Buffer.from('head\0\0'));
  t.same(await osd.read(f, 4096, 8), Buffer.alloc(8), 'a hole reads as zeros');
  t.same(await osd.read(f, (1 << 20) + 1, 100), Buffer.from('ar'), 'reads clamp to the size');
  t.same(await osd.read(f, 5 << 20, 10), Buffer.alloc(0));
  t.ok((await osd.getAttrs(f)).blocks < 64, 'the file is sparse');
  const into = Buffer.alloc(16, 0xee);
  const got = await osd.read(f, (1 << 20) - 2, 16, into);
  t.same(got, Buffer.from('\0\0far'), 'read into a caller buffer: a view of it, holes zeroed, clamped');
  t.equal(got.buffer, into.buffer, 'no copy: the bytes are in the caller buffer');
  await t.rejects(osd.read(f, 0, 32, into), { code: 'EINVAL' }, 'a buffer shorter than the read is refused');

  await txn(osd, (tx) => tx.punch(f, 1, 3));
  t.same(await osd.read(f, 0, 4), Buffer.from('h\0\0d'), 'punch zeroes its range');
  t.equal((await osd.getAttrs(f)).size, (1 << 20) + 3, 'a ranged punch keeps the size');
  await txn(osd, (tx) => tx.punch(f, 2));
  t.equal((await osd.getAttrs(f)).size, 2, 'punch to EOF truncates');
  await txn(osd, (tx) => tx.punch(f, 10));
  t.same(await osd.read(f, 0, 100), Buffer.from('h\0' + '\0'.repeat(8)), 'truncate up reads zeros');
  await txn(osd, (tx) => tx.attrSet(f, { size: 1 }));
  t.same(await osd.read(f, 0, 100), Buffer.from('h'), 'setattr size truncates');

  // Bytes past the size (as a crash before the size was logged leaves them) never show.
  const path = osd.data.path(f, 1);
  const h = await open(path, 'r+');
  await h.write(Buffer.from('GARBAGE'), 0, 7, 1);
  await h.close();
  t.same(await osd.read(f, 0, 100), Buffer.from('h'));
  await txn(osd, (tx) => tx.write(f, 5, Buffer.from('x')));
  t.same(await osd.read(f, 0, 100), Buffer.from('h\0\0\0\0x'), 'a write past the size trims first');
  const h2 = await open(path, 'r+');
  await h2.write(Buffer.from('GARBAGE'), 0, 7, 6);
  await h2.close();
  await txn(osd, (tx) => tx.punch(f, 9));
  t.same(await osd.read(f, 0, 100), Buffer.from('h\0\0\0\0x\0\0\0'), 'an extending truncate trims first');
  await txn(osd, (tx) => tx.write(f, 2, [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde').subarray(1)]));
  t.same(await osd.read(f, 0, 100), Buffer.from('h\0abde\0\0\0'), 'pieces are written back to back, as one write');
  t.equal((await osd.getAttrs(f)).size, 9);

  const d = F(2);
  await txn(osd, async (tx) => {
    await tx.create(d, { type: 'dir' });
    await t.rejects(tx.write(d, 0, Buffer.from('x')), { code: 'EISDIR' });
    await t.rejects(tx.write(F(3), 0, Buffer.from('x')), { code: 'ENOENT' });
    await t.rejects(tx.write(f, -1, Buffer.from('x')), { code: 'EINVAL' });
    await t.rejects(tx.write(f, 2 ** 52, Buffer.from('x')), { code: 'EFBIG' });
    await t.rejects(tx.write(f, 0, [Buffer.from('x'), 'y' as unknown as Buffer]), { code: 'EINVAL' }, 'every piece must be bytes');
    await t.rejects(tx.punch(f, 5, 2), { code: 'EINVAL' });
  });
  await t.rejects(osd.read(d, 0, 1), { code: 'EISDIR' });
  t.equal((await osd.getAttrs(f)).size, 9, 'failed updates applied nothing');
});

t.test('zeroing waits for durability: a punch never destroys data a crash could still need', async (t) => {
  const { dir, osd: first } = await newDevice({ txgTimeoutMs: 60_000 });
  t.teardown(() => removeDir(dir));
  let osd = first;
  const f = F(1);
  await txn(osd, async (tx) => {
    await tx.create(f, { type: 'reg' });
    await tx.indexInsert(ROOT_INDEX_FID, 'f', { fid: f, type: 'reg' });
    await tx.write(f, 0, Buffer.alloc(100, 7));
  });
  await osd.sync();
  const path = osd.data.path(f, 1);
  const txg = await txn(osd, async (tx) => {
    await tx.punch(f, 10, 20);
    await tx.punch(f, 50); // truncate
    await tx.write(f, 80, Buffer.from('late')); // a gap [50, 80) past the size
  });
  t.same(await osd.read(f, 0, 100), Buffer.concat([Buffer.alloc(10, 7), Buffer.alloc(10), Buffer.alloc(30, 7), Buffer.alloc(30), Buffer.from('late')]));
  const raw = await readFile(path);
  t.same(raw.subarray(0, 80), Buffer.alloc(80, 7), 'the file is untouched while the txg is not durable');
  await osd.waitSynced(txg);
  await osd.checkpoint(); // waits for the zeros to be in the file
  const after = await readFile(path);
  t.same(after.subarray(0, 84), (await osd.read(f, 0, 100)).subarray(0, 84), 'once durable, the file holds the zeros');

  // Replay rebuilds zeros, and a later write over them survives: punch in one txg, write in the
  // next, close without a checkpoint, reopen with a tiny checkpoint limit (checkpoints during
  // replay store the zeros in LevelDB instead of applying them early).
  await txn(osd, (tx) => tx.punch(f, 0, 84));
  await osd.sync();
  await txn(osd, async (tx) => {
    await tx.create(F(2), { type: 'reg' });
    await tx.indexInsert(ROOT_INDEX_FID, 'g', { fid: F(2), type: 'reg' });
  });
  await osd.sync();
  await txn(osd, (tx) => tx.write(f, 30, Buffer.from('keep')));
  await osd.sync();
  const want = await osd.read(f, 0, 100);
  t.same(want, Buffer.concat([Buffer.alloc(30), Buffer.from('keep'), Buffer.alloc(50)]));
  await osd.close({ checkpoint: false });
  osd = await Osd.open(dir, { checkpointKeysMax: 1 });
  t.ok(osd.stats().checkpoints > 0, 'replay checkpointed');
  t.same(await osd.read(f, 0, 100), want);
  const file = await readFile(path);
  t.same(Buffer.concat([file, Buffer.alloc(Math.max(0, want.length - file.length))]).subarray(0, want.length), want, 'zeros applied once replay ended (the file may end early)');
  t.same(await osd.check(), []);
  await osd.close();
});

t.test('indexes: insert, lookup, delete, cookies across updates and layers, byte order', async (t) => {
  const { dir, osd } = await newDevice({ checkpointKeysMax: 1_000_000 });
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const d = F(1);
  const names = Array.from({ length: 60 }, (_, i) => `n${String(i).padStart(3, '0')}`);
  await txn(osd, async (tx) => {
    await tx.create(d, { type: 'dir' });
    await tx.indexInsert(ROOT_INDEX_FID, 'ROOT', { fid: d, type: 'dir' });
    for (const n of names.slice(0, 30)) await tx.indexInsert(d, n, { fid: F(1000), type: 'reg' });
    await t.rejects(tx.indexInsert(d, 'n000', { fid: F(1001), type: 'reg' }), { code: 'EEXIST' });
    await t.rejects(tx.indexDelete(d, 'zzz'), { code: 'ENOENT' });
    await t.rejects(tx.indexInsert(F(7), 'a', { fid: F(1001), type: 'reg' }), { code: 'ENOENT' });
    await tx.create(F(8), { type: 'reg' });
    await t.rejects(tx.indexInsert(F(8), 'a', { fid: F(1001), type: 'reg' }), { code: 'ENOTDIR' });
    await t.rejects(tx.indexInsert(d, 'a', { fid: F(1001), type: 'nope' as 'reg' }), { code: 'EINVAL' });
  });
  t.same(await osd.indexLookup(d, 'n005'), { fid: F(1000), type: 'reg' });
  t.equal(await osd.indexLookup(d, 'nothere'), undefined);
  await t.rejects(osd.indexList(F(8)), { code: 'ENOTDIR' });

  // Half in LevelDB, half in memory: a checkpoint lands between the halves.
  await osd.sync();
  await osd.checkpoint();
  t.equal(osd.stats().durableKeys, 0);
  await txn(osd, async (tx) => {
    for (const n of names.slice(30)) await tx.indexInsert(d, n, { fid: F(1000), type: 'reg' });
    await tx.indexDelete(d, 'n010'); // a LevelDB key hidden by a memory tombstone
  });
  const seen: string[] = [];
  let page = await osd.indexList(d, { limit: 8 });
  seen.push(...page.entries.map((e) => e.name));
  // Resume across inserts and deletes on both sides of the cookie, and a checkpoint.
  await txn(osd, async (tx) => {
    await tx.indexDelete(d, 'n002'); // before the cookie: already seen
    await tx.indexDelete(d, 'n020'); // after: must not show
    await tx.indexInsert(d, 'n020a', { fid: F(1000), type: 'reg' }); // after: must show
    await tx.indexInsert(d, 'a-first', { fid: F(1000), type: 'reg' }); // before: must not show
  });
  await osd.sync();
  const cp = osd.checkpoint();
  while (page.cookie) {
    page = await osd.indexList(d, { cookie: page.cookie, limit: 8 });
    seen.push(...page.entries.map((e) => e.name));
    await txn(osd, (tx) => tx.indexInsert(d, `zz${seen.length}`, { fid: F(1000), type: 'reg' }));
  }
  await cp;
  const expected = names.filter((n) => n !== 'n010' && n !== 'n020');
  expected.splice(expected.indexOf('n021'), 0, 'n020a');
  const zz = seen.filter((n) => n.startsWith('zz'));
  t.same(seen.filter((n) => !n.startsWith('zz')), expected);
  t.ok(zz.length >= 1, 'inserts after the cookie show up');

  // UTF-8 byte order (LevelDB's), in memory and on disk alike.
  const u = F(2);
  const unicode = ['\u{1F600}', '\uFFFD', 'a', '\u00e9', 'Z'];
  await txn(osd, async (tx) => {
    await tx.create(u, { type: 'idx' });
    await tx.indexInsert(ROOT_INDEX_FID, 'u', { fid: u, type: 'idx' });
    for (const n of unicode.slice(0, 2)) await tx.indexInsert(u, n, { fid: F(1000), type: 'reg' });
  });
  await osd.sync();
  await osd.checkpoint();
  await txn(osd, async (tx) => {
    for (const n of unicode.slice(2)) await tx.indexInsert(u, n, { fid: F(1000), type: 'reg' });
  });
  const byBytes = [...unicode].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const paged: string[] = [];
  let c: string | null | undefined;
  do {
    const p = await osd.indexList(u, { cookie: c, limit: 1 });
    paged.push(...p.entries.map((e) => e.name));
    c = p.cookie;
  } while (c);
  t.same(paged, byBytes);
});

t.test('transactions: reads see uncommitted updates, commit callbacks, log entries', async (t) => {
  const { dir, osd } = await newDevice({ txgTimeoutMs: 60_000 });
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const committed: string[] = [];
  const tx1 = osd.begin().declareCreate(F(1)).declareWrite(F(1), 5);
  await tx1.start();
  await tx1.create(F(1), { type: 'reg' });
  await tx1.write(F(1), 0, Buffer.from('hello'));
  await t.rejects(tx1.create(F(1), { type: 'reg' }), { code: 'EEXIST' });
  tx1.annotate({ transno: 42, client: 'c-uuid', op: 'create+write' });
  const { txg } = tx1.stop((g) => committed.push(`a${g}`));
  const tx2 = osd.begin();
  await tx2.start();
  await tx2.indexInsert(ROOT_INDEX_FID, 'f', { fid: F(1), type: 'reg' });
  tx2.stop((g) => committed.push(`b${g}`));
  const tx3 = osd.begin();
  await tx3.start();
  tx3.stop((g) => committed.push(`c${g}`));
  t.equal(tx2.txg, txg);
  t.same(await osd.read(F(1), 0, 10), Buffer.from('hello'), 'read before the txg is durable');
  t.same(committed, [], 'nothing committed yet');
  t.ok(osd.stats().dirtyBytes > 0);
  await osd.waitSynced(txg);
  t.same(committed, [`a${txg}`, `b${txg}`, `c${txg}`], 'callbacks in stop order, after durability');
  t.equal(osd.lastSyncedTxg, txg);

  const records = [];
  for await (const r of readLog(join(dir, 'log'))) records.push(r);
  const entry = records.find((r) => r.txg === txg)!.entries[0] as { updates: { op: string; fid: string; n: number }[]; tx: unknown };
  t.same(entry.tx, { transno: 42, client: 'c-uuid', op: 'create+write' });
  t.same(entry.updates.map((u) => [u.op, u.fid, u.n]), [['create', '[0x200000400:0x1:0x0]', 1], ['write', '[0x200000400:0x1:0x0]', 2]]);
  t.match(entry.updates[1], { offset: 0, length: 5, size: 5, version: 2 });
  t.notOk('data' in entry.updates[1]!, 'bulk data is not in the log');

  const closed = osd.begin();
  t.throws(() => closed.stop(), 'stop before start asserts');
});

t.test('interleaved transactions of one txg replay in the order they applied', async (t) => {
  const { dir, osd: first } = await newDevice({ txgTimeoutMs: 60_000 });
  t.teardown(() => removeDir(dir));
  let osd = first;
  await txn(osd, (tx) => tx.create(F(1), { type: 'reg' }));
  await osd.sync();
  const a = osd.begin();
  const b = osd.begin();
  await a.start();
  await b.start();
  await a.indexInsert(ROOT_INDEX_FID, 'x', { fid: F(1), type: 'reg' });
  await b.indexDelete(ROOT_INDEX_FID, 'x');
  await a.attrSet(F(1), { uid: 1 });
  await b.attrSet(F(1), { uid: 2 });
  await b.indexInsert(ROOT_INDEX_FID, 'y', { fid: F(1), type: 'reg' });
  t.equal(a.txg, b.txg);
  b.stop(); // b's entry goes first in the record
  a.stop();
  await osd.sync();
  const before = await snapshot(osd, [F(1)]);
  t.equal(await osd.indexLookup(ROOT_INDEX_FID, 'x'), undefined);
  await osd.close({ checkpoint: false });
  osd = await Osd.open(dir);
  t.same(await snapshot(osd, [F(1)]), before);
  t.match(await osd.getAttrs(F(1)), { uid: 2, version: 3 });
  await osd.close();
});

t.test('persistence: reopen after clean close and after replay equals before', async (t) => {
  const { dir, osd: first } = await newDevice({ checkpointKeysMax: 40 });
  t.teardown(() => removeDir(dir));
  let osd = first;
  const fids: Fid[] = [];
  for (let i = 1; i <= 30; i++) {
    await txn(osd, async (tx) => {
      const f = F(i);
      fids.push(f);
      await tx.create(f, { type: i % 5 === 0 ? 'dir' : 'reg', uid: i });
      await tx.indexInsert(ROOT_INDEX_FID, `o${i}`, { fid: f, type: i % 5 === 0 ? 'dir' : 'reg' });
      if (i % 5 !== 0) await tx.write(f, i * 100, Buffer.from(`data-${i}`));
      await tx.xattrSet(f, 'user.i', Buffer.from(String(i)));
    });
  }
  await txn(osd, async (tx) => {
    await tx.punch(F(1), 0);
    await tx.destroy(F(2));
    await tx.indexDelete(ROOT_INDEX_FID, 'o2');
    await tx.attrSet(F(3), { mtime: 5, size: 50 });
  });
  // A truncate in one txg, then a write in a later one: replay must not lose the write.
  await txn(osd, (tx) => tx.punch(F(4), 0));
  await osd.sync();
  await txn(osd, (tx) => tx.write(F(4), 3, Buffer.from('after')));
  await osd.sync();
  // The sync's onSynced started a background checkpoint (the durable layer is over its limit).
  for (let i = 0; i < 500 && osd.stats().checkpoints === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const before = await snapshot(osd, fids);
  const statsBefore = osd.stats();
  t.ok(statsBefore.checkpoints > 0, 'background checkpoints ran');

  await osd.close();
  osd = await Osd.open(dir);
  t.same(await snapshot(osd, fids), before, 'after a clean close');
  t.equal(osd.stats().recordsReplayed, 0, 'a clean close leaves nothing to replay');
  t.equal(osd.stats().objects, statsBefore.objects);
  t.equal(osd.stats().bytesUsed, statsBefore.bytesUsed);

  await txn(osd, (tx) => tx.write(F(6), 0, Buffer.from('more')));
  const before2 = await snapshot(osd, fids);
  await osd.close({ checkpoint: false });
  t.ok((await readdir(join(dir, 'data', DataFiles.bucket(F(2))))).every((n) => !n.startsWith(fidKey(F(2)))), 'data of a durable destroy is removed');
  osd = await Osd.open(dir, { checkpointKeysMax: 5 });
  t.ok(osd.stats().recordsReplayed > 0, 'replayed');
  t.same(await snapshot(osd, fids), before2, 'after replay');
  t.same(await osd.read(F(4), 0, 100), Buffer.from('\0\0\0after'));
  t.same(await osd.check(), []);
  await osd.close();
});

t.test('data files: open descriptors stay bounded, data survives eviction and reopen', async (t) => {
  const { dir, osd: first } = await newDevice({ maxOpenFiles: 2 });
  t.teardown(() => removeDir(dir));
  let osd = first;
  for (let round = 0; round < 3; round++) {
    await txn(osd, async (tx) => {
      for (let i = 1; i <= 10; i++) {
        if (round === 0) await tx.create(F(i), { type: 'reg' });
        await tx.write(F(i), round * 4096, Buffer.alloc(100, i + round));
        // maxOpenFiles, plus one the txg sync may be fdatasync'ing at this instant.
        t.ok(osd.stats().openDataFiles <= 3, 'descriptors stay bounded');
      }
    });
  }
  const check = async () => {
    for (let i = 1; i <= 10; i++) {
      for (let round = 0; round < 3; round++) t.same(await osd.read(F(i), round * 4096, 100), Buffer.alloc(100, i + round));
    }
  };
  await check();
  await osd.sync();
  t.ok(osd.stats().openDataFiles <= 2, 'at most maxOpenFiles once idle');
  await osd.close({ checkpoint: false });
  osd = await Osd.open(dir, { maxOpenFiles: 1 });
  await check();
  await osd.close();
});

t.test('statfs, stats and ENOSPC', async (t) => {
  const { dir, osd } = await newDevice({ capacityBytes: 10_000, maxObjects: 4 });
  t.teardown(async () => { await osd.close(); await removeDir(dir); });
  const s = await osd.statfs();
  t.match(s, { bytesTotal: 10_000, bytesFree: 10_000, objectsTotal: 4, objectsFree: 3 });
  await txn(osd, async (tx) => {
    await tx.create(F(1), { type: 'reg' });
    await tx.write(F(1), 0, Buffer.alloc(6000, 1));
    await t.rejects(tx.write(F(1), 6000, Buffer.alloc(5000, 1)), { code: 'ENOSPC' });
    await tx.write(F(1), 0, Buffer.alloc(6000, 2)); // overwriting needs no room
    await t.rejects(tx.punch(F(1), 20_000), { code: 'ENOSPC' });
    await tx.create(F(2), { type: 'reg' });
    await tx.create(F(3), { type: 'reg' });
    await t.rejects(tx.create(F(4), { type: 'reg' }), { code: 'ENOSPC' });
  });
  t.equal((await osd.getAttrs(F(1))).size, 6000, 'the failed write applied nothing');
  t.equal(await osd.exists(F(4)), false);
  t.match(await osd.statfs(), { bytesFree: 4000, objectsFree: 0 });
  const tx = osd.begin().declareWrite(F(2), 5000);
  await t.rejects(tx.start(), { code: 'ENOSPC' });
  const st = osd.stats();
  t.match(st, { label: 'test', objects: 4, bytesUsed: 6000, bytesTotal: 10_000 });
  for (const k of ['txgsSynced', 'syncTimeTotalMs', 'dirtyBytes', 'recordsReplayed', 'checkpointTxg', 'bytesFree', 'lastSyncedTxg']) {
    t.type((st as unknown as Record<string, unknown>)[k], 'number', k);
  }
});

t.test('check: clean on a good device, finds every planted problem', async (t) => {
  const { dir, osd: first } = await newDevice();
  t.teardown(() => removeDir(dir));
  let osd = first;
  const d = F(1);
  await txn(osd, async (tx) => {
    await tx.create(d, { type: 'dir' });
    await tx.indexInsert(ROOT_INDEX_FID, 'ROOT', { fid: d, type: 'dir' });
    for (let i = 2; i <= 6; i++) {
      await tx.create(F(i), { type: 'reg' });
      await tx.indexInsert(d, `f${i}`, { fid: F(i), type: 'reg' });
      await tx.write(F(i), 0, Buffer.from('some data'));
    }
    await tx.xattrSet(F(2), 'user.x', Buffer.from('1'));
  });
  t.same(await osd.check(), [], 'a good device is clean');
  const heard = new Map<string, number>();
  await osd.check((phase, scanned) => heard.set(phase, scanned));
  t.same([...heard], [['indexes', 6], ['xattrs', 1], ['objects', 7]], 'a check tells its progress, phase by phase (6 entries, 1 xattr, 7 objects)');
  const gen = (i: number) => i - 1; // data-file generations in create order
  t.ok((await stat(osd.data.path(F(2), gen(2)))).isFile());
  await osd.close();

  const db = new ClassicLevel<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  const put = (key: string, value: unknown) => db.put(key, encodeValue(key, value as never));
  await put(indexKey(d, 'dangling'), { fid: F(50), type: 'reg' });
  await put(indexKey(d, 'mistyped'), { fid: F(3), type: 'dir' });
  await put(indexKey(F(4), 'child'), { fid: F(5), type: 'reg' });
  await put(xattrKey(F(60), 'user.y'), Buffer.from('1'));
  const attrs = { type: 'reg', mode: 0o644, uid: 0, gid: 0, size: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0, nlink: 1, flags: 0, version: 1 };
  await put(objectKey(F(70)), { ...attrs, gen: 99 });
  await put(objectKey(F(71)), { ...attrs, type: 'lnk', size: 10, blocks: 8, gen: 98 });
  await put(objectKey(F(72)), { ...attrs, type: 'chr' });
  await put(indexKey(d, 'chr'), { fid: F(72), type: 'chr' });
  await put(indexKey(d, 'lnk'), { fid: F(71), type: 'lnk' });
  await put(indexKey(d, 'reg70'), { fid: F(70), type: 'reg' });
  await put('o:zzz', attrs);
  await db.close();
  await writeFile(join(dir, 'data', DataFiles.bucket(F(80)), `${fidKey(F(80))}.1`), 'orphan');
  await writeFile(join(dir, 'data', DataFiles.bucket(F(72)), `${fidKey(F(72))}.1`), 'on a chr');
  await writeFile(join(dir, 'data', DataFiles.bucket(F(6)), `${fidKey(F(6))}.77`), 'old generation');
  await writeFile(join(dir, 'data', '00', 'junk'), 'junk');
  // Bytes past the size (a lost txg's) are legal: not a problem.
  const h = await open(join(dir, 'data', DataFiles.bucket(F(3)), `${fidKey(F(3))}.${gen(3).toString(16)}`), 'r+');
  await h.write(Buffer.from('beyond'), 0, 6, 100);
  await h.close();

  osd = await Osd.open(dir);
  const problems = await osd.check();
  await osd.close();
  const kinds = problems.map((p) => `${p.kind} ${p.fid}`).sort();
  const s = (i: number) => fidToString(F(i));
  t.same(kinds, [
    'bad-key ',
    'counter-mismatch ',
    'counter-mismatch ',
    `dangling-entry ${s(50)}`,
    `data-missing ${s(71)}`,
    `data-on-non-regular ${s(72)}`,
    `entry-type-mismatch ${s(3)}`,
    `entry-without-index ${s(4)}`,
    'orphan-data ',
    `orphan-data ${s(6)}`,
    `orphan-data ${s(80)}`,
    `xattr-without-object ${s(60)}`,
  ].sort(), JSON.stringify(problems, null, 1));
  t.ok(problems.every((p) => p.message.length > 0));
  // unreferenced: F(5) is referenced only by the bad entry of F(4) (counted as a reference)
  // so plant one more: an object nobody names.
  const db2 = new ClassicLevel<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db2.put(objectKey(F(90)), encodeValue(objectKey(F(90)), { ...attrs, type: 'idx' } as never));
  await db2.close();
  osd = await Osd.open(dir);
  const p2 = await osd.check();
  await osd.close();
  t.ok(p2.some((p) => p.kind === 'unreferenced-object' && p.fid === s(90)));
});

t.test('a corrupt log record: open fails with its file and offset, the device is unchanged', async (t) => {
  const { dir, osd } = await newDevice();
  t.teardown(() => removeDir(dir));
  for (let i = 1; i <= 4; i++) {
    await txn(osd, (tx) => tx.create(F(i), { type: 'reg' }));
    await osd.sync();
  }
  await osd.close({ checkpoint: false });
  const logDir = join(dir, 'log');
  const [segment] = (await readdir(logDir)).sort();
  const file = join(logDir, segment!);
  const clean = await readFile(file);
  // Record starts: walk the recordBytes of each (header 32 bytes, body length at offset 24).
  const starts: number[] = [];
  for (let at = 32; at < clean.length; at += clean.readUInt32LE(at + 24) + 36) starts.push(at);
  t.equal(starts.length, 4);
  for (const [which, opts] of [[0, {}], [2, { checkpointKeysMax: 1 }]] as const) {
    const bytes = Buffer.from(clean);
    bytes[starts[which]! + 40] ^= 0xff; // inside the body of the record
    await writeFile(file, bytes);
    const dbBefore = await dbContents(join(dir, 'db'));
    const err = await Osd.open(dir, opts).then(async (o) => { await o.close(); return null; }, (e: unknown) => e);
    t.ok(err instanceof LogCorruptError, String(err));
    t.match(err, { file, offset: starts[which] });
    t.same(await readFile(file), bytes, 'the log is unchanged');
    t.same(await dbContents(join(dir, 'db')), dbBefore, 'the state is unchanged, even when replay would checkpoint');
  }
  await writeFile(file, clean);
  const osd2 = await Osd.open(dir, { checkpointKeysMax: 1 });
  t.equal(osd2.stats().recordsReplayed, 4);
  t.ok(osd2.stats().checkpoints > 0);
  t.equal(await osd2.exists(F(4)), true);
  await osd2.close();
});

async function dbContents(path: string): Promise<[string, string][]> {
  const db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
  const rows = (await db.iterator().all()).map(([k, v]) => [k, Buffer.from(v).toString('hex')] as [string, string]);
  await db.close();
  return rows;
}

