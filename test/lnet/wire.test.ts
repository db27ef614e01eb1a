// The wire format, frozen: golden bytes of every frame (written out by hand from Lustre's
// structs, field by field), what an NI really sends and accepts on a socket, and what it does
// with bad input while a well-behaved peer goes on being served.
import t from 'tap';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { formatNid, nidFromWire, nidToWire, parseNid, wire, type LNetConfig } from '../../src/lnet/index.js';
import {
  ALL, ByteReader, collect, frame, freePort, helloFrom, nidWire, rawConnect, rawNode, rawPeer, sleep, startNi, until, type Warnings,
} from './helpers.js';

const hex = (s: string): string => s.replace(/\s+|\/\/[^\n]*/g, '');
const A = '127.0.0.2@tcp';
const B = '127.0.0.3@tcp';
const NID_A = '0200007f00000200'; // 127.0.0.2@tcp: u64 0x000200007f000002, little-endian
const NID_B = '0300007f00000200';
const PID = '39300000'; // 12345
const INCARNATION = 0x0123456789abcdefn;
const INC = 'efcdab8967452301';

const golden = {
  connreq: hex(`
    0071ceac          // acr_magic LNET_PROTO_ACCEPTOR_MAGIC
    01000000          // acr_version 1
    ${NID_B}          // acr_nid: the NID asked for`),
  hello: hex(`
    63697245          // kshm_magic LNET_PROTO_MAGIC 0x45726963
    03000000          // kshm_version KSOCK_PROTO_V3
    ${NID_A} ${NID_B} // src, dst NID
    ${PID} 00000000   // src pid, dst pid
    ${INC}            // src incarnation
    0000000000000000  // dst incarnation
    01000000          // ctype SOCKLND_CONN_CONTROL
    00000000          // nips`),
  put: hex(`
    c1000000 00000000 0000000000000000 0000000000000000  // KSOCK_MSG_LNET, csum, zc cookies
    ${NID_B} ${NID_A} ${PID} ${PID}                        // dest, src NID; dest, src pid
    01000000 04000000                                      // LNET_MSG_PUT, payload_length 4
    ffffffffffffffff ffffffffffffffff                      // ack_wmd: none
    8877665544332211 0807060504030201                      // match_bits, hdr_data
    06000000 00000000                                      // ptl_index 6, offset 0
    70696e67                                               // "ping"`),
  get: hex(`
    c1000000 00000000 0000000000000000 0000000000000000
    ${NID_B} ${NID_A} ${PID} ${PID}
    02000000 00000000                                      // LNET_MSG_GET, no payload
    ${INC} 0500000000000000                                // return_wmd
    5500000000000000 08000000 00000000 00100000 00000000   // match_bits, ptl_index 8, src_offset, sink_length 4096, pad`),
  reply: hex(`
    c1000000 00000000 0000000000000000 0000000000000000
    ${NID_A} ${NID_B} ${PID} ${PID}
    03000000 04000000                                      // LNET_MSG_REPLY, payload_length 4
    ${INC} 0500000000000000                                // dst_wmd (the GET's return_wmd)
    000000000000000000000000000000000000000000000000       // pad
    64617461                                               // "data"`),
  ack: hex(`
    c1000000 00000000 0000000000000000 0000000000000000
    ${NID_A} ${NID_B} ${PID} ${PID}
    00000000 00000000                                      // LNET_MSG_ACK, no payload
    ${INC} 0900000000000000                                // dst_wmd (the PUT's ack_wmd)
    8877665544332211 04000000                              // match_bits, mlength
    000000000000000000000000                               // pad`),
  noop: hex(`c0000000 00000000 0000000000000000 0100000000000000  // KSOCK_MSG_NOOP, keepalive cookie 1`),
};

function header(fields: Partial<wire.LNetHeader>): wire.LNetHeader {
  return Object.assign(new wire.LNetHeader(), { srcPid: 12345, destPid: 12345 }, fields);
}

t.test('golden: every frame, byte for byte', async (t) => {
  t.equal(wire.encodeConnReq(nidWire(B)).toString('hex'), golden.connreq);
  t.equal(helloFrom(A, INCARNATION, B).toString('hex'), golden.hello);
  t.equal(frame(header({
    type: wire.LNET_MSG_PUT, destNid: nidWire(B), srcNid: nidWire(A), wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
    wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE, matchBits: 0x1122334455667788n, hdrData: 0x0102030405060708n, portal: 6,
  }), Buffer.from('ping')).toString('hex'), golden.put);
  t.equal(frame(header({
    type: wire.LNET_MSG_GET, destNid: nidWire(B), srcNid: nidWire(A), wmdInterface: INCARNATION, wmdObject: 5n,
    matchBits: 0x55n, portal: 8, sinkLength: 4096,
  })).toString('hex'), golden.get);
  t.equal(frame(header({
    type: wire.LNET_MSG_REPLY, destNid: nidWire(A), srcNid: nidWire(B), wmdInterface: INCARNATION, wmdObject: 5n,
  }), Buffer.from('data')).toString('hex'), golden.reply);
  t.equal(frame(header({
    type: wire.LNET_MSG_ACK, destNid: nidWire(A), srcNid: nidWire(B), wmdInterface: INCARNATION, wmdObject: 9n,
    matchBits: 0x1122334455667788n, mlength: 4,
  })).toString('hex'), golden.ack);
  t.equal(wire.encodeNoop(wire.SOCKNAL_KEEPALIVE_PING).toString('hex'), golden.noop);
  // And they decode back to what was encoded.
  const h = new wire.LNetHeader();
  t.equal(wire.decodeFrameHeader(Buffer.from(golden.get, 'hex'), 0, h, 1 << 20), null);
  t.same({ type: h.type, portal: h.portal, matchBits: h.matchBits, sinkLength: h.sinkLength, wmdObject: h.wmdObject },
    { type: wire.LNET_MSG_GET, portal: 8, matchBits: 0x55n, sinkLength: 4096, wmdObject: 5n });
  t.same(wire.decodeHello(Buffer.from(golden.hello, 'hex')), {
    magic: wire.LNET_PROTO_MAGIC, version: 3, srcNid: nidWire(A), dstNid: nidWire(B), srcPid: 12345, dstPid: 0,
    srcIncarnation: INCARNATION, dstIncarnation: 0n, ctype: 1, nips: 0,
  });
});

t.test('live: what an NI sends and takes on a socket is the golden format', async (t) => {
  const port = await freePort();
  const node = await rawNode('127.0.0.3', port, B);
  t.teardown(() => node.server.close());
  const a = await startNi(t, { nid: A, port, keepaliveMs: 200, replyTimeoutMs: 3000 });
  const events = collect(a);
  const sent = a.put({ nid: B, pid: 12345 }, 6, 0x1122334455667788n, Buffer.from('ping'), { hdrData: 0x0102030405060708n });
  const { socket, reader, opening } = await node.accepted;
  await sent;
  t.equal(opening.subarray(0, 16).toString('hex'), golden.connreq, 'acceptor request');
  const hello = Buffer.from(opening.subarray(16));
  t.equal(hello.readBigUInt64LE(32), a.incarnation, 'HELLO carries the incarnation');
  hello.writeBigUInt64LE(INCARNATION, 32);
  t.equal(hello.toString('hex'), golden.hello, 'HELLO');
  t.equal((await reader.read(100)).toString('hex'), golden.put, 'PUT');

  // A GET from the NI: the same bytes but for its own return handle.
  const got = a.get({ nid: B, pid: 12345 }, 8, 0x55n, 4096);
  const get = await reader.read(96);
  t.equal(get.readBigUInt64LE(56), a.incarnation, 'return_wmd interface cookie is the incarnation');
  const cookie = get.readBigUInt64LE(64);
  const masked = Buffer.from(get);
  masked.writeBigUInt64LE(INCARNATION, 56);
  masked.writeBigUInt64LE(5n, 64);
  t.equal(masked.toString('hex'), golden.get, 'GET');
  const reply = Buffer.from(golden.reply, 'hex');
  reply.writeBigUInt64LE(a.incarnation, 56);
  reply.writeBigUInt64LE(cookie, 64);
  socket.write(reply);
  t.equal(Buffer.concat(await got).toString(), 'data', 'the REPLY answers it');

  // A PUT with ACK, answered by hand.
  const acked = a.put({ nid: B, pid: 12345 }, 6, 0x1122334455667788n, Buffer.from('ping'), { ack: true, hdrData: 0x0102030405060708n });
  const put = await reader.read(100);
  t.equal(put.readBigUInt64LE(56), a.incarnation);
  const ack = Buffer.from(golden.ack, 'hex');
  ack.writeBigUInt64LE(a.incarnation, 56);
  ack.writeBigUInt64LE(put.readBigUInt64LE(64), 64);
  socket.write(ack);
  await acked;
  t.pass('the ACK completes it');

  // The peer's PUT lands; its GET is answered with exactly the golden REPLY.
  a.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 100 });
  a.attach(9, { matchBits: 0x55n }, { kind: 'source', buffers: [Buffer.from('da'), Buffer.from('ta')] });
  socket.write(Buffer.concat([
    frame(header({
      type: wire.LNET_MSG_PUT, destNid: nidWire(A), srcNid: nidWire(B), wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
      wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE, matchBits: 0x77n, portal: 6,
    }), Buffer.from('from B')),
    frame(header({
      type: wire.LNET_MSG_GET, destNid: nidWire(A), srcNid: nidWire(B), wmdInterface: INCARNATION, wmdObject: 5n,
      matchBits: 0x55n, portal: 9, sinkLength: 4,
    })),
  ]));
  const ev = await events.next();
  t.same({ from: ev.initiator, bits: ev.matchBits, text: Buffer.concat(ev.payload).toString() },
    { from: { nid: B, pid: 12345 }, bits: 0x77n, text: 'from B' });
  const theirs = Buffer.from(golden.reply, 'hex');
  theirs.write(NID_B, 24, 'hex');
  theirs.write(NID_A, 32, 'hex');
  t.equal((await reader.read(100)).toString('hex'), theirs.toString('hex'), 'REPLY');

  // Idle: a keepalive.
  t.equal((await reader.read(24, 3000)).toString('hex'), golden.noop, 'keepalive NOOP');
  // A zero-copy request is confirmed with a NOOP carrying its cookie, as socklnd V3 expects.
  const zc = frame(header({
    type: wire.LNET_MSG_PUT, destNid: nidWire(A), srcNid: nidWire(B), wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
    wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE, matchBits: 0x78n, portal: 6,
  }), Buffer.from('zc'));
  zc.writeBigUInt64LE(0x1234n, 8);
  socket.write(zc);
  await events.next();
  t.equal((await reader.read(24)).toString('hex'), hex('c0000000 00000000 0000000000000000 3412000000000000'), 'zero-copy ACK');
});

t.test('typed connections: large messages go on a BULK_OUT connection and ask for zero-copy confirmation', async (t) => {
  const port = await freePort();
  const ni = await startNi(t, { nid: '127.0.0.60@tcp', port });
  const target = { nid: '127.0.0.61@tcp', pid: 12345 };
  // A raw node that takes every connection and answers each HELLO with the inverse type.
  const server = createServer();
  server.listen(port, '127.0.0.61');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const conns: Array<{ ctype: number; reader: ByteReader; socket: Socket }> = [];
  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    const reader = new ByteReader(socket);
    void (async () => {
      const opening = await reader.read(wire.CONNREQ_BYTES + wire.HELLO_BYTES);
      const hello = wire.decodeHello(opening.subarray(wire.CONNREQ_BYTES));
      socket.write(wire.encodeHello({
        srcNid: nidWire(target.nid), dstNid: hello.srcNid, srcPid: 12345, dstPid: 0, srcIncarnation: 99n,
        dstIncarnation: 0n, ctype: wire.invertConnType(hello.ctype),
      }));
      conns.push({ ctype: hello.ctype, reader, socket });
    })();
  });

  await ni.put(target, 6, 1n, Buffer.from('small'));
  await until(() => conns.length === 1, 'the first connection');
  t.equal(conns[0]!.ctype, wire.SOCKLND_CONN_CONTROL, 'the first connection is CONTROL');
  const small = await conns[0]!.reader.read(96 + 5);
  t.equal(small.readBigUInt64LE(8), 0n, 'a small message asks for no confirmation');

  const big = [randomBytes(40_000), randomBytes(30_000)];
  const bigBytes = Buffer.concat(big);
  // The first goes on CONTROL while BULK_OUT connects.
  await ni.put(target, 6, 2n, big);
  t.equal((await conns[0]!.reader.read(96 + bigBytes.length)).subarray(96).compare(bigBytes), 0, 'the first large one, on CONTROL');
  await until(() => conns.length === 2 && ni.stats().peers[0]!.connections === 2, 'a second connection for large messages');
  const bulk = conns[1]!;
  t.equal(bulk.ctype, wire.SOCKLND_CONN_BULK_OUT, 'it is BULK_OUT (the peer calls it BULK_IN)');
  await Promise.all([ni.put(target, 6, 3n, big), ni.put(target, 6, 4n, big), ni.put(target, 6, 5n, Buffer.from('small again'))]);
  for (const [i, bits] of [[0, 3n], [1, 4n]] as const) {
    const f = await bulk.reader.read(96 + bigBytes.length);
    t.equal(f.readBigUInt64LE(8), BigInt(2 + i), `large message ${i + 1} on it asks for confirmation with cookie ${2 + i}`);
    t.equal(f.readBigUInt64LE(72), bits, 'its match bits');
    t.equal(f.subarray(96).compare(bigBytes), 0, 'and its payload, whole and in order');
  }
  t.equal((await conns[0]!.reader.read(96 + 11)).subarray(96).toString(), 'small again', 'small ones stay on CONTROL');

  // The range 2..3 confirmed in one NOOP, as socklnd V3 may; then one cookie never issued.
  const ack = wire.encodeNoop(3n);
  ack.writeBigUInt64LE(2n, 8);
  bulk.socket.write(ack);
  await sleep(50);
  t.same(ni.stats().ni.connDrops, {}, 'confirmations of our cookies are taken');
  bulk.socket.write(wire.encodeNoop(77n));
  await until(() => (ni.stats().ni.connDrops as Record<string, number>).badZcAck === 1, 'a confirmation of a cookie never sent drops the connection');
});

t.test('typed connections: a peer that refuses BULK_OUT gets large messages on CONTROL', async (t) => {
  const port = await freePort();
  const ni = await startNi(t, { nid: '127.0.0.62@tcp', port });
  const target = { nid: '127.0.0.63@tcp', pid: 12345 };
  const server = createServer();
  server.listen(port, '127.0.0.63');
  await once(server, 'listening');
  t.teardown(() => server.close());
  let control: ByteReader | null = null;
  server.on('connection', (socket: Socket) => {
    const reader = new ByteReader(socket);
    void (async () => {
      const opening = await reader.read(wire.CONNREQ_BYTES + wire.HELLO_BYTES);
      const hello = wire.decodeHello(opening.subarray(wire.CONNREQ_BYTES));
      const ctype = hello.ctype === wire.SOCKLND_CONN_CONTROL ? wire.SOCKLND_CONN_CONTROL : wire.SOCKLND_CONN_NONE;
      socket.write(wire.encodeHello({
        srcNid: nidWire(target.nid), dstNid: hello.srcNid, srcPid: 12345, dstPid: 0, srcIncarnation: 99n, dstIncarnation: 0n, ctype,
      }));
      if (ctype === wire.SOCKLND_CONN_CONTROL) control = reader; else socket.end();
    })();
  });
  const big = randomBytes(100_000);
  await ni.put(target, 6, 1n, Buffer.from('first'));
  await ni.put(target, 6, 2n, big);
  await until(() => control !== null, 'the CONTROL connection');
  await control!.read(96 + 5);
  const f = await control!.read(96 + big.length);
  t.equal(f.subarray(96).compare(big), 0, 'the large message came on CONTROL');
  await until(() => ni.stats().ni.connDrops.connRace === 1, 'the refusal to be counted');
  await ni.put(target, 6, 3n, big);
  t.equal((await control!.read(96 + big.length)).subarray(96).compare(big), 0, 'and the next ones too, with no new attempt');
  t.equal(ni.stats().ni.connDrops.connRace, 1);
});

t.test('property: headers survive encode and decode; no 96 bytes make the decoder throw', async (t) => {
  const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  fc.assert(fc.property(
    fc.constantFrom<wire.LNetMsgType>(0, 1, 2, 3), u64, u64, u32, u32, u64, u64, u64, u64, u32, u32, u32,
    (type, destNid, srcNid, destPid, srcPid, wi, wo, matchBits, hdrData, portal, offset, n) => {
      const h = Object.assign(new wire.LNetHeader(), {
        type, destNid, srcNid, destPid, srcPid, wmdInterface: wi, wmdObject: wo,
        payloadLength: type === 1 || type === 3 ? n : 0,
        matchBits: type === 3 ? 0n : matchBits, hdrData: type === 1 ? hdrData : 0n,
        portal: type === 1 || type === 2 ? portal : 0, offset: type === 1 || type === 2 ? offset : 0,
        sinkLength: type === 2 ? n : 0, mlength: type === 0 ? n : 0,
      });
      const b = Buffer.alloc(96);
      wire.encodeFrameHeader(h, b, 0);
      const back = new wire.LNetHeader();
      return wire.decodeFrameHeader(b, 0, back, 0xffffffff) === null && JSON.stringify(back, big) === JSON.stringify(h, big);
    }), { seed: 42, numRuns: 500 });
  fc.assert(fc.property(fc.uint8Array({ minLength: 96, maxLength: 96 }), fc.integer({ min: 0, max: 1 << 20 }), (bytes, max) => {
    const r = wire.decodeFrameHeader(Buffer.from(bytes), 0, new wire.LNetHeader(), max);
    return r === null || typeof r === 'string';
  }), { seed: 42, numRuns: 2000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffff }), (addr, netNum) => {
    const nid = { lnd: 'tcp' as const, netNum, addr };
    return formatNid(parseNid(formatNid(nid))) === formatNid(nid) && formatNid(nidFromWire(nidToWire(nid))) === formatNid(nid);
  }), { seed: 42, numRuns: 500 });
});

function big(_k: string, v: unknown): unknown { return typeof v === 'bigint' ? v.toString() : v; }

t.test('bad input: each bad connection is dropped with its reason; a good peer is served throughout', async (t) => {
  const port = await freePort();
  const warnings: Warnings = { lines: [] };
  const limits: LNetConfig = {
    nid: '127.0.0.50@tcp', port, timeoutMs: 300, connectTimeoutMs: 300, maxFrameBytes: 1 << 20,
    limits: { noisePerSecondMax: 200, rxBytesMax: 1 << 20 },
  };
  const v = await startNi(t, limits, warnings);
  const good = await startNi(t, { nid: '127.0.0.51@tcp', port });
  const vEvents = collect(v);
  v.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 1 << 20 });
  const vId = { nid: v.nid, pid: 12345 };

  // The good peer sends all along, and every message must arrive.
  let goodSent = 0;
  let running = true;
  const goodLoop = (async () => {
    while (running) { await good.put(vId, 6, BigInt(goodSent), Buffer.from(`good ${goodSent}`), { ack: true }); goodSent++; await sleep(2); }
  })();

  const dropped = async (reason: string, n = 1): Promise<void> => {
    await until(() => (v.stats().ni.connDrops as Record<string, number>)[reason] === n, `a '${reason}' drop`, 5000);
  };
  const handshaken = async (asNid: string): Promise<Awaited<ReturnType<typeof rawPeer>>> => rawPeer(v, port, asNid);

  // Garbage instead of the acceptor request.
  let raw = await rawConnect('127.0.0.50', port, '127.0.0.52');
  raw.socket.write('GET / HTTP/1.1\r\nHost: lustre\r\n\r\n');
  await dropped('badMagic');
  await raw.reader.closed();
  // Wrong acceptor version: answered with ours, then closed.
  raw = await rawConnect('127.0.0.50', port, '127.0.0.52');
  const req = wire.encodeConnReq(v.wireNid);
  req.writeUInt32LE(7, 4);
  raw.socket.write(req);
  t.equal((await raw.reader.read(16)).readUInt32LE(4), 1, 'the acceptor tells its version');
  await dropped('badAcceptorVersion');
  // A request for another NID.
  raw = await rawConnect('127.0.0.50', port, '127.0.0.52');
  raw.socket.write(wire.encodeConnReq(nidWire('127.0.0.99@tcp')));
  await dropped('wrongNid');
  // HELLO with the old TCP magic, then with another socklnd version.
  raw = await rawConnect('127.0.0.50', port, '127.0.0.52');
  const oldMagic = helloFrom('127.0.0.52@tcp', 1n, v.nid);
  oldMagic.writeUInt32LE(wire.LNET_PROTO_TCP_MAGIC, 0);
  raw.socket.write(Buffer.concat([wire.encodeConnReq(v.wireNid), oldMagic]));
  await dropped('badMagic', 2);
  raw = await rawConnect('127.0.0.50', port, '127.0.0.52');
  raw.socket.write(Buffer.concat([wire.encodeConnReq(v.wireNid), helloFrom('127.0.0.52@tcp', 1n, v.nid, 1, 2)]));
  const answer = wire.decodeHello(await raw.reader.read(56));
  t.same([answer.magic, answer.version], [wire.LNET_PROTO_MAGIC, 3], 'an unknown version is answered with V3');
  await dropped('badVersion');
  // After a good handshake: an unknown ksock type, an unknown LNet type, an oversized frame.
  let p = await handshaken('127.0.0.53@tcp');
  t.equal(wire.decodeHello(p.hello).srcNid, v.wireNid);
  p.socket.write(Buffer.from('deadbeef'.repeat(12), 'hex'));
  await dropped('badKsockType');
  p = await handshaken('127.0.0.53@tcp');
  const badType = frame(header({ type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.53@tcp') }));
  badType.writeUInt32LE(7, 48);
  p.socket.write(badType);
  await dropped('badMsgType');
  p = await handshaken('127.0.0.53@tcp');
  p.socket.write(frame(header({ type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.53@tcp'), payloadLength: 1 << 20 })));
  await dropped('oversized');
  // Stalls: in a header, in a payload (whose reserved memory comes back), in the handshake.
  p = await handshaken('127.0.0.54@tcp');
  p.socket.write(frame(header({ type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.54@tcp') })).subarray(0, 50));
  await dropped('stalled');
  p = await handshaken('127.0.0.54@tcp');
  p.socket.write(frame(header({
    type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.54@tcp'), portal: 6, payloadLength: 500_000,
  })).subarray(0, 96 + 1000));
  await until(() => v.stats().ni.rxBytesReserved === 500_000, 'the payload reserved');
  await dropped('stalled', 2);
  t.equal(v.stats().ni.rxBytesReserved, 0, 'a dropped frame gives its memory back');
  raw = await rawConnect('127.0.0.50', port, '127.0.0.55');
  raw.socket.write(wire.encodeConnReq(v.wireNid));
  await dropped('handshakeTimeout');
  // Floods: NOOPs, then PUTs that match nothing.
  p = await handshaken('127.0.0.56@tcp');
  p.socket.write(Buffer.concat(Array.from({ length: 1000 }, () => wire.encodeNoop(1n))));
  await dropped('flood');
  p = await handshaken('127.0.0.56@tcp');
  const junk = frame(header({ type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.56@tcp'), portal: 77 }), Buffer.alloc(1000));
  for (let i = 0; i < 30; i++) p.socket.write(Buffer.concat(Array.from({ length: 10 }, () => junk)));
  await dropped('flood', 2);

  // Receive memory is shared: two 600 KB frames under a 1 MiB budget go one after the other.
  const [x, y] = [await handshaken('127.0.0.57@tcp'), await handshaken('127.0.0.58@tcp')];
  const before = vEvents.events.length;
  for (const [peer, nid] of [[x, '127.0.0.57@tcp'], [y, '127.0.0.58@tcp']] as const) {
    peer.socket.write(frame(header({
      type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire(nid), portal: 6, matchBits: 1n << 60n,
      wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE, wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
    }), randomBytes(600_000)));
  }
  await until(() => vEvents.events.filter((e) => e.matchBits === 1n << 60n).length === 2, 'both big frames');
  t.ok(vEvents.events.length > before);

  // A peer that trickles a frame as large as the whole budget holds it, but only large frames
  // wait for it: small ones (the good peer's) go on. When it stops, it is dropped and the
  // waiting large frame goes through.
  const slow = await handshaken('127.0.0.59@tcp');
  const big = frame(header({
    type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.59@tcp'), portal: 6, matchBits: 2n << 60n,
    wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE, wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
  }), randomBytes((1 << 20) - 96));
  slow.socket.write(big.subarray(0, 200));
  await until(() => v.stats().ni.rxBytesReserved === (1 << 20) - 96, 'the budget taken');
  const waiting = await handshaken('127.0.0.58@tcp');
  waiting.socket.write(frame(header({
    type: wire.LNET_MSG_PUT, destNid: v.wireNid, srcNid: nidWire('127.0.0.58@tcp'), portal: 6, matchBits: 3n << 60n,
    wmdInterface: wire.LNET_WIRE_HANDLE_COOKIE_NONE, wmdObject: wire.LNET_WIRE_HANDLE_COOKIE_NONE,
  }), randomBytes(200_000)));
  const goodBefore = goodSent;
  for (let i = 0; i < 6; i++) { await sleep(100); slow.socket.write(big.subarray(200 + i, 201 + i)); }
  t.ok(goodSent > goodBefore + 5, `small messages flow while the budget is held (${goodSent - goodBefore} went)`);
  t.equal(vEvents.events.filter((e) => e.matchBits === 3n << 60n).length, 0, 'a large frame waits for it');
  await dropped('stalled', 3);
  await until(() => vEvents.events.some((e) => e.matchBits === 3n << 60n), 'the waiting frame');

  running = false;
  await goodLoop;
  t.ok(goodSent > 20, `the good peer sent ${goodSent} messages meanwhile`);
  t.equal(vEvents.events.filter((e) => e.initiator.nid === good.nid).length, goodSent, 'and every one arrived');
  const s = v.stats();
  t.same(s.ni.connDrops, {
    badMagic: 2, badAcceptorVersion: 1, wrongNid: 1, badVersion: 1, badKsockType: 1, badMsgType: 1, oversized: 1,
    stalled: 3, handshakeTimeout: 1, flood: 2,
  }, 'each drop counted by its reason');
  t.equal(s.ni.rxBytesReserved, 0);
  t.equal(warnings.lines.length, 14, 'and each told once');
  t.match(warnings.lines.join('\n'), /dropped connection from 127\.0\.0\.52:\d+: badMagic: acceptor magic 0x20544547/);
  t.equal(s.peers.find((q) => q.nid === good.nid)?.connections, 1, 'the good peer kept its one connection');
});

t.test('limits: connections past connectionsMax are refused at once', async (t) => {
  const port = await freePort();
  const warnings: Warnings = { lines: [] };
  const v = await startNi(t, { nid: '127.0.0.60@tcp', port, limits: { connectionsMax: 2 } }, warnings);
  const socks = [];
  for (let i = 0; i < 3; i++) socks.push(await rawConnect('127.0.0.60', port, '127.0.0.61'));
  await socks[2]!.reader.closed();
  t.equal(v.stats().ni.connDrops.tooManyConnections, 1);
  t.equal(v.stats().ni.connections, 2);
  for (const s of socks) s.socket.destroy();
});

