// Property test: random operations against the OSD and an in-memory model, with reopens (clean
// and by replay) and forced checkpoints in between; then a scale run (OSD_SCALE_OBJECTS, 1M for
// the full-size figure) that shows open time and memory independent of the object count.
// A failure prints fast-check's seed and path; OSD_FC_SEED=<seed> replays it.
import t from 'tap';
import fc from 'fast-check';
import { Osd, ROOT_INDEX_FID, fid, fidKey, OsdError, type Fid, type ObjectType } from '../../src/osd/index.js';
import { newDevice, removeDir, txn } from './helpers.js';

interface MObject {
  type: ObjectType;
  mode: number;
  uid: number;
  version: number;
  size: number;
  data: Buffer;
  xattrs: Map<string, Buffer>;
  entries: Map<string, { oid: number; type: ObjectType }>;
}

type Op =
  | { op: 'create'; i: number; type: 'reg' | 'dir' | 'idx' }
  | { op: 'destroy'; i: number }
  | { op: 'attrSet'; i: number; mode: number; uid: number }
  | { op: 'xattrSet'; i: number; name: string; value: number }
  | { op: 'xattrDel'; i: number; name: string }
  | { op: 'write'; i: number; offset: number; length: number; byte: number }
  | { op: 'punch'; i: number; start: number; end: number | undefined }
  | { op: 'insert'; i: number; name: string; target: number }
  | { op: 'delete'; i: number; name: string }
  | { op: 'reopen'; checkpoint: boolean }
  | { op: 'checkpoint' }
  | { op: 'sync' };

const POOL = 6;
const F = (i: number): Fid => fid(0x200000400, i);
const idx = fc.integer({ min: 1, max: POOL });
const name = fc.constantFrom('a', 'b', 'c', 'd', 'e', '\u00e9', '\u{1F600}');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('create' as const), i: idx, type: fc.constantFrom('reg' as const, 'dir' as const, 'idx' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('destroy' as const), i: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('attrSet' as const), i: idx, mode: fc.integer({ min: 0, max: 0o7777 }), uid: fc.nat(1000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('xattrSet' as const), i: idx, name, value: fc.nat(255) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('xattrDel' as const), i: idx, name }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('write' as const), i: idx, offset: fc.nat(20_000), length: fc.nat(5000), byte: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('punch' as const), i: idx, start: fc.nat(20_000), end: fc.option(fc.nat(25_000), { nil: undefined }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('insert' as const), i: idx, name, target: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), i: idx, name }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const), checkpoint: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('checkpoint' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sync' as const) }) },
);

const isIndex = (o: MObject | undefined) => o !== undefined && (o.type === 'dir' || o.type === 'idx');

/** Applies op to the model; returns the error code the OSD must give, or null. */
function model(m: Map<number, MObject>, op: Op): string | null {
  if (op.op === 'reopen' || op.op === 'checkpoint' || op.op === 'sync') return null;
  if (op.op === 'punch' && op.end !== undefined && op.end < op.start) return 'EINVAL';
  const o = m.get(op.i);
  if (op.op === 'create') {
    if (o) return 'EEXIST';
    m.set(op.i, { type: op.type, mode: op.type === 'reg' ? 0o644 : 0o755, uid: 0, version: 1, size: 0, data: Buffer.alloc(0), xattrs: new Map(), entries: new Map() });
    return null;
  }
  if (!o) return 'ENOENT';
  switch (op.op) {
    case 'destroy':
      if (o.entries.size > 0) return 'ENOTEMPTY';
      m.delete(op.i);
      return null;
    case 'attrSet':
      Object.assign(o, { mode: op.mode, uid: op.uid });
      break;
    case 'xattrSet':
      o.xattrs.set(op.name, Buffer.from([op.value]));
      break;
    case 'xattrDel':
      if (!o.xattrs.delete(op.name)) return 'ENODATA';
      break;
    case 'write': {
      if (o.type !== 'reg') return 'EISDIR';
      const end = op.offset + op.length;
      if (end > o.data.length) o.data = Buffer.concat([o.data, Buffer.alloc(end - o.data.length)]);
      o.data.fill(op.byte, op.offset, end);
      break;
    }
    case 'punch': {
      if (o.type !== 'reg') return 'EISDIR';
      if (op.end === undefined) {
        o.data = op.start <= o.data.length ? o.data.subarray(0, op.start) : Buffer.concat([o.data, Buffer.alloc(op.start - o.data.length)]);
        o.data = Buffer.from(o.data);
      } else o.data.fill(0, Math.min(op.start, o.data.length), Math.min(op.end, o.data.length));
      break;
    }
    case 'insert':
      if (!isIndex(o)) return 'ENOTDIR';
      if (o.entries.has(op.name)) return 'EEXIST';
      o.entries.set(op.name, { oid: op.target, type: 'reg' });
      break;
    case 'delete':
      if (!isIndex(o)) return 'ENOTDIR';
      if (!o.entries.delete(op.name)) return 'ENOENT';
      break;
  }
  o.version++;
  o.size = o.data.length;
  return null;
}

async function run(osd: Osd, op: Op): Promise<void> {
  await txn(osd, async (tx) => {
    switch (op.op) {
      case 'create': return tx.create(F(op.i), { type: op.type });
      case 'destroy': return tx.destroy(F(op.i));
      case 'attrSet': return tx.attrSet(F(op.i), { mode: op.mode, uid: op.uid });
      case 'xattrSet': return tx.xattrSet(F(op.i), op.name, Buffer.from([op.value]));
      case 'xattrDel': return tx.xattrDel(F(op.i), op.name);
      case 'write': return tx.write(F(op.i), op.offset, Buffer.alloc(op.length, op.byte));
      case 'punch': return tx.punch(F(op.i), op.start, op.end);
      case 'insert': return tx.indexInsert(F(op.i), op.name, { fid: F(op.target), type: 'reg' });
      case 'delete': return tx.indexDelete(F(op.i), op.name);
    }
  });
}

async function compare(osd: Osd, m: Map<number, MObject>): Promise<string | null> {
  for (let i = 1; i <= POOL; i++) {
    const o = m.get(i);
    const exists = await osd.exists(F(i));
    if (exists !== (o !== undefined)) return `object ${i}: exists ${exists}, model ${o !== undefined}`;
    if (!o) continue;
    const a = await osd.getAttrs(F(i));
    const want = { type: o.type, mode: o.mode, uid: o.uid, version: o.version, size: o.type === 'reg' ? o.size : 0 };
    const got = { type: a.type, mode: a.mode, uid: a.uid, version: a.version, size: a.size };
    if (JSON.stringify(got) !== JSON.stringify(want)) return `object ${i}: attrs ${JSON.stringify(got)}, model ${JSON.stringify(want)}`;
    const names = await osd.xattrList(F(i));
    const wantNames = [...o.xattrs.keys()].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    if (JSON.stringify(names) !== JSON.stringify(wantNames)) return `object ${i}: xattrs ${names}, model ${wantNames}`;
    for (const [n, v] of o.xattrs) if (!(await osd.xattrGet(F(i), n)).equals(v)) return `object ${i}: xattr ${n}`;
    if (o.type === 'reg') {
      const data = await osd.read(F(i), 0, o.size + 10);
      if (!data.equals(o.data)) return `object ${i}: data differs (${data.length} vs ${o.data.length} bytes)`;
    } else {
      const got: string[] = [];
      let cookie: string | null | undefined;
      do {
        const page = await osd.indexList(F(i), { cookie, limit: 2 });
        got.push(...page.entries.map((e) => `${e.name}=${fidKey(e.fid)}`));
        cookie = page.cookie;
      } while (cookie);
      const want2 = [...o.entries].sort(([x], [y]) => Buffer.compare(Buffer.from(x), Buffer.from(y))).map(([n, e]) => `${n}=${fidKey(F(e.oid))}`);
      if (JSON.stringify(got) !== JSON.stringify(want2)) return `object ${i}: entries ${got}, model ${want2}`;
    }
  }
  return null;
}

t.test('random operations agree with a model, across reopens and checkpoints', async (t) => {
  const seed = process.env.OSD_FC_SEED ? Number(process.env.OSD_FC_SEED) : undefined;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      runs++;
      const opts = { checkpointKeysMax: 8, txgTimeoutMs: 2 };
      const dev = await newDevice(opts);
      let osd = dev.osd;
      const m = new Map<number, MObject>();
      try {
        for (const op of ops) {
          const want = model(m, op);
          if (op.op === 'reopen') {
            await osd.close({ checkpoint: op.checkpoint });
            osd = await Osd.open(dev.dir, opts);
          } else if (op.op === 'checkpoint') {
            await osd.sync();
            await osd.checkpoint();
          } else if (op.op === 'sync') {
            await osd.sync();
          } else {
            const got = await run(osd, op).then(() => null, (err: unknown) => {
              if (err instanceof OsdError) return err.code;
              throw err;
            });
            if (got !== want) throw new Error(`${JSON.stringify(op)}: got ${got}, model says ${want}`);
          }
          const diff = await compare(osd, m);
          if (diff) throw new Error(`after ${JSON.stringify(op)}: ${diff}`);
        }
        await osd.close({ checkpoint: false });
        osd = await Osd.open(dev.dir, opts);
        const diff = await compare(osd, m);
        if (diff) throw new Error(`after the final replay: ${diff}`);
        // Random ops make names that upper layers would not: unreferenced objects, dangling or
        // mistyped entries. Anything else is the OSD's fault.
        const allowed = ['unreferenced-object', 'dangling-entry', 'entry-type-mismatch'];
        const problems = (await osd.check()).filter((p) => !allowed.includes(p.kind));
        if (problems.length > 0) throw new Error(`check: ${JSON.stringify(problems)}`);
      } finally {
        await osd.close().catch(() => {});
        await removeDir(dev.dir);
      }
    }),
    { numRuns: Number(process.env.OSD_FC_RUNS ?? 25), ...(seed !== undefined && { seed }) },
  );
  t.ok(runs > 0, `${runs} runs`);
});

t.test('scale: open time and memory do not grow with the object count', async (t) => {
  const count = Number(process.env.OSD_SCALE_OBJECTS ?? 20_000);
  const perTx = 500;
  const keysMax = 10_000;
  const { dir, osd: first } = await newDevice({ checkpointKeysMax: keysMax, txgTimeoutMs: 50 });
  t.teardown(() => removeDir(dir));
  let osd = first;
  const started = Date.now();
  const O0 = fid(0x200000003, 0x10);
  await txn(osd, async (tx) => {
    await tx.create(O0, { type: 'idx' });
    await tx.indexInsert(ROOT_INDEX_FID, 'O/0', { fid: O0, type: 'idx' });
  });
  for (let base = 0; base < count; base += perTx) {
    // The updates of a tx run concurrently: they hold per-object and per-name locks only.
    await txn(osd, async (tx) => {
      await Promise.all(Array.from({ length: Math.min(perTx, count - base) }, async (_, j) => {
        const f = fid(0x100000000, base + j + 1);
        await tx.create(f, { type: 'reg' });
        await tx.indexInsert(O0, String(base + j + 1), { fid: f, type: 'reg' });
      }));
    });
    if (osd.stats().durableKeys > keysMax * 4 + perTx * 4) t.fail(`memory awaiting a checkpoint: ${osd.stats().durableKeys} keys`);
  }
  const createMs = Date.now() - started;
  await osd.close();
  // A tail of txgs that no checkpoint covers (checkpoints off), then an open that must replay
  // it while checkpointing to stay bounded.
  const tail = 3000;
  osd = await Osd.open(dir, { checkpointKeysMax: 1e9, checkpointBytesMax: 1e12 });
  for (let base = count; base < count + tail; base += perTx) {
    await txn(osd, async (tx) => {
      for (let i = base; i < base + perTx; i++) {
        await tx.create(fid(0x100000000, i + 1), { type: 'reg' });
        await tx.indexInsert(O0, String(i + 1), { fid: fid(0x100000000, i + 1), type: 'reg' });
      }
    });
    await osd.sync();
  }
  await osd.close({ checkpoint: false });
  let heap = process.memoryUsage().heapUsed;
  let t0 = performance.now();
  osd = await Osd.open(dir, { checkpointKeysMax: 1000 });
  const replayMs = performance.now() - t0;
  const replayed = osd.stats().recordsReplayed;
  t.equal(replayed, tail / perTx, 'the tail replayed');
  t.ok(osd.stats().checkpoints >= 2, 'replay checkpointed as it went');
  t.ok(osd.stats().durableKeys <= 1000 + perTx * 4, 'replay stays bounded');
  await osd.close();
  heap = process.memoryUsage().heapUsed;
  t0 = performance.now();
  osd = await Osd.open(dir);
  const openMs = performance.now() - t0;
  const heapGrowth = process.memoryUsage().heapUsed - heap;
  t.equal(osd.stats().objects, count + tail + 2);
  t.equal(osd.stats().recordsReplayed, 0);
  t.equal(osd.stats().durableKeys, 0, 'open loads no objects into memory');
  for (const i of [1, Math.floor(count / 2), count]) {
    t.equal((await osd.indexLookup(O0, String(i)))?.fid.oid, i);
    t.equal((await osd.getAttrs(fid(0x100000000, i))).type, 'reg');
  }
  t.comment(`${count} objects: created in ${createMs} ms; open with replay of ${replayed} txgs ${replayMs.toFixed(0)} ms; ` +
    `clean open ${openMs.toFixed(0)} ms, heap growth ${(heapGrowth / 1048576).toFixed(1)} MiB, ` +
    `rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`);
  if (process.env.OSD_SCALE_CHECK) {
    t0 = performance.now();
    const problems = await osd.check();
    t.same(problems, []);
    t.comment(`check of ${count} objects: ${(performance.now() - t0).toFixed(0)} ms`);
  }
  await osd.close();
});
