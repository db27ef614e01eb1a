// The fsx-style exerciser across two FUSE mounts of one file system (issue 9's proof): one
// mount writes and truncates the file, the other reads it and checks its size (fstat of its
// open handle and stat by path), each read compared with an in-memory model; now and then the
// two swap roles, and the writer reads its own file too. Both keep the file open throughout,
// read-write and write-only (whose writes bypass the kernel's page cache): every other write
// goes through the writer's write-only open.
//
// Two runs of it:
// - synced: before the reading mount looks, the writer fsyncs what it wrote and the reader opens
//   the file afresh when the other mount changed it since its open. What holds with no locks:
//   a client keeps written data until fsync or close, and a mount keeps pages it read while
//   the file stays open.
// - coherent: no fsync, no reopen; what one mount wrote is what the other reads next, as
//   Lustre's locks make it (a write's lock revokes the reader's, whose kernel drops its pages;
//   a read of a file whose locks do not cover it all asks its size first).
//
// LUSTRE_FSX_OPS sets the number of operations of each run (default 10,000), LUSTRE_FSX_SEED
// the seed. A failure prints the seed and the last
// operations.
import { constants } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { fuseAvailable, startCluster } from '../lib/cluster.js';
import { FILE_MAX, FsxFailure, ioSize, LOG_TAIL, pattern } from '../lib/fsx.js';
import { prng, seedFrom } from '../lib/prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Options {
  /** The one file through each of the two mounts. */
  paths: readonly [string, string];
  ops: number;
  seed: number;
  /** Fsync and reopen before the other mount looks (see the head of the file). */
  synced: boolean;
  /** What reproduces this run (the environment a failure names). */
  reproduce: string;
}

/** Runs the exerciser; resolves with counts of what it did, or rejects with the seed and the log tail. */
async function fsxTwoMounts(o: Options): Promise<Record<string, number>> {
  const r = prng(o.seed);
  const model = Buffer.alloc(FILE_MAX);
  let size = 0;
  const log: string[] = [];
  const counts: Record<string, number> = {
    write: 0, directWrite: 0, read: 0, ownRead: 0, truncateUp: 0, truncateDown: 0, size: 0, swap: 0, holes: 0, fsync: 0, reopen: 0,
  };
  const fh: FileHandle[] = [];
  fh.push(await open(o.paths[0], constants.O_RDWR | constants.O_CREAT, 0o644));
  fh.push(await open(o.paths[1], 'r+'));
  if ((await fh[0]!.stat()).size !== 0) throw new Error(`${o.paths[0]} is not empty`);
  const wfh: FileHandle[] = [await open(o.paths[0], constants.O_WRONLY), await open(o.paths[1], constants.O_WRONLY)];
  /** The mount that writes; the other reads. */
  let writer = 0;
  /** Whether mount i wrote since its last fsync (synced run). */
  const dirty = [false, false];
  /** Whether mount i's handle was opened before the other mount's last change (synced run). */
  const stale = [false, false];
  const fail = (op: number, what: string): never => {
    throw new FsxFailure(`fsx op ${op}: ${what}; seed ${o.seed} (${o.reproduce} reproduces it)`, log.slice(-LOG_TAIL));
  };
  const compare = (op: number, got: Buffer, offset: number, where: string): void => {
    const want = model.subarray(offset, offset + got.length);
    if (got.equals(want)) return;
    let i = 0;
    while (got[i] === want[i]) i++;
    fail(op, `${where}: byte ${offset + i} is ${got[i]}, the model says ${want[i]} (read of ${got.length} at ${offset}, file size ${size})`);
  };
  /** Before mount `i` looks at the file (synced run): the other's data fsynced, its own handle reopened if stale. */
  const settle = async (i: number): Promise<void> => {
    if (!o.synced) return;
    const other = 1 - i;
    if (dirty[other]) {
      await fh[other]!.sync();
      dirty[other] = false;
      counts.fsync!++;
    }
    if (stale[i]) {
      await fh[i]!.close();
      fh[i] = await open(o.paths[i]!, 'r+');
      stale[i] = false;
      counts.reopen!++;
    }
  };
  const changed = (): void => {
    dirty[writer] = true;
    stale[1 - writer] = true;
  };
  const read = async (op: number, i: number, what: string): Promise<void> => {
    const length = ioSize(r);
    const offset = r.int(size + 64 * KiB);
    log.push(`${op} ${what} on mount ${i + 1}: ${offset}..${offset + length} (${length}) size ${size}`);
    const into = Buffer.alloc(length);
    const { bytesRead } = await fh[i]!.read(into, 0, length, offset);
    const expected = Math.max(0, Math.min(length, size - offset));
    if (bytesRead !== expected) fail(op, `${what} on mount ${i + 1} of ${length} at ${offset} gave ${bytesRead} bytes, the model ${expected} (size ${size})`);
    compare(op, into.subarray(0, bytesRead), offset, `${what} on mount ${i + 1}`);
  };
  try {
    for (let op = 1; op <= o.ops; op++) {
      const reader = 1 - writer;
      const p = r.next();
      if (p < 0.36) {
        const length = Math.min(ioSize(r), FILE_MAX - 1);
        // Past the end now and then, which leaves a hole.
        const reach = Math.min(FILE_MAX - length, size + (r.next() < 0.2 ? 2 * MiB : 0));
        const offset = r.int(reach + 1);
        if (offset > size) counts.holes!++;
        // By the op's parity, which leaves the sequence of a seed as it was before.
        const direct = (op & 1) === 1;
        log.push(`${op} write on mount ${writer + 1}: ${offset}..${offset + length} (${length}) size ${size} -> ${Math.max(size, offset + length)}${direct ? ' write-only' : ''}`);
        const data = pattern(op, offset, length);
        const { bytesWritten } = await (direct ? wfh : fh)[writer]!.write(data, 0, length, offset);
        if (direct) counts.directWrite!++;
        if (bytesWritten !== length) fail(op, `write of ${length} wrote ${bytesWritten}`);
        data.copy(model, offset);
        size = Math.max(size, offset + length);
        changed();
        counts.write!++;
      } else if (p < 0.46) {
        const down = r.next() < 0.5;
        const to = down ? r.int(size + 1) : size + r.int(FILE_MAX - size + 1);
        log.push(`${op} truncate on mount ${writer + 1}: ${size} -> ${to}`);
        await fh[writer]!.truncate(to);
        if (to < size) model.fill(0, to, size);
        counts[to < size ? 'truncateDown' : 'truncateUp']!++;
        size = to;
        changed();
      } else if (p < 0.82) {
        await settle(reader);
        await read(op, reader, 'read');
        counts.read!++;
      } else if (p < 0.92) {
        await settle(reader);
        log.push(`${op} size check on mount ${reader + 1}: ${size}`);
        const [byHandle, byPath] = await Promise.all([fh[reader]!.stat(), stat(o.paths[reader]!)]);
        if (byHandle.size !== size) fail(op, `fstat on mount ${reader + 1} gives size ${byHandle.size}, the model ${size}`);
        if (byPath.size !== size) fail(op, `stat by path on mount ${reader + 1} gives size ${byPath.size}, the model ${size}`);
        counts.size!++;
      } else if (p < 0.97) {
        await settle(writer);
        await read(op, writer, 'read by the writer');
        counts.ownRead!++;
      } else {
        // The reader becomes the writer: what the old writer wrote must be under what the new one writes.
        await settle(reader);
        log.push(`${op} swap: mount ${reader + 1} writes now`);
        writer = reader;
        counts.swap!++;
      }
    }
    // The end: both handles closed, the whole file read through each mount by path.
    for (const h of [...fh, ...wfh]) await h.close();
    for (const [i, path] of o.paths.entries()) {
      const whole = await readFile(path);
      if (whole.length !== size) fail(o.ops, `mount ${i + 1} reads ${whole.length} bytes at the end, the model has ${size}`);
      compare(o.ops, whole, 0, `final read on mount ${i + 1}`);
    }
  } finally {
    for (const h of [...fh, ...wfh]) await h.close().catch(() => undefined);
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
  const c = await startCluster(t, { fsname: 'fsx2' });
  const m1 = await c.mountClient();
  const m2 = await c.mountClient();

  const run = async (t: Test, name: string, runSeed: number, synced: boolean): Promise<void> => {
    try {
      const reproduce = `LUSTRE_FSX_SEED=${seed} LUSTRE_FSX_OPS=${ops}`;
      const runOps = ops;
      const counts = await fsxTwoMounts({ paths: [join(m1, name), join(m2, name)], ops: runOps, seed: runSeed, synced, reproduce });
      t.comment(`${name}: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      t.ok(counts.write! > runOps / 4 && counts.read! > runOps / 4, `${runOps} operations, each read on the other mount as the model says (seed ${runSeed})`);
      t.ok(counts.directWrite! > runOps / 16 && counts.directWrite! < counts.write!, 'writes through both the write-only and the read-write opens');
      t.ok(counts.truncateUp! > 0 && counts.truncateDown! > 0 && counts.holes! > 0 && counts.swap! > 0, 'truncates both ways, writes past the end, and both mounts wrote');
    } catch (err) {
      if (!(err instanceof FsxFailure)) throw Object.assign(err as Error, { message: `${(err as Error).message} (fsx seed ${runSeed})` });
      t.comment(`the last ${err.tail.length} operations (seed ${runSeed}):\n${err.tail.join('\n')}`);
      t.fail(err.message);
    }
  };

  t.test('fsx across two mounts: the writer fsyncs, the reader reopens, before the reader looks', (t) => run(t, 'fsx.synced', seed, true));
  t.test('fsx across two mounts: what one mount wrote is what the other reads next (no fsync, no reopen)',
    (t) => run(t, 'fsx.coherent', (seed + 1) >>> 0, false));
}
