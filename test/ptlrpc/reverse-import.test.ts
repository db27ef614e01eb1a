// Reverse imports: a server's requests to a client (Lustre's lock callbacks), over TCP on
// loopback, to a client whose LNet pid carries LNET_PID_USERFLAG as client kernels' do. Such a
// client has no acceptor: the server reaches it over the connection the client opened.
import t, { type Test } from 'tap';
import { LNetNI, userspacePid, type PutEvent } from '../../src/lnet/index.js';
import {
  Errno, Import, MsgType, Opcode, Portal, PTLRPC_MSG_VERSION, ReverseImport, Service, TargetVersion,
  decodeMessage, encodeMessage, makeBody, type Export,
} from '../../src/ptlrpc/index.js';
import { freePort, until } from '../lib/net.js';
import { loopbackHosts, ost, serverId, TARGET_UUID } from './helpers.js';

const fastAt = { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 40 };
const quiet = () => {};
const ALL = 0xffffffffffffffffn;

interface Setup {
  server: LNetNI;
  client: LNetNI;
  exp: Export;
  imp: Import;
  /** Callback requests the client received, in order. */
  received: PutEvent[];
  /** The client answers a received request with a status and buffers. */
  answer(e: PutEvent, status?: number, buffers?: Buffer[]): Promise<void>;
}

/** A server with an OST-like service, a client kernel-like NI connected to it, and a sink on the client's callback portal. */
async function setup(t: Test, clientUuid: string, hostIndex: number, sameNid = false): Promise<Setup> {
  const port = await freePort();
  const hosts = loopbackHosts(6);
  const server = await LNetNI.start({ nid: `${hosts[hostIndex]}@tcp`, port, warn: quiet });
  t.teardown(() => server.stop());
  const clientHost = sameNid ? hosts[hostIndex] : hosts[hostIndex + 1];
  const client = await LNetNI.start({ nid: `${clientHost}@tcp`, port, pid: userspacePid(40_000 + hostIndex), warn: quiet });
  t.teardown(() => client.stop());
  const service = new Service(server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops: new Map(), at: fastAt });
  t.teardown(() => service.stop());
  const imp = await Import.connect(client, {
    target: serverId(server), targetUuid: TARGET_UUID, clientUuid, ...ost, at: fastAt, initialEstimateMs: 100, pingIntervalMs: 0,
  });
  t.teardown(() => imp.disconnect());
  const exp = service.exports.byUuid(clientUuid)!;
  client.attach(Portal.LDLM_CB_REQUEST, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 64 * 1024 });
  const received: PutEvent[] = [];
  client.events$.subscribe((e) => { if (e.portal === Portal.LDLM_CB_REQUEST) received.push(e); });
  const answer = async (e: PutEvent, status = 0, buffers: Buffer[] = []): Promise<void> => {
    const request = decodeMessage(e.payload).body;
    const body = makeBody({ type: status < 0 ? MsgType.ERR : MsgType.REPLY, opcode: request.opcode, status, version: request.version });
    await client.put(e.initiator, Portal.LDLM_CB_REPLY, e.matchBits, encodeMessage(body, buffers));
  };
  return { server, client, exp, imp, received, answer };
}

t.test('a server sends a request to a client kernel and gets its reply', async (t) => {
  const s = await setup(t, 'client-rev-a', 0);
  t.equal(s.client.isUserspace, true, 'the client NI is a user process\'s (LNET_PID_USERFLAG), as client kernels are');
  t.same(s.exp.peer, { nid: s.client.nid, pid: s.client.pid }, 'the export knows the client by NID and flagged pid');
  s.exp.remoteHandle = 0x1234n;
  const reverse = new ReverseImport(s.server, s.exp);
  const replied = reverse.request(Opcode.LDLM_BL_CALLBACK, [Buffer.from('lock desc')]);
  await until('the callback at the client', () => s.received.length === 1);
  const e = s.received[0]!;
  const msg = decodeMessage(e.payload);
  t.equal(msg.body.opcode, Opcode.LDLM_BL_CALLBACK);
  t.equal(msg.body.type, MsgType.REQUEST);
  t.equal(msg.body.version, TargetVersion.DLM | PTLRPC_MSG_VERSION, 'pb_version is LUSTRE_DLM_VERSION');
  t.equal(msg.body.handle, 0x1234n, 'pb_handle is the client\'s own connect handle');
  t.equal(msg.buffers[0]?.toString(), 'lock desc');
  t.same(e.initiator, { nid: s.server.nid, pid: s.server.pid });
  await s.answer(e, 0, [Buffer.from('an lvb')]);
  const reply = await replied;
  t.equal(reply.status, 0);
  t.equal(reply.xid, e.matchBits, 'the reply matched by xid');
  t.equal(reply.buffers[0]?.toString(), 'an lvb');

  // A second request has a fresh xid; an error status comes back as a typed error.
  const failing = reverse.request(Opcode.LDLM_CP_CALLBACK, []);
  await until('the second callback', () => s.received.length === 2);
  t.not(s.received[1]!.matchBits, e.matchBits, 'a fresh xid');
  await s.answer(s.received[1]!, -Errno.EINVAL);
  await t.rejects(failing, { code: 'EINVAL', status: -Errno.EINVAL });
  t.equal(reverse.inFlight, 0);
  t.same(reverse.counters, { sent: 2, replies: 2, timeouts: 0, sendFailures: 0, malformedReplies: 0 });
});

t.test('a client that does not answer: ETIMEDOUT naming the client and the opcode; in-flight bound', async (t) => {
  const s = await setup(t, 'client-rev-b', 2);
  const reverse = new ReverseImport(s.server, s.exp, { timeoutMs: 300, rpcsInFlightMax: 2 });
  const err = await reverse.request(Opcode.LDLM_BL_CALLBACK, []).catch((e: Error) => e);
  t.match(err, { code: 'ETIMEDOUT', name: 'PtlrpcError' });
  t.match((err as Error).message, /ldlm_bl_callback/);
  t.match((err as Error).message, /client-rev-b/);
  t.ok((err as Error).message.includes(s.client.nid), 'the message names the client\'s NID');
  t.equal(s.received.length, 1, 'the request reached the client: not resent');

  // At most rpcsInFlightMax on the wire; the others wait for a slot.
  const slow = new ReverseImport(s.server, s.exp, { timeoutMs: 30_000, rpcsInFlightMax: 2 });
  const all = [1, 2, 3, 4, 5].map((i) => slow.request(Opcode.LDLM_GL_CALLBACK, [Buffer.from([i])]));
  await until('two callbacks at the client', () => s.received.length === 3);
  t.equal(slow.inFlight, 2);
  t.equal(slow.queued, 3);
  for (let answered = 0; answered < 5; answered++) {
    await until(`callback ${answered + 1} at the client`, () => s.received.length >= 2 + answered);
    t.ok(s.received.length <= 2 + answered + 1, 'never more than two unanswered at the client');
    await s.answer(s.received[1 + answered]!, 0, [Buffer.from(decodeMessage(s.received[1 + answered]!.payload).buffers[0]!)]);
  }
  const replies = await Promise.all(all);
  t.same(replies.map((r) => r.buffers[0]![0]), [1, 2, 3, 4, 5], 'sent in order, each reply matched to its request');

  // close() fails what is in flight and what comes later.
  const pending = slow.request(Opcode.LDLM_BL_CALLBACK, []);
  slow.close('the client was evicted');
  await t.rejects(pending, { code: 'ESHUTDOWN' });
  await t.rejects(slow.request(Opcode.LDLM_BL_CALLBACK, []), { code: 'ESHUTDOWN' });
});

t.test('a client that closed: the request fails at once, not at its timeout', async (t) => {
  const s = await setup(t, 'client-rev-c', 4);
  const reverse = new ReverseImport(s.server, s.exp, { timeoutMs: 600_000 });
  await s.imp.disconnect();
  await s.client.stop();
  await until('the server to see the connection gone', () => s.server.stats().ni.connections === 0);
  const err = await reverse.request(Opcode.LDLM_BL_CALLBACK, []).catch((e: Error) => e);
  t.match(err, { name: 'PtlrpcError', code: 'EHOSTUNREACH' }, 'a client kernel is never connected to: unreachable until it connects again');
  t.match((err as Error).message, /client-rev-c/);
  t.equal(reverse.counters.sendFailures, 1);
});

t.test('a client kernel on the server kernel\'s own NID (one node): reached over its TCP connection', async (t) => {
  const s = await setup(t, 'client-rev-d', 5, true);
  t.equal(s.client.nid, s.server.nid, 'one NID, two LNet instances told apart by pid');
  const reverse = new ReverseImport(s.server, s.exp);
  const replied = reverse.request(Opcode.LDLM_GL_CALLBACK, [Buffer.from('glimpse')]);
  await until('the callback at the client', () => s.received.length === 1);
  t.same(s.received[0]!.initiator, { nid: s.server.nid, pid: s.server.pid });
  await s.answer(s.received[0]!, 0, [Buffer.from('lvb')]);
  t.equal((await replied).buffers[0]?.toString(), 'lvb');
});
