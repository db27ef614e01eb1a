// Executed once: several clients send non-idempotent requests (increments of a counter kept
// in the OSD) while the server drops replies and requests at random and TCP connections are
// killed under them (ss -K). Afterwards the counter equals exactly the number of requests
// acknowledged: none applied twice, none lost, and the same after the OSD is reopened.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { fid, Osd } from '../../src/osd/index.js';
import { Import, Opcode, OsdReplyStore, Service, type OpHandler, type OsdReplyTransaction } from '../../src/ptlrpc/index.js';
import { ost, serverId, sleep, startNodes, TARGET_UUID } from './helpers.js';

const run = promisify(execFile);
const seed = Number(process.env.PTLRPC_SEED ?? Date.now() % 1_000_000);
const total = Number(process.env.PTLRPC_ONCE_REQUESTS ?? 10_000);
const clientCount = 4;

/** mulberry32: a seeded generator, so that a failing run can be replayed. */
function rng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const u64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

t.test(`${total} increments from ${clientCount} clients with lost replies, lost requests and killed connections`, async (t) => {
  t.comment(`seed ${seed} (PTLRPC_SEED reproduces; PTLRPC_ONCE_REQUESTS sets the count)`);
  const random = rng(seed);
  const dir = await mkdtemp(join(tmpdir(), 'ptlrpc-once-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir);
  const counterFid = fid(0x200000401, 2);
  const storeFid = fid(0x200000401, 1);
  let osd = await Osd.open(dir, { txgTimeoutMs: 10 });
  const create = osd.begin().declareCreate(counterFid);
  await create.start();
  await create.create(counterFid, { type: 'reg' });
  await create.xattrSet(counterFid, 'count', u64(0n));
  create.stop();
  const store = await OsdReplyStore.open(osd, storeFid);

  let value = 0n;
  const ops = new Map<number, OpHandler<OsdReplyTransaction>>([
    [Opcode.MDS_REINT, {
      modifying: true,
      handle: async (_req, ctx) => {
        // Incremented and written in one tick: the OSD applies updates of an object in call order.
        const next = u64(++value);
        await ctx.tx!.osdTx.xattrSet(counterFid, 'count', next);
        return { buffers: [next] };
      },
    }],
  ]);
  const nodes = await startNodes('tcp', clientCount);
  t.teardown(() => nodes.stop());
  const service = new Service<OsdReplyTransaction>(nodes.server, {
    name: 'mdt', targetUuid: TARGET_UUID, ...ost, ops, replyStore: store, threads: 8,
    at: { minMs: 20, maxMs: 3000, historyMs: 2000, extraMs: 50 },
    failLoc: { dropReply: () => random() < 0.01, dropRequest: () => random() < 0.005 },
  });
  t.teardown(() => service.stop());

  const imports = await Promise.all(nodes.clients.map((ni, i) => Import.connect(ni, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: `once-client-${i}`, ...ost,
    at: { minMs: 20, maxMs: 3000, historyMs: 2000, extraMs: 50 }, initialEstimateMs: 100, pingIntervalMs: 0,
    requestDeadlineMs: 600_000,
  })));
  t.teardown(() => Promise.all(imports.map((imp) => imp.disconnect())));

  // Kill the TCP connections to the server now and then; LNet reconnects on the next message.
  const serverIp = nodes.server.nid.split('@')[0]!;
  let killing = true;
  let kills = 0;
  const killer = (async () => {
    while (killing) {
      await sleep(250 + random() * 500);
      if (!killing) break;
      await run('ss', ['-K', 'dst', serverIp]).then(() => kills++, () => undefined);
    }
  })();

  let acknowledged = 0;
  let failed = 0;
  const perClient = Math.ceil(total / clientCount);
  await Promise.all(imports.map(async (imp, i) => {
    const count = Math.min(perClient, total - i * perClient);
    const window = 16;
    let next = 0;
    await Promise.all(Array.from({ length: window }, async () => {
      while (next < count) {
        next++;
        try {
          await imp.request(Opcode.MDS_REINT, [], { modifying: true });
          acknowledged++;
        } catch {
          failed++;
        }
      }
    }));
  }));
  killing = false;
  await killer;

  t.equal(failed, 0, 'every request was answered');
  t.equal(acknowledged, total, 'every request was acknowledged');
  t.equal(Number(value), acknowledged, 'the counter equals the requests acknowledged: none applied twice, none lost');
  t.equal(service.counters.executed, total, 'each request executed exactly once');
  t.ok(service.counters.reconstructed + service.counters.resentWhileRunning > 0, 'some resends were answered from reply records');
  const resent = imports.reduce((n, imp) => n + imp.counters.resent, 0);
  t.ok(resent > 0, `requests were resent (${resent}), connections killed ${kills} times`);
  t.comment(`resent ${resent}, reconstructed ${service.counters.reconstructed}, resent while running ${service.counters.resentWhileRunning}, ` +
    `stale ${service.counters.stale}, connections killed ${kills}`);

  await Promise.all(imports.map((imp) => imp.disconnect()));
  await service.stop();
  await osd.sync();
  await osd.close();
  osd = await Osd.open(dir, { txgTimeoutMs: 10 });
  t.equal((await osd.xattrGet(counterFid, 'count')).readBigUInt64LE(0), BigInt(total), 'the same after the OSD is reopened');
  await osd.close();
});
