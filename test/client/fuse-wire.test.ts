// The FUSE wire format pinned: byte-exact replies, requests, lock structs and notifications as Linux's
// include/uapi/linux/fuse.h lays them out (7.32 layouts), each expected buffer built here field by
// field at the header's offsets, not by the encoder under test, plus the hex of each so a change
// of layout shows as a diff. Malformed requests are WireErrors (answered EIO), never crashes:
// checked for every opcode with random bodies (fast-check; FUSE_WIRE_SEED reproduces).
import fc from 'fast-check';
import t from 'tap';
import { serve, errnoOf } from '../../src/client/fuse/dispatch.js';
import type { FuseOps, RequestContext } from '../../src/client/fuse/ops.js';
import {
  OFFSET_MAX, Opcode, WireError, decodeInHeader, decodeInitIn, decodeLkIn, encodeAttrOut, encodeCreateOut, encodeDirents,
  encodeEntryOut, encodeError, encodeInitOut, encodeLkOut, encodeNotifyInvalEntry, encodeNotifyInvalInode, encodeOpenOut,
  encodeStatfsOut, type Attr, type FileLock,
} from '../../src/client/fuse/wire.js';

const seed = Number(process.env.FUSE_WIRE_SEED ?? Date.now() % 1_000_000);

const attr: Attr = {
  ino: 0x1122334455667788n, mode: 0o100644, nlink: 2, uid: 1000, gid: 100, rdev: 0, size: 5_000_000_000,
  blocks: 9_765_632, blksize: 4096, atimeNs: 1_700_000_000_123_456_789n, mtimeNs: 1_700_000_001_000_000_001n,
  ctimeNs: 1_700_000_002_999_999_999n,
};

/** fuse_attr (88 bytes) written field by field at the offsets of the spec. */
function attrBytes(): Buffer {
  const b = Buffer.alloc(88);
  b.writeBigUInt64LE(0x1122334455667788n, 0);
  b.writeBigUInt64LE(5_000_000_000n, 8);
  b.writeBigUInt64LE(9_765_632n, 16);
  b.writeBigUInt64LE(1_700_000_000n, 24);
  b.writeBigUInt64LE(1_700_000_001n, 32);
  b.writeBigUInt64LE(1_700_000_002n, 40);
  b.writeUInt32LE(123_456_789, 48);
  b.writeUInt32LE(1, 52);
  b.writeUInt32LE(999_999_999, 56);
  b.writeUInt32LE(0o100644, 60);
  b.writeUInt32LE(2, 64);
  b.writeUInt32LE(1000, 68);
  b.writeUInt32LE(100, 72);
  b.writeUInt32LE(0, 76);
  b.writeUInt32LE(4096, 80);
  return b;
}

t.test('reply layouts', async (t) => {
  const entry = Buffer.alloc(128);
  entry.writeBigUInt64LE(42n, 0);
  entry.writeBigUInt64LE(7n, 8);
  entry.writeBigUInt64LE(1n, 16); // entry_valid 1.5 s
  entry.writeBigUInt64LE(0n, 24); // attr_valid 0.25 s
  entry.writeUInt32LE(500_000_000, 32);
  entry.writeUInt32LE(250_000_000, 36);
  attrBytes().copy(entry, 40);
  const e = { nodeid: 42, generation: 7, attr, entryTimeoutMs: 1500, attrTimeoutMs: 250 };
  t.same(encodeEntryOut(e), entry, 'fuse_entry_out');
  t.equal(encodeEntryOut(e).toString('hex'),
    '2a000000000000000700000000000000010000000000000000000000000000000065cd1d80b2e60e'
    + '887766554433221100f2052a01000000000395000000000000f153650000000001f1536500000000'
    + '02f153650000000015cd5b0701000000ffc99a3ba481000002000000e80300006400000000000000'
    + '0010000000000000', 'fuse_entry_out, hex');

  const attrOut = Buffer.alloc(104);
  attrOut.writeBigUInt64LE(2n, 0);
  attrOut.writeUInt32LE(0, 8);
  attrBytes().copy(attrOut, 16);
  t.same(encodeAttrOut(attr, 2000), attrOut, 'fuse_attr_out');

  const open = Buffer.alloc(16);
  open.writeBigUInt64LE(9n, 0);
  open.writeUInt32LE(3, 8);
  t.same(encodeOpenOut(9, 3), open, 'fuse_open_out');
  t.same(encodeCreateOut(e, 9, 3), Buffer.concat([entry, open]), 'CREATE: entry then open');

  const st = Buffer.alloc(80);
  [100n, 50n, 40n, 1000n, 900n].forEach((v, i) => st.writeBigUInt64LE(v, i * 8));
  st.writeUInt32LE(4096, 40);
  st.writeUInt32LE(255, 44);
  st.writeUInt32LE(4096, 48);
  t.same(encodeStatfsOut({ blocks: 100, bfree: 50, bavail: 40, files: 1000, ffree: 900, bsize: 4096, namelen: 255, frsize: 4096 }), st, 'fuse_kstatfs');

  const init = Buffer.alloc(64);
  init.writeUInt32LE(7, 0);
  init.writeUInt32LE(32, 4);
  init.writeUInt32LE(131072, 8);
  init.writeUInt32LE((1 << 22) | (1 << 5), 12);
  init.writeUInt16LE(64, 16);
  init.writeUInt16LE(48, 18);
  init.writeUInt32LE(1 << 20, 20);
  init.writeUInt32LE(1, 24);
  init.writeUInt16LE(256, 28);
  t.same(encodeInitOut({ major: 7, minor: 32, maxReadahead: 131072, flags: (1 << 22) | (1 << 5), maxBackground: 64, congestionThreshold: 48, maxWrite: 1 << 20, timeGran: 1, maxPages: 256 }), init, 'fuse_init_out');

  t.equal(encodeError(0x0102030405060708n, 2).toString('hex'), '10000000feffffff0807060504030201', 'fuse_out_header of -ENOENT');

  const d = encodeDirents([
    { ino: 5, name: 'a', type: 0o040000, nextOffset: 1 },
    { ino: 6, name: 'abcdefgh', type: 0o100000, nextOffset: 2 },
  ], 4096);
  t.equal(d.length, 32 + 32, 'dirents padded to 8 bytes (24 + 1 -> 32, 24 + 8 -> 32)');
  t.equal(d.toString('hex'),
    '0500000000000000' + '0100000000000000' + '01000000' + '04000000' + '61' + '00'.repeat(7)
    + '0600000000000000' + '0200000000000000' + '08000000' + '08000000' + '6162636465666768', 'fuse_dirent records');
  t.equal(encodeDirents([{ ino: 5, name: 'a', type: 0o040000, nextOffset: 1 }, { ino: 6, name: 'b', type: 0, nextOffset: 2 }], 40).length, 32,
    'only whole entries that fit are packed');
});

function request(opcode: number, body: Buffer, nodeid = 1, unique = 77n): Buffer {
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeUInt32LE(1000, 24);
  b.writeUInt32LE(100, 28);
  b.writeUInt32LE(4242, 32);
  body.copy(b, 40);
  return b;
}

const ctx: RequestContext = { uid: 0, gid: 0, pid: 0, unique: 1n, signal: new AbortController().signal };
const T = { entryTimeoutMs: 1000, attrTimeoutMs: 1000 };

t.test('request layouts', async (t) => {
  const lookup = request(Opcode.LOOKUP, Buffer.from('name\0'), 5);
  t.same(decodeInHeader(lookup), { len: 45, opcode: 1, unique: 77n, nodeid: 5, uid: 1000, gid: 100, pid: 4242 }, 'fuse_in_header');
  t.throws(() => decodeInHeader(lookup.subarray(0, 39)), WireError, 'shorter than the header');
  t.throws(() => decodeInHeader(Buffer.concat([lookup, Buffer.alloc(1)])), WireError, 'len disagrees with the bytes read');
  const huge = Buffer.from(lookup);
  huge.writeBigUInt64LE(1n << 60n, 16);
  t.throws(() => decodeInHeader(huge), WireError, 'a nodeid above 2^53 was never handed out');

  const initIn = Buffer.alloc(64);
  initIn.writeUInt32LE(7, 0); initIn.writeUInt32LE(45, 4); initIn.writeUInt32LE(131072, 8); initIn.writeUInt32LE(0x3fffffff, 12);
  t.same(decodeInitIn(initIn), { major: 7, minor: 45, maxReadahead: 131072, flags: 0x3fffffff }, 'fuse_init_in (7.45 is 64 bytes, 7.32 reads 16)');

  // The bodies reach the ops as the spec says, with the fields at their offsets.
  const seen: unknown[] = [];
  const ops: FuseOps = {
    setattr: async (_c, n, ch) => { seen.push(['setattr', n, ch]); return { attr }; },
    write: async (_c, n, fh, off, data, flags) => { seen.push(['write', n, fh, off, data.toString(), flags]); return data.length; },
    rename: async (_c, p, name, np, nn, flags) => { seen.push(['rename', p, name, np, nn, flags]); },
    getxattr: async () => Buffer.from('value'),
    create: async (_c, p, name, mode, flags, umask) => { seen.push(['create', p, name, mode, flags, umask]); return { entry: { nodeid: 9, attr }, open: { fh: 3, directIo: true } }; },
  };
  const sa = Buffer.alloc(88);
  sa.writeUInt32LE((1 << 0) | (1 << 3) | (1 << 5) | (1 << 6), 0); // MODE SIZE MTIME FH
  sa.writeBigUInt64LE(12n, 8); sa.writeBigUInt64LE(4096n, 16); sa.writeBigUInt64LE(1_700_000_000n, 40);
  sa.writeUInt32LE(5, 60); sa.writeUInt32LE(0o755, 68);
  const h = (b: Buffer) => decodeInHeader(b);
  let r = request(Opcode.SETATTR, sa, 3);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  const w = Buffer.alloc(40 + 5);
  w.writeBigUInt64LE(8n, 0); w.writeBigUInt64LE(1n << 32n, 8); w.writeUInt32LE(5, 16); w.writeUInt32LE(1, 20);
  w.write('hello', 40);
  r = request(Opcode.WRITE, w, 3);
  const wrote = await serve(ops, h(r), r.subarray(40), ctx, T);
  t.equal(wrote[0]!.toString('hex'), '0500000000000000', 'fuse_write_out');
  const rn = Buffer.alloc(16);
  rn.writeBigUInt64LE(6n, 0); rn.writeUInt32LE(1, 8);
  r = request(Opcode.RENAME2, Buffer.concat([rn, Buffer.from('a\0b\0')]), 4);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  const cr = Buffer.alloc(16);
  cr.writeUInt32LE(0o101, 0); cr.writeUInt32LE(0o100600, 4); cr.writeUInt32LE(0o22, 8);
  r = request(Opcode.CREATE, Buffer.concat([cr, Buffer.from('f\0')]), 2);
  const created = await serve(ops, h(r), r.subarray(40), ctx, T);
  t.equal(created[0]!.length, 144, 'CREATE reply: fuse_entry_out + fuse_open_out');
  t.equal(created[0]!.readUInt32LE(128 + 8), 1, 'FOPEN_DIRECT_IO');
  t.same(seen, [
    ['setattr', 3, { mode: 0o755, size: 4096, mtimeNs: 1_700_000_000_000_000_005n, fh: 12 }],
    ['write', 3, 8, 2 ** 32, 'hello', 1],
    ['rename', 4, 'a', 6, 'b', 1],
    ['create', 2, 'f', 0o100600, 0o101, 0o22],
  ]);
  const gx = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('user.x\0')]);
  r = request(Opcode.GETXATTR, gx);
  t.equal((await serve(ops, h(r), r.subarray(40), ctx, T))[0]!.toString('hex'), '0500000000000000', 'GETXATTR with size 0 answers the size');
  gx.writeUInt32LE(2, 0);
  r = request(Opcode.GETXATTR, gx);
  await t.rejects(serve(ops, h(r), r.subarray(40), ctx, T), { code: 'ERANGE' }, 'a value larger than the buffer is ERANGE');
  r = request(Opcode.MKDIR, Buffer.from('\0\0\0\0\0\0\0\0d\0', 'latin1'));
  await t.rejects(serve(ops, h(r), r.subarray(40), ctx, T), { code: 'ENOSYS' }, 'a missing op is ENOSYS');
  const ws = Buffer.from(w);
  ws.writeUInt32LE(6, 16);
  r = request(Opcode.WRITE, ws, 3);
  await t.rejects(serve(ops, h(r), r.subarray(40), ctx, T), WireError, 'a WRITE whose data is not its size');
  t.same(errnoOf(Object.assign(new Error('x'), { code: 'ENOTEMPTY' })), { errno: 39, known: true });
  t.same(errnoOf(new Error('plain')), { errno: 5, known: false }, 'anything else is EIO');
});

/** fuse_lk_in (48 bytes) field by field. */
function lkIn(fh: bigint, owner: bigint, start: bigint, end: bigint, type: number, pid: number, lkFlags: number): Buffer {
  const b = Buffer.alloc(48);
  b.writeBigUInt64LE(fh, 0);
  b.writeBigUInt64LE(owner, 8);
  b.writeBigUInt64LE(start, 16);
  b.writeBigUInt64LE(end, 24);
  b.writeUInt32LE(type, 32);
  b.writeUInt32LE(pid, 36);
  b.writeUInt32LE(lkFlags, 40);
  return b;
}

t.test('locks: fuse_lk_in, fuse_lk_out, what GETLK/SETLK/SETLKW/FLUSH/RELEASE give the ops', async (t) => {
  const owner = 0xfedcba9876543210n;
  const body = lkIn(7n, owner, 100n, 199n, 1, 4242, 0);
  t.equal(body.toString('hex'),
    '0700000000000000' + '1032547698badcfe' + '6400000000000000' + 'c700000000000000' + '01000000' + '92100000' + '00000000' + '00000000',
    'fuse_lk_in, hex: fh, owner, lk { start, end, type F_WRLCK, pid }, lk_flags, padding');
  t.same(decodeLkIn(body), { fh: 7, owner, lock: { start: 100n, end: 199n, type: 'write', pid: 4242 }, flock: false });
  t.same(decodeLkIn(lkIn(7n, 1n, 0n, OFFSET_MAX, 0, 1, 1)).lock, { start: 0n, end: OFFSET_MAX, type: 'read', pid: 1 }, 'F_RDLCK to the end of the file');
  t.equal(decodeLkIn(lkIn(7n, 1n, 0n, OFFSET_MAX, 2, 0, 1)).flock, true, 'FUSE_LK_FLOCK');
  t.throws(() => decodeLkIn(lkIn(7n, 1n, 0n, 1n, 3, 0, 0)), WireError, 'a lock type that is none of the three');
  t.throws(() => decodeLkIn(lkIn(7n, 1n, 5n, 4n, 1, 0, 0)), WireError, 'end below start');
  t.throws(() => decodeLkIn(lkIn(7n, 1n, 0n, OFFSET_MAX + 1n, 1, 0, 0)), WireError, 'end above OFFSET_MAX');
  t.throws(() => decodeLkIn(body.subarray(0, 47)), WireError, 'shorter than fuse_lk_in');

  const out = Buffer.alloc(24);
  out.writeBigUInt64LE(0n, 0);
  out.writeBigUInt64LE(OFFSET_MAX, 8);
  out.writeUInt32LE(0, 16);
  out.writeUInt32LE(99, 20);
  t.same(encodeLkOut({ start: 0n, end: OFFSET_MAX, type: 'read', pid: 99 }), out, 'fuse_lk_out');
  t.equal(encodeLkOut({ start: 10n, end: 19n, type: 'unlock', pid: 0 }).toString('hex'),
    '0a00000000000000' + '1300000000000000' + '02000000' + '00000000', 'fuse_lk_out of F_UNLCK, hex');

  // Through serve: each lock request reaches its op with its fields; the session's close-time unlocks.
  const seen: unknown[] = [];
  let conflict: FileLock | null = { start: 0n, end: 99n, type: 'write', pid: 77 };
  const ops: FuseOps = {
    getlk: async (_c, n, fh, o, lock) => { seen.push(['getlk', n, fh, o, lock]); return conflict; },
    setlk: async (_c, n, fh, o, lock, opts) => { seen.push(['setlk', n, fh, o, lock, opts]); },
    flush: async (_c, n, fh, o) => { seen.push(['flush', n, fh, o]); },
    release: async (_c, n, fh, flags, info) => { seen.push(['release', n, fh, flags, info]); },
  };
  const h = (b: Buffer) => decodeInHeader(b);
  let r = request(Opcode.GETLK, lkIn(7n, owner, 50n, 59n, 1, 4242, 0), 3);
  t.same((await serve(ops, h(r), r.subarray(40), ctx, T))[0], encodeLkOut(conflict), 'GETLK answers the conflicting lock');
  conflict = null;
  t.equal((await serve(ops, h(r), r.subarray(40), ctx, T))[0]!.toString('hex'),
    '3200000000000000' + '3b00000000000000' + '02000000' + '00000000', 'and F_UNLCK over the range asked when none conflicts');
  r = request(Opcode.SETLK, lkIn(7n, owner, 50n, 59n, 0, 4242, 0), 3);
  t.same(await serve(ops, h(r), r.subarray(40), ctx, T), [], 'SETLK: no reply body');
  r = request(Opcode.SETLKW, lkIn(8n, 5n, 0n, OFFSET_MAX, 1, 4243, 1), 3);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  const flush = Buffer.alloc(24);
  flush.writeBigUInt64LE(7n, 0);
  flush.writeBigUInt64LE(owner, 16);
  r = request(Opcode.FLUSH, flush, 3);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  const release = Buffer.alloc(24);
  release.writeBigUInt64LE(8n, 0);
  release.writeUInt32LE(2, 8); // O_RDWR
  release.writeUInt32LE(2, 12); // FUSE_RELEASE_FLOCK_UNLOCK
  release.writeBigUInt64LE(5n, 16);
  r = request(Opcode.RELEASE, release, 3);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  release.writeUInt32LE(0, 12);
  r = request(Opcode.RELEASE, release, 3);
  await serve(ops, h(r), r.subarray(40), ctx, T);
  const whole = { start: 0n, end: OFFSET_MAX, type: 'unlock', pid: 0 };
  t.same(seen, [
    ['getlk', 3, 7, owner, { start: 50n, end: 59n, type: 'write', pid: 4242 }],
    ['getlk', 3, 7, owner, { start: 50n, end: 59n, type: 'write', pid: 4242 }],
    ['setlk', 3, 7, owner, { start: 50n, end: 59n, type: 'read', pid: 4242 }, { wait: false, flock: false, close: false }],
    ['setlk', 3, 8, 5n, { start: 0n, end: OFFSET_MAX, type: 'write', pid: 4243 }, { wait: true, flock: true, close: false }],
    ['flush', 3, 7, owner],
    ['setlk', 3, 7, owner, whole, { wait: false, flock: false, close: true }],
    ['setlk', 3, 8, 5n, whole, { wait: false, flock: true, close: true }],
    ['release', 3, 8, 2, { flush: false, flockOwner: 5n }],
    ['release', 3, 8, 2, { flush: false }],
  ], 'FLUSH: flush then the end of the owner\'s POSIX locks; RELEASE with FLOCK_UNLOCK: the end of the flock, then release');

  // Without a flush op, FLUSH still succeeds when the ops serve locks (an ENOSYS would stop the
  // kernel sending it, and the locks would outlive their process); without locks, ENOSYS as before.
  r = request(Opcode.FLUSH, flush, 3);
  t.same(await serve({ getlk: ops.getlk!, setlk: ops.setlk! }, h(r), r.subarray(40), ctx, T), [], 'FLUSH with locks and no flush op');
  await t.rejects(serve({}, h(r), r.subarray(40), ctx, T), { code: 'ENOSYS' }, 'FLUSH with neither');
  r = request(Opcode.GETLK, lkIn(7n, owner, 0n, 1n, 1, 1, 0), 3);
  await t.rejects(serve({}, h(r), r.subarray(40), ctx, T), { code: 'ENOSYS' }, 'GETLK without getlk');
});

t.test('notifications: FUSE_NOTIFY_INVAL_INODE and FUSE_NOTIFY_INVAL_ENTRY, header included', async (t) => {
  const inode = Buffer.alloc(40);
  inode.writeUInt32LE(40, 0);
  inode.writeInt32LE(2, 4); // error = FUSE_NOTIFY_INVAL_INODE
  inode.writeBigUInt64LE(0n, 8); // unique 0
  inode.writeBigUInt64LE(42n, 16);
  inode.writeBigInt64LE(4096n, 24);
  inode.writeBigInt64LE(8192n, 32);
  t.same(encodeNotifyInvalInode(42, 4096, 8192), inode, 'fuse_notify_inval_inode_out');
  t.equal(encodeNotifyInvalInode(42, -1, 0).toString('hex'),
    '28000000' + '02000000' + '0000000000000000' + '2a00000000000000' + 'ffffffffffffffff' + '0000000000000000', 'attributes only (off -1), hex');

  const entry = encodeNotifyInvalEntry(1, Buffer.from('name'));
  t.equal(entry.toString('hex'),
    '25000000' + '03000000' + '0000000000000000' + '0100000000000000' + '04000000' + '00000000' + '6e616d65' + '00',
    'fuse_notify_inval_entry_out: parent, namelen (without the NUL), flags 0, then the name and a NUL');
  t.equal(entry.length, 16 + 16 + 4 + 1, 'the length the kernel checks: header, struct, namelen + 1');
});

t.test('malformed bodies are WireErrors or errno answers, never anything else', async (t) => {
  t.comment(`seed ${seed} (FUSE_WIRE_SEED reproduces)`);
  const entry = { nodeid: 2, attr };
  const every: FuseOps = {
    lookup: async () => entry, getattr: async () => ({ attr }), setattr: async () => ({ attr }), readlink: async () => 'x',
    mknod: async () => entry, mkdir: async () => entry, unlink: async () => {}, rmdir: async () => {}, symlink: async () => entry,
    rename: async () => {}, link: async () => entry, open: async () => ({ fh: 1 }), read: async (_c, _n, _f, _o, size) => Buffer.alloc(Math.min(size, 10)),
    write: async (_c, _n, _f, _o, d) => d.length, flush: async () => {}, release: async () => {}, fsync: async () => {},
    opendir: async () => ({ fh: 1 }), readdir: async () => [], releasedir: async () => {}, fsyncdir: async () => {},
    statfs: async () => ({ blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 }),
    setxattr: async () => {}, getxattr: async () => Buffer.alloc(0), listxattr: async () => [], removexattr: async () => {},
    access: async () => {}, create: async () => ({ entry, open: { fh: 1 } }), fallocate: async () => {}, lseek: async () => 0,
    getlk: async () => null, setlk: async () => {},
  };
  const opcodes = Object.values(Opcode).filter((o) => ![Opcode.INIT, Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.DESTROY].includes(o as never));
  await fc.assert(fc.asyncProperty(fc.constantFrom(...opcodes), fc.uint8Array({ maxLength: 120 }), async (opcode, body) => {
    const r = request(opcode, Buffer.from(body));
    try {
      const reply = await serve(every, decodeInHeader(r), r.subarray(40), ctx, T);
      return Array.isArray(reply);
    } catch (err) {
      return err instanceof WireError || typeof (err as { code?: unknown }).code === 'string';
    }
  }), { seed, numRuns: 3000 });
  t.pass('3000 random bodies answered or refused as malformed');
});
