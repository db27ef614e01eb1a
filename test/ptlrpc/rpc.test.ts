// Services, imports and exports over real LNet interfaces: 0@lo and TCP on loopback.
import { createHash } from 'node:crypto';
import t from 'tap';
import {
  Errno, Import, MemoryReplyStore, Opcode, Service, statusError, type ImportConfig, type ImportState, type OpHandler,
  type ServiceConfig,
} from '../../src/ptlrpc/index.js';
import { ost, serverId, sleep, startNodes, TARGET_UUID, type Lnd, type Nodes } from './helpers.js';
import { until } from '../lib/net.js';
import type { LNetNI } from '../../src/lnet/index.js';

const fastAt = { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 40 };

function importConfig(server: LNetNI, clientUuid: string, more: Partial<ImportConfig> = {}): ImportConfig {
  return { target: serverId(server), targetUuid: TARGET_UUID, clientUuid, ...ost, at: fastAt, initialEstimateMs: 100, pingIntervalMs: 0, ...more };
}

function serviceConfig(ops: Map<number, OpHandler<never>>, more: Partial<ServiceConfig<never>> = {}): ServiceConfig<never> {
  return { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops, at: fastAt, ...more };
}

for (const lnd of ['lo', 'tcp'] as Lnd[]) {
  t.test(`over ${lnd}: connect, requests, bulk, errors, stats, disconnect`, async (t) => {
    const nodes = await startNodes(lnd);
    t.teardown(() => nodes.stop());
    let applied = 0;
    const written: string[] = [];
    const store = new MemoryReplyStore({ commitIntervalMs: 20 });
    t.teardown(() => store.close());
    const ops = new Map<number, OpHandler<never>>([
      [Opcode.OST_SETATTR, { modifying: true, handle: () => ({ buffers: [Buffer.from(`applied ${++applied}`)] }) }],
      [Opcode.OST_GETATTR, { handle: (req) => {
        if (req.buffers[0]?.toString() === 'missing') throw statusError(-Errno.ENOENT, 'no such object');
        return { buffers: [Buffer.from(req.buffers[0] ?? '')] };
      } }],
      [Opcode.OST_WRITE, { modifying: true, handle: async (req, ctx) => {
        const length = req.buffers[0]!.readUInt32LE(0);
        const data = Buffer.concat(await ctx.bulkGet(length));
        written.push(createHash('sha256').update(data).digest('hex'));
        return { buffers: [Buffer.from(String(data.length))] };
      } }],
      [Opcode.OST_READ, { handle: async (req, ctx) => {
        await ctx.bulkPut([Buffer.alloc(req.buffers[0]!.readUInt32LE(0), 7)]);
        return {};
      } }],
    ]);
    const service = new Service(nodes.server, serviceConfig(ops, { replyStore: store as never }));
    t.teardown(() => service.stop());
    const imp = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-a'));
    t.equal(imp.state, 'full');
    t.not(imp.handle, 0n, 'the connect reply gave an export handle');
    t.equal(service.exports.size, 1);
    t.equal(service.exports.byHandle(imp.handle)?.clientUuid, 'client-a');

    await imp.ping();
    const r1 = await imp.request(Opcode.OST_SETATTR, [Buffer.from('x')], { modifying: true });
    t.equal(r1.buffers[0]?.toString(), 'applied 1');
    t.ok(r1.transno > 0n, 'a modifying request gets a transno');
    t.equal(imp.replayList.size, r1.transno > r1.lastCommitted ? 1 : 0, 'kept until committed');
    await sleep(60);
    await imp.ping();
    t.ok(imp.lastCommitted >= r1.transno, 'a later reply carries last_committed');
    t.equal(imp.replayList.size, 0, 'dropped once committed');

    const echo = await imp.request(Opcode.OST_GETATTR, [Buffer.from('hello')]);
    t.equal(echo.buffers[0]?.toString(), 'hello');
    t.equal(echo.transno, 0n, 'no transno for a read');
    await t.rejects(imp.request(Opcode.OST_GETATTR, [Buffer.from('missing')]), { code: 'ENOENT', status: -Errno.ENOENT });
    await t.rejects(imp.request(Opcode.MDS_REINT, []), { code: 'EOPNOTSUPP' });

    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(data.length);
    const w = await imp.request(Opcode.OST_WRITE, [length], { modifying: true, bulkWrite: [data] });
    t.equal(w.buffers[0]?.toString(), String(1 << 20));
    t.equal(written[0], createHash('sha256').update(data).digest('hex'), 'the server pulled the exact bytes');
    const rd = await imp.request(Opcode.OST_READ, [length], { bulkRead: data.length });
    t.equal(Buffer.concat(rd.bulk ?? []).length, data.length, 'bulk read landed in the client sink');

    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => imp.request(Opcode.OST_SETATTR, [Buffer.from([i])], { modifying: true })));
    const transnos = many.map((r) => r.transno);
    t.equal(new Set(transnos).size, 50, 'transnos are unique');
    t.equal(applied, 51);

    // A handler's time is counted once its reply is out: the last one may still be counting.
    await until('the last setattr is counted', () => /^ost_setattr +51 samples/m.test(service.formatStats()));
    const stats = service.formatStats();
    t.match(stats, /^snapshot_time +\d+\.\d{9} secs\.nsecs$/m);
    t.match(stats, /^ost_setattr +51 samples \[usecs\] \d+ \d+ \d+ \d+$/m);
    t.match(stats, /^obd_ping +2 samples \[usecs\]/m);
    t.match(stats, /^req_waittime +\d+ samples \[usecs\]/m);

    const states: ImportState[] = [];
    imp.state$.subscribe((s) => states.push(s));
    await imp.disconnect();
    t.equal(imp.state, 'closed');
    t.equal(service.exports.size, 0, 'disconnect destroyed the export');
    await t.rejects(imp.request(Opcode.OBD_PING), { code: 'ESHUTDOWN' });
  });
}

t.test('a lost reply: timeout, reconnect, resend with MSG_RESENT, reconstructed reply', async (t) => {
  const nodes = await startNodes('tcp');
  t.teardown(() => nodes.stop());
  let executed = 0;
  let dropNext = false;
  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_SETATTR, { modifying: true, handle: () => ({ buffers: [Buffer.from(`n=${++executed}`)] }) }],
  ]);
  const service = new Service(nodes.server, serviceConfig(ops, {
    failLoc: { dropReply: (req) => req.opcode === Opcode.OST_SETATTR && dropNext && !(dropNext = false) },
  }));
  t.teardown(() => service.stop());
  const imp = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-r'));
  t.teardown(() => imp.disconnect());
  await imp.request(Opcode.OST_SETATTR, [], { modifying: true });
  const states: ImportState[] = [];
  imp.state$.subscribe((s) => states.push(s));
  dropNext = true;
  const reply = await imp.request(Opcode.OST_SETATTR, [], { modifying: true });
  t.equal(reply.buffers[0]?.toString(), 'n=2', 'the first execution answered');
  t.equal(executed, 2, 'executed once although sent twice');
  t.equal(service.counters.reconstructed, 1, 'the resend got the reconstructed reply');
  t.equal(imp.counters.resent, 1);
  t.same(states, ['full', 'disconnected', 'connecting', 'recover', 'full']);
  t.equal(reply.body.flags & 0x2, 0x2, 'the server saw MSG_RESENT');
});

t.test('a silent client is evicted; it learns so, its request fails with EIO, then it reconnects', async (t) => {
  const nodes = await startNodes('lo');
  t.teardown(() => nodes.stop());
  const ops = new Map<number, OpHandler<never>>([[Opcode.OST_GETATTR, { handle: () => ({}) }]]);
  const service = new Service(nodes.server, serviceConfig(ops, { evictionTimeoutMs: 150 }));
  t.teardown(() => service.stop());
  const pinged = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-pings', { pingIntervalMs: 40 }));
  t.teardown(() => pinged.disconnect());
  const silent = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-silent'));
  t.teardown(() => silent.disconnect());
  const evicted: string[] = [];
  service.evictions$.subscribe((e) => evicted.push(e.clientUuid));
  await sleep(400);
  t.same(evicted, ['client-silent'], 'the ping evictor evicted the silent client only');
  t.ok(service.exports.byUuid('client-pings'), 'pings kept the other export alive');
  t.ok(pinged.counters.sent > 3, 'the pinger pinged');
  const states: ImportState[] = [];
  silent.state$.subscribe((s) => states.push(s));
  await t.rejects(silent.request(Opcode.OST_GETATTR), { code: 'EIO', message: /evicted by lustre-OST0000_UUID/ });
  t.ok(states.includes('evicted'), 'the import went through EVICTED');
  t.equal(silent.state, 'full');
  await silent.request(Opcode.OST_GETATTR);
  t.pass('a new export serves it again');
});

t.test('evicted by a restarted server: the eviction is known before its last_committed counts', async (t) => {
  // A transno the server answered and then lost in its crash may be reused by the new instance:
  // its last_committed must not vouch for ours. Whoever waits for our commit sees the eviction first.
  const nodes = await startNodes('lo');
  t.teardown(() => nodes.stop());
  const ops = new Map<number, OpHandler<never>>([[Opcode.OST_SETATTR, { modifying: true, handle: () => ({}) }]]);
  const before = new MemoryReplyStore({ commitIntervalMs: 60_000 }); // never commits in this test
  t.teardown(() => before.close());
  const first = new Service(nodes.server, serviceConfig(ops, { replyStore: before as never }));
  const imp = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-lost'));
  t.teardown(() => imp.disconnect());
  const { transno } = await imp.request(Opcode.OST_SETATTR, [], { modifying: true });
  t.equal(imp.lastCommitted, 0n, 'answered, not committed');
  first.stop();
  // The restarted server went on with other work past our transno, and does not know us.
  const after = new MemoryReplyStore();
  for (let i = 0; i < 5; i++) after.finish(after.begin('client-other'), 'client-other', { tag: 1, xid: BigInt(i), transno: BigInt(i + 1), status: 0, buffers: [] });
  t.ok(after.lastCommitted() > transno, 'its last_committed is past the transno we were given');
  const second = new Service(nodes.server, serviceConfig(ops, { replyStore: after as never }));
  t.teardown(() => second.stop());
  const seenAtEviction: bigint[] = [];
  imp.state$.subscribe((s) => { if (s === 'evicted') seenAtEviction.push(imp.lastCommitted); });
  // The next request finds the restarted server (failing with EIO if it was sent before the eviction).
  await imp.request(Opcode.OST_SETATTR, [], { modifying: true, deadlineMs: 5000 }).catch((err: Error) => t.match(err, { code: 'EIO' }));
  await until('the eviction', () => seenAtEviction.length > 0, 5000);
  t.same(seenAtEviction, [0n], 'at the eviction, last_committed still says nothing of our transno');
  t.equal(imp.counters.evictions, 1);
  await until('the new last_committed', () => imp.lastCommitted === after.lastCommitted(), 5000);
  t.pass('then the new instance\'s last_committed is taken');
});

t.test('no request waits forever', async (t) => {
  const nodes = await startNodes('tcp');
  t.teardown(() => nodes.stop());
  await t.rejects(Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-x', { connectDeadlineMs: 300 })),
    { code: 'ETIMEDOUT', message: /could not connect/ }, 'no service on the portal');
  let release: () => void = () => {};
  const blocked = new Promise<void>((r) => (release = r));
  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_SYNC, { handle: async () => (await blocked, {}) }],
    [Opcode.OST_GETATTR, { handle: () => ({}) }],
  ]);
  const service = new Service(nodes.server, serviceConfig(ops, { threads: 1 }));
  t.teardown(() => service.stop());
  const imp = await Import.connect(nodes.clients[0]!, importConfig(nodes.server, 'client-y', { maxRpcsInFlight: 4, queueMax: 2 }));
  t.teardown(() => imp.disconnect());
  const stuck = imp.request(Opcode.OST_SYNC, [], { deadlineMs: 400 });
  await sleep(30);
  await imp.ping();
  t.pass('a ping is served by the high-priority path while the only thread is busy');
  await t.rejects(stuck, { code: 'ETIMEDOUT', message: /ost_sync/ }, 'the deadline fails it with a clear error');
  const queued = [imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 }), imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 }),
    imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 }), imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 }),
    imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 }), imp.request(Opcode.OST_SYNC, [], { deadlineMs: 2000 })];
  await t.rejects(imp.request(Opcode.OST_GETATTR), { code: 'ENOBUFS' }, 'the client queue is bounded');
  release();
  const settled = await Promise.allSettled(queued);
  // The import was reconnecting behind the busy thread: two waited, the others found the queue full.
  t.ok(settled.filter((s) => s.status === 'fulfilled').length >= 2, 'the queued ones complete once the handler returns');
  t.ok(settled.every((s) => s.status === 'fulfilled' || (s.reason as { code?: string }).code === 'ENOBUFS'), 'the others failed with ENOBUFS at once');
});
