// lustre.log as a user runs it: a real process on a real device.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolCommand } from '../lib/tools.js';
import { promisify } from 'node:util';
import { Osd, ROOT_INDEX_FID } from '../../src/osd/index.js';

const run = promisify(execFile);

async function lustreLog(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...toolCommand('lustre-log'), ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A digest of every file under dir except LevelDB's own housekeeping (its LOG files). */
async function digest(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const entry of (await readdir(dir, { recursive: true, withFileTypes: true })).sort((a, b) => join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)))) {
    if (!entry.isFile() || /^LOG(\.old)?$|^LOCK$/.test(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    h.update(path).update(await readFile(path));
  }
  return h.digest('hex');
}

async function device(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lustre-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir, { label: 'testfs-OST0000' });
  const osd = await Osd.open(dir);
  for (let i = 1; i <= 3; i++) {
    const fid = { seq: 0x200000400, oid: i, ver: 0 };
    const tx = osd.begin();
    await tx.start();
    await tx.create(fid, { type: 'reg', mode: 0o644, uid: 0, gid: 0 });
    await tx.write(fid, 0, Buffer.from(`object ${i}`));
    await tx.indexInsert(ROOT_INDEX_FID, `f${i}`, { fid, type: 'reg' });
    tx.annotate({ op: 'create', client: `client-${i}` });
    await osd.waitSynced(tx.stop().txg);
  }
  await osd.close({ checkpoint: false });
  return dir;
}

t.test('lists txgs, decodes one, verifies, as text and JSON', async (t) => {
  const dev = await device(t);
  const list = await lustreLog(dev);
  t.equal(list.code, 0);
  t.match(list.stdout, /txg\s+time\s+entries\s+bytes\s+state/);
  t.match(list.stdout, /3 txgs in the log \(txgs 1 to 3\)/);
  t.match(list.stdout, /replay window: txg 0 \(\S+Z\) to txg 3 \(\S+Z\), no transno/, 'the replay window, from the format');
  const json = JSON.parse((await lustreLog(dev, '--json')).stdout) as { txgs: Array<{ txg: number; entries: number }> };
  t.same(json.txgs.map((x) => [x.txg, x.entries]), [[1, 1], [2, 1], [3, 1]]);
  const one = await lustreLog(dev, '--txg', '2');
  t.match(one.stdout, /tx \{ op: 'create', client: 'client-2' \}/);
  t.match(one.stdout, /create\s+\[0x200000400:0x2:0x0\]/);
  t.match(one.stdout, /write\s+\[0x200000400:0x2:0x0\] offset=0 length=8/);
  const missing = await lustreLog(dev, '--txg', '9');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /txg 9 is not in the log: the log holds txgs 1 to 3/);
  const verify = await lustreLog('verify', dev);
  t.equal(verify.code, 0, verify.stdout + verify.stderr);
  t.match(verify.stdout, /3 records checked/);
  t.match(verify.stdout, /OK/);
  t.match((await lustreLog('--help')).stdout, /Usage: lustre.log/);
  t.match((await lustreLog('verify', '--help')).stdout, /Usage: lustre.log verify/);
});

t.test('bad input: not a device, a corrupt record, a newer version; the device is left as it was', async (t) => {
  const notDevice = await lustreLog('verify', tmpdir());
  t.equal(notDevice.code, 1);
  t.match(notDevice.stderr, /is not an OSD device/);
  const badCount = await lustreLog(tmpdir(), '--txg', 'x');
  t.equal(badCount.code, 2);
  t.match(badCount.stderr, /--txg must be a non-negative integer, not 'x'/);

  const dev = await device(t);
  const segment = join(dev, 'log', '0000000000000001.txg');
  const bytes = await readFile(segment);
  const listing = JSON.parse((await lustreLog(dev, '--json')).stdout) as { txgs: Array<{ offset: number }> };
  const damaged = Buffer.from(bytes);
  damaged[listing.txgs[0]!.offset + 40] ^= 0xff;
  await writeFile(segment, damaged);
  const before = await digest(dev);
  const verify = await lustreLog('verify', dev);
  t.equal(verify.code, 1);
  t.match(verify.stdout, new RegExp(`FAIL: .*0000000000000001\\.txg at offset ${listing.txgs[0]!.offset}`));
  const list = await lustreLog(dev);
  t.equal(list.code, 1);
  t.match(list.stderr, /at offset \d+: record checksum mismatch/);
  t.equal(await digest(dev), before, 'nothing on the device changed');

  const newer = Buffer.from(bytes);
  newer.writeUInt16LE(7, listing.txgs[0]!.offset + 4);
  await writeFile(segment, newer);
  const v = await lustreLog('verify', dev);
  t.equal(v.code, 1);
  t.match(v.stdout, /record format version 7 is newer than this software reads/);
});
