// bench:rpc — ptlrpc over LNet (TCP loopback) beside raw Node sockets measured in the same run.
//   small RPC round trips: OST_GETATTR (a 208-byte ost_body each way) with IN_FLIGHT requests
//     in flight on one import, against raw ping-pong of frames of the same sizes with the same
//     number in flight on one socket;
//   bulk write: OST_WRITE of 1 MiB each (the server GETs it from the client's bulk MD) with
//     BULK_IN_FLIGHT in flight, against raw streaming of 1 MiB writes on one socket.
// The server runs in a child process, as a server would. Progress goes to stderr; one JSON line
// per figure goes to stdout: {"bench","value","unit","baseline","ratio"}.
import { spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Presets, SingleBar } from 'cli-progress';
import { LNetNI } from '../src/lnet/index.js';
import { encodeMessage, Import, makeBody, MsgType, Opcode, PTLRPC_MSG_VERSION, TargetVersion, targetProfiles } from '../src/ptlrpc/index.js';
import { ostBody, writeRequestBuffers } from './rpc/shapes.js';

const DURATION_MS = Number(process.env.BENCH_RPC_MS ?? 3000);
const IN_FLIGHT = Number(process.env.BENCH_RPC_IN_FLIGHT ?? 8);
const BULK_IN_FLIGHT = Number(process.env.BENCH_RPC_BULK_IN_FLIGHT ?? 8);
const BULK_BYTES = 1 << 20;
const SERVER_IP = process.env.BENCH_RPC_SERVER_IP ?? '127.0.0.2';
const CLIENT_IP = process.env.BENCH_RPC_CLIENT_IP ?? '127.0.0.3';

interface Figure { bench: string; value: number; unit: string; baseline: number; ratio: number }
const round = (x: number) => Number(x.toPrecision(4));
const emit = (bench: string, value: number, unit: string, baseline: number) => {
  const f: Figure = { bench, value: round(value), unit, baseline: round(baseline), ratio: round(value / baseline) };
  process.stdout.write(`${JSON.stringify(f)}\n`);
};

function bar(label: string): { tick(done: number): void; stop(): void } {
  const b = new SingleBar({ format: `${label.padEnd(28)} [{bar}] {percentage}%`, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 1000 }, Presets.shades_classic);
  b.start(100, 0);
  return { tick: (ms) => b.update(Math.min(100, Math.floor((100 * ms) / DURATION_MS))), stop: () => (b.update(100), b.stop()) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs `worker` loops `parallel` at once until the duration passes; returns completions per second. */
async function timed(label: string, parallel: number, once: () => Promise<void>): Promise<number> {
  const progress = bar(label);
  let done = 0;
  const start = performance.now();
  const end = start + DURATION_MS;
  const ticker = setInterval(() => progress.tick(performance.now() - start), 200);
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (performance.now() < end) {
      await once();
      done++;
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  clearInterval(ticker);
  progress.stop();
  return done / seconds;
}

/** Raw ping-pong: IN_FLIGHT frames in flight on one socket, each answered by a frame of replyBytes. */
async function rawPingPong(port: number, requestBytes: number, replyBytes: number): Promise<number> {
  const socket = await open(port);
  const frame = Buffer.alloc(requestBytes);
  frame.writeUInt32LE(requestBytes, 0);
  frame.writeUInt32LE(replyBytes, 4);
  const waiters: Array<() => void> = [];
  let pending = 0;
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.length;
    while (pending >= replyBytes) {
      pending -= replyBytes;
      waiters.shift()?.();
    }
  });
  const rate = await timed('raw socket ping-pong', IN_FLIGHT, () => new Promise<void>((resolve) => {
    waiters.push(resolve);
    socket.write(frame);
  }));
  socket.destroy();
  return rate;
}

/** Raw streaming: 1 MiB writes on one socket for the duration; the server counts what arrived. */
async function rawStream(port: number): Promise<number> {
  const socket = await open(port);
  const chunk = Buffer.alloc(BULK_BYTES);
  const progress = bar('raw socket streaming');
  const start = performance.now();
  const answer = new Promise<number>((resolve) => {
    let text = '';
    socket.on('data', (d) => (text += d.toString()));
    socket.on('end', () => resolve(JSON.parse(text).bytes as number));
  });
  while (performance.now() - start < DURATION_MS) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
    progress.tick(performance.now() - start);
  }
  socket.end();
  const bytes = await answer;
  progress.stop();
  return bytes / (1 << 20) / ((performance.now() - start) / 1000);
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: SERVER_IP, port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

async function main(): Promise<void> {
  const [lnetPort, pingPort, streamPort] = [await freePort(), await freePort(), await freePort()];
  const server = spawn(process.execPath, [...(process.env.BENCH_RPC_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), '--import=tsx', new URL('rpc/server.ts', import.meta.url).pathname,
    SERVER_IP, String(lnetPort), String(pingPort), String(streamPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = await new Promise<{ nid: string }>((resolve, reject) => {
    server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    createInterface({ input: server.stdout! }).once('line', (line) => resolve(JSON.parse(line)));
  });
  const ni = await LNetNI.start({ nid: `${CLIENT_IP}@tcp`, port: lnetPort, warn: () => {} });
  const imp = await Import.connect(ni, {
    target: { nid: ready.nid, pid: 12345 }, targetUuid: 'bench-OST0000_UUID', clientUuid: 'bench-client',
    ...targetProfiles.ost, maxRpcsInFlight: IN_FLIGHT, pingIntervalMs: 0,
  });

  const only = process.env.BENCH_RPC_ONLY;
  // Like with like: the raw frames carry as many bytes as the RPC messages do.
  const getattr = [ostBody(0x1000n)];
  const requestBytes = encodeMessage(makeBody({ type: MsgType.REQUEST, opcode: Opcode.OST_GETATTR, version: TargetVersion.OST | PTLRPC_MSG_VERSION }), getattr).length;
  const replyBytes = encodeMessage(makeBody({ type: MsgType.REPLY, opcode: Opcode.OST_GETATTR }), [ostBody(0n)]).length;
  const lnetHeaderBytes = 24 + 72; // ksock_msg + lnet_hdr, which every LNet message carries
  if (only !== 'bulk') {
  await rawPingPong(pingPort, requestBytes + lnetHeaderBytes, replyBytes + lnetHeaderBytes); // warm-up
  const rawRate = await rawPingPong(pingPort, requestBytes + lnetHeaderBytes, replyBytes + lnetHeaderBytes);
  await timed('rpc warm-up', IN_FLIGHT, async () => void (await imp.request(Opcode.OST_GETATTR, getattr)));
  const rpcRate = await timed('rpc small round trips', IN_FLIGHT, async () => void (await imp.request(Opcode.OST_GETATTR, getattr)));
  emit('rpc small round trips', rpcRate, 'rpc/s', rawRate);
  }
  if (only !== 'small') {

  const data = [Buffer.alloc(BULK_BYTES)];
  const rawMiBs = await rawStream(streamPort);
  let offset = 0;
  const writes = await timed('rpc bulk write', BULK_IN_FLIGHT, async () => {
    const buffers = writeRequestBuffers(0x1000n, offset, BULK_BYTES);
    offset += BULK_BYTES;
    await imp.request(Opcode.OST_WRITE, buffers, { bulkWrite: data });
  });
  emit('rpc bulk write', (writes * BULK_BYTES) / (1 << 20), 'MiB/s', rawMiBs);
  }

  await imp.disconnect();
  await ni.stop();
  server.stdin!.end();
  await new Promise((r) => server.once('exit', r));
}

await main();
