// Crash test with real processes: a child runs a random OSD workload and reports each update
// it applies and each commit callback; the test kills it with SIGKILL at a random moment,
// reopens the device and checks that
//  - every transaction whose commit was reported is there (the last durable txg L is at least
//    the last reported one),
//  - no txg is half applied: the device equals exactly the updates of txgs <= L applied in
//    order (data may also hold bytes of a later, lost write over the same range: data is
//    written in place before its txg commits, as on ldiskfs with data=ordered),
//  - the OSD's consistency check passes.
// LUSTRE_CRASH_KILLS sets the number of kills (default 50); LUSTRE_CRASH_SEED replays a run.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Osd, ROOT_INDEX_FID, parseFid } from '../../src/osd/index.js';
import { patternBytes, prng, seedFrom } from '../lib/prng.js';
import { WORK_INDEX, XATTR } from './osd-workload.js';

const KILLS = Number(process.env.LUSTRE_CRASH_KILLS ?? 50);
const SEED = seedFrom('LUSTRE_CRASH_SEED');
const WORKER = join(import.meta.dirname, 'osd-worker.ts');

type Line =
  | { ready: true }
  | { c: number }
  | { txg: number; op: 'create' | 'mode'; fid: string; mode: number }
  | { txg: number; op: 'write' | 'intent'; fid: string; off: number; len: number; seed: number }
  | { txg: number; op: 'trunc'; fid: string; size: number }
  | { txg: number; op: 'xattr'; fid: string; seed: number }
  | { txg: number; op: 'link' | 'unlink' | 'destroy'; fid: string };
type Op = Extract<Line, { op: string }>;

interface ModelObject {
  mode: number;
  data: Buffer;
  linked: boolean;
  xattr: Buffer | null;
}

function apply(model: Map<string, ModelObject>, op: Op): void {
  if (op.op === 'intent') return;
  if (op.op === 'create') { model.set(op.fid, { mode: op.mode, data: Buffer.alloc(0), linked: false, xattr: null }); return; }
  const o = model.get(op.fid);
  if (!o) throw new Error(`model: ${op.op} on unknown ${op.fid}`);
  switch (op.op) {
    case 'write': {
      const end = op.off + op.len;
      if (end > o.data.length) o.data = Buffer.concat([o.data, Buffer.alloc(end - o.data.length)]);
      patternBytes(op.seed, op.len).copy(o.data, op.off);
      break;
    }
    case 'trunc':
      o.data = op.size <= o.data.length ? o.data.subarray(0, op.size) : Buffer.concat([o.data, Buffer.alloc(op.size - o.data.length)]);
      o.data = Buffer.from(o.data);
      break;
    case 'mode': o.mode = op.mode; break;
    case 'xattr': o.xattr = patternBytes(op.seed, 16); break;
    case 'link': o.linked = true; break;
    case 'unlink': o.linked = false; break;
    case 'destroy': model.delete(op.fid); break;
  }
}

interface RunResult { ops: Op[]; committed: number; signal: string | null; stderr: string }

function runChild(device: string, run: number, seed: number, killAfterMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', WORKER, device, String(run), String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ops: Op[] = [];
    let committed = 0;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as Line;
      if ('ready' in line) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      else if ('c' in line) committed = Math.max(committed, line.c);
      else ops.push(line);
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve({ ops, committed, signal, stderr }));
  });
}

async function verify(t: Test, osd: Osd, model: Map<string, ModelObject>, lost: Op[], where: string): Promise<boolean> {
  let ok = true;
  const fail = (msg: string): void => { ok = false; t.fail(`${where}: ${msg}`); };
  const work = (await osd.indexLookup(ROOT_INDEX_FID, WORK_INDEX))!.fid;
  const names = new Set<string>();
  for (let cookie: string | null | undefined; cookie !== null;) {
    const page = await osd.indexList(work, { cookie, limit: 1000 });
    for (const e of page.entries) names.add(e.name);
    cookie = page.cookie;
  }
  for (const [f, o] of model) {
    if (o.linked !== names.has(f)) fail(`${f} linked ${names.has(f)}, expected ${o.linked}`);
    const fid = parseFid(f);
    const a = await osd.getAttrs(fid).catch(() => null);
    if (!a) { fail(`${f} is missing`); continue; }
    if (a.mode !== o.mode) fail(`${f} mode ${a.mode.toString(8)}, expected ${o.mode.toString(8)}`);
    if (a.size !== o.data.length) { fail(`${f} size ${a.size}, expected ${o.data.length}`); continue; }
    const xattr = await osd.xattrGet(fid, XATTR).catch(() => null);
    if (!(xattr === null ? o.xattr === null : o.xattr?.equals(xattr))) fail(`${f} xattr differs`);
    const data = await osd.read(fid, 0, a.size);
    if (!data.equals(o.data)) {
      const later = lost
        .filter((x): x is Extract<Op, { op: 'write' | 'intent' }> => (x.op === 'write' || x.op === 'intent') && x.fid === f)
        .map((x) => ({ off: x.off, bytes: patternBytes(x.seed, x.len) }));
      for (let i = 0; i < data.length; i++) {
        if (data[i] === o.data[i]) continue;
        const w = later.find((x) => i >= x.off && i < x.off + x.bytes.length && x.bytes[i - x.off] === data[i]);
        if (!w) { fail(`${f} byte ${i} is ${data[i]}, expected ${o.data[i]} and no lost write explains it`); break; }
      }
      // Bytes of a lost write stay in the file (in place, as on ldiskfs): later runs start from them.
      o.data = data;
    }
  }
  for (const n of names) if (!model.has(n)) fail(`${n} is in the index but not in the model`);
  const problems = await osd.check();
  if (problems.length > 0) fail(`check found ${problems.length} problems, first: ${JSON.stringify(problems[0])}`);
  return ok;
}

t.test(`SIGKILL during a random OSD workload, ${KILLS} times (seed ${SEED})`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'osd-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir);
  {
    const osd = await Osd.open(dir);
    const tx = osd.begin();
    await tx.start();
    await tx.create({ seq: 0x200000400, oid: 1, ver: 0 }, { type: 'idx', mode: 0o755, uid: 0, gid: 0 });
    await tx.indexInsert(ROOT_INDEX_FID, WORK_INDEX, { fid: { seq: 0x200000400, oid: 1, ver: 0 }, type: 'idx' });
    tx.stop();
    await osd.close();
  }
  const random = prng(SEED);
  let model = new Map<string, ModelObject>();
  let totalOps = 0;
  let totalTxgs = 0;
  for (let run = 1; run <= KILLS; run++) {
    const where = `seed ${SEED}, run ${run}`;
    const result = await runChild(dir, run, random.int(2 ** 31), 50 + random.int(600));
    if (result.signal !== 'SIGKILL') {
      t.fail(`${where}: the child ended by itself (${result.signal}): ${result.stderr.slice(-2000)}`);
      break;
    }
    const osd = await Osd.open(dir);
    const lastTxg = osd.lastSyncedTxg;
    if (lastTxg < result.committed) t.fail(`${where}: txg ${result.committed} was reported committed but the log ends at ${lastTxg}`);
    const durable = result.ops.filter((op) => op.txg <= lastTxg);
    const lost = result.ops.filter((op) => op.txg > lastTxg);
    const next = new Map([...model].map(([k, v]) => [k, { ...v, data: Buffer.from(v.data) }]));
    for (const op of durable) apply(next, op);
    const ok = await verify(t, osd, next, lost, where);
    await osd.close({ checkpoint: random.next() < 0.5 });
    if (!ok) break;
    model = next;
    totalOps += durable.length;
    totalTxgs = lastTxg;
  }
  t.ok(totalOps > 0, `${totalOps} durable updates in ${totalTxgs} txgs over ${KILLS} kills (seed ${SEED})`);
});
