// A reply buffer lost without an event: a 'once' MD is unlinked when a message matches it, so a
// reply whose sender dies mid-payload (a server killed while it answers) takes the buffer and
// never arrives. The request must still get its answer when it is resent: every attempt posts
// its reply buffer anew (a kept, dead one made every later reply miss until the deadline).
import t from 'tap';
import * as wire from '../../src/lnet/wire.js';
import { Import, Opcode, Service, type OpHandler } from '../../src/ptlrpc/index.js';
import { frame, nidWire, rawPeer } from '../lnet/helpers.js';
import { loopbackHosts, ost, serverId, startNodes, TARGET_UUID } from './helpers.js';

const fastAt = { minMs: 20, maxMs: 1000, historyMs: 1000, extraMs: 40 };

t.test('a reply cut off mid-payload takes the reply buffer; the resend posts another and gets its answer', async (t) => {
  const nodes = await startNodes('tcp');
  t.teardown(() => nodes.stop());
  const client = nodes.clients[0]!;
  let release: (() => void) | undefined;
  let xid = 0n;
  let calls = 0;
  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_GETATTR, { handle: async (req) => {
      // The first attempt waits until the test has cut a reply off: it is answered, too late.
      if (calls++ === 0) {
        xid = req.xid;
        await new Promise<void>((r) => (release = r));
      }
      return { buffers: [Buffer.from(`answer ${calls}`)] };
    } }],
  ]);
  const service = new Service(nodes.server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops, at: fastAt });
  t.teardown(() => service.stop());
  const imp = await Import.connect(client, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: 'reply-md', ...ost, at: fastAt, initialEstimateMs: 100,
    pingIntervalMs: 0, requestDeadlineMs: 20_000,
  });
  t.teardown(() => imp.disconnect());

  const pending = imp.request(Opcode.OST_GETATTR, [Buffer.from('x')]);
  await new Promise<void>((resolve) => {
    const check = setInterval(() => { if (release) { clearInterval(check); resolve(); } }, 5);
  });
  // A peer (another NID) sends a PUT to the client's reply portal with this xid and dies after
  // a part of its payload: the reply buffer is taken and nothing is delivered.
  const raw = await rawPeer(client, nodes.port, `${loopbackHosts(4)[3]}@tcp`);
  raw.socket.write(frame({
    type: wire.LNET_MSG_PUT, destNid: nidWire(client.nid), srcNid: nidWire(`${loopbackHosts(4)[3]}@tcp`), srcPid: 12345,
    destPid: client.pid, portal: ost.replyPortal, matchBits: xid, payloadLength: 400,
    wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
  }));
  raw.socket.write(Buffer.alloc(100, 1));
  await new Promise((r) => setTimeout(r, 100));
  raw.socket.destroy();
  release!();
  const reply = await pending;
  t.match(reply.buffers[0]?.toString(), /^answer \d+$/, 'the request got its answer');
  t.ok(imp.counters.resent > 0, 'from a resend (the first answer found no reply buffer)');
});
