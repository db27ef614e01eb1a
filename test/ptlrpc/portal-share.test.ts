// Several targets of one node on one request portal (an OSS with two OSTs): each request reaches
// the service of its own target, a connect to a target the node does not hold is refused
// ENODEV, and a target that stops leaves the others serving.
import t from 'tap';
import { Errno, Import, Opcode, Service, type OpHandler } from '../../src/ptlrpc/index.js';
import { ost, serverId, startNodes } from './helpers.js';

const fastAt = { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 40 };

for (const lnd of ['lo', 'tcp'] as const) {
  t.test(`over ${lnd}: two targets share the ost portal of one NI`, async (t) => {
    const nodes = await startNodes(lnd);
    t.teardown(() => nodes.stop());
    const serviceOf = (uuid: string): Service => new Service(nodes.server, {
      name: 'ost', targetUuid: uuid, ...ost, at: fastAt,
      ops: new Map<number, OpHandler<never>>([[Opcode.OST_GETATTR, { handle: () => ({ buffers: [Buffer.from(uuid)] }) }]]),
    });
    const a = serviceOf('fs-OST0000_UUID');
    const b = serviceOf('fs-OST0001_UUID');
    t.teardown(async () => { await a.stop(); await b.stop(); });
    t.throws(() => serviceOf('fs-OST0001_UUID'), /already listens/, 'one service per target and portal');
    const connect = (targetUuid: string, clientUuid: string): Promise<Import> => Import.connect(nodes.clients[0]!, {
      target: serverId(nodes.server), targetUuid, clientUuid, ...ost, at: fastAt, initialEstimateMs: 100, pingIntervalMs: 0,
      connectDeadlineMs: 2000,
    });
    const toA = await connect('fs-OST0000_UUID', 'client-1');
    const toB = await connect('fs-OST0001_UUID', 'client-1');
    t.teardown(async () => { await toA.disconnect().catch(() => {}); await toB.disconnect().catch(() => {}); });
    for (let i = 0; i < 20; i++) {
      const [ra, rb] = await Promise.all([toA.request(Opcode.OST_GETATTR, []), toB.request(Opcode.OST_GETATTR, [])]);
      if (ra.buffers[0]?.toString() !== 'fs-OST0000_UUID' || rb.buffers[0]?.toString() !== 'fs-OST0001_UUID') {
        t.fail(`request ${i} reached the wrong target`);
        return;
      }
    }
    t.pass('each request reached its own target');
    t.equal(a.exports.size, 1, "the first target holds only its client's export");
    t.equal(b.exports.size, 1, "the second target holds only its client's export");
    await t.rejects(connect('fs-OST0009_UUID', 'client-1'), { code: 'ENODEV', status: -Errno.ENODEV }, 'a target the node does not hold: ENODEV');
    await a.stop();
    t.equal((await toB.request(Opcode.OST_GETATTR, [])).buffers[0]?.toString(), 'fs-OST0001_UUID', 'the other target serves after one stopped');
  });
}
