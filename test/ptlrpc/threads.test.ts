// threads_max changed while a service runs: never more handlers at once than the limit of the
// moment, waiting requests admitted at once when it rises; and per-NID export stats.
import t from 'tap';
import { Import, Opcode, Service, SERVICE_THREADS_MAX, type OpHandler } from '../../src/ptlrpc/index.js';
import { until } from '../lib/net.js';
import { ost, serverId, startNodes, TARGET_UUID } from './helpers.js';

const fastAt = { minMs: 20, maxMs: 5000, historyMs: 1000, extraMs: 40 };

t.test('threads_max bounds the handlers running, and may change while they run', async (t) => {
  const nodes = await startNodes('tcp', 2);
  t.teardown(() => nodes.stop());
  let running = 0;
  let maxRunning = 0;
  const blocked: Array<() => void> = [];
  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_GETATTR, { handle: async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((resolve) => blocked.push(resolve));
      running--;
      return {};
    } }],
  ]);
  const service = new Service(nodes.server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops, at: fastAt, threads: 2 });
  t.teardown(() => service.stop());
  const imports = await Promise.all(nodes.clients.map((ni, i) => Import.connect(ni, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: `client-${i}`, ...ost, at: fastAt,
    initialEstimateMs: 5000, pingIntervalMs: 0,
  })));
  t.teardown(() => Promise.all(imports.map((i) => i.disconnect().catch(() => {}))));
  t.equal(service.threadsMax, 2);

  const requests = Array.from({ length: 8 }, (_, i) => imports[i % 2]!.request(Opcode.OST_GETATTR, []));
  await until('two handlers run', () => running === 2);
  await until('all eight requests arrived', () => service.counters.received >= 2 + 8);
  t.equal(blocked.length, 2, 'no third handler started under threads_max=2');

  service.setThreadsMax(5);
  await until('raised: five run at once', () => running === 5);
  t.equal(maxRunning, 5);

  service.setThreadsMax(1);
  maxRunning = 0;
  // Release the five running; the three waiting then run one at a time.
  for (const release of blocked.splice(0)) release();
  for (let done = 0; done < 3; done++) {
    await until('the next waiting request runs', () => blocked.length === 1);
    blocked.shift()!();
  }
  await Promise.all(requests);
  t.equal(maxRunning, 1, 'after lowering to 1, one handler at a time');

  t.throws(() => service.setThreadsMax(0), RangeError);
  t.throws(() => service.setThreadsMax(SERVICE_THREADS_MAX + 1), RangeError);
  t.throws(() => service.setThreadsMax(2.5), RangeError);
  t.equal(service.threadsMax, 1, 'a refused value changes nothing');

  // Per-NID export stats: each client's NID has its own, with its requests in them.
  const byNid = service.exports.byNid();
  t.same([...byNid.keys()].sort(), nodes.clients.map((c) => c.nid).sort());
  for (const [i, client] of nodes.clients.entries()) {
    const entry = byNid.get(client.nid)!;
    t.same(entry.uuids, [`client-${i}`]);
    t.equal(entry.stats.get('ost_getattr')?.count, 4, `${client.nid}: its four getattrs`);
    t.equal(entry.stats.get('ost_connect')?.count, 1, `${client.nid}: its connect`);
  }
  await imports[0]!.disconnect();
  await until('the export is gone', () => service.exports.size === 1);
  t.notOk(service.exports.byNid().has(nodes.clients[0]!.nid), 'a NID without exports has no stats directory');
});
