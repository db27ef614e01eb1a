// Replay-to-point on a real file system: a scripted workload through a FUSE mount with known
// intermediate states; each step's txg, transno and time rebuild exactly that step's namespace
// (MDT) and contents (OSTs, by the same moment); diff between steps names the step's changes;
// blame names the transactions and their client. Then replay while the MDT serves writes, and
// bad input.
import t from 'tap';
import { mkdir, readFile, readdir, rename, rm, chmod, unlink, writeFile, open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCluster, fuseAvailable } from '../lib/cluster.js';
import { until } from '../lib/net.js';
import { runTool } from '../lib/tools.js';
import { dataSource, parseFid, stateAt } from '../../src/osd/index.js';
import { namespaceOf, readWindow, replayCopy, resolvePoint, statPath, type ReplayWindow } from '../../src/control/replay/index.js';

const lustreLog = (...args: string[]) => runTool('lustre-log', args);

interface Step {
  /** Files and their contents; directories end in '/'. */
  files: Record<string, string>;
  txg: number;
  transno: string;
  time: string;
}

/** The namespace of an MDT at a txg as { path: '' for a dir, else 'file' }. */
async function namespaceAt(mdt: string, txg: number): Promise<string[]> {
  const past = await stateAt(mdt, txg);
  const paths: string[] = [];
  for (const n of namespaceOf(past).values()) for (const p of n.paths) if (p !== '/') paths.push(n.attrs.type === 'dir' ? `${p}/` : p);
  return paths.sort();
}

/** A file's bytes at a moment: its layout on the MDT, its object on the OST as of that moment. */
async function contentAt(root: string, mdtTxg: number, path: string, time: string): Promise<string> {
  const s = statPath(await stateAt(join(root, 'mdt0'), mdtTxg), path);
  const chunks: Buffer[] = [];
  for (const o of s.layout?.objects ?? []) {
    const ost = join(root, `ost${o.ostIndex}`);
    const txg = resolvePoint(await readWindow(ost), { kind: 'time', ms: Date.parse(time), text: time });
    const past = await stateAt(ost, txg);
    const fid = parseFid(o.fid);
    const a = past.attrs(fid);
    if (!a || a.size === 0) continue;
    const src = await dataSource(ost, fid, a.gen!);
    if (!src) continue;
    chunks.push((await readFile(src)).subarray(0, a.size));
  }
  return Buffer.concat(chunks).toString();
}

t.test('a scripted workload: every step rebuilt by txg, transno and time; diffs and blame', { skip: !fuseAvailable() && 'needs FUSE (root and /dev/fuse)' }, async (t) => {
  const c = await startCluster(t, { osts: 2, fsname: 'replay' });
  // Deleted files keep their data for past views while a retention window is set.
  await c.tool('lctl', ['set_param', 'osd-txg.*.txg_retain_ms=3600000']);
  const mnt = await c.mountClient();
  const mdt = join(c.root, 'mdt0');
  const steps: Step[] = [];
  const state: Record<string, string> = {};
  const settle = async (): Promise<void> => {
    const want = Object.keys(state).sort();
    let w: ReplayWindow | undefined;
    await until('the MDT log to hold the step', async () => {
      w = await readWindow(mdt);
      return JSON.stringify(await namespaceAt(mdt, w.lastTxg)) === JSON.stringify(want);
    }, 20_000);
    for (const [path, body] of Object.entries(state)) {
      if (path.endsWith('/')) continue;
      await until(`the OST logs to hold ${path}`, async () => (await contentAt(c.root, w!.lastTxg, path, new Date().toISOString())) === body, 20_000);
    }
    const time = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5)); // the next txg closes strictly after `time`
    steps.push({ files: { ...state }, txg: w!.lastTxg, transno: String(w!.lastTransno), time });
  };
  const put = async (path: string, body: string): Promise<void> => {
    await writeFile(join(mnt, path), body);
    state[path] = body;
  };

  // 1: a directory and two files.
  await mkdir(join(mnt, 'd'));
  state['/d/'] = '';
  await put('/d/a1', 'one');
  await put('/d/a2', 'two');
  await settle();
  // 2: a third file, one removed.
  await put('/d/b1', 'three');
  await unlink(join(mnt, 'd/a2'));
  delete state['/d/a2'];
  await settle();
  // 3: a rename, a mode change, a new directory.
  await rename(join(mnt, 'd/a1'), join(mnt, 'd/c1'));
  state['/d/c1'] = state['/d/a1']!;
  delete state['/d/a1'];
  await chmod(join(mnt, 'd/b1'), 0o600);
  await mkdir(join(mnt, 'e'));
  state['/e/'] = '';
  await settle();
  // 4: a file moved across directories, a file appended to.
  await rename(join(mnt, 'd/b1'), join(mnt, 'e/b1'));
  state['/e/b1'] = state['/d/b1']!;
  delete state['/d/b1'];
  const fh = await openFile(join(mnt, 'd/c1'), 'a');
  await fh.write('+more');
  await fh.close();
  state['/d/c1'] += '+more';
  await settle();

  for (const [i, s] of steps.entries()) {
    const want = Object.keys(s.files).sort();
    t.same(await namespaceAt(mdt, s.txg), want, `step ${i + 1} by txg ${s.txg}`);
    const w = await readWindow(mdt);
    t.same(await namespaceAt(mdt, resolvePoint(w, { kind: 'transno', transno: BigInt(s.transno) })), want, `step ${i + 1} by transno ${s.transno}`);
    const byTime = resolvePoint(w, { kind: 'time', ms: Date.parse(s.time), text: s.time });
    t.same(await namespaceAt(mdt, byTime), want, `step ${i + 1} by time ${s.time}`);
    for (const [path, body] of Object.entries(s.files)) {
      if (!path.endsWith('/')) t.equal(await contentAt(c.root, byTime, path, s.time), body, `step ${i + 1}: ${path} holds its bytes of then`);
    }
    // The CLI agrees: ls of /d at the step's time.
    const ls = await lustreLog('ls', `${mdt}@time:${s.time}`, '/d', '--json');
    t.equal(ls.code, 0, ls.stderr);
    t.same((JSON.parse(ls.stdout) as { entries: Array<{ name: string }> }).entries.map((e) => e.name),
      want.filter((p) => /^\/d\/[^/]+$/.test(p)).map((p) => p.slice(3)), `step ${i + 1}: lustre.log ls /d`);
  }

  // diff between consecutive steps: exactly the step's creations, removals and renames.
  const diff = async (a: Step, b: Step) => JSON.parse((await lustreLog('diff', mdt, `txg:${a.txg}`, `txg:${b.txg}`, '--json')).stdout) as {
    created: Array<{ paths: string[] }>; removed: Array<{ paths: string[] }>; renamed: Array<{ from: string[]; to: string[] }>;
    attrs: Array<{ paths: string[]; changes: Array<{ name: string; from: number; to: number }> }>;
  };
  const d12 = await diff(steps[0]!, steps[1]!);
  t.same(d12.created.map((x) => x.paths), [['/d/b1']]);
  t.same(d12.removed.map((x) => x.paths), [['/d/a2']]);
  t.same(d12.renamed, []);
  const d23 = await diff(steps[1]!, steps[2]!);
  t.same(d23.created.map((x) => x.paths), [['/e']]);
  t.same(d23.removed, []);
  t.same(d23.renamed.map((x) => [x.from, x.to]), [[['/d/a1'], ['/d/c1']]]);
  t.ok(d23.attrs.some((x) => x.paths[0] === '/d/b1' && x.changes.some((ch) => ch.name === 'mode' && ch.to === 0o600)), 'the chmod is an attribute change');
  const d34 = await diff(steps[2]!, steps[3]!);
  t.same(d34.created, []);
  t.same(d34.removed, []);
  t.same(d34.renamed.map((x) => [x.from, x.to]), [[['/d/b1'], ['/e/b1']]]);
  const text = await lustreLog('diff', mdt, `time:${steps[0]!.time}`, 'now');
  t.match(text.stdout, /^\+ \/e\/b1/m, 'b1, created after step 1, is where it is now');
  t.match(text.stdout, /^- \/d\/a2/m);
  t.match(text.stdout, /^R \/d\/a1 -> \/d\/c1/m);

  // blame of /d/c1: its create in step 1, its rename in step 3, each with the client.
  const blame = JSON.parse((await lustreLog('blame', mdt, '/d/c1', '--json')).stdout) as {
    updates: Array<{ txg: number; transno: string | null; client: string | null; nid: string | null; opcode: string | null; updates: string[] }>;
  };
  const create = blame.updates.find((u) => u.updates.some((x) => x.startsWith('create reg')));
  t.ok(create && create.txg <= steps[0]!.txg, 'the create is blamed, inside step 1');
  const renamed = blame.updates.find((u) => u.updates.some((x) => x.startsWith("index_insert 'c1'")));
  t.ok(renamed && renamed.txg > steps[1]!.txg && renamed.txg <= steps[2]!.txg, 'the rename is blamed, inside step 3');
  t.ok(renamed!.updates.some((x) => x.startsWith("index_delete 'a1'")), 'with the removal of its old name');
  for (const u of blame.updates) {
    t.match(u, { client: /\S/, nid: /@tcp$/, opcode: /^(mds_|ldlm_enqueue$)/, transno: /^\d+$/ }, `txg ${u.txg} names its client, NID, opcode and transno`);
  }
  const steps3 = await lustreLog('step', mdt, '--from', `txg:${steps[2]!.txg}`, '--json');
  const stepped = steps3.stdout.trim().split('\n').map((l) => JSON.parse(l) as { txg: number; diff: { renamed: Array<{ to: string[] }> } });
  t.ok(stepped.every((s, i) => s.txg === steps[2]!.txg + i + 1), 'step goes one txg at a time');
  t.ok(stepped.some((s) => s.diff.renamed.some((r) => r.to[0] === '/e/b1')), 'one of them moved /d/b1 to /e/b1');
});

t.test('replay of an MDT while it serves writes: the copy verifies, the live device is unaffected', { skip: !fuseAvailable() && 'needs FUSE' }, async (t) => {
  const c = await startCluster(t, { osts: 1, fsname: 'busy' });
  const mnt = await c.mountClient();
  const mdt = join(c.root, 'mdt0');
  await mkdir(join(mnt, 'w'));
  let writing = true;
  let n = 0;
  const writer = (async () => {
    while (writing) await writeFile(join(mnt, 'w', `f${n++}`), `file ${n}`);
  })();
  await until('some files', () => n > 20, 20_000);
  // Files written so far (the one in flight aside) become durable within two txgs.
  const written = n - 1;
  const w0 = await readWindow(mdt);
  await until('two more txgs durable', async () => (await readWindow(mdt)).lastTxg >= w0.lastTxg + 2, 20_000);
  const w = await readWindow(mdt);
  const out = join(c.root, 'copy');
  const r = await lustreLog('replay', mdt, '--to', 'now', '--out', out, '--json');
  t.equal(r.code, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { txg: number }).txg >= w.lastTxg, true);
  writing = false;
  await writer;
  const v = await lustreLog('verify', out);
  t.equal(v.code, 0, v.stdout + v.stderr);
  t.match(v.stdout, /OK/);
  const ls = JSON.parse((await lustreLog('ls', out, '/w', '--json')).stdout) as { entries: unknown[] };
  t.ok(ls.entries.length >= written && ls.entries.length <= n, `the copy holds the files of then (${ls.entries.length} of ${n})`);
  // The live file system goes on: every file written reads back through the mount.
  t.equal((await readdir(join(mnt, 'w'))).length, n);
  t.equal(await readFile(join(mnt, 'w', 'f0'), 'utf8'), 'file 1');
});

t.test('bad input: a point outside the window, an unknown path, not a device, no partial copy', async (t) => {
  const c = await startCluster(t, { osts: 1, fsname: 'bad' });
  const mdt = join(c.root, 'mdt0');
  const w = await readWindow(mdt);
  const after = await lustreLog('ls', `${mdt}@txg:${w.lastTxg + 1000}`, '/');
  t.equal(after.code, 1);
  t.match(after.stderr, new RegExp(`txg ${w.lastTxg + 1000} is outside the replay window of .*: txg ${w.baseTxg} \\(`));
  const before = await lustreLog('replay', mdt, '--to', 'time:2001-01-01T00:00:00Z', '--out', join(c.root, 'old'));
  t.equal(before.code, 1);
  t.match(before.stderr, /time 2001-01-01T00:00:00.000Z is outside the replay window/);
  const transno = await lustreLog('stat', `${mdt}@transno:999999999`, '/');
  t.match(transno.stderr, /transno 999999999 is outside the replay window/);
  const bad = await lustreLog('ls', `${mdt}@time:yesterday`, '/');
  t.match(bad.stderr, /'yesterday' is not an ISO-8601 time/);
  const unknown = await lustreLog('stat', mdt, '/no/such');
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no such file or directory: \/no/);
  const ostPath = await lustreLog('ls', join(c.root, 'ost0'), '/');
  t.match(ostPath.stderr, /paths are for an MDT/);
  const notDevice = await lustreLog('replay', c.root, '--to', 'now', '--out', join(c.root, 'x'));
  t.equal(notDevice.code, 1);
  t.match(notDevice.stderr, /is not an OSD device/);
  // A copy that fails half way (here: while copying data) leaves nothing behind.
  const copies = join(c.root, 'copies');
  await mkdir(copies);
  const out = join(copies, 'c1');
  // (The MDT's config logs and last_rcvd are data objects: the copy reaches its data phase.)
  await t.rejects(replayCopy(mdt, (await readWindow(mdt)).lastTxg, out, {
    onProgress: (p) => { if (p.phase === 'data') throw Object.assign(new Error('disk full'), { code: 'ENOSPC' }); },
  }), { code: 'ENOSPC' });
  t.same(await readdir(copies), [], 'no copy and no partial folder');
  const badNid = await lustreLog('replay', mdt, '--to', 'now', '--out', join(c.root, 'n'), '--nid', '127.0.0.2@tcp');
  t.match(badNid.stderr, /--nid takes OLD=NEW NIDs .* not '127.0.0.2@tcp'/);
  t.same((await readdir(c.root)).filter((n) => n === 'n' || n.startsWith('.n.')), [], 'nothing written for bad input');
  const exists = await lustreLog('replay', mdt, '--to', 'now', '--out', copies);
  t.match(exists.stderr, /already exists/);
});

t.test('the whole file system at a past moment: copies re-pointed to another NID, mounted read-only, browsed with FUSE', { skip: !fuseAvailable() && 'needs FUSE' }, async (t) => {
  const c = await startCluster(t, { osts: 2, fsname: 'tm' });
  // Deleted files keep their data for past views while a retention window is set.
  await c.tool('lctl', ['set_param', 'osd-txg.*.txg_retain_ms=3600000']);
  const mnt = await c.mountClient();
  const mdt = join(c.root, 'mdt0');
  await mkdir(join(mnt, 'd'));
  await writeFile(join(mnt, 'd/a1'), 'alpha '.repeat(1000));
  await writeFile(join(mnt, 'd/a2'), 'beta');
  // Both phases must be in the logs before the moment is taken.
  await until('phase 1 in the logs', async () => {
    const w = await readWindow(mdt);
    return JSON.stringify(await namespaceAt(mdt, w.lastTxg)) === JSON.stringify(['/d/', '/d/a1', '/d/a2']) &&
      (await contentAt(c.root, w.lastTxg, '/d/a2', new Date().toISOString())) === 'beta' &&
      (await contentAt(c.root, w.lastTxg, '/d/a1', new Date().toISOString())) === 'alpha '.repeat(1000);
  }, 20_000);
  const moment = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  await writeFile(join(mnt, 'd/b1'), 'created later');
  await unlink(join(mnt, 'd/a2'));
  await until('phase 2 in the MDT log', async () => {
    const w = await readWindow(mdt);
    return JSON.stringify(await namespaceAt(mdt, w.lastTxg)) === JSON.stringify(['/d/', '/d/a1', '/d/b1']);
  }, 20_000);

  // The copies, re-pointed from the live NID to 127.0.0.5, on a kernel of their own there.
  const pastNid = '127.0.0.5@tcp';
  for (const d of ['mdt0', 'ost0', 'ost1']) {
    const r = await lustreLog('replay', join(c.root, d), '--to', `time:${moment}`, '--out', join(c.root, `past-${d}`), '--nid', `${c.nid}=${pastNid}`);
    t.equal(r.code, 0, r.stderr);
  }
  const rundir = join(c.root, 'k5');
  const env = { LUSTRE_RUNDIR: rundir };
  const started = await runTool('lustre-kernel', ['start', '--nid', pastNid, '--port', String(c.port), '--rundir', rundir]);
  t.equal(started.code, 0, started.stderr);
  const pastMnt = join(c.root, 'mnt-past');
  t.teardown(async () => {
    await runTool('lustre-umount', ['--force', pastMnt], { env });
    await runTool('lustre-kernel', ['stop'], { env });
  });
  for (const d of ['mdt0', 'ost0', 'ost1']) {
    const m = await runTool('lustre-mount', ['-o', 'ro', join(c.root, `past-${d}`)], { env });
    t.equal(m.code, 0, m.stderr);
  }
  await mkdir(pastMnt);
  const client = await runTool('lustre-mount', [`${pastNid}:/tm`, pastMnt], { env });
  t.equal(client.code, 0, client.stderr);

  t.same((await readdir(join(pastMnt, 'd'))).sort(), ['a1', 'a2'], 'the file created later is absent, the one deleted later present');
  t.equal(await readFile(join(pastMnt, 'd/a2'), 'utf8'), 'beta', 'with its data');
  t.equal(await readFile(join(pastMnt, 'd/a1'), 'utf8'), 'alpha '.repeat(1000));
  await t.rejects(writeFile(join(pastMnt, 'd/new'), 'x'), { code: 'EROFS' });
  await t.rejects(unlink(join(pastMnt, 'd/a1')), { code: 'EROFS' });
  await t.rejects(mkdir(join(pastMnt, 'z')), { code: 'EROFS' });
  // The live file system is untouched and still its own.
  t.same((await readdir(join(mnt, 'd'))).sort(), ['a1', 'b1']);
  t.equal(await readFile(join(mnt, 'd/b1'), 'utf8'), 'created later');
});
