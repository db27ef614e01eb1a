// DirtyExtents against a byte model: random writes (sequential runs that grow an extent's
// buffer in place, overlapping rewrites that split extents) and truncates; what take() returns
// is sorted, never overlapping, counted exactly, and holds the latest bytes of every range
// written. A budget never goes below zero and wakes its waiters in order.
import t from 'tap';
import fc from 'fast-check';
import { ByteBudget } from '../../src/client/budget.js';
import { BufferPool, POOL_BUFFERS_MAX, POOL_IDLE_KEEP } from '../../src/client/bulk-pool.js';
import { DirtyExtents, EXTENT_BYTES_MAX } from '../../src/client/extents.js';
import { until } from '../lib/net.js';
import { seedFrom } from '../lib/prng.js';

const SEED = seedFrom('LUSTRE_EXTENTS_SEED');
const SPAN = 3 * EXTENT_BYTES_MAX;

type Op = { kind: 'put'; offset: number; length: number; fill: number; sequential: boolean } | { kind: 'truncate'; size: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), offset: fc.nat(SPAN), length: fc.integer({ min: 0, max: 300_000 }), fill: fc.integer({ min: 1, max: 255 }), sequential: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), size: fc.nat(SPAN + 300_000) }) },
);

t.test(`dirty extents hold the latest bytes of every range written (seed ${SEED})`, async (t) => {
  let runs = 0;
  fc.assert(fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
    runs++;
    const d = new DirtyExtents();
    // The model: byte value per offset (0 = not dirty; fills are 1..255).
    const model = new Uint8Array(SPAN + 2 * 300_000);
    let nextSequential = 0;
    for (const op of ops) {
      if (op.kind === 'truncate') {
        d.truncate(op.size);
        model.fill(0, op.size);
        continue;
      }
      const offset = op.sequential && nextSequential <= SPAN ? nextSequential : op.offset;
      d.put(offset, Buffer.alloc(op.length, op.fill));
      model.fill(op.fill, offset, offset + op.length);
      nextSequential = offset + op.length;
    }
    let dirty = 0;
    for (let i = 0; i < model.length; i++) if (model[i] !== 0) dirty++;
    if (d.bytes !== dirty) throw new Error(`${d.bytes} dirty bytes counted, ${dirty} in the model`);
    const extents = d.take();
    const seen = new Uint8Array(model.length);
    let prevEnd = -1;
    for (const e of extents) {
      if (e.data.length === 0) throw new Error('an empty extent');
      if (e.offset < prevEnd) throw new Error(`extents overlap at ${e.offset}`);
      prevEnd = e.offset + e.data.length;
      seen.set(e.data, e.offset);
    }
    if (!Buffer.from(seen.buffer).equals(Buffer.from(model.buffer))) {
      const i = seen.findIndex((b, j) => b !== model[j]);
      throw new Error(`byte ${i}: ${seen[i]} taken, ${model[i]} in the model`);
    }
    if (d.bytes !== 0 || d.count !== 0) throw new Error('take() left something behind');
  }), { seed: SEED, numRuns: 60 });
  t.equal(runs, 60, 'every generated sequence checked');
});

t.test('a stream of small writes makes few extents', async (t) => {
  const d = new DirtyExtents();
  for (let at = 0; at < 4 * EXTENT_BYTES_MAX; at += 4096) d.put(at, Buffer.alloc(4096, 1));
  t.equal(d.count, 4, 'one extent per EXTENT_BYTES_MAX');
  t.equal(d.bytes, 4 * EXTENT_BYTES_MAX);
});

t.test('a byte budget bounds, lets one oversized take pass when empty, and wakes in order', async (t) => {
  let limit = 100;
  let pressure = 0;
  const b = new ByteBudget(() => limit, () => pressure++);
  await b.reserve(60);
  t.notOk(b.tryTake(50), 'tryTake refuses past the limit');
  const order: string[] = [];
  const first = b.reserve(50).then(() => order.push('first'));
  const second = b.reserve(10).then(() => order.push('second'));
  await new Promise((r) => setImmediate(r));
  t.same(order, [], 'both wait: the second does not overtake the first');
  t.equal(pressure, 2, 'waiting calls for a flush');
  b.release(60);
  await Promise.all([first, second]);
  t.same(order, ['first', 'second'], 'woken in order');
  t.equal(b.used, 60);
  b.release(60);
  limit = 10;
  await b.reserve(500);
  t.equal(b.used, 500, 'an empty budget lets one write larger than the limit through');
  t.throws(() => b.release(501), /more than it held/);
});

t.test('a write of a whole pool buffer is handed out pooled while its extent is its only user', async (t) => {
  const pool = new BufferPool(EXTENT_BYTES_MAX, 2);
  const d = new DirtyExtents(pool);
  const a = Buffer.alloc(EXTENT_BYTES_MAX, 1);
  d.put(0, a);
  d.put(EXTENT_BYTES_MAX, Buffer.alloc(EXTENT_BYTES_MAX, 2));
  d.put(EXTENT_BYTES_MAX + 10, Buffer.from('split')); // the second extent is split: its buffer is shared now
  const taken = d.take();
  t.equal(taken[0]!.pooled, taken[0]!.data, 'the first extent: its pool buffer, whole');
  t.ok(taken[0]!.data.equals(a), 'holding a copy of the write');
  t.ok(taken.slice(1).every((e) => e.pooled === undefined), 'the split ones: not to be given back');
  t.equal(Buffer.concat(taken.map((e) => e.data)).length, 2 * EXTENT_BYTES_MAX);
  pool.put(taken[0]!.pooled!);
  d.put(5 * EXTENT_BYTES_MAX, Buffer.alloc(EXTENT_BYTES_MAX, 3));
  t.equal(d.take()[0]!.pooled, taken[0]!.pooled, 'a buffer given back is used again');
  t.same(pool.counters, { allocated: 2, reused: 1, returned: 1, dropped: 0, trimmed: 0 });
  t.throws(() => pool.put(Buffer.alloc(10)), 'a pool takes back only its own buffers');
  d.put(0, Buffer.alloc(100, 4));
  t.equal(d.take()[0]!.pooled, undefined, 'a smaller write: no pool buffer');
});

t.test('a pool keeps what a commit gives back at once, and only a few buffers once idle', async (t) => {
  const pool = new BufferPool(4096, POOL_BUFFERS_MAX, 10);
  const taken = Array.from({ length: POOL_BUFFERS_MAX + 2 }, () => pool.get());
  for (const b of taken) pool.put(b);
  t.equal(pool.free, POOL_BUFFERS_MAX, 'a txg\'s worth waits in the pool');
  t.equal(pool.counters.dropped, 2, 'beyond its limit, dropped');
  await until('the idle pool to trim', () => pool.free === POOL_IDLE_KEEP);
  t.equal(pool.counters.trimmed, POOL_BUFFERS_MAX - POOL_IDLE_KEEP);
  t.equal(pool.get(), taken[POOL_IDLE_KEEP - 1], 'what it kept is handed out again');
});
