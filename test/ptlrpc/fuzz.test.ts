// Fuzz: random and mutated ptlrpc frames PUT to a live service's request portal (and some raw
// garbage at its TCP port), while a well-formed client on another connection keeps sending.
// The server never crashes and the client keeps getting answers throughout.
// PTLRPC_FUZZ_FRAMES raises the count (10,000 by default); PTLRPC_SEED replays a run.
import { connect } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import {
  ConnectFlag, encodeConnectRequest, encodeMessage, Import, makeBody, MsgFlag, MsgType, Opcode, PTLRPC_MSG_VERSION,
  Service, TargetVersion, type OpHandler,
} from '../../src/ptlrpc/index.js';
import { ost, serverId, sleep, startNodes, TARGET_UUID } from './helpers.js';

const seed = Number(process.env.PTLRPC_SEED ?? Date.now() % 1_000_000);
const frames = Number(process.env.PTLRPC_FUZZ_FRAMES ?? 10_000);

t.test(`${frames} random and mutated frames against a live service`, async (t) => {
  t.comment(`seed ${seed} (PTLRPC_SEED reproduces; PTLRPC_FUZZ_FRAMES sets the count)`);
  const nodes = await startNodes('tcp', 2);
  t.teardown(() => nodes.stop());
  let executed = 0;
  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_GETATTR, { handle: (req) => ({ buffers: [Buffer.from(req.buffers[0] ?? Buffer.alloc(0))] }) }],
    [Opcode.OST_SETATTR, { modifying: true, handle: () => ({ buffers: [Buffer.from(String(++executed))] }) }],
    [Opcode.OST_WRITE, { modifying: true, handle: async (req, ctx) => {
      const data = await ctx.bulkGet(Math.min(4096, req.buffers[0]?.length ?? 0));
      return { buffers: [Buffer.from(String(data.length))] };
    } }],
  ]);
  const service = new Service(nodes.server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops, maxExports: 64, queueMax: 256 });
  t.teardown(() => service.stop());
  const good = await Import.connect(nodes.clients[0]!, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: 'well-formed', ...ost, pingIntervalMs: 0,
    at: { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 100 }, initialEstimateMs: 100,
  });
  t.teardown(() => good.disconnect());

  // The well-formed client: requests one after another for as long as the fuzzing lasts.
  let fuzzing = true;
  let answered = 0;
  const failures: string[] = [];
  const client = (async () => {
    for (let i = 0; fuzzing; i++) {
      try {
        const payload = Buffer.from(`ping ${i}`);
        const reply = i % 2 === 0
          ? await good.request(Opcode.OST_GETATTR, [payload])
          : await good.request(Opcode.OST_SETATTR, [], { modifying: true });
        if (i % 2 === 0 && !reply.buffers[0]?.equals(payload)) failures.push(`wrong reply to request ${i}`);
        answered++;
      } catch (err) {
        failures.push(String(err));
      }
    }
  })();

  const valid = [
    encodeMessage(makeBody({ type: MsgType.REQUEST, opcode: Opcode.OBD_PING, version: TargetVersion.OST | PTLRPC_MSG_VERSION }), []),
    encodeMessage(makeBody({ type: MsgType.REQUEST, opcode: Opcode.OST_CONNECT, version: TargetVersion.OST | PTLRPC_MSG_VERSION, opFlags: ConnectFlag.RECONNECT }),
      encodeConnectRequest({ targetUuid: TARGET_UUID, clientUuid: 'fuzzer', handle: good.handle,
        data: { connectFlags: 0n, version: 0, index: 0, brwSize: 0, transno: 0n, instance: 0, maxModRpcs: 8 } })),
    encodeMessage(makeBody({ type: MsgType.REQUEST, opcode: Opcode.OST_SETATTR, version: TargetVersion.OST | PTLRPC_MSG_VERSION,
      handle: good.handle, connCnt: good.connCnt, tag: 1, flags: MsgFlag.RESENT }), [Buffer.from('x')]),
    encodeMessage(makeBody({ type: MsgType.REQUEST, opcode: Opcode.OST_WRITE, version: TargetVersion.OST | PTLRPC_MSG_VERSION,
      handle: good.handle, connCnt: good.connCnt, tag: 2, mbits: 77n }), [Buffer.alloc(64)]),
  ];
  const mutated = fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.option(fc.nat()))
    .map(([base, edits, cut]) => {
      const b = Buffer.from(base);
      for (const [at, byte] of edits) b[at % b.length] = byte;
      return cut === null ? b : b.subarray(0, cut % (b.length + 1));
    });
  const frame = fc.oneof(
    { weight: 3, arbitrary: mutated },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: fc.constantFrom(...valid) },
  );
  const samples = fc.sample(frame, { numRuns: frames, seed });
  const matchBits = fc.sample(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { numRuns: frames, seed: seed + 1 });
  const fuzzer = nodes.clients[1]!;
  const target = serverId(nodes.server);
  for (let i = 0; i < samples.length; i += 100) {
    await Promise.all(samples.slice(i, i + 100).map((f, j) => fuzzer.put(target, ost.requestPortal, matchBits[i + j]!, f).catch(() => undefined)));
    await sleep(1);
  }

  // Raw garbage at the LNet TCP port: the network layer must shrug it off as well.
  const [host, port] = [nodes.server.nid.split('@')[0]!, nodes.port];
  for (const bytes of fc.sample(fc.uint8Array({ minLength: 1, maxLength: 300 }), { numRuns: 50, seed: seed + 2 })) {
    await new Promise<void>((resolve) => {
      const s = connect({ host, port }, () => s.end(Buffer.from(bytes)));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.setTimeout(500, () => s.destroy());
    });
  }
  await sleep(300);
  fuzzing = false;
  await client;

  t.same(failures, [], 'the well-formed client never failed');
  t.ok(answered > 20, `the well-formed client got ${answered} answers during the fuzzing`);
  t.ok(service.counters.received >= frames * 0.9, `the service saw the frames (${service.counters.received})`);
  t.ok(service.counters.malformed > 0, `malformed ones were dropped at the edge (${service.counters.malformed})`);
  t.ok(service.exports.size <= 64, 'exports stay within their limit');
  t.ok(service.counters.wrongPeer > 0, `requests presenting another peer's handle were refused (${service.counters.wrongPeer})`);
  const after = await good.request(Opcode.OST_GETATTR, [Buffer.from('still here')]);
  t.equal(after.buffers[0]?.toString(), 'still here', 'and the service still answers');
  t.comment(`counters ${JSON.stringify(service.counters)}`);
});

