// The server side of bench/rpc.ts, in its own process (as a real server would be): an OST
// service on LNet (TCP), and the raw-socket baselines: an echo server for ping-pong and a sink
// for streaming. Prints one JSON line when ready; exits when its stdin closes.
//   node --import=tsx bench/rpc/server.ts <ip> <lnetPort> <pingPort> <streamPort>
import { createServer, type Socket } from 'node:net';
import { LNetNI } from '../../src/lnet/index.js';
import { Opcode, Service, targetProfiles, type OpHandler } from '../../src/ptlrpc/index.js';
import { ostBody, writeLength } from './shapes.js';

const [ip, lnetPort, pingPort, streamPort] = process.argv.slice(2);
if (!ip || !lnetPort || !pingPort || !streamPort) throw new Error('usage: server.ts <ip> <lnetPort> <pingPort> <streamPort>');

const ni = await LNetNI.start({ nid: `${ip}@tcp`, port: Number(lnetPort), warn: () => {} });
const rc = Buffer.alloc(4);
const ops = new Map<number, OpHandler<never>>([
  [Opcode.OST_GETATTR, { handle: (req) => ({ buffers: [ostBody(req.buffers[0]?.readBigUInt64LE(8) ?? 0n, 4096n)] }) }],
  [Opcode.OST_WRITE, {
    handle: async (req, ctx) => {
      const length = writeLength(req.buffers);
      const data = await ctx.bulkGet(length);
      let got = 0;
      for (const b of data) got += b.length;
      return { buffers: [ostBody(0n, BigInt(got)), rc] };
    },
  }],
]);
const service = new Service(ni, { name: 'ost', targetUuid: 'bench-OST0000_UUID', ...targetProfiles.ost, ops, threads: 8 });

/**
 * Ping-pong: length-prefixed frames in; for each, one write of a frame of the size the u32
 * after the length asks (as plain as an echo server gets: no batching of replies).
 */
const ping = createServer((socket: Socket) => {
  socket.setNoDelay(true);
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const len = pending.readUInt32LE(0);
      if (pending.length < len) break;
      const replyLen = pending.readUInt32LE(4);
      const reply = Buffer.alloc(replyLen);
      reply.writeUInt32LE(replyLen, 0);
      socket.write(reply);
      pending = pending.subarray(len);
    }
  });
  socket.on('error', () => {});
});

/** Streaming: counts bytes until the client ends, then answers with the count. */
const stream = createServer((socket: Socket) => {
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
  socket.on('end', () => socket.end(JSON.stringify({ bytes })));
  socket.on('error', () => {});
});

await Promise.all([
  new Promise<void>((r) => ping.listen(Number(pingPort), ip, r)),
  new Promise<void>((r) => stream.listen(Number(streamPort), ip, r)),
]);
process.stdout.write(`${JSON.stringify({ ready: true, nid: ni.nid })}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  ping.close();
  stream.close();
  await service.stop();
  await ni.stop();
  process.stderr.write(`${service.formatStats()}`);
  process.exit(0);
});
