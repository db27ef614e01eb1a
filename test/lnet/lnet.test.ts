// LNet's behaviour as ptlrpc sees it, over both LNDs: PUTs into sinks, GETs from sources,
// ACKs, match and ignore bits, once-MDs, drops; then what only TCP has: large payloads,
// reconnects, keepalives, clean close, credits.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import {
  LNetError, LNetNI, canonicalNid, formatNid, nidFromWire, nidToWire, parseNid, userspacePid, type LNetConfig,
} from '../../src/lnet/index.js';
import { ALL, collect, freePort, rawNode, sleep, startNi, until, type Warnings } from './helpers.js';

t.test('NIDs: text and wire forms as Lustre has them', async (t) => {
  t.same(parseNid('127.0.0.2@tcp'), { lnd: 'tcp', netNum: 0, addr: 0x7f000002 });
  t.same(parseNid('10.1.2.3@tcp7'), { lnd: 'tcp', netNum: 7, addr: 0x0a010203 });
  t.same(parseNid('0@lo'), { lnd: 'lo', netNum: 0, addr: 0 });
  t.equal(canonicalNid('127.0.0.2@tcp0'), '127.0.0.2@tcp');
  t.equal(formatNid(parseNid('10.1.2.3@tcp7')), '10.1.2.3@tcp7');
  t.equal(nidToWire(parseNid('127.0.0.2@tcp')), 0x000200007f000002n);
  t.equal(nidToWire(parseNid('192.168.1.1@tcp1')), 0x00020001c0a80101n);
  t.equal(nidToWire(parseNid('0@lo')), 0x0009000000000000n);
  t.same(nidFromWire(0x000200007f000003n), { lnd: 'tcp', netNum: 0, addr: 0x7f000003 });
  for (const bad of ['127.0.0.2', '127.0.0.256@tcp', '1.2.3@tcp', '1@lo', 'x@tcp', '1.2.3.4@o2ib', '1.2.3.4@tcp70000', '']) {
    t.throws(() => parseNid(bad), { code: 'EINVAL' }, `refuses '${bad}'`);
  }
  t.throws(() => nidFromWire(0x000500000a000001n), { code: 'EINVAL' }, 'o2ib NIDs are not ours');
});

/** Two NIs that can talk, over one LND or the other. */
interface Pair { a: LNetNI; b: LNetNI; bId: { nid: string; pid: number }; aId: { nid: string; pid: number } }

async function loPair(t: Test, extra: Partial<LNetConfig> = {}): Promise<Pair> {
  const a = await startNi(t, { nid: '0@lo', pid: 100, ...extra });
  const b = await startNi(t, { nid: '0@lo', pid: 101, ...extra });
  return { a, b, aId: { nid: '0@lo', pid: 100 }, bId: { nid: '0@lo', pid: 101 } };
}

let nextHost = 10;
async function tcpPair(t: Test, extra: Partial<LNetConfig> = {}, warnings?: Warnings): Promise<Pair & { port: number }> {
  const port = await freePort();
  const ha = `127.0.0.${nextHost++}`;
  const hb = `127.0.0.${nextHost++}`;
  const a = await startNi(t, { nid: `${ha}@tcp`, port, ...extra }, warnings);
  const b = await startNi(t, { nid: `${hb}@tcp`, port, ...extra }, warnings);
  return { a, b, port, aId: { nid: a.nid, pid: 12345 }, bId: { nid: b.nid, pid: 12345 } };
}

function semantics(lnd: 'lo' | 'tcp', mk: (t: Test, extra?: Partial<LNetConfig>) => Promise<Pair>): void {
  t.test(`${lnd}: PUT into a sink, with its header fields`, async (t) => {
    const { a, b, aId, bId } = await mk(t);
    const events = collect(b);
    const md = b.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 4096 });
    await a.put(bId, 6, 0x1122334455667788n, [Buffer.from('hello '), Buffer.from('world')], { hdrData: 0xabcdefn, offset: 16 });
    const ev = await events.next();
    t.equal(ev.type, 'put');
    t.equal(ev.md.id, md.id);
    t.equal(ev.portal, 6);
    t.equal(ev.matchBits, 0x1122334455667788n);
    t.equal(ev.hdrData, 0xabcdefn);
    t.equal(ev.offset, 16);
    t.same(ev.initiator, aId);
    t.same(ev.target, bId);
    t.equal(ev.payloadLength, 11);
    t.equal(Buffer.concat(ev.payload).toString(), 'hello world');
    const s = b.stats();
    t.equal(s.ni.recvCount, 1);
    t.equal(s.ni.recvLength, 11);
    t.equal(s.peers.find((p) => p.nid === aId.nid)?.recvCount, 1);
    t.equal(a.stats().ni.sendCount, 1);
  });

  t.test(`${lnd}: ACK when asked, match bits and ignore bits, attach order`, async (t) => {
    const { a, b, bId } = await mk(t, { replyTimeoutMs: 300 });
    const events = collect(b);
    const low = b.attach(7, { matchBits: 0xab00n, ignoreBits: 0xffn }, { kind: 'sink', maxLength: 100 });
    const exact = b.attach(7, { matchBits: 0xab42n }, { kind: 'sink', maxLength: 100 });
    await a.put(bId, 7, 0xab42n, Buffer.from('x'), { ack: true });
    t.equal((await events.next()).md.id, low.id, 'the first attached of two matching MDs takes it');
    low.unlink();
    await a.put(bId, 7, 0xab42n, Buffer.from('y'), { ack: true });
    t.equal((await events.next()).md.id, exact.id, 'after unlink the next one does');
    await t.rejects(a.put(bId, 7, 0xac42n, Buffer.from('z'), { ack: true }), { code: lnd === 'lo' ? 'ENOENT' : 'ETIMEDOUT' },
      'a PUT no MD takes is dropped, and an ACK-waiting sender learns it');
    await a.put(bId, 7, 0xac42n, Buffer.from('z'));
    await until(() => b.stats().ni.drops.noMatch === 2, 'two drops counted');
    t.equal(events.events.length, 2, 'dropped PUTs make no event');
    t.equal(b.stats().ni.dropLength, 2);
  });

  t.test(`${lnd}: once-MDs, too-long PUTs, GET from a source`, async (t) => {
    const { a, b, bId } = await mk(t, { replyTimeoutMs: 300 });
    const events = collect(b);
    b.attach(4, { matchBits: 9n }, { kind: 'sink', maxLength: 10, once: true });
    await a.put(bId, 4, 9n, Buffer.from('first'));
    await events.next();
    await a.put(bId, 4, 9n, Buffer.from('second'));
    b.attach(4, { matchBits: 10n }, { kind: 'sink', maxLength: 4 });
    await a.put(bId, 4, 10n, Buffer.from('toolong'));
    await until(() => (b.stats().ni.drops.noMatch ?? 0) + (b.stats().ni.drops.tooLong ?? 0) === 2, 'drops counted');
    t.same(b.stats().ni.drops, { noMatch: 1, tooLong: 1 });

    const data = [randomBytes(1000), randomBytes(3000)];
    b.attach(8, { matchBits: 0x55n }, { kind: 'source', buffers: data });
    t.same(Buffer.concat(await a.get(bId, 8, 0x55n, 4000)), Buffer.concat(data), 'GET returns the source whole');
    t.same(Buffer.concat(await a.get(bId, 8, 0x55n, 1500)), Buffer.concat(data).subarray(0, 1500), 'or its start');
    b.attach(8, { matchBits: 0x56n }, { kind: 'source', buffers: [Buffer.from('once')], once: true });
    t.equal(Buffer.concat(await a.get(bId, 8, 0x56n, 4)).toString(), 'once');
    await t.rejects(a.get(bId, 8, 0x56n, 4), { code: lnd === 'lo' ? 'ENOENT' : 'ETIMEDOUT' }, 'a once source answers once');
    await t.rejects(a.get(bId, 8, 0x55n, 5000), { code: lnd === 'lo' ? 'ENOENT' : 'ETIMEDOUT' }, 'a GET longer than the source is dropped');
    t.equal(b.stats().ni.mdsAttached, 2);
  });

  t.test(`${lnd}: a node talks to itself`, async (t) => {
    const { a, aId } = await mk(t);
    const events = collect(a);
    a.attach(12, { matchBits: 1n }, { kind: 'sink', maxLength: 10 });
    await a.put(aId, 12, 1n, Buffer.from('me'), { ack: true });
    t.equal(Buffer.concat((await events.next()).payload).toString(), 'me');
    a.attach(13, { matchBits: 1n }, { kind: 'source', buffers: [Buffer.from('mine')] });
    t.equal(Buffer.concat(await a.get({ nid: '0@lo', pid: a.pid }, 13, 1n, 4)).toString(), 'mine', '0@lo is always this node');
  });

  t.test(`${lnd}: arguments are checked, stop is final`, async (t) => {
    const { a, bId } = await mk(t);
    await t.rejects(a.put(bId, -1, 0n, Buffer.alloc(1)), { code: 'EINVAL' });
    await t.rejects(a.put(bId, 1, -1n, Buffer.alloc(1)), { code: 'EINVAL' });
    await t.rejects(a.put({ nid: 'nonsense', pid: 1 }, 1, 0n, Buffer.alloc(1)), { code: 'EINVAL' });
    t.throws(() => a.attach(1, { matchBits: 1n << 64n }, { kind: 'sink', maxLength: 1 }), { code: 'EINVAL' });
    await a.stop();
    await t.rejects(a.put(bId, 1, 0n, Buffer.alloc(1)), { code: 'ESHUTDOWN' });
    t.throws(() => a.attach(1, { matchBits: 1n }, { kind: 'sink', maxLength: 1 }), LNetError);
  });
}

semantics('lo', loPair);
semantics('tcp', tcpPair);

t.test('lo: two NIs of one process need two pids; lo cannot reach tcp', async (t) => {
  await startNi(t, { nid: '0@lo', pid: 200 });
  await t.rejects(LNetNI.start({ nid: '0@lo', pid: 200 }), { code: 'EADDRINUSE' });
  const a = await startNi(t, { nid: '0@lo', pid: 201 });
  await t.rejects(a.put({ nid: '127.0.0.2@tcp', pid: 12345 }, 1, 0n, Buffer.alloc(1)), { code: 'EHOSTUNREACH' });
  await t.rejects(a.put({ nid: '0@lo', pid: 999 }, 1, 0n, Buffer.alloc(1)), { code: 'EHOSTUNREACH' });
});

t.test('tcp: 64 MiB arrive intact, as slices of the socket chunks', async (t) => {
  const { a, b, bId } = await tcpPair(t);
  const events = collect(b);
  b.attach(20, { matchBits: 1n }, { kind: 'sink', maxLength: 64 << 20 });
  const data = randomBytes(64 << 20);
  const digest = createHash('sha256').update(data).digest('hex');
  await a.put(bId, 20, 1n, data, { ack: true });
  const ev = await events.next();
  t.equal(ev.payloadLength, 64 << 20);
  t.equal(ev.payload.reduce((n, p) => n + p.length, 0), 64 << 20);
  t.ok(ev.payload.length > 1, `delivered as ${ev.payload.length} slices, not one copy`);
  const h = createHash('sha256');
  for (const p of ev.payload) h.update(p);
  t.equal(h.digest('hex'), digest);
  b.attach(21, { matchBits: 2n }, { kind: 'source', buffers: [data] });
  const got = await a.get(bId, 21, 2n, 64 << 20);
  const h2 = createHash('sha256');
  for (const p of got) h2.update(p);
  t.equal(h2.digest('hex'), digest, 'and back by GET');
  await t.rejects(a.put(bId, 20, 1n, Buffer.alloc((64 << 20) + 1)), { code: 'EINVAL' }, 'over maxFrameBytes is refused');
});

t.test('tcp: the side that connected reads into memory of its own: small and large frames interleaved arrive intact', async (t) => {
  // A user process only connects out, so everything the kernel sends it comes over its own
  // connection, which reads with onread: small frames share slabs, a large payload gets a
  // buffer of its own once its header is read.
  const port = await freePort();
  const host = `127.0.0.${nextHost++}`;
  const kernel = await startNi(t, { nid: `${host}@tcp`, port });
  const user = await startNi(t, { nid: `${host}@tcp`, port, pid: userspacePid(77) });
  user.attach(20, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 8 << 20 });
  kernel.attach(20, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 64 });
  const atKernel = collect(kernel);
  const events = collect(user);
  await user.put({ nid: kernel.nid, pid: 12345 }, 20, 0n, Buffer.from('hello'), { ack: true });
  const userId = (await atKernel.next()).initiator;
  const sizes = [1, 300, 40_000, 17, 5 << 20, 2048, 70_000, 3, 1 << 20, 100];
  const sent = sizes.map((n) => randomBytes(n));
  await Promise.all(sent.map((b, i) => kernel.put(userId, 20, BigInt(i + 1), b, { ack: true })));
  await events.waitFor(sizes.length);
  const got = new Map(events.events.map((e) => [e.matchBits, Buffer.concat(e.payload)]));
  sent.forEach((b, i) => t.ok(got.get(BigInt(i + 1))?.equals(b), `frame ${i + 1} (${sizes[i]} bytes) intact`));
});

t.test('tcp: connect on first send, reconnect after the peer restarts, refused peer', async (t) => {
  const warnings: Warnings = { lines: [] };
  const { a, b, port, bId } = await tcpPair(t, {}, warnings);
  t.equal(a.stats().ni.connections, 0, 'no connection before the first send');
  b.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 100 });
  await a.put(bId, 6, 1n, Buffer.from('one'), { ack: true });
  t.equal(a.stats().ni.connections, 1);
  await b.stop();
  await until(() => a.stats().ni.connections === 0, 'a to see the close');
  await t.rejects(a.put(bId, 6, 2n, Buffer.from('nobody')), { code: 'EHOSTUNREACH' }, 'a stopped peer is unreachable');
  const b2 = await startNi(t, { nid: bId.nid, port, warn: (m) => warnings.lines.push(m) });
  const events = collect(b2);
  b2.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 100 });
  await a.put(bId, 6, 3n, Buffer.from('two'), { ack: true });
  t.equal(Buffer.concat((await events.next()).payload).toString(), 'two');
  const peer = a.stats().peers.find((p) => p.nid === bId.nid)!;
  t.equal(peer.connects, 2, 'a second connection');
  t.equal(peer.connDrops.closedByPeer, 1);
  t.match(warnings.lines, [/^cannot connect to 127\.0\.0\.\d+:\d+ \(127\.0\.0\.\d+@tcp\): connectFailed: connect ECONNREFUSED/],
    'a refused connect is told; clean closes are not');
});

t.test('tcp: keepalive NOOPs hold an idle connection; clean close delivers what was sent', async (t) => {
  const warnings: Warnings = { lines: [] };
  const { a, b, bId } = await tcpPair(t, { keepaliveMs: 60, timeoutMs: 150 }, warnings);
  const events = collect(b);
  b.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 100 });
  await a.put(bId, 6, 1n, Buffer.from('x'));
  await events.next();
  await sleep(500);
  const pa = a.stats().peers[0]!;
  const pb = b.stats().peers[0]!;
  // socklnd's rule: a side pings when it has not heard from the other for keepaliveMs, so
  // one side's pings may be enough to keep the other quiet.
  t.ok(pa.keepalivesSent + pb.keepalivesSent >= 4, `keepalives sent: ${pa.keepalivesSent} and ${pb.keepalivesSent}`);
  t.ok(pa.keepalivesSent + pb.keepalivesSent <= 2 * (500 / 60 + 1), 'at most one a period from each side');
  t.equal(a.stats().ni.connections, 1, 'the idle connection stays up');
  t.same(a.stats().ni.connDrops, {});

  const sends = [];
  for (let i = 0; i < 200; i++) sends.push(a.put(bId, 6, BigInt(i), Buffer.from(`m${i}`)));
  await Promise.all(sends);
  await a.stop();
  await events.waitFor(201);
  t.same(events.events.slice(1).map((e) => e.matchBits), sends.map((_, i) => BigInt(i)), 'every message, in order');
  await until(() => b.stats().ni.connections === 0, 'b to see the close');
  t.same(b.stats().ni.connDrops, { closedByPeer: 1 });
  t.same(warnings.lines, []);
});

t.test('tcp: credits bound what a slow receiver costs the sender', async (t) => {
  const port = await freePort();
  const a = await startNi(t, { nid: '127.0.0.40@tcp', port, peerCredits: 4, limits: { txQueueMax: 64 } });
  const node = await rawNode('127.0.0.41', port, '127.0.0.41@tcp');
  t.teardown(() => node.server.close());
  const target = { nid: '127.0.0.41@tcp', pid: 12345 };
  const chunk = Buffer.alloc(1 << 20, 7);
  const rssBefore = process.memoryUsage().rss;
  let done = 0;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 64; i++) sends.push(a.put(target, 6, BigInt(i), chunk).then(() => { done++; }));
  const { socket, reader } = await node.accepted;
  socket.pause();
  await sleep(300);
  const stalled = done;
  const peer = a.stats().peers[0]!;
  t.ok(stalled < 64, `${stalled} of 64 sends went while the receiver reads nothing`);
  t.ok(peer.queued > 0 && peer.credits < 0, `credits ${peer.credits}, queued ${peer.queued}`);
  for (let i = 64; i < 68; i++) sends.push(a.put(target, 6, BigInt(i), chunk).then(() => { done++; }));
  await t.rejects(a.put(target, 6, 99n, chunk), { code: 'EAGAIN' }, 'a full queue refuses more');
  t.ok(process.memoryUsage().rss - rssBefore < 48 << 20, 'payloads are referenced, not copied, while they wait');
  reader.discarding = true;
  socket.resume();
  await Promise.all(sends);
  await until(() => reader.discarded === 68 * ((1 << 20) + 96), 'every byte to arrive');
  t.equal(done, 68, 'all go once it reads');
  t.equal(a.stats().peers[0]!.credits, 4);
  const min = a.stats().peers[0]!.minCredits;
  t.ok(min <= peer.credits - 4 && min >= -64, `the low-water mark (${min}) saw the queue full`);
});

t.test('tcp: connects from a privileged port when asked, skipping one taken', async (t) => {
  const port = await freePort();
  const blocker = createServer().listen(1023, '127.0.0.42');
  await once(blocker, 'listening');
  t.teardown(() => blocker.close());
  const node = await rawNode('127.0.0.43', port, '127.0.0.43@tcp');
  t.teardown(() => node.server.close());
  const a = await startNi(t, { nid: '127.0.0.42@tcp', port, reservedPorts: true });
  const sent = a.put({ nid: '127.0.0.43@tcp', pid: 12345 }, 6, 1n, Buffer.from('x'));
  const { socket } = await node.accepted;
  await sent;
  t.equal(socket.remotePort, 1022, 'from 1022, as 1023 is taken on that address');
  t.same(a.stats().ni.connDrops, {}, 'a taken port is no failure');
});
