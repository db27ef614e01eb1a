// The FUSE layer alone: the passthrough of a local directory mounted through FuseSession, and a
// file system in this process's memory (MemoryFs: the FUSE layer's floor, nothing behind the
// session), against the same local directory used directly, in the same run. Sequential 1 MiB
// writes (then fdatasync) and reads of one file of FUSE_BENCH_MIB (default 1024) MiB, and
// creates, stats and unlinks of FUSE_BENCH_FILES (default 10,000) empty files in one directory.
// FUSE_BENCH_READERS sets the sessions' reader threads; FUSE_BENCH_WRITEBACK=1 turns the kernel's
// writeback cache on.
//
// The IO runs in a child process (the same small script for both sides): this process is the
// FUSE daemon and must not wait on its own mount. Before each read, the file's cached pages are
// dropped (dd iflag=nocache) on the backing directory, so both reads come from the disk's cache
// state alike and the FUSE read really reaches the daemon (MemoryFs has no backing file: the
// kernel drops a FUSE file's pages at each open, so its reads reach it too).
//
// Needs root and /dev/fuse. One JSON line per figure on stdout (bench/lib.ts's emit).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseSession, MemoryFs, Passthrough, fuseMountAt, type FuseOps } from '../src/client/fuse/index.js';
import { emit, progress, rateFigure } from './lib.js';

const MIB = Number(process.env.FUSE_BENCH_MIB ?? 1024);
const FILES = Number(process.env.FUSE_BENCH_FILES ?? 10_000);
/** Reader threads of the session (FUSE_BENCH_READERS), when not its default. */
const READERS = process.env.FUSE_BENCH_READERS === undefined ? undefined : Number(process.env.FUSE_BENCH_READERS);
/** FUSE_BENCH_WRITEBACK=1 mounts with the kernel's writeback cache. */
const WRITEBACK = process.env.FUSE_BENCH_WRITEBACK === '1';

// The child: runs one phase, prints "progress N" lines and finally "result SECONDS".
const CHILD = `
const fs = require('node:fs');
const [phase, target, countArg] = process.argv.slice(1);
const count = Number(countArg);
const t0 = process.hrtime.bigint();
const step = (i) => { if (i % 64 === 0) process.stdout.write('progress ' + i + '\\n'); };
if (phase === 'write' || phase === 'read') {
  const buf = Buffer.alloc(1 << 20, 0x5a);
  const fd = fs.openSync(target, phase === 'write' ? 'w' : 'r');
  for (let i = 0; i < count; i++) {
    if (phase === 'write') fs.writeSync(fd, buf, 0, buf.length, i * buf.length);
    else fs.readSync(fd, buf, 0, buf.length, i * buf.length);
    step(i);
  }
  if (phase === 'write') fs.fdatasyncSync(fd);
  fs.closeSync(fd);
} else {
  for (let i = 0; i < count; i++) {
    const p = target + '/f' + i;
    if (phase === 'create') fs.closeSync(fs.openSync(p, 'wx'));
    else if (phase === 'stat') fs.statSync(p);
    else fs.unlinkSync(p);
    step(i);
  }
}
process.stdout.write('result ' + Number(process.hrtime.bigint() - t0) / 1e9 + '\\n');
`;

/** Runs one phase in a child process with a progress bar; resolves to its seconds. */
function phase(label: string, name: string, target: string, count: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const bar = progress(label, count);
    const child = spawn(process.execPath, ['-e', CHILD, name, target, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let seconds: number | undefined;
    let pending = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      pending += s;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) {
        const [k, v] = l.split(' ');
        if (k === 'progress') bar.update(Number(v));
        else if (k === 'result') seconds = Number(v);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      bar.stop();
      if (code === 0 && seconds !== undefined) resolve(seconds);
      else reject(new Error(`${label}: child exited ${code}`));
    });
  });
}

function dropCache(file: string): void {
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

interface Side { write: number; read: number; creates: number; stats: number; unlinks: number }

/** backingFile: where the file written is stored, to drop from the page cache before the read (none in memory). */
async function measure(label: string, dir: string, backingFile?: string): Promise<Side> {
  const file = join(dir, 'seq.bin');
  const write = MIB / await phase(`${label} write 1 MiB`, 'write', file, MIB);
  if (backingFile) dropCache(backingFile);
  const read = MIB / await phase(`${label} read 1 MiB`, 'read', file, MIB);
  await rm(backingFile ?? file, { force: true });
  const files = join(dir, 'files');
  await mkdir(files);
  const creates = FILES / await phase(`${label} create`, 'create', files, FILES);
  const stats = FILES / await phase(`${label} stat`, 'stat', files, FILES);
  const unlinks = FILES / await phase(`${label} unlink`, 'unlink', files, FILES);
  return { write, read, creates, stats, unlinks };
}

/** The figures of one FUSE side against the local directory's. */
function emitSide(name: string, fuse: Side, local: Side): void {
  emit(rateFigure(`${name} seq write 1 MiB, ${MIB} MiB`, fuse.write, 'MiB/s', local.write));
  emit(rateFigure(`${name} seq read 1 MiB, ${MIB} MiB`, fuse.read, 'MiB/s', local.read));
  emit(rateFigure(`${name} creates, ${FILES} files`, fuse.creates, 'creates/s', local.creates));
  emit(rateFigure(`${name} stats, ${FILES} files`, fuse.stats, 'stats/s', local.stats));
  emit(rateFigure(`${name} unlinks, ${FILES} files`, fuse.unlinks, 'unlinks/s', local.unlinks));
}

/** Mounts `ops` at `mnt` for the time of `body`, then unmounts it. */
async function mounted<T>(mnt: string, ops: FuseOps, subtype: string, body: (session: FuseSession) => Promise<T>): Promise<T> {
  const session = await FuseSession.mount(mnt, ops, { fsName: 'bench', subtype, ...(READERS !== undefined && { readers: READERS }), writebackCache: WRITEBACK });
  try {
    return await body(session);
  } finally {
    if (fuseMountAt(mnt)) await session.unmount({ lazy: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:fuse mounts with mount -o fd=3 and needs root');
  const top = await mkdtemp(join(tmpdir(), 'bench-fuse-'));
  const direct = join(top, 'direct');
  const back = join(top, 'back');
  const mnt = join(top, 'mnt');
  await Promise.all([direct, back, mnt].map((d) => mkdir(d)));
  try {
    const wb = WRITEBACK ? ' (writeback cache)' : '';
    const local = await measure('local', direct, join(direct, 'seq.bin'));
    await mounted(mnt, new Passthrough(back), 'passthrough', async (session) => {
      emitSide(`fuse passthrough${wb}`, await measure('fuse', mnt, join(back, 'seq.bin')), local);
      process.stderr.write(`largest write seen by the daemon: ${session.stats.largestWriteBytes} bytes\n`);
    });
    await mounted(mnt, new MemoryFs(), 'memory', async () => emitSide(`fuse memory${wb}`, await measure('memory', mnt), local));
  } finally {
    await rm(top, { recursive: true, force: true });
  }
}

await main();
