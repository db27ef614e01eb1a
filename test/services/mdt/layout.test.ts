// Layouts and OST objects: lov_mds_md_v1 bytes pinned; the allocator's choices (offset, round
// robin, free-space weighting); and against two real OSTs over LNet: precreate, round-robin
// allocation, stripe counts 1, 2 and -1, default layouts per file system and per directory and
// their inheritance, destruction of unlinked files' objects through the unlink llog (also
// across a restart while an OST was down), and delorphan of unused precreated objects.
import t from 'tap';
import { until } from '../../lib/net.js';
import { OpenFlag, type Mdc } from '../../../src/client/mdc.js';
import type { LNetNI } from '../../../src/lnet/index.js';
import { fid, type Fid, type Osd } from '../../../src/osd/index.js';
import { chooseOsts, ostSeq } from '../../../src/services/mdt/index.js';
import {
  decodeDefaultLayout, decodeFileLayout, encodeDefaultLayout, encodeFileLayout, resolveSpec,
} from '../../../src/services/mdt/layout.js';
import {
  connectMdc, freePort, hosts, newDir, removeDir, startClientNi, startMdtNode, startOstNode, type MdtNode, type OstNode,
} from './helpers.js';

const seed = Number(process.env.MDT_SEED ?? Date.now() % 1_000_000);

function rng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('lov_mds_md_v1 bytes', async (t) => {
  const layout = {
    fid: fid(0x200000400, 5), stripeSize: 1 << 20,
    objects: [{ ostIndex: 0, fid: fid(0x100000000, 7) }, { ostIndex: 1, fid: fid(0x100010000, 9) }],
  };
  const b = encodeFileLayout(layout);
  t.equal(b.toString('hex'),
    'd00bd10b' + '01000000' + '0004000002000000' + '05000000' + '00000000' + '00001000' + '0200' + '0000' +
    '0000000001000000' + '07000000' + '00000000' + '00000000' + '00000000' +
    '0000010001000000' + '09000000' + '00000000' + '00000000' + '01000000',
    'magic, pattern, lmm_oi, stripe size and count, then each lov_ost_data_v1');
  t.same(decodeFileLayout(b), layout);
  const d = encodeDefaultLayout(fid(0x200000400, 1), { stripeCount: -1, stripeSize: 65536, stripeOffset: -1 });
  t.equal(d.length, 32);
  t.equal(d.readUInt16LE(28), 0xffff, 'stripe count -1 is 0xFFFF');
  t.same(decodeDefaultLayout(d), { stripeCount: -1, stripeSize: 65536, stripeOffset: -1 });
  t.throws(() => decodeFileLayout(b.subarray(0, 40)), { code: 'EINVAL' }, 'a short layout is refused');
  t.same(resolveSpec({ stripeCount: 0, stripeSize: 0, stripeOffset: -1 }, { stripeCount: 2, stripeSize: 0, stripeOffset: -1 }, undefined),
    { stripeCount: 2, stripeSize: 1 << 20, stripeOffset: -1 }, 'unset fields fall back along the chain');
});

t.test('allocator choices', async (t) => {
  t.comment(`seed ${seed} (MDT_SEED reproduces)`);
  const random = rng(seed);
  const even = [0, 1, 2, 3].map((index) => ({ index, bytesFree: 1000 }));
  const base = { qosThresholdRr: 0.17, random };
  t.same(chooseOsts(even, { ...base, count: 2, offset: 2, rrStart: 0 }), [2, 3], 'stripe_offset starts there');
  t.same(chooseOsts(even, { ...base, count: 3, offset: 3, rrStart: 0 }), [3, 0, 1], 'and wraps');
  t.same(chooseOsts(even, { ...base, count: -1, offset: -1, rrStart: 1 }), [1, 2, 3, 0], '-1 is every OST');
  t.same(chooseOsts(even, { ...base, count: 9, offset: -1, rrStart: 0 }).length, 4, 'cut to the OSTs there are');
  const starts = [0, 1, 2, 3, 4].map((rr) => chooseOsts(even, { ...base, count: 1, offset: -1, rrStart: rr })[0]);
  t.same(starts, [0, 1, 2, 3, 0], 'balanced: round robin');
  const skewed = [{ index: 0, bytesFree: 9000 }, { index: 1, bytesFree: 1000 }];
  const hits = [0, 0];
  for (let i = 0; i < 2000; i++) hits[chooseOsts(skewed, { ...base, count: 1, offset: -1, rrStart: i })[0]!]++;
  t.ok(hits[0]! > hits[1]! * 4, `unbalanced: weighted by free space (${hits.join(' / ')})`);
  const two = chooseOsts(skewed, { ...base, count: 2, offset: -1, rrStart: 0 });
  t.same([...two].sort(), [0, 1], 'weighted choice never picks an OST twice');
});

async function ostObjects(osd: Osd, index: number): Promise<string[]> {
  const seqIndex = await osd.indexLookup(fid(0x200000003, 1), `0x${ostSeq(index).toString(16)}`);
  if (!seqIndex) return [];
  const names: string[] = [];
  let cookie: string | null = null;
  do {
    const page = await osd.indexList(seqIndex.fid, { cookie, limit: 1024 });
    names.push(...page.entries.map((e) => e.name));
    cookie = page.cookie;
  } while (cookie);
  return names;
}


t.test('layouts and OST objects against two real OSTs', async (t) => {
  const port = await freePort();
  const [mdtHost, ost0Host, ost1Host, clientHost] = hosts(4, 2);
  const mdtNid = `${mdtHost}@tcp`;
  const dirs = await Promise.all(['mdt-lo-', 'ost0-lo-', 'ost1-lo-'].map((p) => newDir(p)));
  t.teardown(() => Promise.all(dirs.map(removeDir)));
  const params = { 'mdt.osts': `0=${ost0Host}@tcp,1=${ost1Host}@tcp`, 'lov.stripesize': String(256 * 1024) };
  const tun = { precreateLow: 4, precreateHigh: 16, statfsIntervalMs: 200, ospRequestDeadlineMs: 1000 };
  const osts: OstNode[] = [
    await startOstNode(dirs[1]!, `${ost0Host}@tcp`, port, 0),
    await startOstNode(dirs[2]!, `${ost1Host}@tcp`, port, 1),
  ];
  let mdt: MdtNode = await startMdtNode(dirs[0]!, mdtNid, port, params, tun);
  const clientNi: LNetNI = await startClientNi(`${clientHost}@tcp`, port);
  let mdc: Mdc = await connectMdc(clientNi, mdtNid, 'layout-client');
  t.teardown(async () => {
    await mdc.disconnect().catch(() => {});
    await mdt.stop().catch(() => {});
    for (const o of osts) await o.stop().catch(() => {});
    await clientNi.stop();
    await mdt.ni.stop();
    for (const o of osts) await o.ni.stop();
  });
  await Promise.all([...mdt.mdt.osps.values()].map((o) => o.started));
  const rootFid = await mdc.root();

  const layoutOf = async (f: string) => (await mdc.getLayout(f))!;
  const objectsOn = async (i: number) => ostObjects(osts[i]!.osd, i);

  await t.test('precreate and round-robin allocation', async (t) => {
    await until('precreate on both OSTs', () => [...mdt.mdt.osps.values()].every((o) => o.available() > 0));
    t.ok((await objectsOn(0)).length > 0 && (await objectsOn(1)).length > 0, 'both OSTs hold precreated objects');
    const d = await mdc.mkdir(rootFid, 'rr', 0o755);
    const used: number[] = [];
    for (let i = 0; i < 6; i++) {
      const f = await mdc.create(d.fid, `f${i}`, 0o644);
      const l = await layoutOf(f.fid);
      t.equal(l.objects.length, 1);
      t.equal(l.stripeSize, 256 * 1024, 'the file system default stripe size (lov.stripesize)');
      used.push(l.objects[0]!.ostIndex);
      t.equal(l.objects[0]!.fid.seq, ostSeq(l.objects[0]!.ostIndex), 'the object is in its OST\'s sequence');
      t.ok(await osts[l.objects[0]!.ostIndex]!.osd.exists(l.objects[0]!.fid), 'the object exists on its OST');
    }
    t.same(used.filter((x) => x === 0).length, 3, `balanced OSTs take turns (${used.join(',')})`);
    for (let i = 1; i < used.length; i++) t.not(used[i], used[i - 1], 'consecutive files start on the next OST');
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) for (const o of (await layoutOf((await mdc.lookup(d.fid, `f${i}`)).fid)).objects) ids.add(`${o.ostIndex}:${o.fid.oid}`);
    t.equal(ids.size, 6, 'no object handed out twice');
  });

  await t.test('stripe counts 1, 2, -1, offset; directory and root defaults, inherited', async (t) => {
    const d = await mdc.mkdir(rootFid, 'stripes', 0o755);
    t.equal((await layoutOf((await mdc.create(d.fid, 'one', 0o644, { stripeCount: 1 })).fid)).objects.length, 1);
    const two = await layoutOf((await mdc.create(d.fid, 'two', 0o644, { stripeCount: 2, stripeSize: 65536 })).fid);
    t.same(two.objects.map((o) => o.ostIndex).sort(), [0, 1]);
    t.equal(two.stripeSize, 65536);
    t.equal((await layoutOf((await mdc.create(d.fid, 'all', 0o644, { stripeCount: -1 })).fid)).objects.length, 2, '-1: every OST');
    const off = await layoutOf((await mdc.create(d.fid, 'off', 0o644, { stripeCount: 1, stripeOffset: 1 })).fid);
    t.equal(off.objects[0]!.ostIndex, 1, 'stripe_offset honoured');
    t.equal(((await mdc.create(d.fid, 'bad', 0o644, { stripeSize: 1000 }).catch((e: { code: string }) => e)) as { code: string }).code, 'EINVAL', 'stripe size off 64 KiB');
    // A directory default, inherited by files and by subdirectories.
    const striped = await mdc.mkdir(rootFid, 'striped', 0o755, { stripeCount: 2, stripeSize: 128 * 1024 });
    t.same(await mdc.getDirStripe(striped.fid), { stripeCount: 2, stripeSize: 128 * 1024, stripeOffset: -1 });
    const inF = await layoutOf((await mdc.create(striped.fid, 'f', 0o644)).fid);
    t.equal(inF.objects.length, 2);
    t.equal(inF.stripeSize, 128 * 1024, 'files inherit the directory default');
    const sub = await mdc.mkdir(striped.fid, 'sub', 0o755);
    t.same(await mdc.getDirStripe(sub.fid), { stripeCount: 2, stripeSize: 128 * 1024, stripeOffset: -1 }, 'subdirectories inherit it');
    const partial = await layoutOf((await mdc.create(sub.fid, 'g', 0o644, { stripeCount: 1 })).fid);
    t.equal(partial.objects.length, 1);
    t.equal(partial.stripeSize, 128 * 1024, 'unset fields of a request come from the default');
    await mdc.setStripe(d.fid, { stripeCount: -1 });
    t.equal((await layoutOf((await mdc.create(d.fid, 'later', 0o644)).fid)).objects.length, 2, 'setstripe on a directory');
    await mdc.removeDirStripe(d.fid);
    t.equal(await mdc.getDirStripe(d.fid), undefined);
    // The root's default is the file system's.
    await mdc.setStripe(rootFid, { stripeCount: 2 });
    const plain = await mdc.mkdir(rootFid, 'plain', 0o755);
    t.equal(await mdc.getDirStripe(plain.fid), undefined, 'the root default is not copied');
    t.equal((await layoutOf((await mdc.create(plain.fid, 'f', 0o644)).fid)).objects.length, 2, 'but applies under it');
    await mdc.removeDirStripe(rootFid);
    t.equal((await mdc.setStripe((await mdc.lookup(striped.fid, 'f')).fid, { stripeCount: 1 }).catch((e: { code: string }) => e) as { code: string }).code,
      'EEXIST', 'a file with objects keeps its layout');
    const o = await mdc.open(d.fid, 'opened', OpenFlag.CREAT | OpenFlag.RDWR, 0o644, { stripeCount: 2 });
    t.equal(o.layout?.objects.length, 2, 'open O_CREAT returns the new layout');
    await mdc.close(o.handle);
  });

  await t.test('unlinked files\' objects are destroyed; none orphaned after restarts', async (t) => {
    const d = await mdc.mkdir(rootFid, 'gone', 0o755);
    const f = await mdc.create(d.fid, 'f', 0o644, { stripeCount: -1 });
    const objs = (await layoutOf(f.fid)).objects;
    await mdc.unlink(d.fid, 'f');
    await until('OST destroys', async () => !(await Promise.all(objs.map((o) => osts[o.ostIndex]!.osd.exists(o.fid)))).some(Boolean));
    t.pass('both objects destroyed on their OSTs');
    await until('llog drained', async () => (await mdt.mdt.llog.pending()) === 0, 30_000);
    // Open, unlink, close: the objects go at the last close.
    const o = await mdc.open(d.fid, 'held', OpenFlag.CREAT | OpenFlag.RDWR, 0o644, { stripeCount: 2 });
    await mdc.unlink(d.fid, 'held');
    t.ok(await osts[o.layout!.objects[0]!.ostIndex]!.osd.exists(o.layout!.objects[0]!.fid), 'objects live while open');
    await mdc.close(o.handle);
    await until('destroy at last close', async () => !(await osts[o.layout!.objects[0]!.ostIndex]!.osd.exists(o.layout!.objects[0]!.fid)));
    // A record goes once its OST committed the destroy (pings bring last_committed back).
    await until('llog drained again', async () => (await mdt.mdt.llog.pending()) === 0, 30_000);
    // An OST down while a file goes: the record waits in the llog, across an MDT restart.
    const g = await mdc.create(d.fid, 'g', 0o644, { stripeCount: 1, stripeOffset: 1 });
    const gObj = (await layoutOf(g.fid)).objects[0]!;
    await osts[1]!.stop();
    await mdc.unlink(d.fid, 'g');
    await until('a failed destroy attempt', () => mdt.mdt.llog.stats.failures > 0);
    t.equal(await mdt.mdt.llog.pending(), 1, 'the record stays while the OST is away');
    await mdc.disconnect();
    await mdt.stop();
    osts[1] = await startOstNode(dirs[2]!, `${ost1Host}@tcp`, port, 1, {}, osts[1]!.ni);
    mdt = await startMdtNode(dirs[0]!, mdtNid, port, params, tun, mdt.ni);
    mdc = await connectMdc(clientNi, mdtNid, 'layout-client');
    await until('the record processed after the restart', async () => (await mdt.mdt.llog.pending()) === 0);
    t.notOk(await osts[1]!.osd.exists(gObj.fid), 'the object was destroyed once the OST was back');
    // Every object on the OSTs belongs to a live file (precreated ones above the last used were removed by delorphan).
    await Promise.all([...mdt.mdt.osps.values()].map((o) => o.started));
    const live = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      for (const e of (await mdc.readdirAll(dir)).slice(2)) {
        if (e.type === 'dir') await walk(e.fid);
        else if (e.type === 'reg') for (const ob of (await mdc.getLayout(e.fid))?.objects ?? []) live.add(`${ob.ostIndex}:${ob.fid.oid}`);
      }
    };
    await walk(rootFid);
    // Objects precreated after the restart are not orphans: they are above last used and still to be handed out.
    for (const [i, o] of mdt.mdt.osps) {
      const { next, lastCreated } = o.stats() as { next: number; lastCreated: number };
      const oids = (await objectsOn(i)).map(Number);
      const stray = oids.filter((oid) => oid < next && !live.has(`${i}:${oid}`));
      t.same(stray, [], `OST${i}: below the precreate window, only live files' objects`);
      t.same(oids.filter((oid) => oid > lastCreated), [], `OST${i}: nothing above the precreate window`);
      t.equal(oids.filter((oid) => oid >= next).length, lastCreated - next + 1, `OST${i}: the window is exactly the precreated objects`);
    }
  });
});
