// LNet over TCP loopback beside raw sockets, measured in the same run (run it with
// `node --import=tsx bench/lnet/lnet.ts`). The far side runs in a child process, as another
// node would. One JSON line per figure on stdout: {"bench","value","unit","baseline","ratio"}.
//   lnet small round trips: a PUT of SMALL bytes answered by a PUT back, IN_FLIGHT at once,
//     against raw ping-pong of frames of the same size with as many in flight;
//   lnet bulk put / lnet bulk get: 1 MiB PUTs (GETs), IN_FLIGHT at once, against raw
//     streaming of 1 MiB writes.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { LNetNI, type ProcessId } from '../../src/lnet/index.js';
import { rawEchoServer, rawPingPong, rawSinkServer, rawStream } from './raw.js';

// BENCH_LNET_ONLY=small stops after the small round trips (for profiling).
const DURATION_MS = Number(process.env.BENCH_LNET_MS ?? 2000);
const SMALL = Number(process.env.BENCH_LNET_SMALL ?? 512);
const IN_FLIGHT = Number(process.env.BENCH_LNET_IN_FLIGHT ?? 8);
const BULK = 1 << 20;
const BULK_TOTAL = 1 << 30;
const FAR = '127.0.0.2';
const NEAR = '127.0.0.3';
const ALL = 0xffffffffffffffffn;

const round = (x: number): number => Number(x.toPrecision(4));
function emit(bench: string, value: number, unit: string, baseline: number): void {
  process.stdout.write(`${JSON.stringify({ bench, value: round(value), unit, baseline: round(baseline), ratio: round(value / baseline) })}\n`);
}

async function farSide(port: number): Promise<void> {
  await rawEchoServer(FAR, port + 1);
  await rawSinkServer(FAR, port + 2, BULK_TOTAL);
  const ni = await LNetNI.start({ nid: `${FAR}@tcp`, port });
  ni.attach(6, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: SMALL });
  ni.attach(8, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: BULK });
  ni.attach(14, { matchBits: 0n, ignoreBits: ALL }, { kind: 'source', buffers: [Buffer.alloc(BULK, 3)] });
  const reply = Buffer.alloc(SMALL, 5);
  ni.events$.subscribe((ev) => {
    if (ev.portal === 6) void ni.put(ev.initiator, 4, ev.matchBits, reply);
  });
  process.send!('ready');
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

async function loop(parallel: number, once: () => Promise<void>): Promise<number> {
  let done = 0;
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (performance.now() < end) { await once(); done++; }
  }));
  return done / ((performance.now() - start) / 1000);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'far') { await farSide(Number(process.argv[3])); return; }
  const port = await freePort();
  const child = fork(new URL(import.meta.url).pathname, ['far', String(port)], { execArgv: ['--import=tsx'] });
  await once(child, 'message');
  const near = await LNetNI.start({ nid: `${NEAR}@tcp`, port });
  try {
    const far: ProcessId = { nid: `${FAR}@tcp`, pid: 12345 };
    // Replies land in once-MDs by match bits, as ptlrpc's do.
    const waiting = new Map<bigint, () => void>();
    near.events$.subscribe((ev) => { waiting.get(ev.matchBits)?.(); waiting.delete(ev.matchBits); });
    const request = Buffer.alloc(SMALL, 1);
    let xid = 1n;
    const roundTrip = (): Promise<void> => {
      const bits = xid++;
      near.attach(4, { matchBits: bits }, { kind: 'sink', maxLength: SMALL, once: true });
      const answered = new Promise<void>((resolve) => waiting.set(bits, resolve));
      return near.put(far, 6, bits, request).then(() => answered);
    };
    await loop(IN_FLIGHT, roundTrip); // warm up
    const lnetSmall = await loop(IN_FLIGHT, roundTrip);
    const rawSmall = await rawPingPong(FAR, port + 1, SMALL, IN_FLIGHT, DURATION_MS, NEAR);
    emit('lnet small round trips', lnetSmall, 'rt/s', rawSmall);
    if (process.env.BENCH_LNET_ONLY === 'small') return;

    const rawBulk = await rawStream(FAR, port + 2, BULK, BULK_TOTAL, NEAR);
    const bulk = Buffer.alloc(BULK, 4);
    const puts = await loop(IN_FLIGHT, () => near.put(far, 8, 1n, bulk, { ack: true }));
    emit('lnet bulk put', (puts * BULK) / (1 << 20), 'MiB/s', rawBulk);
    const gets = await loop(IN_FLIGHT, async () => { await near.get(far, 14, 1n, BULK); });
    emit('lnet bulk get', (gets * BULK) / (1 << 20), 'MiB/s', rawBulk);
  } finally {
    await near.stop();
    child.kill();
  }
}

await main();
