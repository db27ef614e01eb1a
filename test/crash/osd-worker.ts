// The child of the OSD crash test: runs a random workload on a device until it is killed.
// It prints one JSON line per update it applied ({txg, op, ...}), in the order it applied them
// (and an 'intent' line before each write reaches the data file, since bytes land before the
// update is recorded),
// and {c: txg} when a transaction's commit callback fires. Each line is written to fd 1 with a
// blocking write before the update's transaction can commit, so what the parent reads is
// exactly what happened before the SIGKILL. (process.stdout would not do: Node writes a pipe
// asynchronously once it is full, and the lines still queued die with the process while the
// txgs they describe are durable; a CI run lost them, and the model missed committed updates.)
//   argv: DEVICE RUN SEED
import { writeSync } from 'node:fs';
import { Osd, ROOT_INDEX_FID, fidToString, type Fid } from '../../src/osd/index.js';
import { patternBytes, prng } from '../lib/prng.js';
import { SEQ, WORKERS, WORK_INDEX, XATTR } from './osd-workload.js';


const [device, runText, seedText] = process.argv.slice(2);
const run = Number(runText);
const random = prng(Number(seedText));
const pause = new Int32Array(new SharedArrayBuffer(4));
const emit = (line: object): void => {
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(1, bytes, at);
    } catch (err) {
      // fd 1 made non-blocking by someone else: wait for the parent to read, without yielding.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
};

const osd = await Osd.open(device!, { txgTimeoutMs: 25, checkpointKeysMax: 400, segmentBytesMax: 128 * 1024 });
const work = (await osd.indexLookup(ROOT_INDEX_FID, WORK_INDEX))!.fid;

// Each worker owns the objects it creates and those whose oid falls to it: a transaction never
// touches an object another in-flight transaction is changing, as a target's object locks ensure.
const owned: Fid[][] = Array.from({ length: WORKERS }, () => []);
for (let cookie: string | null | undefined; cookie !== null;) {
  const page = await osd.indexList(work, { cookie, limit: 1000 });
  for (const e of page.entries) owned[e.fid.oid % WORKERS]!.push(e.fid);
  cookie = page.cookie;
}
let nextOid = run * 100_000;
emit({ ready: true });

async function step(w: number): Promise<void> {
  const mine = owned[w]!;
  const tx = osd.begin();
  await tx.start();
  const txg = tx.txg;
  const roll = random.next();
  if (mine.length === 0 || roll < 0.3) {
    let oid = ++nextOid;
    while (oid % WORKERS !== w) oid = ++nextOid;
    const fid = { seq: SEQ, oid, ver: 0 };
    const f = fidToString(fid);
    const mode = 0o600 + random.int(0o100);
    await tx.create(fid, { type: 'reg', mode, uid: 0, gid: 0 });
    emit({ txg, op: 'create', fid: f, mode });
    const off = random.int(64 * 1024);
    const len = 1 + random.int(32 * 1024);
    const seed = random.int(2 ** 31);
    emit({ txg, op: 'intent', fid: f, off, len, seed });
    await tx.write(fid, off, patternBytes(seed, len));
    emit({ txg, op: 'write', fid: f, off, len, seed });
    await tx.indexInsert(work, f, { fid, type: 'reg' });
    emit({ txg, op: 'link', fid: f });
    mine.push(fid);
  } else {
    const i = random.int(mine.length);
    const fid = mine[i]!;
    const f = fidToString(fid);
    if (roll < 0.6) {
      const off = random.int(256 * 1024);
      const len = 1 + random.int(32 * 1024);
      const seed = random.int(2 ** 31);
      emit({ txg, op: 'intent', fid: f, off, len, seed });
      await tx.write(fid, off, patternBytes(seed, len));
      emit({ txg, op: 'write', fid: f, off, len, seed });
    } else if (roll < 0.75) {
      const size = random.int(128 * 1024);
      await tx.punch(fid, size);
      emit({ txg, op: 'trunc', fid: f, size });
    } else if (roll < 0.85) {
      const mode = 0o600 + random.int(0o100);
      await tx.attrSet(fid, { mode });
      emit({ txg, op: 'mode', fid: f, mode });
    } else if (roll < 0.95) {
      const seed = random.int(2 ** 31);
      await tx.xattrSet(fid, XATTR, patternBytes(seed, 16));
      emit({ txg, op: 'xattr', fid: f, seed });
    } else {
      await tx.indexDelete(work, f);
      emit({ txg, op: 'unlink', fid: f });
      await tx.destroy(fid);
      emit({ txg, op: 'destroy', fid: f });
      mine.splice(i, 1);
    }
  }
  tx.stop((committed) => emit({ c: committed }));
  if (random.next() < 0.3) await osd.waitSynced(txg);
}

await Promise.all(Array.from({ length: WORKERS }, async (_, w) => {
  for (;;) await step(w);
}));
