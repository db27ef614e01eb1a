// Data files' IO around the page cache (src/osd/aligned.ts, data.ts): which IO goes O_DIRECT
// by the policy, that it reads back what was written whichever way each piece went (the two
// descriptors of a file stay coherent), that unaligned writes and a lack of slots fall back to
// the cache, and that a refused direct IO turns it off for the device with a warning. The
// random part checks every read against a model; a failure prints fast-check's seed
// (OSD_DIRECT_FC_SEED=<seed> replays it).
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { mkdtemp, mkdir, open, rm, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlignedSlots, DataFiles, DEFAULT_IO_CACHE, type IoCachePolicy } from '../../src/osd/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const bypassAll: Partial<IoCachePolicy> = { readcacheMaxIoBytes: 0, writethroughMaxIoBytes: 0 };

async function files(t: Test, opts: ConstructorParameters<typeof DataFiles>[2] = {}): Promise<DataFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'direct-io-'));
  await mkdir(join(dir, '00'));
  const data = new DataFiles(dir, 4, opts);
  t.teardown(async () => {
    await data.close();
    await rm(dir, { recursive: true, force: true });
  });
  return data;
}

/** Whether the test's file system takes O_DIRECT (tmpfs before Linux 6.6 does not): the tests that count bypassed bytes need it. */
async function directSupported(): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'direct-probe-'));
  try {
    await (await open(join(dir, 'f'), constants.O_RDWR | constants.O_CREAT | constants.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
const needsDirect = (await directSupported()) ? {} : { skip: `${tmpdir()} refuses O_DIRECT: nothing can go around its page cache` };

const bytes = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
};

t.test('the policy: IO larger than its max_io size, or of a disabled cache, goes around the cache', needsDirect, async (t) => {
  const data = await files(t);
  t.same(data.ioCache, DEFAULT_IO_CACHE);
  const path = join(data.dir, '00', 'a');
  const big = bytes(4 * MiB, 1);
  await data.write(path, 0, [big.subarray(0, MiB)], 1);
  t.equal(data.bypassWriteBytes, 0, 'a write of max_io bytes goes through the cache');
  await data.write(path, 0, [big.subarray(0, 3 * MiB), big.subarray(3 * MiB)], 1);
  t.equal(data.bypassWriteBytes, 4 * MiB, 'a 4 MiB bulk, in two pieces, around it');
  t.same(await data.read(path, 0, MiB), big.subarray(0, MiB), 'a read of max_io bytes through the cache');
  t.equal(data.bypassReadBytes, 0);
  t.same(await data.read(path, 0, 4 * MiB), big, 'a 4 MiB read around it');
  t.equal(data.bypassReadBytes, 4 * MiB);

  data.ioCache.readcacheMaxFilesize = 2 * MiB;
  await data.read(path, 0, 64 * KiB, undefined, 4 * MiB);
  t.equal(data.bypassReadBytes, 4 * MiB + 64 * KiB, 'an object over readcache_max_filesize is read around the cache');
  await data.read(path, 0, 64 * KiB, undefined, MiB);
  t.equal(data.bypassReadBytes, 4 * MiB + 64 * KiB, 'a smaller one through it');
  await data.write(path, 0, [big.subarray(0, 64 * KiB)], 1, 4 * MiB);
  t.equal(data.bypassWriteBytes, 4 * MiB + 64 * KiB, 'so is a write to it');
  await data.write(path, 0, [big.subarray(0, 64 * KiB)], 1, MiB);
  t.equal(data.bypassWriteBytes, 4 * MiB + 64 * KiB, 'and not one to a smaller one');
  data.ioCache.readCacheEnable = false;
  data.ioCache.writethroughCacheEnable = false;
  await data.write(path, 8 * KiB, [big.subarray(0, 8 * KiB)], 1);
  t.equal(data.bypassWriteBytes, 4 * MiB + 72 * KiB, 'with writethrough_cache_enable=0, a small aligned write too');
  t.same(await data.read(path, 4 * KiB, 16 * KiB), Buffer.concat([big.subarray(4 * KiB, 8 * KiB), big.subarray(0, 8 * KiB), big.subarray(16 * KiB, 20 * KiB)]));
  t.equal(data.bypassReadBytes, 4 * MiB + 80 * KiB, 'with read_cache_enable=0, a small read too');
  await data.syncTxg(1);
  t.ok((await stat(path)).blocks >= (4 * MiB) / 512, 'the file holds the bytes');
});

t.test('unaligned IO: reads go around the cache by a wider aligned window; writes go through the cache', needsDirect, async (t) => {
  const data = await files(t, { ioCache: bypassAll });
  const path = join(data.dir, '00', 'b');
  const first = bytes(MiB + 4 * KiB, 2);
  await data.write(path, 0, [first], 1);
  t.equal(data.bypassWriteBytes, first.length);
  const odd = bytes(3000, 3);
  await data.write(path, 5000, [odd], 1);
  t.equal(data.bypassWriteBytes, first.length, 'an unaligned write went through the cache');
  const model = Buffer.from(first);
  odd.copy(model, 5000);
  t.same(await data.read(path, 4321, 70_000), model.subarray(4321, 4321 + 70_000), 'a direct read sees the cached write (written back first)');
  t.equal(data.bypassReadBytes, 70_000);
  const tail = await data.read(path, first.length - 100, 5000);
  t.same(tail.subarray(0, 100), model.subarray(first.length - 100), 'to the end of the file');
  t.same(tail.subarray(100), Buffer.alloc(4900), 'zeros past it');
  const unaligned = bytes(100, 4);
  await data.write(path, first.length, [unaligned], 1);
  const again = await data.read(path, first.length - 4096, 8192);
  t.same(again.subarray(4096, 4196), unaligned, 'an unaligned end of file read directly');
  t.same(again.subarray(4196), Buffer.alloc(8192 - 4196));
  t.same(await data.read(join(data.dir, '00', 'none'), 0, 8192), Buffer.alloc(8192), 'no file reads as zeros');
});

t.test('no free slot: the IO goes through the cache and is still right', needsDirect, async (t) => {
  const slots = new AlignedSlots(MiB, 1);
  const data = await files(t, { ioCache: bypassAll, slots });
  const path = join(data.dir, '00', 'c');
  const held = slots.take()!;
  t.equal(slots.inUse, 1);
  const b = bytes(64 * KiB, 5);
  await data.write(path, 0, [b], 1);
  t.same(await data.read(path, 0, b.length), b);
  t.equal(data.bypassWriteBytes + data.bypassReadBytes, 0, 'nothing went around the cache');
  slots.give(held);
  t.same(await data.read(path, 0, b.length), b);
  t.equal(data.bypassReadBytes, b.length, 'once the slot is back, it does');
  t.equal(slots.inUse, 0, 'every slot given back');
  const big = bytes(2 * MiB, 6);
  await data.write(path, 0, [big], 1);
  t.equal(data.bypassWriteBytes, 0, 'a write larger than a slot goes through the cache');
  t.same(await data.read(path, 0, big.length), big, 'so does a read larger than a slot');
  t.throws(() => slots.give(Buffer.alloc(MiB)), /not a slot/);
});

t.test('a file system that refuses direct IO turns it off for the device, with a warning, and loses nothing', async (t) => {
  // Slots that are not aligned: the kernel refuses O_DIRECT IO from them (EINVAL), as a file
  // system without O_DIRECT support does.
  const backing = Buffer.alloc(MiB + 4096);
  const unaligned = { slotBytes: MiB, take: () => backing.subarray(1, MiB + 1), give: () => {} } as unknown as AlignedSlots;
  const warnings: string[] = [];
  const data = await files(t, { ioCache: bypassAll, slots: unaligned, warn: (m) => warnings.push(m) });
  const path = join(data.dir, '00', 'd');
  const b = bytes(256 * KiB, 7);
  await data.write(path, 0, [b], 1);
  t.same(await data.read(path, 0, b.length), b, 'the write went through the cache instead');
  t.match(data.directOff, /refuses O_DIRECT/);
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0], /goes through the page cache/);
  await data.write(path, 0, [b], 1);
  t.equal(warnings.length, 1, 'not repeated');
});

t.test('random reads and writes, direct and cached mixed, against a model', needsDirect, async (t) => {
  const data = await files(t, { ioCache: { readcacheMaxIoBytes: 16 * KiB, writethroughMaxIoBytes: 16 * KiB } });
  const seed = process.env.OSD_DIRECT_FC_SEED ? Number(process.env.OSD_DIRECT_FC_SEED) : undefined;
  const block = fc.integer({ min: 0, max: 96 });
  const op = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), aligned: fc.boolean(), at: block, blocks: fc.integer({ min: 1, max: 24 }), skew: fc.integer({ min: 0, max: 4095 }) }),
    fc.record({ kind: fc.constant('read' as const), aligned: fc.boolean(), at: block, blocks: fc.integer({ min: 1, max: 24 }), skew: fc.integer({ min: 0, max: 4095 }) }),
  );
  let run = 0;
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
    const path = join(data.dir, '00', `r${run++}`);
    let model = Buffer.alloc(0);
    for (const [i, o] of ops.entries()) {
      const offset = o.at * 4096 + (o.aligned ? 0 : o.skew);
      const length = o.blocks * 4096 - (o.aligned ? 0 : o.skew);
      if (o.kind === 'write') {
        const b = bytes(length, i);
        await data.write(path, offset, [b.subarray(0, length >> 1), b.subarray(length >> 1)], 1);
        if (model.length < offset + length) model = Buffer.concat([model, Buffer.alloc(offset + length - model.length)]);
        b.copy(model, offset);
      } else {
        const want = Buffer.alloc(length);
        model.copy(want, 0, Math.min(offset, model.length), Math.min(offset + length, model.length));
        const got = await data.read(path, offset, length);
        if (!got.equals(want)) throw new Error(`read ${offset}+${length} after ${i} ops differs from the model`);
      }
    }
  }), { numRuns: 60, seed });
  t.ok(data.bypassWriteBytes > 0 && data.bypassReadBytes > 0, 'both ways were taken');
  t.ok(data.bypassWriteBytes < 60 * 30 * 24 * 4096, 'and the cache too');
});
