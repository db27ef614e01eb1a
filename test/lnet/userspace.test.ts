// User processes' LNet (LNET_PID_USERFLAG in the pid): an NI that shares its node's NID with
// the node's kernel, has no acceptor, only connects out, and is answered over the connections
// it opened; kernels key it by NID and pid, so it never disturbs their peer for the node.
import t from 'tap';
import { connect } from 'node:net';
import { once } from 'node:events';
import {
  LNET_PID_LUSTRE, LNET_PID_USERFLAG, formatProcessId, isUserspacePid, userspacePid, type LNetNI,
} from '../../src/lnet/index.js';
import { ALL, collect, freePort, startNi, until, type Warnings } from './helpers.js';

const PORTAL = 7;
const sink = (ni: LNetNI): void => { ni.attach(PORTAL, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 1 << 20 }); };
const text = (payload: Buffer[]): string => Buffer.concat(payload).toString();
const peerOf = (ni: LNetNI, key: string) => ni.stats().peers.find((p) => p.nid === key);

t.test('pids: the user flag, and ids written as Lustre writes them', async (t) => {
  t.equal(LNET_PID_USERFLAG, 0x80000000);
  t.equal(userspacePid(4242), 0x80001092);
  t.equal(isUserspacePid(userspacePid(1)), true);
  t.equal(isUserspacePid(LNET_PID_LUSTRE), false);
  t.equal(formatProcessId({ nid: '127.0.0.2@tcp', pid: userspacePid(4242) }), 'U4242-127.0.0.2@tcp');
  t.equal(formatProcessId({ nid: '127.0.0.2@tcp', pid: LNET_PID_LUSTRE }), '12345-127.0.0.2@tcp');
});

t.test('a user process and its node kernel share a NID: messages both ways, beside the kernel\'s own peers', async (t) => {
  const port = await freePort();
  const kernelWarnings: Warnings = { lines: [] };
  const kernel = await startNi(t, { nid: '127.0.0.2@tcp', port }, kernelWarnings);
  const other = await startNi(t, { nid: '127.0.0.3@tcp', port });
  const user = await startNi(t, { nid: '127.0.0.2@tcp', port, pid: userspacePid(4242) });
  t.equal(user.isUserspace, true);
  for (const ni of [kernel, other, user]) sink(ni);
  const atKernel = collect(kernel);
  const atOther = collect(other);
  const atUser = collect(user);

  // The kernel and the other node know each other first (the kernel's peer 127.0.0.2@tcp at .3).
  await other.put({ nid: kernel.nid, pid: LNET_PID_LUSTRE }, PORTAL, 1n, Buffer.from('node to node'), { ack: true });
  t.equal(text((await atKernel.next()).payload), 'node to node');

  // The user process reaches the kernel of its own NID over TCP, not through the loopback LND.
  await user.put({ nid: '127.0.0.2@tcp', pid: LNET_PID_LUSTRE }, PORTAL, 2n, Buffer.from('request'), { ack: true });
  const req = await atKernel.next();
  t.equal(text(req.payload), 'request');
  t.same(req.initiator, { nid: '127.0.0.2@tcp', pid: userspacePid(4242) }, 'the kernel sees the user process as NID and flagged pid');
  // The kernel answers the initiator: over the user process's connection, small and large.
  await kernel.put(req.initiator, PORTAL, 3n, Buffer.from('reply'), { ack: true });
  const big = Buffer.alloc(300 * 1024, 0x5a);
  await kernel.put(req.initiator, PORTAL, 4n, big, { ack: true });
  t.equal(text((await atUser.next()).payload), 'reply');
  t.same(Buffer.concat((await atUser.next()).payload), big, 'a large message goes back on the connection the user process opened');

  // A GET from the kernel to the user process (a server's bulk GET from a client).
  user.attach(8, { matchBits: 9n }, { kind: 'source', buffers: [Buffer.from('bulk data')] });
  t.equal(text(await kernel.get(req.initiator, 8, 9n, 9)), 'bulk data');

  // The user process also talks to the other node, which then has two peers on 127.0.0.2.
  await user.put({ nid: other.nid, pid: LNET_PID_LUSTRE }, PORTAL, 5n, Buffer.from('to the other node'), { ack: true });
  const there = await atOther.next();
  t.same(there.initiator, { nid: '127.0.0.2@tcp', pid: userspacePid(4242) });
  await other.put(there.initiator, PORTAL, 6n, Buffer.from('back from the other node'), { ack: true });
  t.equal(text((await atUser.next()).payload), 'back from the other node');
  await other.put({ nid: kernel.nid, pid: LNET_PID_LUSTRE }, PORTAL, 7n, Buffer.from('still node to node'), { ack: true });
  t.equal(text((await atKernel.next()).payload), 'still node to node');
  await kernel.put({ nid: other.nid, pid: LNET_PID_LUSTRE }, PORTAL, 8n, Buffer.from('and back'), { ack: true });
  t.equal(text((await atOther.next()).payload), 'and back');

  const nodePeer = peerOf(other, '127.0.0.2@tcp');
  const userPeer = peerOf(other, 'U4242-127.0.0.2@tcp');
  t.ok(nodePeer && nodePeer.connections > 0, 'the other node keeps its peer for the kernel on 127.0.0.2');
  t.ok(userPeer && userPeer.connections > 0, '... and a separate one for the user process');
  t.equal(other.stats().ni.connDrops.peerRestarted ?? 0, 0, 'the user process\'s HELLO never looked like the kernel restarting');
  t.equal(peerOf(kernel, 'U4242-127.0.0.2@tcp')?.connects, 1, 'the kernel never connected to the user process');
  t.same(kernelWarnings.lines, []);
});

t.test('a user process has no acceptor, and a kernel does not connect to one', async (t) => {
  const port = await freePort();
  const kernel = await startNi(t, { nid: '127.0.0.2@tcp', port });
  const user = await startNi(t, { nid: '127.0.0.6@tcp', port, pid: userspacePid(77) });
  sink(user);
  const socket = connect({ host: '127.0.0.6', port });
  const [err] = await once(socket, 'error') as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNREFUSED', 'nothing listens on the user process\'s address');
  await t.rejects(kernel.put({ nid: '127.0.0.6@tcp', pid: userspacePid(77) }, PORTAL, 1n, Buffer.from('x')),
    { code: 'EHOSTUNREACH', message: /U77-127\.0\.0\.6@tcp is a user process/ }, 'no connection from it: unreachable at once');
  t.equal(kernel.stats().ni.connDrops.connectFailed ?? 0, 0, 'no connect was tried');
  // Once it connects, the kernel can answer it.
  const atUser = collect(user);
  sink(kernel);
  await user.put({ nid: kernel.nid, pid: LNET_PID_LUSTRE }, PORTAL, 1n, Buffer.from('hello'), { ack: true });
  await kernel.put({ nid: '127.0.0.6@tcp', pid: userspacePid(77) }, PORTAL, 2n, Buffer.from('now you are reachable'), { ack: true });
  t.equal(text((await atUser.next()).payload), 'now you are reachable');
});

t.test('a user process reconnects after its node\'s kernel restarts', async (t) => {
  const port = await freePort();
  let kernel = await startNi(t, { nid: '127.0.0.2@tcp', port });
  const user = await startNi(t, { nid: '127.0.0.2@tcp', port, pid: userspacePid(4243) }, { lines: [] });
  sink(user);
  const atUser = collect(user);
  const roundTrip = async (k: LNetNI, what: string): Promise<void> => {
    const atKernel = collect(k);
    await user.put({ nid: '127.0.0.2@tcp', pid: LNET_PID_LUSTRE }, PORTAL, 1n, Buffer.from(what), { ack: true });
    const req = await atKernel.next();
    t.equal(text(req.payload), what);
    await k.put(req.initiator, PORTAL, 2n, Buffer.from(`re: ${what}`), { ack: true });
    t.equal(text((await atUser.next()).payload), `re: ${what}`);
  };
  sink(kernel);
  await roundTrip(kernel, 'before');
  const oldIncarnation = kernel.incarnation;
  await kernel.stop();
  await until(() => (user.stats().peers.find((p) => p.nid === '127.0.0.2@tcp')?.connections ?? 0) === 0, 'the user process to see its connection gone');
  await t.rejects(user.put({ nid: '127.0.0.2@tcp', pid: LNET_PID_LUSTRE }, PORTAL, 1n, Buffer.from('nobody home')),
    { code: 'EHOSTUNREACH' }, 'while the kernel is down, sends fail');
  kernel = await startNi(t, { nid: '127.0.0.2@tcp', port });
  t.not(kernel.incarnation, oldIncarnation);
  sink(kernel);
  await roundTrip(kernel, 'after');
});
