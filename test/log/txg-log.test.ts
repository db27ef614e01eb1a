import t, { type Test } from 'tap';
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import {
  LogCorruptError, TxgLog, encodeRecord, readCheckpointHint, encodeSegmentHeader, readLog, segmentName,
  type TxgLogOptions, type TxgRecord,
} from '../../src/log/index.js';

const encoder = new Encoder({ useRecords: false });

async function freshLog(t: Test, opts: Partial<TxgLogOptions> = {}): Promise<{ dir: string; log: TxgLog }> {
  const dir = await mkdtemp(join(tmpdir(), 'txglog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await TxgLog.format(dir);
  const log = await TxgLog.open({ dir, checkpointTxg: 0, ...opts });
  return { dir, log };
}

async function all(dir: string, afterTxg = 0): Promise<TxgRecord[]> {
  const out: TxgRecord[] = [];
  for await (const r of readLog(dir, { afterTxg })) out.push(r);
  return out;
}

function commit(log: TxgLog, entry: unknown): Promise<number> {
  return new Promise((resolve) => {
    const h = log.hold();
    h.release(entry, resolve);
    void log.waitSynced(h.txg);
  });
}

t.test('golden: segment header and record bytes are frozen', async (t) => {
  t.equal(encodeSegmentHeader(1).toString('hex'),
    '4c555458475345470100000020000000010000000000000000000000b49e95b1');
  const record = encodeRecord(7, 1764000000000, [
    encoder.encode({ op: 'create', fid: [0x200000400, 1, 0] }),
    encoder.encode(['punch', 3]),
  ]);
  t.equal(record.toString('hex'),
    '5458475201000000070000000000000000e897b69a010000260000003b6a1a9782b90002626f706663726561746563666964' +
    '83fb42000000200000000100826570756e6368034a000000');
});

t.test('many concurrent transactions share one txg, written as one record', async (t) => {
  const { dir, log } = await freshLog(t);
  const holds = Array.from({ length: 200 }, () => log.hold());
  t.equal(new Set(holds.map((h) => h.txg)).size, 1, 'all in one txg');
  const committed: number[] = [];
  holds.forEach((h, i) => h.release({ i }, (txg) => committed.push(txg)));
  await log.sync();
  t.equal(committed.length, 200);
  const records = await all(dir);
  t.equal(records.length, 1, 'one record');
  t.same(records[0]!.entries.map((e) => (e as { i: number }).i), holds.map((_, i) => i), 'entries in stop order');
  await log.close();
});

t.test('a txg moves open -> quiescing -> syncing -> synced, one per state', async (t) => {
  const { log } = await freshLog(t);
  const a = log.hold();
  const waited = log.waitSynced(a.txg);
  t.same(log.inFlight().map((x) => x.state), ['open', 'quiescing'], 'closed but held: quiescing');
  const b = log.hold();
  t.equal(b.txg, a.txg + 1, 'new transactions join the next open txg');
  b.release({ b: 1 });
  t.same(log.inFlight().find((x) => x.txg === a.txg)?.state, 'quiescing', 'waits for its last hold');
  a.release({ a: 1 });
  t.same(log.inFlight().find((x) => x.txg === a.txg)?.state, 'syncing');
  await waited;
  t.equal(log.lastSyncedTxg, a.txg);
  t.equal(log.inFlight().length, 1, 'only the open txg is left');
  await log.close();
});

t.test('commit callbacks run in txg order, only once the record is durable', async (t) => {
  const { dir, log } = await freshLog(t);
  const order: number[] = [];
  const checks: Array<Promise<void>> = [];
  const writers = Array.from({ length: 64 }, async (_, w) => {
    for (let i = 0; i < 20; i++) {
      const txg = await commit(log, { w, i });
      order.push(txg);
      // The record must be readable from the file by the time its callback runs.
      checks.push(all(dir, txg - 1).then((r) => { if (r[0]?.txg !== txg) throw new Error(`txg ${txg} not on disk`); }));
    }
  });
  await Promise.all(writers);
  await Promise.all(checks);
  t.ok(order.every((x, i) => i === 0 || x >= order[i - 1]!), 'never goes backwards');
  t.ok(log.stats().txgsSynced < 64 * 20, `group commit: ${log.stats().txgsSynced} txgs for ${64 * 20} commits`);
  await log.close();
});

t.test('a txg closes on its timer and at its dirty-bytes limit', async (t) => {
  const { log } = await freshLog(t, { txgTimeoutMs: 20, dirtyBytesMax: 1000 });
  const synced = new Promise<number>((resolve) => log.hold().release({ x: 1 }, resolve));
  t.equal(await synced, 1, 'timer closed txg 1 with nobody waiting');
  const big = Buffer.alloc(600);
  const h1 = log.hold();
  h1.release({ big });
  const h2 = log.hold();
  t.equal(h2.txg, h1.txg, 'below the limit: same txg');
  h2.release({ big });
  t.not(log.inFlight().find((x) => x.txg === h1.txg)?.state, 'open', 'over the limit: closed');
  await log.close();
});

t.test('data written outside the log counts towards the dirty-bytes limit', async (t) => {
  const { log } = await freshLog(t, { txgTimeoutMs: 60_000, dirtyBytesMax: 1000 });
  const h1 = log.hold();
  h1.release({ w: 1 }, undefined, 600);
  const h2 = log.hold();
  t.equal(h2.txg, h1.txg, 'entry and data below the limit: same txg');
  h2.release({ w: 2 }, undefined, 600);
  t.not(log.inFlight().find((x) => x.txg === h1.txg)?.state, 'open', 'data over the limit: closed without its timer');
  const h3 = log.hold();
  t.equal(h3.txg, h1.txg + 1, 'the next write joins the next txg');
  h3.release({ w: 3 });
  await log.close();
});

t.test('reopen after a clean close replays every record after the checkpoint', async (t) => {
  const { dir, log } = await freshLog(t);
  for (let i = 0; i < 5; i++) await commit(log, { i });
  await log.close();
  const seen: unknown[] = [];
  const again = await TxgLog.open({ dir, checkpointTxg: 2, replay: (r) => { seen.push(...r.entries); } });
  t.same(seen, [{ i: 2 }, { i: 3 }, { i: 4 }]);
  t.equal(again.stats().recordsReplayed, 3);
  t.equal(await commit(again, { i: 5 }), 6, 'numbering goes on');
  await again.close();
});

t.test('a torn tail is cut at every byte offset of the last record; everything before replays', async (t) => {
  const { dir, log } = await freshLog(t);
  for (let i = 0; i < 4; i++) await commit(log, { i, pad: 'x'.repeat(i * 7) });
  await log.close();
  const file = join(dir, segmentName(1));
  const whole = await readFile(file);
  const records = await all(dir);
  const last = records[records.length - 1]!;
  for (let cut = last.offset; cut < last.offset + last.bytes; cut++) {
    await writeFile(file, whole.subarray(0, cut));
    const warnings: string[] = [];
    const seen: number[] = [];
    const reopened = await TxgLog.open({
      dir, checkpointTxg: 0, warn: (m) => warnings.push(m), replay: (r) => { seen.push(r.txg); },
    });
    if (!(seen.length === 3 && reopened.lastSyncedTxg === 3)) t.fail(`cut at ${cut}: replayed ${seen}`);
    if (cut > last.offset && warnings.length !== 1) t.fail(`cut at ${cut}: no warning`);
    if ((await stat(file)).size !== last.offset) t.fail(`cut at ${cut}: tail not cut`);
    await reopened.close();
  }
  t.pass(`cut at each of ${last.bytes} offsets`);
  await writeFile(file, whole);
});

t.test('a crash while a segment is being created leaves no headerless segment; the next open goes on', async (t) => {
  const { dir, log } = await freshLog(t);
  for (let i = 0; i < 3; i++) await commit(log, { i });
  await log.close();
  // What rotate leaves when killed before the rename: the next segment's header, partly written.
  const header = encodeSegmentHeader(4);
  for (const cut of [0, 5, header.length]) {
    const unfinished = join(dir, `${segmentName(4)}.new`);
    await writeFile(unfinished, header.subarray(0, cut));
    const warnings: string[] = [];
    const seen: number[] = [];
    const reopened = await TxgLog.open({
      dir, checkpointTxg: 0, warn: (m) => warnings.push(m), replay: (r) => { seen.push(r.txg); },
    });
    t.same(seen, [1, 2, 3], `header cut at ${cut}: every record replays`);
    t.match(warnings.join('\n'), /removed .*0000000000000004\.txg\.new, a segment whose creation a crash interrupted/);
    t.notOk((await readdir(dir)).some((n) => n.endsWith('.new')), 'the unfinished file is gone');
    const txg = await commit(reopened, { after: cut });
    t.equal(txg, 4, 'the log goes on from txg 4');
    await reopened.close();
    await writeFile(join(dir, segmentName(1)), (await readFile(join(dir, segmentName(1)))).subarray(0, (await all(dir))[3]!.offset));
  }
});

t.test('damage with valid records after it is an error naming file and offset; nothing changes', async (t) => {
  const { dir, log } = await freshLog(t);
  for (let i = 0; i < 3; i++) await commit(log, { i });
  await log.close();
  const file = join(dir, segmentName(1));
  const records = await all(dir);
  const bytes = await readFile(file);
  const bad = Buffer.from(bytes);
  bad[records[0]!.offset + 33] ^= 0xff; // a body byte
  await writeFile(file, bad);
  const err = await TxgLog.open({ dir, checkpointTxg: 0 }).catch((e: unknown) => e);
  t.type(err, LogCorruptError);
  t.match((err as LogCorruptError).message, /checksum mismatch, with a valid record after it/);
  t.equal((err as LogCorruptError).file, file);
  t.equal((err as LogCorruptError).offset, records[0]!.offset);
  t.same(await readFile(file), bad, 'the device is unchanged');
});

t.test('a newer format version is refused with its version named', async (t) => {
  const { dir, log } = await freshLog(t);
  await commit(log, { i: 1 });
  await log.close();
  const file = join(dir, segmentName(1));
  const bytes = await readFile(file);
  const newer = Buffer.from(bytes);
  newer.writeUInt16LE(9, 32 + 4);
  await writeFile(file, newer);
  await t.rejects(TxgLog.open({ dir, checkpointTxg: 0 }), { code: 'EVERSION', message: /version 9 is newer/ });
  await t.rejects(TxgLog.open({ dir: join(dir, 'nope'), checkpointTxg: 0 }), { code: 'ENOTLOG' });
});

t.test('segments rotate; a checkpoint deletes covered segments unless retention keeps them', async (t) => {
  const { dir, log } = await freshLog(t, { segmentBytesMax: 512 });
  for (let i = 0; i < 40; i++) await commit(log, { i, pad: 'y'.repeat(40) });
  const segments = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.endsWith('.txg'));
  const before = (await segments()).length;
  t.ok(before > 3, `${before} segments`);
  t.equal((await all(dir)).length, 40, 'records read across segments');
  log.tune({ retainBytes: 1024 });
  let stored = -1;
  t.equal(await log.checkpoint(async (txg) => { stored = txg; }), 40);
  t.equal(stored, 40);
  const kept = await segments();
  t.ok(kept.length < before && kept.length >= 3, `retention kept ${kept.length} segments`);
  log.tune({ retainBytes: 0 });
  await log.checkpoint(async () => undefined);
  t.equal((await segments()).length, 1, 'only the current segment is left');
  t.equal(await readCheckpointHint(dir), 40, 'the checkpoint txg is recorded beside the segments for tools');
  await log.close();
  const seen: number[] = [];
  const again = await TxgLog.open({ dir, checkpointTxg: 40, replay: (r) => { seen.push(r.txg); } });
  t.same(seen, []);
  t.equal(again.lastSyncedTxg, 40);
  await again.close();
  await t.rejects(TxgLog.open({ dir, checkpointTxg: 10 }), { code: 'ECORRUPT', message: /txgs after 10 are needed/ });
});

t.test('a write failure fails every waiter with the cause and refuses new work', async (t) => {
  const { dir, log } = await freshLog(t, {
    beforeSync: async (txg) => { if (txg === 2) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }); },
  });
  await commit(log, { ok: 1 });
  const h = log.hold();
  h.release({ fails: 1 });
  await t.rejects(log.waitSynced(h.txg), { code: 'ENOSPC' });
  t.throws(() => log.hold(), { code: 'ENOSPC' });
  t.equal((await all(dir)).length, 1, 'what was durable stays');
});

t.test('empty tx file: truncated segment header is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'txglog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await TxgLog.format(dir);
  await t.rejects(TxgLog.format(dir), { code: 'EEXIST' });
  await truncate(join(dir, segmentName(1)), 10);
  await t.rejects(TxgLog.open({ dir, checkpointTxg: 0 }), { code: 'ECORRUPT', message: /bad magic/ });
});

t.test('tune: a shorter txg timeout closes the open txg by it; bad values change nothing', async (t) => {
  const { log } = await freshLog(t, { txgTimeoutMs: 3_600_000 });
  t.teardown(() => log.close());
  const committed = new Promise<number>((resolve) => log.hold().release({ x: 1 }, resolve));
  log.tune({ txgTimeoutMs: 5 });
  t.equal(log.getTunables().txgTimeoutMs, 5);
  t.equal(await committed, 1, 'the open txg closed on the new timeout, not the hour it was armed with');
  t.throws(() => log.tune({ txgTimeoutMs: 0 }), { code: 'EINVAL' });
  t.throws(() => log.tune({ txgTimeoutMs: 1.5 }), { code: 'EINVAL' });
  t.throws(() => log.tune({ bogus: 1 } as never), { code: 'EINVAL' });
  t.equal(log.getTunables().txgTimeoutMs, 5, 'refused values left the tunables alone');
});

t.test('beforeTrim hears the last txg of the segments about to go; a throw keeps them', async (t) => {
  const heard: number[] = [];
  let refuse = true;
  const warnings: string[] = [];
  const { dir, log } = await freshLog(t, {
    segmentBytesMax: 512,
    beforeTrim: async (through) => {
      heard.push(through);
      if (refuse) throw new Error('no base yet');
    },
    warn: (m) => warnings.push(m),
  });
  for (let i = 0; i < 40; i++) await commit(log, { i, pad: 'z'.repeat(40) });
  const segments = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.endsWith('.txg')).sort();
  const before = await segments();
  await log.checkpoint(async () => undefined);
  t.same(await segments(), before, 'a refusing owner keeps every segment');
  t.match(warnings.join('\n'), /kept segments before txg \d+: no base yet/);
  refuse = false;
  await log.checkpoint(async () => undefined);
  const after = await segments();
  t.equal(after.length, 1);
  const first = Number.parseInt(after[0]!.slice(0, 16), 16);
  t.equal(heard.at(-1), first - 1, 'told the txg just before the first kept segment');
  await log.close();
});

t.test('a log formatted to start after txg N (a replayed copy) opens at N and goes on from it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'txglog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await TxgLog.format(dir, 8);
  t.same(await readdir(dir), [segmentName(8)]);
  const log = await TxgLog.open({ dir, checkpointTxg: 7 });
  t.equal(log.lastSyncedTxg, 7);
  t.equal(await commit(log, { x: 1 }), 8);
  await log.close();
  t.same((await all(dir, 7)).map((r) => r.txg), [8]);
});

t.test('waitSynced without hurry leaves the txg open until it closes on its own', async (t) => {
  const { log } = await freshLog(t, { txgTimeoutMs: 60_000 });
  const h = log.hold();
  h.release({ a: 1 });
  let synced = false;
  const waited = log.waitSynced(h.txg, false).then(() => (synced = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(log.inFlight().map((x) => x.state), ['open'], 'the txg stays open');
  t.equal(synced, false, 'not resolved while open');
  await log.sync(); // someone else closes it
  await waited;
  t.equal(synced, true);
  t.equal(log.lastSyncedTxg, h.txg);
  await log.close();
});
