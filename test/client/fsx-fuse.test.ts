// An exerciser in the style of fsx (issue 6's proof of data integrity): random writes of many
// sizes (offsets past the end make holes), truncates up and down, reads, size checks (fstat and
// stat by path, fsx's "mapped" size check without mmap, which Node lacks), fsyncs and
// close/reopen, on ONE file through the FUSE mount, each read compared with an in-memory model.
// The file is open twice: read-write (through the kernel's page cache) and write-only (which
// bypasses it, FOPEN_DIRECT_IO): every other write goes through the write-only one, and the
// reads through the read-write one must see it, not the pages it cached.
// Now and then the file is closed and read whole through a second mount of the same file system.
// Then a shorter run on a file striped over both OSTs with 64 KiB stripes.
//
// LUSTRE_FSX_OPS sets the number of operations (default 10,000; the striped run does a fifth),
// LUSTRE_FSX_SEED the seed. A failure prints the seed and the last operations.
import { constants } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { mount } from '../../src/client/index.js';
import { fuseAvailable, startCluster } from '../lib/cluster.js';
import { FILE_MAX, FsxFailure as Failure, ioSize, LOG_TAIL, pattern } from '../lib/fsx.js';
import { prng, seedFrom } from '../lib/prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Options {
  path: string;
  /** The same file through the other mount, read whole after a close. */
  otherPath: string;
  ops: number;
  seed: number;
}

/** Runs the exerciser; resolves with counts of what it did, or rejects with the seed and the log tail. */
async function fsx(o: Options): Promise<Record<string, number>> {
  const r = prng(o.seed);
  const model = Buffer.alloc(FILE_MAX);
  let size = 0;
  const log: string[] = [];
  const counts: Record<string, number> = { write: 0, directWrite: 0, read: 0, truncateUp: 0, truncateDown: 0, size: 0, fsync: 0, reopen: 0, otherMount: 0, holes: 0 };
  // Created empty when missing; an existing file (the striped one) must be empty.
  let fh: FileHandle = await open(o.path, constants.O_RDWR | constants.O_CREAT, 0o644);
  if ((await fh.stat()).size !== 0) throw new Error(`${o.path} is not empty`);
  let wfh: FileHandle = await open(o.path, constants.O_WRONLY);
  const reopen = async (): Promise<void> => {
    fh = await open(o.path, 'r+');
    wfh = await open(o.path, constants.O_WRONLY);
  };
  const fail = (op: number, what: string): never => {
    throw new Failure(`fsx op ${op}: ${what}; seed ${o.seed} (LUSTRE_FSX_SEED=${o.seed} reproduces it)`, log.slice(-LOG_TAIL));
  };
  const compare = (op: number, got: Buffer, offset: number, where: string): void => {
    const want = model.subarray(offset, offset + got.length);
    if (got.equals(want)) return;
    let i = 0;
    while (got[i] === want[i]) i++;
    fail(op, `${where}: byte ${offset + i} is ${got[i]}, the model says ${want[i]} (read of ${got.length} at ${offset}, file size ${size})`);
  };
  try {
    for (let op = 1; op <= o.ops; op++) {
      const p = r.next();
      if (p < 0.38) {
        const length = Math.min(ioSize(r), FILE_MAX - 1);
        // Past the end now and then, which leaves a hole.
        const reach = Math.min(FILE_MAX - length, size + (r.next() < 0.2 ? 2 * MiB : 0));
        const offset = r.int(reach + 1);
        if (offset > size) counts.holes!++;
        // By the op's parity, which leaves the sequence of a seed as it was before.
        const direct = (op & 1) === 1;
        log.push(`${op} write ${offset}..${offset + length} (${length}) size ${size} -> ${Math.max(size, offset + length)}${direct ? ' write-only' : ''}`);
        const data = pattern(op, offset, length);
        const { bytesWritten } = await (direct ? wfh : fh).write(data, 0, length, offset);
        if (direct) counts.directWrite!++;
        if (bytesWritten !== length) fail(op, `write of ${length} wrote ${bytesWritten}`);
        data.copy(model, offset);
        size = Math.max(size, offset + length);
        counts.write!++;
      } else if (p < 0.76) {
        const length = ioSize(r);
        const offset = r.int(size + 64 * KiB);
        log.push(`${op} read ${offset}..${offset + length} (${length}) size ${size}`);
        const into = Buffer.alloc(length);
        const { bytesRead } = await fh.read(into, 0, length, offset);
        const expected = Math.max(0, Math.min(length, size - offset));
        if (bytesRead !== expected) fail(op, `read of ${length} at ${offset} gave ${bytesRead} bytes, the model ${expected} (size ${size})`);
        compare(op, into.subarray(0, bytesRead), offset, 'read');
        counts.read!++;
      } else if (p < 0.86) {
        const down = r.next() < 0.5;
        const to = down ? r.int(size + 1) : size + r.int(FILE_MAX - size + 1);
        log.push(`${op} truncate ${size} -> ${to}`);
        await fh.truncate(to);
        if (to < size) model.fill(0, to, size);
        counts[to < size ? 'truncateDown' : 'truncateUp']!++;
        size = to;
      } else if (p < 0.94) {
        log.push(`${op} size check ${size}`);
        const [byHandle, byPath] = await Promise.all([fh.stat(), stat(o.path)]);
        if (byHandle.size !== size) fail(op, `fstat gives size ${byHandle.size}, the model ${size}`);
        if (byPath.size !== size) fail(op, `stat by path gives size ${byPath.size}, the model ${size}`);
        counts.size!++;
      } else if (p < 0.97) {
        log.push(`${op} fsync`);
        await fh.sync();
        counts.fsync!++;
      } else if (p < 0.998) {
        log.push(`${op} close and reopen`);
        await Promise.all([fh.close(), wfh.close()]);
        await reopen();
        counts.reopen!++;
      } else {
        log.push(`${op} close, read whole through the other mount (${size}), reopen`);
        await Promise.all([fh.close(), wfh.close()]);
        const whole = await readFile(o.otherPath);
        if (whole.length !== size) fail(op, `the other mount reads ${whole.length} bytes, the model has ${size}`);
        compare(op, whole, 0, 'read through the other mount');
        await reopen();
        counts.otherMount!++;
      }
    }
    // The end: the whole file through this mount after a close.
    await Promise.all([fh.close(), wfh.close()]);
    const whole = await readFile(o.path);
    if (whole.length !== size) fail(o.ops, `the file is ${whole.length} bytes at the end, the model ${size}`);
    compare(o.ops, whole, 0, 'final read');
  } finally {
    await Promise.all([fh.close().catch(() => undefined), wfh.close().catch(() => undefined)]);
  }
  return counts;
}

if (!fuseAvailable()) {
  t.comment('skipped: FUSE mounts need /dev/fuse and root');
  t.pass('skipped: FUSE mounts need /dev/fuse and root');
} else {
  const ops = Number(process.env.LUSTRE_FSX_OPS ?? 10_000);
  const seed = seedFrom('LUSTRE_FSX_SEED');
  t.comment(`fsx seed ${seed} (LUSTRE_FSX_SEED), ${ops} operations (LUSTRE_FSX_OPS)`);
  const c = await startCluster(t);
  const mnt = await c.mountClient();
  const mnt2 = await c.mountClient();

  const run = async (t: Test, name: string, count: number, runSeed: number): Promise<void> => {
    try {
      const counts = await fsx({ path: join(mnt, name), otherPath: join(mnt2, name), ops: count, seed: runSeed });
      t.comment(`${name}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      t.ok(counts.write! > count / 4 && counts.read! > count / 4, `${count} operations, each read as the model says (seed ${runSeed})`);
      t.ok(counts.directWrite! > count / 16 && counts.directWrite! < counts.write!, 'writes through both the write-only and the read-write open');
      t.ok(counts.truncateUp! > 0 && counts.truncateDown! > 0 && counts.holes! > 0, 'truncates both ways and writes past the end');
    } catch (err) {
      if (!(err instanceof Failure)) throw Object.assign(err as Error, { message: `${(err as Error).message} (fsx seed ${runSeed})` });
      t.comment(`the last ${err.tail.length} operations (seed ${runSeed}):\n${err.tail.join('\n')}`);
      t.fail(err.message);
    }
  };

  t.test('fsx on one file (stripe count 1)', async (t) => {
    await run(t, 'fsx.file', ops, seed);
  });

  t.test('fsx on a file striped over 2 OSTs with 64 KiB stripes', async (t) => {
    // The layout is set through the library (lfs setstripe on a new file), then the file is
    // exercised through the FUSE mount.
    const fs = await mount(c.spec, { port: c.port, nid: '127.0.0.3@tcp' });
    t.teardown(() => fs.umount({ force: true }).catch(() => undefined));
    const h = await fs.open('/fsx.striped', 'wx', 0o644, { stripeCount: 2, stripeSize: 64 * KiB });
    await h.close();
    const layout = await fs.layout('/fsx.striped');
    t.equal(layout?.stripeSize, 64 * KiB, 'stripe size 64 KiB');
    t.equal(layout?.objects.length, 2, 'two stripes');
    t.same(new Set(layout?.objects.map((x) => x.ostIndex)), new Set([0, 1]), 'one on each OST');
    await fs.umount();
    await run(t, 'fsx.striped', Math.max(1, Math.floor(ops / 5)), (seed + 1) >>> 0);
  });
}
