// The LOV over two real OSTs (127.0.0.3 and 127.0.0.4) through their OSCs: a 64 MiB file
// striped with 64 KiB stripes holds the right bytes on both sides of every stripe boundary, a
// sparse file reads zeros in its holes, truncate and size follow Lustre's stripe arithmetic.
import fc from 'fast-check';
import t from 'tap';
import { Lov, checkLayout, fileSizeOfStripe, mapExtent, stripeObjectSize, type Raid0Layout } from '../../src/client/lov.js';
import { FID_SEQ_OST_MDT0 } from '../../src/services/ost/index.js';
import { patternBytes, startCluster } from '../services/ost/harness.js';

const SEQ = FID_SEQ_OST_MDT0;
const KiB = 1024;
const MiB = 1024 * KiB;
const seed = Number(process.env.LOV_SEED ?? Date.now() % 1_000_000);

t.test('stripe arithmetic', async (t) => {
  t.comment(`seed ${seed} (LOV_SEED reproduces)`);
  const l: Raid0Layout = { pattern: 'raid0', stripeSize: 64 * KiB, stripeCount: 3, stripeOffset: 0, objects: [0, 1, 2].map((i) => ({ ostIndex: i, seq: SEQ, oid: 1 })) };
  t.same(mapExtent(l, 64 * KiB - 2, 4), [
    { stripe: 0, fileOffset: 64 * KiB - 2, objectOffset: 64 * KiB - 2, length: 2 },
    { stripe: 1, fileOffset: 64 * KiB, objectOffset: 0, length: 2 },
  ]);
  t.same(mapExtent(l, 3 * 64 * KiB + 5, 1), [{ stripe: 0, fileOffset: 3 * 64 * KiB + 5, objectOffset: 64 * KiB + 5, length: 1 }], 'row 1 of stripe 0');
  t.throws(() => checkLayout({ ...l, stripeSize: 4096 }), { code: 'EINVAL' });
  t.throws(() => checkLayout({ ...l, stripeCount: 2 }), { code: 'EINVAL' });
  fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 50 * MiB }), (count, units, size) => {
    const lay = { ...l, stripeSize: units * 64 * KiB, stripeCount: count, objects: Array.from({ length: count }, (_, i) => ({ ostIndex: i, seq: SEQ, oid: 1 })) };
    const sizes = Array.from({ length: count }, (_, i) => stripeObjectSize(lay, i, size));
    // The objects of a file of `size` bytes imply exactly that size, and hold all its bytes.
    return Math.max(0, ...sizes.map((s, i) => fileSizeOfStripe(lay, i, s))) === size && sizes.reduce((a, b) => a + b, 0) === size;
  }), { seed, numRuns: 500 });
});

t.test('a 64 MiB file over two OSTs with 64 KiB stripes; a sparse file; truncate', async (t) => {
  const c = await startCluster(2);
  t.teardown(() => c.stop());
  const oscs = new Map([[0, await c.osc(0, { maxRpcsInFlight: 8 })], [1, await c.osc(1, { maxRpcsInFlight: 8 })]]);
  const lov = new Lov(oscs);
  for (const osc of oscs.values()) await osc.precreate(SEQ, 10);
  const layout = (oid: number, stripeCount = 2, stripeOffset = 0): Raid0Layout => ({
    pattern: 'raid0', stripeSize: 64 * KiB, stripeCount, stripeOffset,
    objects: Array.from({ length: stripeCount }, (_, i) => ({ ostIndex: (stripeOffset + i) % 2, seq: SEQ, oid })),
  });

  const big = layout(1);
  const data = patternBytes(64 * MiB, seed);
  await lov.write(big, 0, data);
  t.equal(await lov.size(big), 64 * MiB, 'the size is the max over the stripes');
  const attrs = await lov.stripeAttrs(big);
  t.same(attrs.map((a) => a.size), [32 * MiB, 32 * MiB], 'each object holds half');
  // Each object holds its stripes: object 0 the even 64 KiB units, object 1 the odd ones.
  const obj0 = await oscs.get(0)!.read(big.objects[0]!, 0, 32 * MiB);
  const obj1 = await oscs.get(1)!.read(big.objects[1]!, 0, 32 * MiB);
  let placed = true;
  for (let u = 0; u < 1024 && placed; u++) {
    const unit = data.subarray(u * 64 * KiB, (u + 1) * 64 * KiB);
    const row = Math.floor(u / 2);
    placed = (u % 2 === 0 ? obj0 : obj1).subarray(row * 64 * KiB, (row + 1) * 64 * KiB).equals(unit);
  }
  t.ok(placed, 'every stripe unit on its OST at its object offset');
  // Both sides of every stripe boundary, read through the LOV.
  let boundaries = 0;
  for (let k = 1; k < 1024; k++) {
    const at = k * 64 * KiB;
    const got = await lov.read(big, at - 8, 16);
    if (!got.equals(data.subarray(at - 8, at + 8))) break;
    boundaries++;
  }
  t.equal(boundaries, 1023, 'the 16 bytes around each of the 1023 stripe boundaries are right');
  t.ok((await lov.read(big, 0, 64 * MiB)).equals(data), 'the whole file reads back');
  // An unaligned overwrite across boundaries.
  const patch = patternBytes(3 * 64 * KiB + 10, seed + 1);
  await lov.write(big, 5 * 64 * KiB - 5, patch);
  patch.copy(data, 5 * 64 * KiB - 5);
  t.ok((await lov.read(big, 4 * 64 * KiB, 6 * 64 * KiB)).equals(data.subarray(4 * 64 * KiB, 10 * 64 * KiB)), 'an unaligned overwrite over three boundaries');

  // A sparse file: a few bytes far apart; everything between reads as zeros.
  const sparse = layout(2, 2, 1);
  const pieces = [{ at: 3, bytes: Buffer.from('first') }, { at: 5 * MiB + 7, bytes: Buffer.from('middle') }, { at: 9 * MiB + 64 * KiB - 2, bytes: Buffer.from('last!') }];
  for (const p of pieces) await lov.write(sparse, p.at, p.bytes);
  const end = 9 * MiB + 64 * KiB + 3;
  t.equal(await lov.size(sparse), end, 'the size reaches the last byte written');
  const whole = await lov.read(sparse, 0, 16 * MiB);
  const expect = Buffer.alloc(end);
  for (const p of pieces) p.bytes.copy(expect, p.at);
  t.equal(whole.length, end, 'a read is clamped to the size');
  t.ok(whole.equals(expect), 'holes read as zeros, the written bytes where they were written');
  t.ok((await lov.read(sparse, 2 * MiB, 64 * KiB)).equals(Buffer.alloc(64 * KiB)), 'a read inside a hole');
  t.equal((await lov.read(sparse, end, 100)).length, 0, 'nothing past the end');
  // readPieces: the same bytes as read, as the bulks arrived (views, zeros for holes), in file order.
  const asPieces = await lov.readPieces(sparse, 0, 16 * MiB);
  t.ok(Buffer.concat(asPieces).equals(expect), 'readPieces: the same bytes as read, holes as zeros');
  const aligned = await lov.readPieces(big, 4 * MiB, 2 * MiB);
  t.ok(aligned.length >= 32, 'readPieces of 2 MiB over 64 KiB stripes: at least one piece per stripe unit (views, not joined)');
  t.ok(Buffer.concat(aligned).equals(data.subarray(4 * MiB, 6 * MiB)), 'and each piece in its place');
  const one = layout(3, 1);
  await lov.write(one, 200 * KiB, Buffer.from('x'));
  t.ok((await lov.read(one, 0, 300 * KiB)).equals(Buffer.concat([Buffer.alloc(200 * KiB), Buffer.from('x')])), 'one stripe: zeros before');

  // Truncate: each object to its share; size follows; growth reads zeros.
  await lov.truncate(big, 100 * KiB + 1);
  t.equal(await lov.size(big), 100 * KiB + 1);
  t.same((await lov.stripeAttrs(big)).map((a) => a.size), [64 * KiB, 36 * KiB + 1]);
  await lov.truncate(big, 300 * KiB);
  const grown = await lov.read(big, 0, MiB);
  t.equal(grown.length, 300 * KiB);
  t.ok(grown.subarray(0, 100 * KiB + 1).equals(data.subarray(0, 100 * KiB + 1)) && grown.subarray(100 * KiB + 1).equals(Buffer.alloc(200 * KiB - 1)), 'truncated, then extended with zeros');
  t.match(await lov.getattr(big), { size: 300 * KiB });
  await lov.sync(big);
  await lov.destroy(big);
  await t.rejects(lov.size(big), { code: 'ENOENT' }, 'destroyed on both OSTs');
  await t.rejects(new Lov(new Map()).size(big), { code: 'ENODEV' }, 'no OSC for an OST index');
});
