// The OST through the OSC, on real OSDs and LNet over loopback TCP: every RPC and its error
// cases, bulk IO at any offset with several ranges per RPC, checksums (a corrupted bulk is
// refused with -EAGAIN and resent), several RPCs in flight, grants, and filling an OST.
import t from 'tap';
import { fid } from '../../../src/osd/index.js';
import {
  adler32, checksumBytes, ChecksumPool, CksumType, createReplyLastId, createRequest, encodeBody, FID_SEQ_NORMAL, FID_SEQ_OST_MDT0,
} from '../../../src/services/ost/index.js';
import { Opcode } from '../../../src/ptlrpc/index.js';
import { patternBytes, startCluster } from './harness.js';

const SEQ = FID_SEQ_OST_MDT0;
const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: { code?: string }) => e.code ?? String(e));

t.test('wire bodies and checksums, pinned', async (t) => {
  // CBOR maps as cbor-x writes them (16-bit map lengths; integers beyond 32 bits as exact
  // float64s), byte for byte: a change here is a wire format change.
  t.equal(createRequest(0x100000000, 32)[0]!.toString('hex'), 'b9000263736571fb41f0000000000000666c61737449641820');
  t.equal(createRequest(0x100000000, 7, true)[0]!.toString('hex'), 'b9000363736571fb41f0000000000000666c6173744964076964656c6f727068616ef5');
  t.equal(createReplyLastId([encodeBody({ seq: 1, lastId: 9 })]), 9);
  t.throws(() => createReplyLastId([Buffer.from([0xff])]), { code: 'EPROTO' });
  const check = Buffer.from('123456789');
  t.equal(checksumBytes(CksumType.CRC32C, check), 0xe3069283, 'crc32c check value');
  t.equal(adler32(Buffer.from('Wikipedia')), 0x11e60398, 'adler32 of RFC 1950 fame');
  const big = patternBytes(3 * 1024 * 1024 + 5, 4);
  const parts = [big.subarray(0, 17), big.subarray(17, 2_000_000), big.subarray(2_000_000)];
  const pool = ChecksumPool.acquire();
  t.teardown(() => ChecksumPool.release(pool));
  for (const type of [CksumType.CRC32C, CksumType.ADLER32]) {
    t.equal(await pool.checksum(type, parts), checksumBytes(type, big), `type ${type}: the pool over chunks = one pass over the whole`);
  }
  t.equal(await pool.checksum(CksumType.NONE, parts), 0);
});

t.test('objects: precreate, getattr, setattr, punch, destroy, delete orphans, sync, statfs', async (t) => {
  const c = await startCluster(1, { ost: { maxPrecreate: 50 } });
  t.teardown(() => c.stop());
  const osc = await c.osc(0);
  const { ost, osd } = c.osts[0]!;

  t.equal(await osc.precreate(SEQ, 10), 10, 'precreate 1..10');
  t.equal(await osc.precreate(SEQ, 5), 10, 'asking for less only reports last_id');
  t.equal(await osc.precreate(SEQ, 30), 30, 'precreate 11..30');
  t.equal(await osc.precreate(SEQ, 30 + 50 + 5), 30 + 50, 'at most maxPrecreate (OST_MAX_PRECREATE by default) per request');
  t.equal(await osc.precreate(SEQ, 120), 120);
  t.equal(await osc.precreate(FID_SEQ_NORMAL, 3), 3, 'a second sequence has its own last_id');
  const index = ost.objects.seqIndex(SEQ)!;
  t.same(index, fid(SEQ, 0), "the sequence's index (and LAST_ID) is its oid 0, as Lustre's");
  t.equal((await osd.indexList(index, { limit: 100 })).entries.length, 100, 'the index lists the objects');
  t.equal(await osd.indexLookup(index, '17').then((v) => v?.fid.oid), 17);

  const a = await osc.getattr({ seq: SEQ, oid: 7 });
  t.match(a, { size: 0, blocks: 0, mode: 0o666 });
  t.equal(await code(osc.getattr({ seq: SEQ, oid: 121 })), 'ENOENT', 'getattr of an object never created');
  t.equal(await code(osc.getattr({ seq: 5, oid: 1 })), 'EINVAL', 'a sequence that is no OST sequence');
  t.equal(await code(osc.getattr({ seq: SEQ, oid: 0 })), 'EINVAL', 'oid 0 names no object');
  t.equal(await code(osc.getattr({ seq: SEQ, oid: 2 ** 32 })), 'EINVAL', 'an oid beyond 32 bits');

  const set = await osc.setattr({ seq: SEQ, oid: 7 }, { mode: 0o640, uid: 500, gid: 501, mtime: 1_000_000, atime: 1_000_001 });
  t.match(set, { mode: 0o640, uid: 500, gid: 501, mtime: 1_000_000, atime: 1_000_001 });
  t.match(await osc.getattr({ seq: SEQ, oid: 7 }), { mode: 0o640, uid: 500 });
  t.equal(await code(osc.setattr({ seq: SEQ, oid: 7 }, { size: 5 } as never)), 'EINVAL', 'size goes through punch');
  t.equal(await code(osc.setattr({ seq: SEQ, oid: 7 }, { mode: 0o170000 })), 'EINVAL', 'mode holds permission bits only');
  t.equal(await code(osc.setattr({ seq: SEQ, oid: 99_999 }, { mode: 0o600 })), 'ENOENT');

  const id = { seq: SEQ, oid: 8 };
  await osc.write(id, 0, Buffer.alloc(100_000, 7));
  const punched = await osc.punch(id, 10_000, 20_000);
  t.equal(punched.size, 100_000, 'a punched hole keeps the size');
  const back = await osc.read(id, 0, 100_000);
  t.ok(back.subarray(10_000, 20_000).equals(Buffer.alloc(10_000)), 'the hole reads zeros');
  t.ok(back.subarray(20_000).equals(Buffer.alloc(80_000, 7)) && back.subarray(0, 10_000).equals(Buffer.alloc(10_000, 7)), 'the rest is intact');
  t.equal((await osc.truncate(id, 50_000)).size, 50_000, 'truncate shrinks');
  t.equal((await osc.truncate(id, 70_000)).size, 70_000, 'truncate extends');
  t.ok((await osc.read(id, 0, 70_000)).subarray(50_000).equals(Buffer.alloc(20_000)), 'the extension reads zeros');
  t.equal(await code(osc.punch(id, 10, 5)), 'EINVAL', 'punch end before start');
  t.equal(await code(osc.punch({ seq: SEQ, oid: 99_999 }, 0)), 'ENOENT');

  await osc.destroy(id);
  t.equal(await code(osc.getattr(id)), 'ENOENT', 'destroyed');
  t.equal(await osd.indexLookup(index, '8'), undefined, 'gone from the index');
  t.equal(await code(osc.destroy(id)), 'ENOENT', 'destroy twice');
  t.equal(await code(osc.destroy({ seq: FID_SEQ_NORMAL + 5, oid: 1 })), 'ENOENT', 'a sequence the OST never had');

  const last = ost.objects.lastId(SEQ);
  t.equal(await osc.deleteOrphans(SEQ, 25), 25, 'delete orphans: last_id follows the MDT');
  t.equal(await code(osc.getattr({ seq: SEQ, oid: 26 })), 'ENOENT', 'orphans above it are destroyed');
  t.equal(await code(osc.getattr({ seq: SEQ, oid: last })), 'ENOENT');
  t.equal((await osc.getattr({ seq: SEQ, oid: 25 })).size, 0, 'objects up to it stay');
  t.equal(await osc.precreate(SEQ, 28), 28, 'precreate continues after it');
  t.equal((await osd.indexList(index, { limit: 1000 })).entries.length, 27, 'the index holds 1..28 but 8');

  await osc.sync();
  await osc.sync({ seq: SEQ, oid: 25 });
  t.equal(await code(osc.sync({ seq: SEQ, oid: 99_999 })), 'ENOENT');
  const s = await osc.statfs();
  t.ok(s.blocks > 0 && s.bfree > 0 && s.bavail <= s.bfree && s.files > 0 && s.bsize === 4096, 'statfs');
  t.equal(s.granted, osc.grant, 'the only client holds all the grant');

  // Malformed bodies are the peer's fault: EPROTO, never a crash.
  t.equal(await code(osc.imports.ost.request(Opcode.OST_GETATTR, [Buffer.from([0xff, 0x00])])), 'EPROTO');
  t.equal(await code(osc.imports.ost.request(Opcode.OST_GETATTR, [])), 'EPROTO');
  t.equal(await code(osc.imports.io.request(Opcode.OST_WRITE, [encodeBody({
    seq: SEQ, oid: 25, niobufs: [[0, 10], [5, 10]], cksumType: 0, cksum: 0,
  })], { bulkWrite: [Buffer.alloc(20)] })), 'EINVAL', 'overlapping niobufs');
  t.equal(await code(osc.imports.io.request(Opcode.OST_READ, [encodeBody({ seq: SEQ, oid: 25, niobufs: [[0, 5 * 2 ** 20]], cksumType: 1 })],
    { bulkRead: 5 * 2 ** 20 })), 'EINVAL', 'a BRW beyond 4 MiB');
  t.equal(await code(osc.imports.io.request(Opcode.OST_READ, [encodeBody({ seq: SEQ, oid: 25, niobufs: [[0, 10]], cksumType: 9 })],
    { bulkRead: 10 })), 'EINVAL', 'an unknown checksum type');
  t.equal(await code(osc.write({ seq: SEQ, oid: 99_999 }, 0, Buffer.alloc(10))), 'ENOENT', 'a write to no object');
  t.equal(await code(osc.read({ seq: SEQ, oid: 99_999 }, 0, 10)), 'ENOENT', 'a read of no object');
});

t.test('bulk IO: any offset, several ranges per RPC, short reads, RPCs in flight, checksums', async (t) => {
  const c = await startCluster(1);
  t.teardown(() => c.stop());
  const osc = await c.osc(0, { maxRpcsInFlight: 4, brwSize: 1024 * 1024 });
  const adler = await c.osc(0, { checksum: 'adler32' });
  const { ost } = c.osts[0]!;
  await osc.precreate(SEQ, 10);

  const id = { seq: SEQ, oid: 1 };
  const data = patternBytes(3 * 1024 * 1024 + 12_345, 1);
  const offset = 1024 * 1024 + 3;
  const ioBefore = osc.counters.writeRpcs;
  let maxInFlight = 0;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      maxInFlight = Math.max(maxInFlight, osc.imports.io.inFlight);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const big = patternBytes(8 * 1024 * 1024, 2);
  await Promise.all([osc.write(id, offset, data), osc.write({ seq: SEQ, oid: 2 }, 0, big)]);
  watching = false;
  await watch;
  t.ok(maxInFlight > 1 && maxInFlight <= 4, `several BRW RPCs in flight, at most max_rpcs_in_flight (saw ${maxInFlight})`);
  t.equal(osc.counters.writeRpcs - ioBefore, 4 + 8, 'cut into RPCs of brw_size');
  t.match(await osc.getattr(id), { size: offset + data.length });
  t.ok((await osc.read(id, offset, data.length)).equals(data), 'read back at an unaligned offset');
  t.ok((await osc.read(id, 0, offset)).equals(Buffer.alloc(offset)), 'the hole before it reads zeros');
  const tail = await osc.read(id, offset + data.length - 100, 5000);
  t.equal(tail.length, 100, 'a read past the end is short');
  t.ok(tail.equals(data.subarray(data.length - 100)));
  t.equal((await osc.read(id, offset + data.length + 10, 100)).length, 0, 'past the end: nothing');
  t.ok((await osc.read({ seq: SEQ, oid: 2 }, 0, big.length)).equals(big), 'the 8 MiB object too');

  // One RPC with several ranges (niobufs), and holes between them.
  const v = { seq: SEQ, oid: 3 };
  const extents = [0, 10_000, 70_000, 300_001].map((off, i) => ({ offset: off, data: patternBytes(1000 + i * 777, 10 + i) }));
  const rpcs = osc.counters.writeRpcs;
  await osc.writev(v, [...extents].reverse());
  t.equal(osc.counters.writeRpcs - rpcs, 1, 'four ranges in one BRW');
  const whole = await osc.read(v, 0, 400_000);
  const expect = Buffer.alloc(300_001 + extents[3]!.data.length);
  for (const e of extents) e.data.copy(expect, e.offset);
  t.ok(whole.equals(expect), 'each range where it belongs, zeros between');

  // adler32 works the same way.
  const w = { seq: SEQ, oid: 4 };
  const small = patternBytes(700_000, 3);
  await adler.write(w, 5, small);
  t.ok((await adler.read(w, 5, small.length)).equals(small), 'adler32 bulk');

  // A write whose bulk arrives corrupted: refused with -EAGAIN, resent, written once right.
  const x = { seq: SEQ, oid: 5 };
  let corrupt = 1;
  osc.failLoc.corruptWriteBulk = () => corrupt-- > 0;
  const errorsBefore = ost.counters.cksumErrors;
  await osc.write(x, 4096, data.subarray(0, 900_000));
  t.equal(ost.counters.cksumErrors - errorsBefore, 1, 'the OST saw one checksum mismatch');
  t.equal(osc.counters.cksumResends, 1, 'the OSC resent once');
  t.ok((await osc.read(x, 4096, 900_000)).equals(data.subarray(0, 900_000)), 'the resent data is what was written');
  // A bulk corrupted on every attempt: the writer gets EAGAIN and nothing is written.
  osc.failLoc.corruptWriteBulk = () => true;
  const lone = await c.osc(0, { resendMax: 2 });
  lone.failLoc.corruptWriteBulk = () => true;
  t.equal(await code(lone.write({ seq: SEQ, oid: 6 }, 0, Buffer.alloc(1000, 1))), 'EAGAIN');
  t.equal((await osc.getattr({ seq: SEQ, oid: 6 })).size, 0, 'nothing of a refused bulk was written');
  osc.failLoc.corruptWriteBulk = undefined;
  // A small write (checksummed inline) corrupted once.
  let once = 1;
  adler.failLoc.corruptWriteBulk = () => once-- > 0;
  await adler.write({ seq: SEQ, oid: 7 }, 0, Buffer.from('hello'));
  t.equal(adler.counters.cksumResends, 1);
  t.equal((await adler.read({ seq: SEQ, oid: 7 }, 0, 100)).toString(), 'hello');

  // A read whose bulk arrives corrupted: the OSC sees the mismatch and reads again.
  let bad = 1;
  ost.failLoc.corruptReadBulk = () => bad-- > 0;
  t.ok((await osc.read(x, 4096, 900_000)).equals(data.subarray(0, 900_000)), 'the read is right after a retry');
  t.equal(osc.counters.readCksumRetries, 1);
  ost.failLoc.corruptReadBulk = undefined;
  const st = ost.stats() as { checksum: { pooled: number; inline: number } };
  t.ok(st.checksum.pooled > 0 && st.checksum.inline > 0, 'crc32c and small adler32 bulks checksummed inline, large adler32 ones in the pool');
});

t.test('grants, and filling an OST: ENOSPC, data before intact, deleting frees space', async (t) => {
  const capacity = 8 * 1024 * 1024;
  const c = await startCluster(1, { osd: { capacityBytes: capacity } });
  t.teardown(() => c.stop());
  const { ost } = c.osts[0]!;
  const a = await c.osc(0, { brwSize: 256 * 1024, maxRpcsInFlight: 2 });
  const b = await c.osc(0, { brwSize: 256 * 1024, maxRpcsInFlight: 2 });
  t.ok(a.grant > 0 && b.grant > 0, `each client got grant at connect (${a.grant}, ${b.grant})`);
  t.equal(ost.grants.total, a.grant + b.grant, "the OST's book matches the clients'");
  t.ok(ost.grants.total <= capacity, 'never more granted than free');
  await a.precreate(SEQ, 20);

  // Client a fills the OST 256 KiB at a time, each into its own object region.
  const chunk = 256 * 1024;
  const written: Array<{ oid: number; data: Buffer }> = [];
  let refused: string | undefined;
  for (let i = 0; i < 64 && !refused; i++) {
    const oid = 1 + (i % 4);
    const data = patternBytes(chunk, 100 + i);
    const off = Math.floor(i / 4) * chunk;
    try {
      await a.write({ seq: SEQ, oid }, off, data);
      written.push({ oid, data });
    } catch (err) {
      refused = (err as { code?: string }).code;
      t.equal((await a.getattr({ seq: SEQ, oid })).size, off, 'the refused write left the object as it was');
    }
  }
  t.equal(refused, 'ENOSPC', 'the writer gets ENOSPC');
  t.ok(a.counters.writesFromGrant > 0, 'writes were counted against the grant');
  const bytes = written.length * chunk;
  t.ok(bytes <= capacity && bytes >= capacity / 2, `${bytes} bytes written of ${capacity}`);
  t.ok(ost.counters.enospc >= 1);
  // Everything written before is intact.
  for (let oid = 1; oid <= 4; oid++) {
    const mine = written.filter((w) => w.oid === oid).map((w) => w.data);
    t.ok((await a.read({ seq: SEQ, oid }, 0, capacity)).equals(Buffer.concat(mine)), `object ${oid} holds what was written`);
  }
  // Client b: its grant is its own; beyond it, ENOSPC too.
  let bRefused: string | undefined;
  for (let i = 0; i < 64 && !bRefused; i++) {
    await b.write({ seq: SEQ, oid: 10 }, i * chunk, patternBytes(chunk, 500 + i)).catch((e: { code?: string }) => (bRefused = e.code));
  }
  t.equal(bRefused, 'ENOSPC');
  t.ok((await b.statfs()).bavail * 4096 < chunk, 'statfs: no space left');

  // Deleting frees the space: writes succeed again.
  await a.destroy({ seq: SEQ, oid: 1 });
  await a.destroy({ seq: SEQ, oid: 2 });
  const again = patternBytes(4 * chunk, 9);
  await a.write({ seq: SEQ, oid: 11 }, 0, again);
  t.ok((await a.read({ seq: SEQ, oid: 11 }, 0, again.length)).equals(again), 'written after the delete');
  t.ok((await a.statfs()).bfree > 0);

  // A client that leaves gives its grant back.
  const before = ost.grants.total;
  const held = b.grant;
  await b.disconnect();
  t.equal(ost.grants.total, before - held, "a disconnecting client's grant returns to the pool");
});

t.test('mounted by the target framework: objects, last_id and data survive an umount and mount', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { LNetNI } = await import('../../../src/lnet/index.js');
  const { Target, formatTarget } = await import('../../../src/services/target/index.js');
  const { Osc } = await import('../../../src/client/osc.js');
  const { freePort } = await import('./harness.js');
  const dev = await mkdtemp(join(tmpdir(), 'ost-mount-'));
  t.teardown(() => rm(dev, { recursive: true, force: true }));
  await formatTarget(dev, { fsname: 'testfs', ost: true, index: 3, mgsNids: ['127.0.0.2@tcp'] });
  const port = await freePort();
  const ni = await LNetNI.start({ nid: '127.0.0.3@tcp', port, warn: () => {} });
  const client = await LNetNI.start({ nid: '127.0.0.9@tcp', port, warn: () => {} });
  t.teardown(async () => {
    await client.stop();
    await ni.stop();
  });
  const connect = () => Osc.connect(client, {
    nid: ni.nid, targetUuid: 'testfs-OST0003_UUID', clientUuid: 'mount-client',
    importOptions: { pingIntervalMs: 0, initialEstimateMs: 500, at: { minMs: 200, maxMs: 5000 } },
  });
  const data = patternBytes(2 * 1024 * 1024 + 17, 77);
  let target = await Target.mount(dev, ni, { log: () => {}, register: false });
  let osc = await connect();
  t.equal(await osc.precreate(SEQ, 12), 12);
  await osc.write({ seq: SEQ, oid: 12 }, 4096, data);
  await osc.disconnect();
  t.match(target.stats(), { ost: { bytesWritten: data.length } }, 'the OST reports its figures');
  await target.umount();

  target = await Target.mount(dev, ni, { log: () => {}, register: false });
  t.teardown(() => target.umount());
  osc = await connect();
  t.equal(await osc.precreate(SEQ, 3), 12, 'last_id survived');
  t.equal(await osc.precreate(SEQ, 14), 14, 'and precreate continues from it');
  t.ok((await osc.read({ seq: SEQ, oid: 12 }, 4096, data.length)).equals(data), 'the data survived');
  await osc.disconnect();
});
