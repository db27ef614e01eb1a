// bench:fs — the file system as a user sees it, beside a local directory measured in the same run.
//   sequential write then read of BENCH_FS_MIB (2048) MiB in 1 MiB IO, stripe count 1 and 2:
//     through the client library (mount() in this process) and through the FUSE mount (plain
//     node:fs calls on the mount point, served by the kernel process), against the same IO on a
//     local directory on the same disk;
//   re-read of the file just read, and a second stat of each file: what the client caches under
//     its locks (LDLM) is served from memory;
//   create, stat and unlink of BENCH_FS_FILES (10,000) empty files in one directory, one call
//     at a time (BENCH_FS_META_PARALLEL at once), the same three ways. Through FUSE and on the
//     local directory one at a time the calls are synchronous system calls (node:fs's *Sync),
//     as a tool in C makes them (the peers' figures in ../shared/STACK.md were measured so: its
//     local directory's 130,000 unlinks and 600,000 stats per second), made by a worker thread
//     (see SYNC_WORKER). The promise API would add a thread-pool round trip to each call on
//     both sides (with it, 620-695 FUSE creates/s against 806-841 with *Sync, the same server,
//     2026-11-27).
// After each file's unlink the bench waits until the OSTs report its space free again (the MDT
// destroys the objects once the unlink commits): the next write is not timed under that cleanup.
// A write is open, the writes, close (and fsync before the close with BENCH_FS_FSYNC=1), on
// every side alike: the clock stops when close returns. Lustre's close sends what is dirty and
// waits for the OSTs to acknowledge it; a local close leaves it in the page cache. Reads follow
// at once, so both sides read from memory (the OSTs' page cache, the local page cache).
//
// The servers (MGS+MDT, two OSTs) and the FUSE client run in one lustre.kernel-like child
// process (bench/fs/server.ts), never in this one: the FUSE mount must not be driven by the
// process that serves it, and two processes use both cores. Each figure is measured
// BENCH_FS_RUNS (1) times and the median printed; the runs' values go to stderr.
// BENCH_FS_ONLY=lib,fuse,io,meta narrows what runs; BENCH_FS_PROF=DIR profiles the server
// process (node --cpu-prof); BENCH_FS_DIR is where devices and the local directory live.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, open, rm, stat as localStat, unlink as localUnlink } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { mount, type FileSystem } from '../src/client/index.js';
import { freePort } from '../test/lib/net.js';
import { KERNEL_NODE_FLAGS } from '../src/control/kernel/daemon.js';
import { emit, progress, rateFigure } from './lib.js';

const MiB = 1024 * 1024;
const IO_BYTES = MiB;
const TOTAL_BYTES = Number(process.env.BENCH_FS_MIB ?? 2048) * MiB;
const FILES = Number(process.env.BENCH_FS_FILES ?? 10_000);
const RUNS = Number(process.env.BENCH_FS_RUNS ?? 1);
const META_PARALLEL = Number(process.env.BENCH_FS_META_PARALLEL ?? 1);
const FSYNC = process.env.BENCH_FS_FSYNC === '1';
const ONLY = new Set((process.env.BENCH_FS_ONLY ?? 'lib,fuse,io,meta').split(','));
const SERVER_IP = process.env.BENCH_FS_SERVER_IP ?? '127.0.0.8';
const CLIENT_NID = process.env.BENCH_FS_CLIENT_NID ?? '127.0.0.9@tcp';
const STRIPE_COUNTS = [1, 2] as const;

/** What one benchmark run needs of a file system: the library's and node:fs/promises' common ground. */
interface Handle {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<unknown>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}
interface Side {
  name: 'library' | 'fuse' | 'local';
  /** A directory for this run's files, with files striped over `stripeCount` OSTs where striping exists. */
  dir(name: string, stripeCount?: number): Promise<string>;
  open(path: string, flags: 'w' | 'r'): Promise<Handle>;
  stat(path: string): Promise<unknown>;
  unlink(path: string): Promise<void>;
  /** Its paths are the kernel's: the metadata calls may be made as synchronous system calls (SYNC_WORKER). */
  kernelPaths?: boolean;
}

function localSide(name: 'fuse' | 'local', root: string, striped?: FileSystem): Side {
  return {
    name,
    async dir(d, stripeCount) {
      // Through FUSE the stripe count is the directory's default, set as `lfs setstripe -c N DIR` does.
      if (striped && stripeCount !== undefined) await mkdirStriped(striped, `/${name}-${d}`, stripeCount);
      else await mkdir(join(root, `${name}-${d}`));
      return join(root, `${name}-${d}`);
    },
    open: (p, flags) => open(p, flags),
    stat: (p) => localStat(p),
    unlink: (p) => localUnlink(p),
    kernelPaths: true,
  };
}

function librarySide(fs: FileSystem): Side {
  return {
    name: 'library',
    async dir(d, stripeCount) {
      if (stripeCount !== undefined) await mkdirStriped(fs, `/library-${d}`, stripeCount);
      else await fs.mkdir(`/library-${d}`);
      return `/library-${d}`;
    },
    open: (p, flags) => fs.open(p, flags) as Promise<Handle>,
    stat: (p) => fs.stat(p),
    unlink: (p) => fs.unlink(p),
  };
}

/** mkdir with a default layout: `lfs setstripe -c N -S 1M` on a new directory. */
async function mkdirStriped(fs: FileSystem, path: string, stripeCount: number): Promise<void> {
  await fs.mkdir(path);
  const dir = await fs.mdc.lookup(fs.core.rootFid, path.slice(1));
  await fs.mdc.setStripe(dir.fid, { stripeCount, stripeSize: MiB });
}

async function sequentialWrite(side: Side, path: string, label: string): Promise<number> {
  const block = Buffer.alloc(IO_BYTES, 0x5a);
  const bar = progress(label, TOTAL_BYTES);
  const start = performance.now();
  const fh = await side.open(path, 'w');
  try {
    for (let at = 0; at < TOTAL_BYTES; at += IO_BYTES) {
      await fh.write(block, 0, IO_BYTES, at);
      if ((at / IO_BYTES) % 64 === 0) bar.update(at);
    }
    if (FSYNC) await fh.sync();
  } finally {
    await fh.close();
    bar.stop();
  }
  return TOTAL_BYTES / MiB / ((performance.now() - start) / 1000);
}

async function sequentialRead(side: Side, path: string, label: string): Promise<number> {
  const block = Buffer.alloc(IO_BYTES);
  const bar = progress(label, TOTAL_BYTES);
  const start = performance.now();
  const fh = await side.open(path, 'r');
  let total = 0;
  try {
    for (let at = 0; at < TOTAL_BYTES; at += IO_BYTES) {
      const { bytesRead } = await fh.read(block, 0, IO_BYTES, at);
      total += bytesRead;
      if ((at / IO_BYTES) % 64 === 0) bar.update(at);
    }
  } finally {
    await fh.close();
    bar.stop();
  }
  if (total !== TOTAL_BYTES) throw new Error(`${side.name}: read ${total} bytes of ${TOTAL_BYTES}`);
  if (block[0] !== 0x5a || block[IO_BYTES - 1] !== 0x5a) throw new Error(`${side.name}: read back other bytes than written`);
  return TOTAL_BYTES / MiB / ((performance.now() - start) / 1000);
}

/** Runs fn(i) for i < count, META_PARALLEL at a time; returns calls per second. */
async function perSecond(label: string, count: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const bar = progress(label, count);
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: META_PARALLEL }, async () => {
    for (let i = next++; i < count; i = next++) {
      await fn(i);
      if (i % 256 === 0) bar.update(i);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  bar.stop();
  return count / seconds;
}

/**
 * The synchronous metadata calls, in a worker thread: a call on the FUSE mount blocks its
 * thread until the kernel process answers, and the answer may wait for the library mount of
 * this process (the OSTs destroying the objects of the files it unlinked call back its locks
 * while the MDT waits for their precreated objects): on the main thread the two waited for each
 * other until the OST evicted the library's client. workerData { op, dir, count }; posts
 * { done } every 256 calls, then { seconds } of the whole loop.
 */
const SYNC_WORKER = `
const { parentPort, workerData: { op, dir, count } } = require('node:worker_threads');
const fs = require('node:fs');
const call = op === 'create' ? (p) => fs.closeSync(fs.openSync(p, 'w')) : op === 'stat' ? (p) => fs.statSync(p) : (p) => fs.unlinkSync(p);
const start = performance.now();
for (let i = 0; i < count; i++) {
  call(dir + '/f' + i);
  if (i % 256 === 0) parentPort.postMessage({ done: i });
}
parentPort.postMessage({ seconds: (performance.now() - start) / 1000 });
`;

/** `op` of DIR/f0 .. f<count-1> as synchronous system calls (SYNC_WORKER); returns calls per second. */
function perSecondSync(label: string, op: 'create' | 'stat' | 'unlink', dir: string, count: number): Promise<number> {
  const bar = progress(label, count);
  return new Promise<number>((resolve, reject) => {
    const worker = new Worker(SYNC_WORKER, { eval: true, workerData: { op, dir, count } });
    worker.on('message', (m: { done?: number; seconds?: number }) => {
      if (m.done !== undefined) bar.update(m.done);
      if (m.seconds !== undefined) resolve(count / m.seconds);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${label}: the worker exited with ${code} before it was done`)));
  }).finally(() => bar.stop());
}

type Results = Map<string, { unit: string; values: number[]; baselines: number[] }>;

function record(results: Results, bench: string, unit: string, value: number, baseline: number): void {
  const r = results.get(bench) ?? { unit, values: [], baselines: [] };
  r.values.push(value);
  r.baselines.push(baseline);
  results.set(bench, r);
  process.stderr.write(`  ${bench}: ${value.toFixed(0)} ${unit} (local ${baseline.toFixed(0)})\n`);
}

/** How long settle() waits at most for the OSTs to give back a deleted file's space. */
const SETTLE_MAX_MS = 30_000;

/** The bytes the OSTs report free. */
async function freeBytes(fs: FileSystem): Promise<number> {
  const s = await fs.statfs('/');
  return s.bfree * s.bsize;
}

/**
 * Waits until the OSTs report as much free as `target` (what they did before the file was
 * written) within one IO, the deleted file's objects destroyed: the MDT sends the destroys once
 * the unlink's txg commits, up to a second later, and the OSTs then drop 2 GiB of data. So one
 * run's cleanup does not run under the next one's timing. Gives up after SETTLE_MAX_MS, saying so.
 */
async function settle(fs: FileSystem, target: number): Promise<void> {
  const start = await freeBytes(fs);
  const bar = progress('waiting for the OSTs to free it', Math.max(0, target - start));
  const deadline = performance.now() + SETTLE_MAX_MS;
  try {
    for (let free = start; ; free = await freeBytes(fs)) {
      bar.update(Math.max(0, free - start));
      if (free >= target - IO_BYTES) return;
      if (performance.now() > deadline) {
        process.stderr.write(`the OSTs freed ${Math.round((free - start) / MiB)} of ${Math.round((target - start) / MiB)} MiB in ${SETTLE_MAX_MS / 1000} s: going on\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    bar.stop();
  }
}

async function ioRun(fs: FileSystem, sides: Side[], local: Side, run: number, results: Results): Promise<void> {
  const ldir = await local.dir(`io${run}`);
  const lpath = join(ldir, 'seq');
  const localWrite = await sequentialWrite(local, lpath, 'local write');
  const localRead = await sequentialRead(local, lpath, 'local read');
  const localReread = await sequentialRead(local, lpath, 'local re-read');
  await local.unlink(lpath);
  for (const side of sides) {
    for (const stripeCount of STRIPE_COUNTS) {
      const path = `${await side.dir(`io${run}-c${stripeCount}`, stripeCount)}/seq`;
      const free = await freeBytes(fs);
      const write = await sequentialWrite(side, path, `${side.name} write, stripe count ${stripeCount}`);
      const read = await sequentialRead(side, path, `${side.name} read, stripe count ${stripeCount}`);
      // Read again at once: what the client's cache (under its extent locks) keeps is read from memory.
      const reread = await sequentialRead(side, path, `${side.name} re-read, stripe count ${stripeCount}`);
      await side.unlink(path);
      await settle(fs, free);
      record(results, `fs ${side.name} write 1 MiB, stripe count ${stripeCount}`, 'MiB/s', write, localWrite);
      record(results, `fs ${side.name} read 1 MiB, stripe count ${stripeCount}`, 'MiB/s', read, localRead);
      record(results, `fs ${side.name} re-read 1 MiB (cached), stripe count ${stripeCount}`, 'MiB/s', reread, localReread);
    }
  }
}

async function metaOne(side: Side, run: number): Promise<{ creates: number; stats: number; restats: number; unlinks: number }> {
  const dir = await side.dir(`meta${run}`);
  const name = (i: number) => `${dir}/f${i}`;
  const sync = side.kernelPaths === true && META_PARALLEL === 1;
  const timed = (label: string, op: 'create' | 'stat' | 'unlink', fn: (i: number) => Promise<unknown>): Promise<number> =>
    (sync ? perSecondSync(`${side.name} ${label}`, op, dir, FILES) : perSecond(`${side.name} ${label}`, FILES, fn));
  const creates = await timed('create', 'create', async (i) => (await side.open(name(i), 'w')).close());
  const stats = await timed('stat', 'stat', (i) => side.stat(name(i)));
  // A second pass: attributes the client caches (under its inodebits locks) are served from memory.
  const restats = await timed('stat again', 'stat', (i) => side.stat(name(i)));
  const unlinks = await timed('unlink', 'unlink', (i) => side.unlink(name(i)));
  return { creates, stats, restats, unlinks };
}

async function metaRun(sides: Side[], local: Side, run: number, results: Results): Promise<void> {
  const base = await metaOne(local, run);
  for (const side of sides) {
    const m = await metaOne(side, run);
    for (const op of ['creates', 'stats', 'unlinks'] as const) {
      record(results, `fs ${side.name} ${op.slice(0, -1)} of ${FILES} files`, `${op}/s`, m[op], base[op]);
    }
    record(results, `fs ${side.name} stat of ${FILES} cached files`, 'stats/s', m.restats, base.restats);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function startServer(root: string, mountpoint: string): Promise<{ child: ChildProcess; spec: string; fuse: boolean; port: number }> {
  const port = await freePort();
  const prof = process.env.BENCH_FS_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_FS_PROF}`] : [];
  const child = spawn(process.execPath, [...KERNEL_NODE_FLAGS, ...prof, '--import=tsx', new URL('fs/server.ts', import.meta.url).pathname,
    SERVER_IP, String(port), root, mountpoint], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ready = await new Promise<{ spec: string; fuse: boolean }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench/fs server exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(JSON.parse(line)));
  });
  return { child, port, ...ready };
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(process.env.BENCH_FS_DIR ?? tmpdir(), 'bench-fs-'));
  const mountpoint = join(root, 'mnt');
  const localRoot = join(root, 'local');
  await mkdir(localRoot);
  const server = await startServer(join(root, 'servers'), mountpoint);
  let fs: FileSystem | undefined;
  try {
    fs = await mount(server.spec, { nid: CLIENT_NID, port: server.port });
    const sides: Side[] = [];
    if (ONLY.has('lib')) sides.push(librarySide(fs));
    if (ONLY.has('fuse')) {
      if (server.fuse) sides.push(localSide('fuse', mountpoint, fs));
      else process.stderr.write('FUSE is not available here: no FUSE figures\n');
    }
    const local = localSide('local', localRoot);
    const results: Results = new Map();
    const load = [loadavg()[0]!];
    for (let run = 0; run < RUNS; run++) {
      process.stderr.write(`run ${run + 1} of ${RUNS} (load average ${loadavg()[0]!.toFixed(2)})\n`);
      if (ONLY.has('io')) await ioRun(fs, sides, local, run, results);
      if (ONLY.has('meta')) await metaRun(sides, local, run, results);
      load.push(loadavg()[0]!);
    }
    process.stderr.write(`load average (1 min) over the runs: ${load.map((l) => l.toFixed(2)).join(', ')} on ${availableParallelism()} cores\n`);
    for (const [bench, r] of results) emit(rateFigure(bench, median(r.values), r.unit, median(r.baselines)));
  } finally {
    await fs?.umount().catch(() => undefined);
    server.child.stdin!.end();
    await new Promise((r) => server.child.once('exit', r));
    await rm(root, { recursive: true, force: true });
  }
}

await main();
