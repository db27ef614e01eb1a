// The crash soak of issue 7: real processes, real SIGKILLs. The MGS+MDT runs in a lustre.kernel
// on 127.0.0.2, OST0000 in one on 127.0.0.3, OST0001 in one on 127.0.0.4; four clients (the
// client library, in this process, on NIs 127.0.0.5-8) each run a seeded mixed workload (create
// and write, mkdir, rename, unlink, rmdir, chmod, truncate, pwrite, overwrite), while a crasher
// kills the MDT's or OST0000's kernel with SIGKILL at seeded random moments (sometimes during
// the previous crash's recovery), starts it again and mounts the device again. Clients wait
// through each restart and replay. At the end:
//   - the namespace seen by a fresh client equals the union of the clients' models built from
//     the operations that succeeded (names, types, modes, sizes, bytes): each effect once;
//   - the devices are unmounted cleanly, `lustre.log verify` passes on each, and the OSDs, opened
//     directly, pass their consistency check;
//   - every file's layout names OST objects that exist with the sizes its file size gives each
//     stripe; every object an OST holds up to the MDT's last used object (lov_objid) belongs to
//     a file or waits in the MDT's unlink log (no orphans); objects above are precreated.
// In the default test run with 20 crashes. SOAK_SEED reproduces the choices (not the timing);
// SOAK_CRASHES sets the number of crashes (unbounded); SOAK_TARGETS=mdt or ost crashes only that kernel; SOAK_DURING_RECOVERY=0.3 lets that share of
// the crashes hit the recovery of the one before; SOAK_VERBOSE=1 prints the timeline. A
// failing run keeps its run dir (devices, kernel logs) and writes what it found to findings.md
// there (each differing path's operation history, the kernels' logs on the soak's clock, the
// crash timeline), and appends it to the file SOAK_FINDINGS names, if set.
import t from 'tap';
import { alive } from '../../src/control/rundir.js';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSizeOfStripe, mount, stripeObjectSize, type FileSystem, type Raid0Layout } from '../../src/client/index.js';
import { LNetNI } from '../../src/lnet/index.js';
import { fid, fidToString, parseFid, ROOT_INDEX_FID, Osd, type Fid } from '../../src/osd/index.js';
import { decodeFileLayout, LOV_XATTR, type FileLayout } from '../../src/services/mdt/layout.js';
import { formatTarget } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { prng, seedFrom } from '../lib/prng.js';
import { runTool, type ToolResult } from '../lib/tools.js';
import { diffTrees, type Entry, type Tree } from './soak-model.js';
import { historyOf, ownedBy, runClient, SHARED, type ClientRun, type Failure } from './soak-workload.js';

const SEED = seedFrom('SOAK_SEED');
const CRASHES = Number(process.env.SOAK_CRASHES ?? 20);
/** Which kernels the crasher kills: 'both' (default), or 'mdt' or 'ost' alone (to tell failures apart). */
const TARGETS = process.env.SOAK_TARGETS ?? 'both';
// The share of crashes that may land in the recovery of the one before (default 0: every crash
// waits until the clients are served again). A crash during recovery can leave OST objects that
// creates lost in the first crash had taken below lov_objid, which nothing cleans yet (Lustre's
// LFSCK would): the orphan check then fails. test/e2e/recovery-crash.test.ts crashes during recovery.
const DURING_RECOVERY = Number(process.env.SOAK_DURING_RECOVERY ?? 0);
const CLIENTS = 4;
const FSNAME = 'soak';
const MDT = 2;
const OST0 = 3;
const OST1 = 4;

t.setTimeout(Math.max(600_000, CRASHES * 30_000));

// What it found and was fixed: a request in flight at an MDT crash never answered (its reply
// buffer lost mid-reply); unlink records dropped before the OST committed their destroys; and a
// destroy the OST answered, then lost in its crash, taken for committed once the restarted OST
// (which evicted the MDT) had committed past its transno with other work (orphan objects).
t.test(`crash soak: ${CLIENTS} clients, ${CRASHES} SIGKILLs of the MDT and OST0000 (SOAK_SEED=${SEED})`, async (t) => {
  t.comment(`seed ${SEED} (SOAK_SEED=${SEED} repeats the choices)`);
  const port = await freePort();
  const root = await mkdtemp(join(tmpdir(), 'soak-'));
  const rd = (k: number) => join(root, `k${k}`);
  const device = { [MDT]: join(root, 'mdt0'), [OST0]: join(root, 'ost0'), [OST1]: join(root, 'ost1') } as Record<number, string>;
  const pidOf = (k: number) => Number(readFileSync(join(rd(k), 'kernel.pid'), 'utf8'));
  const closers: Array<() => Promise<unknown>> = [];
  let keep = false;
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    for (const k of [MDT, OST0, OST1]) {
      try { process.kill(pidOf(k), 'SIGKILL'); } catch { /* gone */ }
    }
    if (keep) t.comment(`kept ${root}: findings in ${root}/findings.md, kernel logs in ${root}/k*/kernel.log`);
    else await rm(root, { recursive: true, force: true });
  });
  const tool = (name: string, args: string[], k: number) => runTool(name, args, { env: { LUSTRE_RUNDIR: rd(k) } });
  const ok = (r: ToolResult, what: string): ToolResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  };
  const startKernel = async (k: number) => ok(await tool('lustre-kernel', ['start', '--nid', `127.0.0.${k}@tcp`, '--port', String(port), '--rundir', rd(k)], k), `kernel ${k}`);
  const mountDevice = async (k: number) => ok(await tool('lustre-mount', [device[k]!], k), `mount ${device[k]}`);
  const recoveryStatus = async (k: number) =>
    ok(await tool('lctl', ['get_param', '-n', k === MDT ? 'mdt.*.recovery_status' : 'obdfilter.*.recovery_status'], k), 'recovery_status').stdout;

  // Each lctl is a process of its own: poll at a pace that leaves the machine to the soak.
  const recovered = (k: number) => until(`recovery of kernel ${k} completes`, async () => {
    if (/^status: (COMPLETE|INACTIVE)$/m.test(await recoveryStatus(k))) return true;
    await new Promise((r) => setTimeout(r, 300));
    return false;
  }, 120_000);

  for (const k of [MDT, OST0, OST1]) await startKernel(k);
  await formatTarget(device[MDT]!, { fsname: FSNAME, mgs: true, mdt: true, index: 0 });
  await formatTarget(device[OST0]!, { fsname: FSNAME, ost: true, index: 0, mgsNids: ['127.0.0.2@tcp'] });
  await formatTarget(device[OST1]!, { fsname: FSNAME, ost: true, index: 1, mgsNids: ['127.0.0.2@tcp'] });
  for (const k of [MDT, OST0, OST1]) await mountDevice(k);

  let nextNi = 5;
  const client = async (uuid: string): Promise<FileSystem> => {
    const ni = await LNetNI.start({ nid: `127.0.0.${nextNi++}@tcp`, port, warn: () => {} });
    closers.push(() => ni.stop());
    const fs = await mount(`127.0.0.2@tcp:/${FSNAME}`, { ni, clientUuid: uuid, requestDeadlineMs: 120_000, connectDeadlineMs: 60_000 });
    closers.unshift(() => fs.umount({ force: true }));
    return fs;
  };
  const clients: FileSystem[] = [];
  for (let k = 1; k <= CLIENTS; k++) clients.push(await client(`soak-client-${k}`));
  // Both OSTs must take objects before the workload starts: a two-stripe create needs both.
  await until('both OSTs give objects', async () => {
    const h = await clients[0]!.open('/probe', 'wx', 0o644, { stripeCount: 2, stripeSize: 65536 });
    await h.close();
    const l = await clients[0]!.layout('/probe');
    await clients[0]!.unlink('/probe');
    return (l && 'objects' in l ? l.objects.length : 0) === 2;
  }, 30_000);
  await clients[0]!.mkdir(SHARED, { mode: 0o755 });
  for (let k = 1; k <= CLIENTS; k++) await clients[k - 1]!.mkdir(`/c${k}`, { mode: 0o755 });

  // ---- the workload and the crasher -------------------------------------------------------
  const started = Date.now();
  const failures: Failure[] = [];
  const timeline: string[] = [];
  const note = (s: string) => timeline.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${s}`);
  let stopping = false;
  const dump = async (what: string, lines: string[]) => {
    keep = true;
    await report([join(root, 'findings.md'), ...(process.env.SOAK_FINDINGS ? [process.env.SOAK_FINDINGS] : [])],
      `${what} (SOAK_SEED=${SEED}, ${CRASHES} crashes)`, [...lines, '', 'timeline:', ...timeline, '', `run dir kept: ${root}`]);
  };
  // Progress: operations each client finished, to know that a restarted target serves again.
  const finished = new Array<number>(CLIENTS).fill(0);
  const failedClients = new Set<number>();
  const runs = Promise.all(clients.map((fs, i) =>
    runClient(i + 1, fs, prng((SEED ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0), () => stopping, (f) => {
      failures.push(f);
      failedClients.add(f.client);
      note(`client ${f.client}: op ${f.index} failed: ${f.what}: ${f.error}`);
    }, started, () => finished[i]!++)));

  const crasher = prng(SEED ^ 0x5eed);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const crashCounts = { [MDT]: 0, [OST0]: 0 } as Record<number, number>;
  let duringRecovery = 0;
  for (let i = 0; i < CRASHES; i++) {
    await sleep(100 + crasher.int(1400));
    const draw = crasher.next();
    const k = TARGETS === 'mdt' ? MDT : TARGETS === 'ost' ? OST0 : draw < 0.55 ? MDT : OST0;
    const pid = pidOf(k);
    process.kill(pid, 'SIGKILL');
    note(`crash ${i + 1}: SIGKILL ${k === MDT ? 'MDT' : 'OST0000'} kernel (pid ${pid})`);
    await until(`kernel ${k} is gone`, () => {
      return !alive(pid);
    });
    crashCounts[k]!++;
    await startKernel(k);
    note('  kernel started');
    await mountDevice(k);
    note('  device mounted');
    // The next crash comes after recovery ended, or (SOAK_DURING_RECOVERY) may hit the recovery.
    if (crasher.next() >= DURING_RECOVERY) {
      // The clients go on: every one still working finished an operation since the mount (not
      // necessarily one the restarted target served: the next crash may still hit its recovery).
      const before = [...finished];
      const served = () => finished.every((n, j) => n > before[j]! || failedClients.has(j + 1));
      const stalled = until('every client finishes an operation after the restart', served, 15_000).then(() => false, () => true);
      if (await stalled) {
        // A stall: what the restarted targets say while the clients wait.
        for (const kk of [MDT, OST0]) note(`  stalled 15 s; kernel ${kk}: ${(await recoveryStatus(kk)).replace(/\n/g, ', ')}`);
        await until('every client finishes an operation after the restart', served, 240_000);
      }
      note('  every client finished an operation since');
    } else {
      duringRecovery++;
      note('  next crash may come during recovery');
    }
  }
  // The last recoveries end and every client's last operation finishes.
  for (const k of [MDT, OST0]) {
    await recovered(k);
    note(`recovery of kernel ${k}: ${(await recoveryStatus(k)).replace(/\n/g, ', ')}`);
  }
  await sleep(1000);
  stopping = true;
  const done: ClientRun[] = await runs;
  const crashSeconds = (Date.now() - started) / 1000;
  if (process.env.SOAK_VERBOSE) for (const line of timeline) t.comment(line);
  const total = done.reduce((s, r) => s + r.succeeded, 0);
  const counts: Record<string, number> = {};
  for (const r of done) for (const [kind, n] of Object.entries(r.counts)) counts[kind] = (counts[kind] ?? 0) + n;
  t.comment(`${CRASHES} crashes (MDT ${crashCounts[MDT]}, OST0000 ${crashCounts[OST0]}, ${duringRecovery} let the next one hit recovery) in ${crashSeconds.toFixed(1)} s; ${total} operations succeeded: ${JSON.stringify(counts)}`);
  t.equal(crashCounts[MDT]! + crashCounts[OST0]!, CRASHES, `${CRASHES} crashes`);
  if (TARGETS === 'both') t.ok(crashCounts[MDT]! > 0 && crashCounts[OST0]! > 0, 'both the MDT and OST0000 were crashed');
  t.ok(done.every((r) => r.succeeded > 0), 'every client got work done');
  t.same(failures, [], 'no operation failed (no client was evicted)');
  const kernelLines = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const k of [MDT, OST0, OST1]) {
      const text = await readFile(join(rd(k), 'kernel.log'), 'utf8').catch(() => '');
      for (const line of text.split('\n').filter(Boolean)) {
        try {
          const j = JSON.parse(line) as { level: number; time: number; pid: number; svname?: string; msg: string };
          if (/ECONNREFUSED|connectFailed/.test(j.msg)) continue;
          out.push(`${((j.time - started) / 1000).toFixed(2)}s k${k} pid ${j.pid} ${j.level >= 40 ? 'WARN ' : ''}${j.msg}`);
        } catch { /* a torn last line of a killed kernel */ }
      }
    }
    return out.sort((a, b) => parseFloat(a) - parseFloat(b));
  };
  for (const f of failures) {
    const r = done.find((x) => x.client === f.client)!;
    const path = f.what.split(' ')[1]!;
    await dump(`client ${f.client}: operation #${f.index} failed at ${(f.atMs / 1000).toFixed(2)} s: ${f.what}: ${f.error}`, [
      `history of ${path}:`, ...historyOf(r, path), '', 'kernel logs:', ...(await kernelLines()),
    ]);
  }

  // ---- the namespace through a fresh client ------------------------------------------------
  const check = await client('soak-check');
  const actual = await walk(check, '/');
  for (const r of done) {
    const mine = (tree: Tree) => new Map([...tree].filter(([p]) => ownedBy(p, r.client)));
    const seen = mine(actual);
    const diff = diffTrees(r.model, seen);
    const alt = r.alternative && diffTrees(r.alternative, seen);
    const same = diff.length === 0 || (alt !== undefined && alt.length === 0);
    if (!same) {
      const paths = diff.map((d) => d.split(':')[0]!).filter((p) => p.startsWith('/')).slice(0, 5);
      await dump(`client ${r.client}: the namespace differs from its succeeded operations`, [
        ...diff, ...paths.flatMap((p) => ['', `history of ${p}:`, ...historyOf(r, p)]),
        ...(r.failure ? ['', `its failed operation: #${r.failure.index} ${r.failure.what}: ${r.failure.error}`] : []),
      ]);
    }
    t.same(same ? [] : diff, [], `client ${r.client}: its ${r.succeeded} succeeded operations are there, each once`);
  }
  const strays = [...actual.keys()].filter((p) => p !== '/' && p !== SHARED && !done.some((r) => ownedBy(p, r.client)));
  t.same(strays, [], 'nothing is in the namespace that no client made');
  t.comment(`namespace: ${[...actual.values()].filter((e) => e.type === 'file').length} files, ${[...actual.values()].filter((e) => e.type === 'dir').length} directories`);

  // Layouts as the MDT gives them, and the file sizes as the clients see them.
  const files = new Map<string, { layout: FileLayout | undefined; size: number }>();
  for (const [p, e] of actual) {
    if (e.type !== 'file') continue;
    files.set(p, { layout: await check.layout(p), size: e.data.length });
  }

  // ---- clean unmount; then each device is checked on its own -------------------------------
  for (const c of closers.splice(0)) await c().catch(() => {});
  for (const k of [MDT, OST0, OST1]) ok(await tool('lustre-umount', [device[k]!], k), `umount ${device[k]}`);
  for (const k of [MDT, OST0, OST1]) {
    const v = await tool('lustre-log', ['verify', device[k]!], k);
    if (v.code !== 0) await dump(`lustre.log verify ${device[k]} failed`, [v.stdout, v.stderr]);
    t.equal(v.code, 0, `lustre.log verify ${device[k]}`, { output: v.stdout + v.stderr });
  }
  const mdt = await inspectMdt(device[MDT]!);
  const osts = [await inspectOst(device[OST0]!), await inspectOst(device[OST1]!)];
  for (const [name, problems] of [['mdt0', mdt.problems], ['ost0', osts[0]!.problems], ['ost1', osts[1]!.problems]] as const) {
    if (problems.length > 0) await dump(`the OSD check of ${name} found problems`, problems);
    t.same(problems, [], `the OSD of ${name} is consistent`);
  }
  t.same(mdt.pending, [], 'no open-unlinked file is left in PENDING');

  // Files the MDT holds are the files the client saw, with the same layouts.
  t.same([...mdt.files.keys()].sort(), [...files.keys()].sort(), 'the MDT\'s files are the ones the client walked');
  const problems: string[] = [];
  const referenced = new Map<string, string>();
  for (const [path, f] of mdt.files) {
    const seen = files.get(path);
    const layout = f.layout;
    const objectsOf = (l: FileLayout | undefined) => (l?.objects ?? []).map((o) => `${o.ostIndex}:${fidToString(o.fid)}`).join(' ');
    if (objectsOf(layout) !== objectsOf(seen?.layout)) problems.push(`${path}: the MDT's layout has objects [${objectsOf(layout)}], the client was given [${objectsOf(seen?.layout)}]`);
    if (!layout) {
      if (seen && seen.size > 0) problems.push(`${path}: ${seen.size} bytes but no layout`);
      continue;
    }
    const raid0 = { pattern: 'raid0', stripeSize: layout.stripeSize, stripeCount: layout.objects.length, stripeOffset: 0, objects: [] } as unknown as Raid0Layout;
    // Sizes match as Lustre's lov_merge_lvb sees them: no object holds bytes past its share of
    // the file's size, and the file's size is what its largest object implies (a write past
    // the end leaves the objects of the hole shorter than their share: they are sparse).
    const fileSize = seen?.size ?? 0;
    let implied = 0;
    layout.objects.forEach((o, i) => {
      const key = `${o.ostIndex}:${fidToString(o.fid)}`;
      if (referenced.has(key)) problems.push(`${path}: object ${key} is also stripe of ${referenced.get(key)}`);
      referenced.set(key, `${path}[${i}]`);
      if (mdt.unlinkLog.has(key)) problems.push(`${path}: its object ${key} waits in the unlink log`);
      const size = osts[o.ostIndex]?.objects.get(fidToString(o.fid));
      const share = stripeObjectSize(raid0, i, fileSize);
      if (size === undefined) problems.push(`${path}: stripe ${i} object ${key} does not exist (dangling)`);
      else if (size > share) problems.push(`${path}: stripe ${i} object ${key} is ${size} bytes, more than its share ${share} of the file's ${fileSize}`);
      else implied = Math.max(implied, fileSizeOfStripe(raid0, i, size));
    });
    if (implied !== fileSize) problems.push(`${path}: its objects give a size of ${implied} bytes, the file has ${fileSize}`);
  }
  let precreated = 0;
  const orphans: string[] = [];
  for (const [index, ost] of osts.entries()) {
    const lastUsed = mdt.lastUsed.get(index) ?? 0;
    for (const [f] of ost.objects) {
      const key = `${index}:${f}`;
      const oid = parseFid(f).oid;
      if (referenced.has(key) || mdt.unlinkLog.has(key)) continue;
      if (oid > lastUsed) precreated++;
      else orphans.push(`OST${index}: object ${f} (at or below lov_objid ${lastUsed}) belongs to no file (orphan)`);
    }
  }
  if (problems.length > 0) await dump('the namespace and the OST objects disagree', problems.slice(0, 50));
  t.same(problems.slice(0, 50), [], 'every layout\'s objects exist with matching sizes; none is in two layouts or waits for destruction');
  // Orphans: objects nothing references, below lov_objid. A crash that hits the recovery of the
  // one before (SOAK_DURING_RECOVERY) can leave some that nothing cleans yet (Lustre's LFSCK
  // would): only then are they counted rather than failed.
  if (orphans.length > 0 && DURING_RECOVERY > 0) {
    t.comment(`known gap with crashes during recovery: ${orphans.length} orphan OST object(s) below lov_objid`);
  } else {
    if (orphans.length > 0) await dump('orphan OST objects', orphans.slice(0, 50));
    t.same(orphans.slice(0, 50), [], 'no orphan objects');
  }
  t.comment(`OST objects: ${referenced.size} in layouts, ${mdt.unlinkLog.size} waiting in the unlink log, ${precreated} precreated beyond lov_objid`);
});

/** The whole namespace under `dir`, read through a client (file bytes included). */
async function walk(fs: FileSystem, dir: string, into: Tree = new Map()): Promise<Tree> {
  const st = await fs.lstat(dir);
  into.set(dir, { type: 'dir', mode: st.mode & 0o7777 });
  for (const name of (await fs.readdir(dir)) as string[]) {
    const p = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const s = await fs.lstat(p);
    if (s.isDirectory()) await walk(fs, p, into);
    else {
      const entry: Entry = { type: 'file', mode: s.mode & 0o7777, data: (await fs.readFile(p)) as Buffer };
      if (entry.data.length !== s.size) throw new Error(`${p}: stat says ${s.size} bytes, a read gave ${entry.data.length}`);
      into.set(p, entry);
    }
  }
  return into;
}

async function indexEntries(osd: Osd, index: Fid): Promise<Array<{ name: string; fid: Fid; type: string }>> {
  const out: Array<{ name: string; fid: Fid; type: string }> = [];
  let cookie: string | null | undefined;
  do {
    const page = await osd.indexList(index, { cookie, limit: 256 });
    out.push(...page.entries);
    cookie = page.cookie;
  } while (cookie);
  return out;
}

async function localIndex(osd: Osd, name: string): Promise<Fid | undefined> {
  return (await osd.indexLookup(ROOT_INDEX_FID, name))?.fid;
}

/** The MDT device opened directly: its files and layouts, lov_objid, the unlink log, PENDING, its check. */
async function inspectMdt(dir: string) {
  const osd = await Osd.open(dir);
  try {
    const files = new Map<string, { fid: Fid; layout: FileLayout | undefined }>();
    const walkDir = async (d: Fid, path: string): Promise<void> => {
      for (const e of await indexEntries(osd, d)) {
        const p = path === '/' ? `/${e.name}` : `${path}/${e.name}`;
        if (e.type === 'dir') await walkDir(e.fid, p);
        else {
          let layout: FileLayout | undefined;
          try {
            layout = decodeFileLayout(await osd.xattrGet(e.fid, LOV_XATTR));
          } catch (err) {
            if ((err as { code?: string }).code !== 'ENODATA') throw err;
          }
          files.set(p, { fid: e.fid, layout });
        }
      }
    };
    await walkDir((await localIndex(osd, 'ROOT'))!, '/');
    const lastUsed = new Map<number, number>();
    const objid = await localIndex(osd, 'lov_objid');
    for (const name of objid ? await osd.xattrList(objid) : []) {
      const m = /^ost\.(\d+)$/.exec(name);
      if (m) lastUsed.set(Number(m[1]), parseFid((await osd.xattrGet(objid!, name)).toString()).oid);
    }
    const unlinkLog = new Set<string>();
    const llog = await localIndex(osd, 'unlink_llog');
    for (const e of llog ? await indexEntries(osd, llog) : []) {
      unlinkLog.add(`${parseInt(e.name.split(':')[0]!, 16)}:${fidToString(e.fid)}`);
    }
    const pendingFid = await localIndex(osd, 'PENDING');
    const pending = pendingFid ? (await indexEntries(osd, pendingFid)).map((e) => e.name) : [];
    const problems = (await osd.check()).map((p) => `${p.kind} ${p.fid}: ${p.message}`);
    return { files, lastUsed, unlinkLog, pending, problems };
  } finally {
    await osd.close();
  }
}

/** An OST device opened directly: its data objects (FID text -> size) under O/<seq>/, its check. */
async function inspectOst(dir: string) {
  const osd = await Osd.open(dir);
  try {
    const objects = new Map<string, number>();
    const o = await localIndex(osd, 'O');
    for (const seq of o ? await indexEntries(osd, o) : []) {
      for (const e of await indexEntries(osd, seq.fid)) {
        const f = fid(seq.fid.seq, Number(e.name));
        objects.set(fidToString(f), (await osd.getAttrs(f)).size);
      }
    }
    const problems = (await osd.check()).map((p) => `${p.kind} ${p.fid}: ${p.message}`);
    return { objects, problems };
  } finally {
    await osd.close();
  }
}

/** Appends a finding to the notes files as the run goes. */
async function report(files: string[], title: string, lines: string[]): Promise<void> {
  const text = `\n## ${new Date().toISOString()} ${title}\n\n\`\`\`\n${lines.join('\n')}\n\`\`\`\n`;
  for (const f of files) await appendFile(f, text).catch(() => {});
}
