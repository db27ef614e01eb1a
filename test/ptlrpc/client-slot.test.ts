// A client's slot in last_rcvd when it connects again from scratch (a restarted client: an
// MDT's OSP after the MDT restarted): the old connection's records go, the slot stays, durable,
// so that the target's next restart expects the client back (recovery), rather than evicting it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fid, Osd } from '../../src/osd/index.js';
import { Import, OsdReplyStore, Service, type OsdReplyTransaction } from '../../src/ptlrpc/index.js';
import { ost, serverId, sleep, startNodes, TARGET_UUID } from './helpers.js';

const CLIENT = 'slot-client-0';

t.test('a client connecting again from scratch keeps its slot in last_rcvd, on disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ptlrpc-slot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir);
  const storeFid = fid(0x200000401, 1);
  const osd = await Osd.open(dir, { txgTimeoutMs: 10 });
  const store = await OsdReplyStore.open(osd, storeFid);
  const nodes = await startNodes('tcp', 1);
  const service = new Service<OsdReplyTransaction>(nodes.server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops: new Map(), replyStore: store, threads: 2 });
  const connect = () => Import.connect(nodes.clients[0]!, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: CLIENT, ...ost, pingIntervalMs: 0, requestDeadlineMs: 5000,
  });
  const known = (s: OsdReplyStore) => s.clients().some((k) => k.includes(CLIENT));

  const first = await connect();
  t.ok(known(store), 'the first connect wrote the client\'s slot');
  const second = await connect();
  t.not(service.exports.byUuid(CLIENT)?.handle, undefined, 'the second connect has an export');
  await sleep(100); // anything the old connection's end left to do, done
  t.ok(known(store), 'the slot is still there after the client connected again from scratch');
  // The target stops as in a crash: nobody disconnects (a clean disconnect forgets the slot).
  await service.stop();
  await osd.close();
  await nodes.stop();
  await Promise.all([first, second].map((imp) => imp.disconnect().catch(() => undefined)));

  const again = await Osd.open(dir, { txgTimeoutMs: 10 });
  t.teardown(() => again.close());
  t.ok(known(await OsdReplyStore.open(again, storeFid)), 'and on disk: a restart expects the client back');
});
