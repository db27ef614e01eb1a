// A property of the library's file IO: a random sequence of opens (r+, w+, a+), writes at
// offsets, truncates (through a handle and by path), reads, stats and closes, over files
// striped on both OSTs with 64 KiB stripes, leaves every read equal to what a model kept in
// memory says; the same sequence run on a local directory through node:fs/promises agrees.
// Seeded (fast-check): a failure prints the seed and the shrunk sequence; LUSTRE_FS_SEED
// reproduces it, LUSTRE_FS_RUNS runs more sequences.
import t from 'tap';
import fc from 'fast-check';
import * as local from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FileHandle as LustreHandle } from '../../src/client/index.js';
import { patternBytes, seedFrom } from '../lib/prng.js';
import { startFs } from './fs-helpers.js';

const SEED = seedFrom('LUSTRE_FS_SEED');
const RUNS = Number(process.env.LUSTRE_FS_RUNS ?? 12);
const FILES = 2;
const OFFSET_MAX = 1024 * 1024;
const LENGTH_MAX = 200 * 1024;
const HANDLES_MAX = 4;

type Op =
  | { kind: 'open'; file: number; flags: 'r+' | 'w+' | 'a+' }
  | { kind: 'write'; handle: number; offset: number; length: number; seed: number }
  | { kind: 'read'; handle: number; offset: number; length: number }
  | { kind: 'truncate'; handle: number; length: number }
  | { kind: 'truncatePath'; file: number; length: number }
  | { kind: 'stat'; file: number }
  | { kind: 'close'; handle: number };

const offset = fc.oneof(fc.integer({ min: 0, max: OFFSET_MAX }), fc.constantFrom(0, 65535, 65536, 131072, 196607));
const length = fc.oneof(fc.integer({ min: 0, max: LENGTH_MAX }), fc.constantFrom(1, 65536, 65537));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('open' as const), file: fc.nat(FILES - 1), flags: fc.constantFrom('r+' as const, 'w+' as const, 'a+' as const) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), handle: fc.nat(HANDLES_MAX - 1), offset, length, seed: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), handle: fc.nat(HANDLES_MAX - 1), offset, length }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), handle: fc.nat(HANDLES_MAX - 1), length: offset }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncatePath' as const), file: fc.nat(FILES - 1), length: offset }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stat' as const), file: fc.nat(FILES - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('close' as const), handle: fc.nat(HANDLES_MAX - 1) }) },
);

/** The model: each file's bytes. */
class Model {
  readonly files = new Map<number, Buffer>();
  write(file: number, at: number, data: Buffer): void {
    const cur = this.files.get(file)!;
    const next = Buffer.alloc(Math.max(cur.length, at + data.length));
    cur.copy(next);
    data.copy(next, at);
    this.files.set(file, next);
  }
  truncate(file: number, size: number): void {
    const cur = this.files.get(file)!;
    const next = Buffer.alloc(size);
    cur.copy(next, 0, 0, Math.min(size, cur.length));
    this.files.set(file, next);
  }
}

interface Open { file: number; flags: string; lustre: LustreHandle; local: local.FileHandle }

t.test(`random IO over striped files matches a model and a local directory (seed ${SEED}, ${RUNS} runs)`, async (t) => {
  const sys = await startFs(t);
  const fs = await sys.mount(5);
  const localRoot = await mkdtemp(join(tmpdir(), 'client-model-'));
  t.teardown(() => rm(localRoot, { recursive: true, force: true }));
  let run = 0;
  let checks = 0;

  const property = fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 50 }), async (ops) => {
    run++;
    const dir = `/run${run}`;
    const ldir = join(localRoot, `run${run}`);
    await fs.mkdir(dir);
    await local.mkdir(ldir);
    const model = new Model();
    const open: Open[] = [];
    const pathOf = (f: number): string => `${dir}/f${f}`;
    const localOf = (f: number): string => join(ldir, `f${f}`);
    try {
      for (const op of ops) {
        switch (op.kind) {
          case 'open': {
            if (open.length >= HANDLES_MAX) break;
            const exists = model.files.has(op.file);
            if (!exists && op.flags === 'r+') {
              const err = await fs.open(pathOf(op.file), 'r+').then(() => undefined, (e: { code?: string }) => e.code);
              if (err !== 'ENOENT') throw new Error(`open r+ of a missing file: ${String(err)}`);
              break;
            }
            const lustre = await fs.open(pathOf(op.file), op.flags, 0o644, { stripeCount: 2, stripeSize: 65536 });
            const lh = await local.open(localOf(op.file), op.flags, 0o644);
            if (!exists || op.flags === 'w+') model.files.set(op.file, Buffer.alloc(0));
            open.push({ file: op.file, flags: op.flags, lustre, local: lh });
            break;
          }
          case 'write': {
            const h = open[op.handle % Math.max(1, open.length)];
            if (!h) break;
            const data = patternBytes(op.seed, op.length);
            const at = h.flags === 'a+' ? model.files.get(h.file)!.length : op.offset;
            await h.lustre.write(data, 0, data.length, op.offset);
            await h.local.write(data, 0, data.length, op.offset);
            model.write(h.file, at, data);
            break;
          }
          case 'read': {
            const h = open[op.handle % Math.max(1, open.length)];
            if (!h) break;
            const a = Buffer.alloc(op.length);
            const b = Buffer.alloc(op.length);
            const ra = await h.lustre.read(a, 0, op.length, op.offset);
            const rb = await h.local.read(b, 0, op.length, op.offset);
            const m = model.files.get(h.file)!;
            const expect = m.subarray(Math.min(op.offset, m.length), Math.min(m.length, op.offset + op.length));
            if (ra.bytesRead !== expect.length || !a.subarray(0, ra.bytesRead).equals(expect)) {
              throw new Error(`read of ${op.length} at ${op.offset} of f${h.file}: ${ra.bytesRead} bytes, not the model's ${expect.length}`);
            }
            if (rb.bytesRead !== ra.bytesRead || !b.subarray(0, rb.bytesRead).equals(a.subarray(0, ra.bytesRead))) {
              throw new Error(`read of ${op.length} at ${op.offset}: the local directory disagrees`);
            }
            checks++;
            break;
          }
          case 'truncate': {
            const h = open[op.handle % Math.max(1, open.length)];
            if (!h) break;
            await h.lustre.truncate(op.length);
            await h.local.truncate(op.length);
            model.truncate(h.file, op.length);
            break;
          }
          case 'truncatePath': {
            if (!model.files.has(op.file)) break;
            await fs.truncate(pathOf(op.file), op.length);
            await local.truncate(localOf(op.file), op.length);
            model.truncate(op.file, op.length);
            break;
          }
          case 'stat': {
            if (!model.files.has(op.file)) break;
            const size = (await fs.stat(pathOf(op.file))).size;
            const lsize = (await local.stat(localOf(op.file))).size;
            const msize = model.files.get(op.file)!.length;
            if (size !== msize || lsize !== msize) throw new Error(`stat f${op.file}: ${size} here, ${lsize} local, ${msize} in the model`);
            checks++;
            break;
          }
          case 'close': {
            const i = op.handle % Math.max(1, open.length);
            const h = open[i];
            if (!h) break;
            open.splice(i, 1);
            await h.lustre.close();
            await h.local.close();
            break;
          }
        }
      }
    } finally {
      for (const h of open) {
        await h.lustre.close();
        await h.local.close();
      }
    }
    // After the last close, every file reads back whole as the model has it.
    for (const [f, bytes] of model.files) {
      const back = (await fs.readFile(pathOf(f))) as Buffer;
      if (!back.equals(bytes)) throw new Error(`f${f} after close: ${back.length} bytes differ from the model's ${bytes.length}`);
      checks++;
    }
  });
  await fc.assert(property, { seed: SEED, numRuns: RUNS, endOnFailure: true });
  t.ok(checks >= RUNS, `${checks} reads and stats checked over ${run} runs`);
  t.equal(fs.core.dirty.used, 0, 'nothing dirty left');
});
