// The whole system, through the client modules: an MGS+MDT and two OSTs, each formatted with
// mkfs.lustre's logic and mounted with Target.mount on its own loopback NID (127.0.0.2, .3, .4),
// and a client on 127.0.0.5 that learns the file system from the MGS (MGC) and works through
// the MDC, the OSCs and the LOV. The second OST joins while the client is connected. A tree of files with stripe counts 1, 2 and -1 is written with
// known data and read back, renamed (also over an existing file) and partly unlinked; after
// that, every OST object is accounted for: each live file's objects exist, and nothing else is
// on the OSTs but the window the MDT precreated and has not handed out yet.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lov, Mdc, Mgc, Osc, type Raid0Layout } from '../../src/client/index.js';
import { raid0Of } from '../../src/client/file.js';
import { LNetNI } from '../../src/lnet/index.js';
import type { Osd } from '../../src/osd/index.js';
import type { RunningMdt } from '../../src/services/mdt/index.js';
import { ostSeq } from '../../src/services/mdt/osp.js';
import type { RunningOst } from '../../src/services/ost/index.js';
import { formatTarget, Target } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { patternBytes, prng, seedFrom } from '../lib/prng.js';

const SEED = seedFrom('LUSTRE_E2E_SEED');
const quiet = (): void => {};

/** The oids of every object an OST holds in its MDT-facing sequence. */
async function ostObjectIds(ost: RunningOst, osd: Osd, index: number): Promise<number[]> {
  const seqIndex = ost.objects.seqIndex(ostSeq(index));
  if (!seqIndex) return [];
  const oids: number[] = [];
  for (let cookie: string | null | undefined; cookie !== null;) {
    const page = await osd.indexList(seqIndex, { cookie, limit: 1024 });
    oids.push(...page.entries.map((e) => Number(e.name)));
    cookie = page.cookie;
  }
  return oids;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test(`MGS+MDT and two OSTs on three NIDs, a client through MGC, MDC, OSC and LOV (seed ${SEED})`, async (t) => {
  const random = prng(SEED);
  const port = await freePort();
  const [mdsNid, ost0Nid, ost1Nid, clientNid] = ['127.0.0.2@tcp', '127.0.0.3@tcp', '127.0.0.4@tcp', '127.0.0.5@tcp'];
  const root = await mkdtemp(join(tmpdir(), 'e2e-system-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await formatTarget(join(root, 'mdt0'), { fsname: 'e2efs', mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname: 'e2efs', ost: true, index: 0, mgsNids: [mdsNid] });
  await formatTarget(join(root, 'ost1'), { fsname: 'e2efs', ost: true, index: 1, mgsNids: [mdsNid] });
  const nis = await Promise.all([mdsNid, ost0Nid, ost1Nid, clientNid].map((nid) => LNetNI.start({ nid, port, warn: quiet })));
  const targets: Target[] = [];
  const closers: Array<() => Promise<void>> = [];
  t.teardown(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    for (const target of targets.reverse()) await target.umount().catch(() => {});
    for (const ni of nis) await ni.stop();
  });
  const osd = { txgTimeoutMs: 10 };
  const mds = await Target.mount(join(root, 'mdt0'), nis[0]!, { osd });
  targets.push(mds);
  const ostTargets = [await Target.mount(join(root, 'ost0'), nis[1]!, { osd })];
  targets.push(ostTargets[0]!);
  const mdt = mds.running.find((r) => r.name === 'mdt') as RunningMdt;
  await until('the MDT connected to OST0000', () => mdt.osps.size === 1);

  // The client: configuration from the MGS, one OSC per OST it names, and it keeps following
  // the client log, so that an OST added later becomes usable without a remount.
  const client = nis[3]!;
  const mgc = await Mgc.connect(client, { mgsNids: [mdsNid], clientUuid: 'e2e-client' });
  closers.push(() => mgc.close());
  const oscs = new Map<number, Osc>();
  const connecting = new Map<number, Promise<void>>();
  const follow = mgc.watch('e2efs').subscribe(({ config }) => {
    for (const [index, ost] of config.osts) {
      if (connecting.has(index)) continue;
      connecting.set(index, Osc.connect(client, { nid: ost.nids[0]!, targetUuid: ost.uuid, clientUuid: 'e2e-client' }).then((osc) => {
        oscs.set(index, osc);
        closers.push(() => osc.disconnect());
      }));
    }
  });
  closers.push(async () => follow.unsubscribe());
  const config = await mgc.readConfig('e2efs');
  t.same([...config.osts.keys()], [0], 'the client log names OST0000');
  const mdtTarget = config.mdts.get(0)!;
  const mdc = await Mdc.connect(client, { nid: mdtTarget.nids[0]!, targetUuid: mdtTarget.uuid, clientUuid: 'e2e-client' });
  closers.push(() => mdc.disconnect());
  await until('the client connected to OST0000', () => oscs.has(0));

  // OST0001 joins while the client is connected.
  ostTargets.push(await Target.mount(join(root, 'ost1'), nis[2]!, { osd }));
  targets.push(ostTargets[1]!);
  await until('the client follows the new OST', () => oscs.has(1));
  await until('the MDT connected to OST0001', () => mdt.osps.size === 2);
  await Promise.all([...mdt.osps.values()].map((o) => o.started));
  await until('objects precreated on both OSTs', () => [...mdt.osps.values()].every((o) => o.available() > 0));
  t.pass('OST0001 added while the client was connected: usable without a remount');
  const osts = ostTargets.map((x) => x.running.find((r) => r.name === 'ost') as RunningOst);
  const lov = new Lov(oscs);
  const layoutOf = async (fid: Parameters<Mdc['getLayout']>[0]): Promise<Raid0Layout> => raid0Of((await mdc.getLayout(fid))!)!;

  // A tree: files with stripe counts 1, 2 and -1, sizes across several stripes, known data.
  const rootFid = await mdc.root();
  const a = await mdc.mkdir(rootFid, 'a', 0o755);
  const b = await mdc.mkdir(a.fid, 'b', 0o755);
  const specs = [
    { dir: a.fid, name: 's1', stripeCount: 1, size: 300_000 },
    { dir: a.fid, name: 's2', stripeCount: 2, size: 1_000_000 },
    { dir: b.fid, name: 'sall', stripeCount: -1, size: 2_500_000 },
    { dir: b.fid, name: 's2-small', stripeCount: 2, size: 70_000 },
    { dir: rootFid, name: 'top', stripeCount: -1, size: 640 * 1024 },
    { dir: a.fid, name: 'gone', stripeCount: 2, size: 200_000 },
  ];
  const files = new Map<string, { dir: typeof rootFid; name: string; digest: string; size: number }>();
  for (const s of specs) {
    const attr = await mdc.create(s.dir, s.name, 0o644, { stripeCount: s.stripeCount, stripeSize: 64 * 1024 });
    const layout = await layoutOf(attr.fid);
    t.equal(layout.stripeCount, s.stripeCount === -1 ? 2 : s.stripeCount, `${s.name}: stripe count ${s.stripeCount}`);
    const data = patternBytes(random.int(2 ** 31), s.size);
    await lov.write(layout, 0, data);
    const back = await lov.read(layout, 0, s.size + 4096);
    t.equal(sha(back.subarray(0, s.size)), sha(data), `${s.name}: the bytes read back are the bytes written`);
    t.equal(await lov.size(layout), s.size, `${s.name}: size from the stripes`);
    files.set(s.name, { dir: s.dir, name: s.name, digest: sha(data), size: s.size });
  }

  // Renames: across directories, and over an existing file (whose objects must go).
  await mdc.rename(a.fid, 's1', b.fid, 's1-moved');
  files.get('s1')!.dir = b.fid;
  files.get('s1')!.name = 's1-moved';
  await mdc.rename(b.fid, 's2-small', a.fid, 's2');
  files.delete('s2');
  files.get('s2-small')!.dir = a.fid;
  files.get('s2-small')!.name = 's2';
  // Unlink of a file held open: its objects stay, its data reads, until the last close.
  const open = await mdc.open(a.fid, 'gone', 0);
  const goneLayout = await layoutOf(open.attr.fid);
  t.same((await mdc.unlink(a.fid, 'gone')).orphan, true, 'unlinked while open: an orphan');
  t.equal(sha(await lov.read(goneLayout, 0, files.get('gone')!.size)), files.get('gone')!.digest, 'the unlinked file reads through its open handle');
  await mdc.close(open.handle);
  files.delete('gone');

  // Every remaining file reads back whole under its new name.
  for (const f of files.values()) {
    const fid = (await mdc.lookup(f.dir, f.name)).fid;
    const layout = await layoutOf(fid);
    t.equal(sha(await lov.read(layout, 0, f.size)), f.digest, `${f.name}: intact after the renames`);
  }

  // Accounting: the destroys of unlinked and overwritten files have reached the OSTs...
  await until('the unlink log drained', async () => (await mdt.llog.pending()) === 0);
  const live = new Set<string>();
  const walk = async (dir: typeof rootFid): Promise<void> => {
    for (const e of (await mdc.readdirAll(dir)).filter((x) => x.name !== '.' && x.name !== '..')) {
      if (e.type === 'dir') await walk(e.fid);
      else for (const o of (await mdc.getLayout(e.fid))?.objects ?? []) live.add(`${o.ostIndex}:${o.fid.oid}`);
    }
  };
  await walk(rootFid);
  t.equal(live.size, 1 + 2 + 2 + 2, 'the live files (s1-moved, sall, s2, top) hold 7 objects');
  // ...and each OST holds exactly the live objects plus the precreated window not yet used.
  for (const [index, osp] of mdt.osps) {
    const { next, lastCreated } = osp.stats() as { next: number; lastCreated: number };
    const oids = await ostObjectIds(osts[index]!, ostTargets[index]!.osd, index);
    const orphans = oids.filter((oid) => oid < next && !live.has(`${index}:${oid}`));
    const missing = [...live].filter((k) => k.startsWith(`${index}:`) && !oids.includes(Number(k.split(':')[1])));
    t.same(orphans, [], `OST${index}: no orphan object`);
    t.same(missing, [], `OST${index}: no live object missing`);
    t.equal(oids.filter((oid) => oid >= next).length, Math.max(0, lastCreated - next + 1), `OST${index}: above the objects handed out, only the precreated window`);
  }
  for (const target of [mds, ...ostTargets]) t.same(await target.osd.check(), [], `${target.svname}: the OSD's consistency check passes`);
});
