// bench:recovery — a target's way back after a crash, beside what the machine does with the same
// bytes or the same requests, in the same run.
//  1. Start to service against the log after the last checkpoint: a child process
//     (bench/recovery/server.ts write) runs N setattr transactions on the OSD of an MGS+MDT
//     device with checkpoints held off, and is killed with SIGKILL once they are durable. Then
//     the time from the kernel's mount of the device (Target.mount: the OSD opens and replays
//     those N transactions, the services start) until a client, mounting then, has its getattr
//     of the root answered. Baseline: a raw sequential read of the same log's segment files.
//     N is each of --records (LUSTRE_BENCH_RECORDS), 10k, 100k and 1M by default; a crash with
//     nothing after the checkpoint is measured first (stderr) for the fixed cost.
//  2. Replayed client requests per second: an MGS+MDT and an OST, each in a kernel process of
//     its own (server.ts kernel: lustre.kernel's Kernel class); --clients clients (LUSTRE_BENCH_CLIENTS, default 4)
//     in this process each create --requests empty files (LUSTRE_BENCH_REQUESTS, default 500:
//     open(O_CREAT) + close) while the MDT holds its commits back, so that every request stays
//     in the clients' replay lists; the MDT's kernel is killed with SIGKILL and started again,
//     and the clients replay. The figure: requests replayed over the recovery's duration (from
//     the mount until the last client is done, as recovery_status counts it), and the replays
//     made once every client is back over that time. Baseline: the same requests executed
//     fresh, per second (requests kept for replay over the time the creates took).
// LUSTRE_BENCH_DIR chooses the folder (default: the system's temporary folder), LUSTRE_BENCH_KEEP=1
// keeps it (the kernels' logs); --only start or --only replay runs one part.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { open, mkdir, mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { mount, type FileSystem } from '../src/client/index.js';
import { Kernel } from '../src/control/kernel/kernel.js';
import { LNetNI } from '../src/lnet/index.js';
import { Osd, ROOT_INDEX_FID, devicePaths } from '../src/osd/index.js';
import { formatTarget } from '../src/services/target/index.js';
import { freePort } from '../test/lib/net.js';
import { emit, latencyFigure, progress, rateFigure } from './lib.js';
import { OBJECT_SEQ, WRITERS, objectName } from './recovery/shape.js';

const program = new Command('bench:recovery')
  .description('time from start to service after a crash, and replayed client requests per second')
  .option('--records <list>', 'transactions after the checkpoint, comma-separated', process.env.LUSTRE_BENCH_RECORDS ?? '10000,100000,1000000')
  .option('--clients <n>', 'clients replaying', process.env.LUSTRE_BENCH_CLIENTS ?? '4')
  .option('--requests <n>', 'uncommitted requests per client', process.env.LUSTRE_BENCH_REQUESTS ?? '500')
  .option('--only <part>', 'start or replay (default: both)')
  .parse();
const opts = program.opts<{ records: string; clients: string; requests: string; only?: string }>();
const RECORDS = opts.records.split(',').map((s) => Number(s.trim()));
const CLIENTS = Number(opts.clients);
const REQUESTS = Number(opts.requests);
for (const [name, n] of [...RECORDS.map((r) => ['--records', r] as const), ['--clients', CLIENTS], ['--requests', REQUESTS]] as const) {
  if (!Number.isInteger(n) || n < 1 || n > 10_000_000) program.error(`${name}: a whole number from 1 to 10,000,000`);
}
if (opts.only && opts.only !== 'start' && opts.only !== 'replay') program.error('--only: start or replay');

const HELPER = join(import.meta.dirname, 'recovery/server.ts');
const root = await mkdtemp(join(process.env.LUSTRE_BENCH_DIR ?? tmpdir(), 'bench-recovery-'));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  if (process.env.LUSTRE_BENCH_KEEP) process.stderr.write(`kept ${root} (the kernels' logs are in its run-* folders)\n`);
  else rmSync(root, { recursive: true, force: true });
});
const port = await freePort();
const info = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const label = (n: number): string => (n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n));

// ---- child processes -----------------------------------------------------------------------

type Line = Record<string, unknown>;

interface Child {
  /** The next line (from now or already read and not yet taken) that has `key`. */
  next(key: string, onOther?: (line: Line) => void): Promise<Line>;
  send(line: string): void;
  kill(): Promise<void>;
  /** Ends stdin (the kernel role stops cleanly) and waits for the exit. */
  stop(): Promise<void>;
}

function startChild(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import=tsx', HELPER, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => {
    children.delete(proc);
    resolve();
  }));
  const pending: Line[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const lines = createInterface({ input: proc.stdout! });
  lines.on('line', (text) => {
    try {
      pending.push(JSON.parse(text) as Line);
    } catch {
      info(`child: ${text}`);
    }
    wake?.();
  });
  lines.on('close', () => {
    ended = true;
    wake?.();
  });
  return {
    async next(key, onOther) {
      for (;;) {
        while (pending.length > 0) {
          const line = pending.shift()!;
          if (key in line) return line;
          onOther?.(line);
        }
        if (ended) throw new Error(`${args[0]} child (${args.slice(1).join(' ')}) exited before printing ${key}`);
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.stdin!.end();
      await exited;
    },
  };
}

// ---- 1. start to service against the log after the checkpoint ------------------------------

/** Reads every segment file of the log in 1 MiB pieces: bytes and milliseconds. */
async function rawLogRead(device: string): Promise<{ bytes: number; ms: number }> {
  const dir = devicePaths(device).log;
  const block = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  const t0 = performance.now();
  for (const name of (await readdir(dir)).sort()) {
    const fh = await open(join(dir, name), 'r');
    try {
      for (;;) {
        const { bytesRead } = await fh.read(block, 0, block.length, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }
  return { bytes, ms: performance.now() - t0 };
}

async function startToService(): Promise<void> {
  const fsname = 'benchrec';
  const nid = '127.0.0.2@tcp';
  const device = join(root, 'mdt0');
  const rundir = join(root, 'run-start');
  await mkdir(rundir, { recursive: true });
  await formatTarget(device, { fsname, mgs: true, mdt: true, index: 0 });
  const kernel = await Kernel.start({ nid, port, rundir, logFile: join(rundir, 'kernel.log'), logLevel: 'warn' });
  const clientNi = await LNetNI.start({ nid: '127.0.0.3@tcp', port, warn: () => {} });
  let round = 0;
  /** Mounts the device and a client; the client's getattr of the root answered ends the clock. */
  const serve = async (): Promise<{ serviceMs: number; mountMs: number; recordsReplayed: number; status: string }> => {
    const t0 = performance.now();
    const target = await kernel.mount(device, []);
    const mountMs = performance.now() - t0;
    const fs = await mount(`${nid}:/${fsname}`, { ni: clientNi, clientUuid: `bench-recovery-start-${round++}`, connectDeadlineMs: 60_000 });
    await fs.stat('/');
    const serviceMs = performance.now() - t0;
    const figures = { serviceMs, mountMs, recordsReplayed: target.osd.stats().recordsReplayed, status: target.recovery.figures().status };
    await fs.umount();
    await kernel.umount(device, false);
    return figures;
  };
  try {
    await serve(); // the first mount: the MDT's own objects, its registration with the MGS
    const osd = await Osd.open(device);
    const tx = osd.begin();
    await tx.start();
    for (let w = 0; w < WRITERS; w++) {
      const fid = { seq: OBJECT_SEQ, oid: w + 1, ver: 0 };
      await tx.create(fid, { type: 'reg', mode: 0o644, uid: 0, gid: 0 });
      await tx.indexInsert(ROOT_INDEX_FID, objectName(w), { fid, type: 'reg' });
    }
    await osd.waitSynced(tx.stop().txg);
    await osd.close(); // with a checkpoint: what follows is all the log holds

    for (const n of [0, ...RECORDS]) {
      const writer = startChild(['write', device, String(n)]);
      const bar = progress(`${label(n)} transactions, then SIGKILL`, Math.max(n, 1));
      const written = await writer.next('written', (l) => bar.update(Number(l.progress)));
      bar.update(n);
      bar.stop();
      await writer.kill();
      await rawLogRead(device); // the page cache holds what the writer wrote; both read from it
      const raw = [await rawLogRead(device), await rawLogRead(device)];
      const rawMs = (raw[0]!.ms + raw[1]!.ms) / 2;
      const r = await serve();
      if (r.status !== 'INACTIVE') info(`warning: recovery ${r.status} after ${label(n)}: a client of an earlier round was expected back`);
      info(`${label(n)} transactions (${Number(written.txgs)} txgs, ${(raw[0]!.bytes / 2 ** 20).toFixed(1)} MiB of log): mount ${r.mountMs.toFixed(0)} ms, service ${r.serviceMs.toFixed(0)} ms, ${r.recordsReplayed} records replayed; raw read ${rawMs.toFixed(1)} ms`);
      if (n === 0) continue;
      emit(latencyFigure(`recovery start to service, ${label(n)} transactions after the checkpoint`, r.serviceMs, 'ms', rawMs));
    }
  } finally {
    await clientNi.stop();
    await kernel.stop();
  }
}

// ---- 2. replayed client requests per second ------------------------------------------------

async function replayedRequests(): Promise<void> {
  const fsname = 'benchrpl';
  const mdtNid = '127.0.0.4@tcp';
  const mdt = join(root, 'rpl-mdt0');
  const ost = join(root, 'rpl-ost0');
  const [rundirMdt, rundirOst] = [join(root, 'run-mdt'), join(root, 'run-ost')];
  await mkdir(rundirMdt, { recursive: true });
  await mkdir(rundirOst, { recursive: true });
  await formatTarget(mdt, { fsname, mgs: true, mdt: true, index: 0 });
  await formatTarget(ost, { fsname, ost: true, index: 0, mgsNids: [mdtNid] });
  // A short window: a client that does not come back ends the run in a minute, not in five.
  const mdtArgs = ['kernel', '127.0.0.4', String(port), rundirMdt, 'recovery_time_soft=60,recovery_time_hard=180', mdt];
  let mdtKernel = startChild(mdtArgs);
  await mdtKernel.next('ready');
  const ostKernel = startChild(['kernel', '127.0.0.5', String(port), rundirOst, '-', ost]);
  await ostKernel.next('ready');
  const clients: Array<{ fs: FileSystem; ni: LNetNI }> = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const ni = await LNetNI.start({ nid: `127.0.0.${10 + i}@tcp`, port, warn: () => {} });
      const fs = await mount(`${mdtNid}:/${fsname}`, { ni, clientUuid: `bench-recovery-client-${i}`, requestDeadlineMs: 300_000, connectDeadlineMs: 60_000 });
      clients.push({ fs, ni });
      await fs.mkdir(`/c${i}`);
      await fs.writeFile(`/c${i}/warm`, ''); // the MDT has OST objects to hand out
    }
    mdtKernel.send('hold');
    await mdtKernel.next('held');
    // The first request after the hold takes the transno after the last one on disk: the one
    // a restarted target would lose if anything of its own took that transno before the
    // clients replay (the MGS's registration at mount did, until the MGS got a last_rcvd of
    // its own). Checked below: it must be there.
    await clients[0]!.fs.mkdir('/c0/first');
    const firstTransno = clients[0]!.fs.mdc.import.replayList.entries().at(-1)!.transno;
    const keptAfter = (after: bigint): number =>
      clients.reduce((sum, { fs }) => sum + fs.mdc.import.replayList.entries().filter((e) => e.transno > after).length, 0);

    const total = CLIENTS * REQUESTS;
    const bar = progress(`fresh creates, ${CLIENTS} clients`, total);
    let done = 0;
    const t0 = performance.now();
    await Promise.all(clients.map(async ({ fs }, i) => {
      for (let k = 0; k < REQUESTS; k++) {
        await (await fs.open(`/c${i}/f${k}`, 'w')).close();
        if (++done % 100 === 0) bar.update(done);
      }
    }));
    const freshSeconds = (performance.now() - t0) / 1000;
    bar.stop();
    const kept = keptAfter(firstTransno);
    const dropped = clients.reduce((sum, { fs }) => sum + fs.mdc.import.replayList.dropped, 0);
    if (dropped > 0) info(`warning: the clients' replay lists dropped ${dropped} requests (their limit)`);

    await mdtKernel.kill();
    const t1 = performance.now();
    mdtKernel = startChild(mdtArgs);
    const mounted = await mdtKernel.next('mounted');
    const { recovery } = (await mdtKernel.next('recovery')) as { recovery: Record<string, number | string> };
    const restartMs = performance.now() - t1;
    const replayed = Number(recovery.replayed);
    const durationMs = Number(recovery.durationMs);
    const fromAllMs = Number(recovery.fromAllConnectedMs);
    const replayedFromAll = replayed - Number(recovery.replayedWhenAllConnected);
    info(`${total} creates fresh in ${freshSeconds.toFixed(2)} s (${(total / freshSeconds).toFixed(0)}/s): ${kept} requests kept by the clients; `
      + `restart: mount ${Number(mounted.mountMs).toFixed(0)} ms (last transno ${String(mounted.lastTransno)}, first kept ${firstTransno}), `
      + `recovery ${durationMs.toFixed(0)} ms (${Number(recovery.fromFirstConnectMs).toFixed(0)} ms from the first reconnect, ${fromAllMs.toFixed(0)} ms from the last: `
      + `${replayedFromAll} replays in it), `
      + `${replayed} replayed, ${recovery.completed}/${recovery.expected} clients, ${recovery.evicted} evicted; kill to end of recovery ${restartMs.toFixed(0)} ms`);
    // Every create is there once (a readdir waits for the client's recovery).
    for (const [i, { fs }] of clients.entries()) {
      const names = new Set((await fs.readdir(`/c${i}`)) as string[]);
      const missing = Array.from({ length: REQUESTS }, (_, k) => `f${k}`).filter((n) => !names.has(n));
      if (missing.length > 0 || names.size - (i === 0 ? 1 : 0) !== REQUESTS + 1) {
        throw new Error(`client ${i}: ${missing.length} creates missing after recovery (${missing.slice(0, 5).join(', ')}), ${names.size} entries in /c${i}`);
      }
      if (i === 0 && !names.has('first')) throw new Error(`the first request after the hold (mkdir /c0/first, transno ${firstTransno}) was lost: the restarted target gave its transno away`);
    }
    const freshRate = kept / freshSeconds;
    emit(rateFigure(`recovery replayed requests, ${CLIENTS} clients`, (replayed * 1000) / durationMs, 'requests/s', freshRate));
    emit(rateFigure(`recovery replay once every client is back, ${CLIENTS} clients`, (replayedFromAll * 1000) / fromAllMs, 'requests/s', freshRate));
  } finally {
    for (const { fs, ni } of clients) {
      await fs.umount({ force: true }).catch(() => {});
      await ni.stop();
    }
    await mdtKernel.stop();
    await ostKernel.stop();
  }
}

if (opts.only !== 'replay') await startToService();
if (opts.only !== 'start') await replayedRequests();
