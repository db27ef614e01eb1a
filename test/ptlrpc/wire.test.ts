// The wire formats pinned byte for byte, their decoders under random input, and the small
// state machines that need no network (adaptive timeouts, stats, replay list, reply stores).
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { fid, Osd } from '../../src/osd/index.js';
import {
  AdaptiveTimeout, decodeConnectRequest, decodeMessage, encodeConnectRequest, encodeMessage, Errno, LprocfsStats,
  makeBody, MemoryReplyStore, MsgFlag, MsgType, Opcode, OsdReplyStore, PtlrpcError, PTLRPC_MSG_VERSION,
  ReplayList, TargetVersion, est2timeout, type PtlrpcBody,
} from '../../src/ptlrpc/index.js';
import { decodeRecord, encodeRecord } from '../../src/ptlrpc/osd-reply-store.js';

const fixture = (name: string) => Buffer.from(readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8').replace(/\s+/g, ''), 'hex');
const seed = Number(process.env.PTLRPC_SEED ?? Date.now() % 1_000_000);
t.comment(`fast-check seed ${seed} (PTLRPC_SEED reproduces)`);

const goldenRequestBody = makeBody({
  handle: 0x1122334455667788n, type: MsgType.REQUEST, version: TargetVersion.OST | PTLRPC_MSG_VERSION,
  opcode: Opcode.OST_WRITE, lastXid: 0x17f0000000000041n, tag: 3, connCnt: 2, timeout: 7,
  flags: MsgFlag.RESENT, mbits: 0x17f0000000000042n, jobid: 'dd.1000',
});
const goldenReplyBody = makeBody({
  handle: 0x1122334455667788n, type: MsgType.REPLY, version: TargetVersion.OST | PTLRPC_MSG_VERSION,
  opcode: Opcode.OST_WRITE, status: -Errno.ENOSPC, tag: 3, lastCommitted: 41n, transno: 42n, connCnt: 2,
  timeout: 1, serviceTime: 0,
});

t.test('golden: an OST_WRITE request is byte-exact', async (t) => {
  const bytes = encodeMessage(goldenRequestBody, [Buffer.from('ost_body'), Buffer.from([1, 2, 3])], { repsize: 1024 });
  const golden = fixture('ost-write-request.hex');
  t.equal(bytes.toString('hex'), golden.toString('hex'));
  // Independent reads at Lustre's offsets (wiretest.c), not through our decoder.
  t.equal(golden.readUInt32LE(0), 3, 'lm_bufcount');
  t.equal(golden.readUInt32LE(8), 0x0bd00bd3, 'lm_magic');
  t.equal(golden.readUInt32LE(32), 184, 'lm_buflens[0] = sizeof(ptlrpc_body_v3)');
  const body = 48; // round8(32 + 3 * 4)
  t.equal(golden.readUInt32LE(body + 8), 4711, 'pb_type');
  t.equal(golden.readUInt32LE(body + 16), 4, 'pb_opc');
  t.equal(golden.readUInt16LE(body + 32), 3, 'pb_tag');
  t.equal(golden.readUInt32LE(body + 56), 2, 'pb_flags MSG_RESENT');
  t.equal(golden.readUInt32LE(body + 64), 2, 'pb_conn_cnt');
  t.equal(golden.readBigUInt64LE(body + 120), 0x17f0000000000042n, 'pb_mbits');
  t.equal(golden.subarray(body + 152, body + 159).toString(), 'dd.1000', 'pb_jobid');
  t.equal(golden.subarray(body + 184, body + 192).toString(), 'ost_body', 'buffer 1 right after the body');
  t.equal(golden.length % 8, 0, 'the last buffer is padded');
  const msg = decodeMessage(golden);
  t.same(msg.body, goldenRequestBody);
  t.same(msg.buffers.map((b) => b.toString('hex')), ['6f73745f626f6479', '010203']);
  t.equal(msg.repsize, 1024);
});

t.test('golden: an OST_WRITE reply is byte-exact', async (t) => {
  const bytes = encodeMessage(goldenReplyBody, [Buffer.from('rc')]);
  const golden = fixture('ost-write-reply.hex');
  t.equal(bytes.toString('hex'), golden.toString('hex'));
  const body = 40; // round8(32 + 2 * 4)
  t.equal(golden.readInt32LE(body + 20), -28, 'pb_status -ENOSPC');
  t.equal(golden.readBigUInt64LE(body + 40), 41n, 'pb_last_committed');
  t.equal(golden.readBigUInt64LE(body + 48), 42n, 'pb_transno');
  t.same(decodeMessage(golden).body, goldenReplyBody);
});

t.test('compat: a message with a 152-byte ptlrpc_body_v2 (no jobid) still opens', async (t) => {
  const msg = decodeMessage(fixture('obd-ping-request-v2body.hex'));
  t.equal(msg.body.opcode, Opcode.OBD_PING);
  t.equal(msg.body.handle, 0xabcdef0123456789n);
  t.equal(msg.body.lastXid, 99n);
  t.equal(msg.body.connCnt, 5);
  t.equal(msg.body.timeout, 3);
  t.equal(msg.body.jobid, '');
  t.same(msg.buffers, []);
});

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const bodyArb: fc.Arbitrary<PtlrpcBody> = fc.record({
  handle: u64, type: fc.constantFrom(MsgType.REQUEST, MsgType.REPLY, MsgType.ERR),
  version: fc.constantFrom(...Object.values(TargetVersion)).map((v) => v | PTLRPC_MSG_VERSION),
  opcode: u32, status: fc.integer({ min: -0x80000000, max: 0x7fffffff }), lastXid: u64,
  tag: fc.integer({ min: 0, max: 0xffff }), projid: u32, lastCommitted: u64, transno: u64, flags: u32,
  opFlags: u32, connCnt: u32, timeout: u32, serviceTime: u32, limit: u32, slv: u64,
  preVersions: fc.tuple(u64, u64, u64, u64), mbits: u64, uid: u32, gid: u32,
  jobid: fc.stringMatching(/^[\x21-\x7e]{0,31}$/),
});

t.test('property: every body and buffer list survives encode then decode', async (t) => {
  fc.assert(fc.property(bodyArb, fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (body, arrays) => {
    const buffers = arrays.map((a) => Buffer.from(a));
    const bytes = encodeMessage(body, buffers);
    const msg = decodeMessage(bytes);
    return JSON.stringify(msg.body, big) === JSON.stringify(body, big) &&
      msg.buffers.length === buffers.length && msg.buffers.every((b, i) => b.equals(buffers[i]!));
  }), { seed, numRuns: 500 });
  t.pass('round trips');
});

t.test('property: any bytes decode or fail with EPROTO, nothing else', async (t) => {
  const valid = encodeMessage(goldenRequestBody, [Buffer.from('abc')]);
  const mutated = fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: valid.length }))
    .map(([at, byte, cut]) => {
      const b = Buffer.from(valid);
      b[at] = byte;
      return b.subarray(0, cut);
    });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)), mutated), (bytes) => {
    try {
      decodeMessage(bytes);
      return true;
    } catch (err) {
      return err instanceof PtlrpcError && err.code === 'EPROTO';
    }
  }), { seed, numRuns: 5000 });
  t.pass('no other failure');
});

t.test('decode refuses what Lustre refuses, naming it', async (t) => {
  const valid = encodeMessage(goldenRequestBody, []);
  const cases: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
    ['short header', (b) => b.subarray(0, 20), /shorter than a lustre_msg_v2 header/],
    ['swabbed magic', (b) => (b.writeUInt32LE(0xd30bd00b, 8), b), /big-endian/],
    ['bad magic', (b) => (b.writeUInt32LE(0x12345678, 8), b), /bad lustre_msg magic/],
    ['zero buffers', (b) => (b.writeUInt32LE(0, 0), b), /bad buffer count 0/],
    ['truncated body', (b) => b.subarray(0, b.length - 8), /shorter than its buffers/],
    ['body too short', (b) => (b.writeUInt32LE(100, 32), b), /ptlrpc_body of 100 bytes/],
    ['bad version', (b) => (b.writeUInt32LE(0x00030002, 40 + 12), b), /unsupported ptlrpc version/],
    ['bad type', (b) => (b.writeUInt32LE(1, 40 + 8), b), /bad ptlrpc message type 1/],
  ];
  for (const [name, mutate, message] of cases) {
    t.throws(() => decodeMessage(mutate(Buffer.from(valid))), { code: 'EPROTO', message }, name);
  }
});

t.test('connect buffers: Lustre sizes, round trip, bad uuids refused', async (t) => {
  const buffers = encodeConnectRequest({
    targetUuid: 'lustre-OST0000_UUID', clientUuid: 'c0ffee-client', handle: 77n,
    data: { connectFlags: 0x20n, version: 0x020f0000, index: 0, brwSize: 1 << 20, transno: 0n, instance: 0, maxModRpcs: 8 },
  });
  t.same(buffers.map((b) => b.length), [40, 40, 8, 192]);
  const back = decodeConnectRequest(buffers);
  t.equal(back.clientUuid, 'c0ffee-client');
  t.equal(back.handle, 77n);
  t.equal(back.data.maxModRpcs, 8);
  t.throws(() => decodeConnectRequest([Buffer.alloc(40), ...buffers.slice(1)]), { code: 'EPROTO' });
  t.throws(() => decodeConnectRequest(buffers.slice(0, 2)), { code: 'EPROTO' });
});

t.test('adaptive timeout: worst of the history, decays after it, bounded', async (t) => {
  const at = new AdaptiveTimeout(100, { minMs: 10, maxMs: 5000, historyMs: 400, extraMs: 50 });
  t.equal(at.estimateMs, 100);
  at.measured(30, 1000);
  t.equal(at.estimateMs, 30, 'the first measurement replaces the initial guess');
  at.measured(300, 1050);
  at.measured(20, 1100);
  t.equal(at.estimateMs, 300, 'one slow reply raises it at once');
  at.measured(20, 1250);
  t.equal(at.estimateMs, 300, 'still within the history');
  at.measured(20, 1600);
  t.equal(at.estimateMs, 20, 'gone once the history has passed');
  at.measured(99_999, 1700);
  t.equal(at.estimateMs, 5000, 'bounded by maxMs');
  t.equal(est2timeout(400, 50), 550, '125% plus the margin');
});

t.test('stats print in lprocfs format', async (t) => {
  let ns = 1_700_000_000_123_456_789n;
  const stats = new LprocfsStats(() => ns);
  for (const v of [5, 40, 255]) stats.add('req_waittime', v);
  stats.add('obd_ping', 7);
  ns += 2_000_000_000n;
  const text = stats.format();
  t.match(text, /^snapshot_time {23}1700000002\.123456789 secs\.nsecs\n/);
  t.match(text, /\nelapsed_time {24}2\.000000000 secs\.nsecs\n/);
  t.match(text, /\nreq_waittime {24}3 samples \[usecs\] 5 255 300 66650\n/);
  t.match(text, /\nobd_ping {28}1 samples \[usecs\] 7 7 7 49\n/);
});

t.test('replay list: kept in transno order, dropped once committed, bounded', async (t) => {
  const list = new ReplayList(3);
  for (const transno of [5n, 3n, 4n]) list.add({ xid: transno, transno, opcode: 4, tag: 1, buffers: [], reply: Buffer.alloc(0) });
  t.same(list.entries().map((e) => e.transno), [3n, 4n, 5n]);
  list.commit(4n);
  t.same(list.entries().map((e) => e.transno), [5n]);
  for (const transno of [6n, 7n, 8n]) list.add({ xid: transno, transno, opcode: 4, tag: 1, buffers: [], reply: Buffer.alloc(0) });
  t.equal(list.size, 3);
  t.equal(list.dropped, 1);
});

t.test('memory reply store: last_committed never passes an open transaction', async (t) => {
  const store = new MemoryReplyStore();
  const seen: bigint[] = [];
  store.onCommit((c) => seen.push(c));
  const a = store.begin('c1');
  const b = store.begin('c1');
  store.finish(b, 'c1', { tag: 2, xid: 11n, transno: b.transno, status: 0, buffers: [] });
  t.equal(store.lastCommitted(), 0n, 'transno 2 waits for transno 1');
  store.finish(a, 'c1', { tag: 1, xid: 10n, transno: a.transno, status: 0, buffers: [] });
  t.equal(store.lastCommitted(), 2n);
  t.same(seen, [2n]);
  t.equal(store.lookup('c1', 2)?.xid, 11n);
  store.forget('c1');
  t.equal(store.lookup('c1', 2), undefined);
});

t.test('OSD reply store: records and transnos survive a reopen', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ptlrpc-osd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir);
  let osd = await Osd.open(dir, { txgTimeoutMs: 20 });
  let store = await OsdReplyStore.open(osd, fid(0x200000001, 1));
  const tx = await store.begin('client-a');
  await store.finish(tx, 'client-a', { tag: 1, xid: 500n, transno: tx.transno, status: 0, buffers: [Buffer.from('reply')] });
  const committed = new Promise<bigint>((resolve) => store.onCommit(resolve));
  await osd.sync();
  t.equal(await committed, tx.transno, 'committed once its txg is synced');
  await osd.close();
  osd = await Osd.open(dir, { txgTimeoutMs: 20 });
  store = await OsdReplyStore.open(osd, fid(0x200000001, 1));
  const rec = store.lookup('client-a', 1);
  t.equal(rec?.xid, 500n);
  t.equal(rec?.buffers[0]?.toString(), 'reply');
  const next = await store.begin('client-b');
  t.ok(next.transno > tx.transno, 'transnos keep growing after a restart');
  await store.finish(next, 'client-b', { tag: 1, xid: 1n, transno: next.transno, status: 0, buffers: [] });
  await osd.close();
  const record = { tag: 7, xid: 9n, transno: 8n, status: -2, buffers: [Buffer.from('a'), Buffer.alloc(0)] };
  t.same(decodeRecord(encodeRecord(record)), record);
  t.equal(decodeRecord(Buffer.from('junk')), undefined);
});

function big(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
