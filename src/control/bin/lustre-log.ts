#!/usr/bin/env node
// lustre.log: inspect and verify a device's transaction-group log, and replay-to-point: a
// device as it was at a txg, a transno or a moment (src/control/replay, src/osd/past.ts).
import { Presets, SingleBar } from 'cli-progress';
import { createInterface } from 'node:readline/promises';
import { readLog } from '../../log/index.js';
import { devicePaths, fidToString, parseFid, stateAt, type Fid } from '../../osd/index.js';
import {
  blame, describeWindow, diffDevice, formatDiff, formatPoint, isMdt, listPath, namespaceOf, parsePoint, readWindow,
  parseNidMap, replayCopy, resolvePath, resolvePoint, splitDevicePoint, statPath, diffNamespaces, diffObjects, RangeCollector,
  type ReplayWindow,
} from '../replay/index.js';
import { Command } from 'commander';
import { inspect } from 'node:util';
import type { LogEntry } from '../../osd/index.js';
import { parseCount, runCli } from '../cli.js';
import { listTxgs, readTxg, verifyLog } from '../log-view.js';
import { deviceCheckpointTxg, checkDevice, verifyObjects } from '../device-view.js';

const program = new Command('lustre.log')
  .description('Inspect and verify the transaction-group log of a Lustre device, and see the device as it was at a txg, a transno or a moment')
  .version('0.1.0');

program
  .command('list', { isDefault: true })
  .description('list the txgs of DEVICE (number, time, entries, bytes, state) and its replay window, or decode one txg with --txg')
  .argument('<device>', 'the device folder (as given to mkfs.lustre)')
  .option('--txg <n>', 'decode this txg: every update of every transaction', parseCount('--txg'))
  .option('--json', 'print JSON instead of a table')
  .action(async (device: string, opts: { txg?: number; json?: boolean }) => {
    await checkDevice(device);
    if (opts.txg !== undefined) return showTxg(device, opts.txg, opts.json === true);
    const listing = await listTxgs(device, await deviceCheckpointTxg(device));
    if (opts.json) return void console.log(JSON.stringify(listing));
    console.log(`${'txg'.padStart(10)}  ${'time'.padEnd(24)}  ${'entries'.padStart(8)}  ${'bytes'.padStart(10)}  state`);
    for (const t of listing.txgs) {
      console.log(`${String(t.txg).padStart(10)}  ${t.time.padEnd(24)}  ${String(t.entries).padStart(8)}  ${String(t.bytes).padStart(10)}  ${t.state}`);
    }
    const window = listing.firstTxg === null ? 'no txg in the log' : `txgs ${listing.firstTxg} to ${listing.lastTxg}`;
    console.log(`${listing.txgs.length} txgs in the log (${window})`);
    const replay = await readWindow(device).catch((err: Error) => err);
    console.log(replay instanceof Error ? `replay window: none (${replay.message})` : `replay window: ${describeWindow(replay)}`);
    if (listing.torn) console.log(`torn tail: ${listing.torn.file} at offset ${listing.torn.offset} (${listing.torn.reason}); cut at next mount`);
  });

async function showTxg(device: string, txg: number, json: boolean): Promise<void> {
  const record = await readTxg(device, txg);
  if (json) return void console.log(JSON.stringify(record, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v)));
  console.log(`txg ${record.txg}  ${new Date(record.timeMs).toISOString()}  ${record.entries.length} entries  ${record.bytes} bytes  ${record.file}@${record.offset}`);
  record.entries.forEach((entry, i) => {
    for (const line of describeEntry(entry)) console.log(`  [${i}] ${line}`);
  });
}

// One line per update: `n op fid key=value ...`, the transaction's annotation first.
function describeEntry(entry: unknown): string[] {
  const e = entry as Partial<LogEntry>;
  if (!Array.isArray(e?.updates)) return [inspect(entry, { depth: 4, breakLength: Infinity })];
  const show = (v: unknown): string =>
    v instanceof Uint8Array ? `<${v.byteLength} bytes>` : inspect(v, { depth: 3, breakLength: Infinity, compact: true });
  const lines = e.tx ? [`tx ${show(e.tx)}`] : [];
  for (const u of e.updates) {
    const { n, op, fid, ...rest } = u as unknown as Record<string, unknown>;
    const fields = Object.entries(rest).map(([k, v]) => `${k}=${show(v)}`).join(' ');
    lines.push(`  ${String(n).padStart(4)} ${String(op).padEnd(12)} ${String(fid)} ${fields}`);
  }
  return lines;
}

program
  .command('verify')
  .description('check every record of the log and the consistency of the objects; report the first problem')
  .argument('<device>', 'the device folder')
  .option('--json', 'print JSON')
  .action(async (device: string, opts: { json?: boolean }) => {
    await checkDevice(device);
    const log = await verifyLog(device);
    const bar = opts.json ? null : new SingleBar({
      format: 'checking {phase} [{bar}] {value}/{total}', stream: process.stderr, clearOnComplete: true, hideCursor: true,
    }, Presets.shades_classic);
    const objects = log.problem ? null : await verifyObjects(device, bar ? (phase, scanned, total) => {
      if (!bar.isActive) bar.start(Math.max(total, scanned), 0, { phase });
      if (scanned > bar.getTotal()) bar.setTotal(scanned);
      bar.update(scanned, { phase });
    } : undefined).finally(() => bar?.stop());
    const problem = log.problem ?? objects?.problems[0] ?? null;
    if (opts.json) {
      console.log(JSON.stringify({ ok: problem === null, records: log.records, torn: log.torn, problem, objects: objects?.summary }));
    } else {
      console.log(`${log.records} records checked`);
      if (log.torn) console.log(`warning: torn tail at ${log.torn.file} offset ${log.torn.offset} (${log.torn.reason}); cut at next mount`);
      if (objects) console.log(objects.summaryLine);
      if (problem) {
        const where = 'file' in problem && problem.file ? ` (${problem.file}${problem.offset !== undefined ? ` at offset ${problem.offset}` : ''})` : '';
        console.log(`FAIL: ${problem.message}${where}`);
      } else console.log('OK');
    }
    if (problem) process.exitCode = 1;
  });

// ---- replay-to-point ------------------------------------------------------------------------

/** The window and the txg a point names in it. */
async function at(device: string, pointText: string | ReturnType<typeof parsePoint>): Promise<{ window: ReplayWindow; txg: number }> {
  const window = await readWindow(device);
  const point = typeof pointText === 'string' ? parsePoint(pointText) : pointText;
  return { window, txg: resolvePoint(window, point) };
}

function progressBar(enabled: boolean): SingleBar | null {
  return enabled && process.stderr.isTTY ? new SingleBar({
    format: '{phase} [{bar}] {value}/{total}', stream: process.stderr, clearOnComplete: true, hideCursor: true,
  }, Presets.shades_classic) : null;
}

program
  .command('replay')
  .description('write a complete copy of DEVICE as it was just after POINT (txg:N, transno:N, time:ISO-8601, now) to DIR')
  .argument('<device>', 'the device folder (it may be mounted: it is only read)')
  .requiredOption('--to <point>', 'txg:N, transno:N, time:ISO-8601 or now')
  .requiredOption('--out <dir>', 'where the copy goes (must not exist; written whole or not at all)')
  .option('--mgsnode <nid>', "rewrite the copy's MGS NID (repeatable), to run a copy set as a file system of its own",
    (v: string, prev: string[] = []) => [...prev, v])
  .option('--nid <old=new>', "run the copy on other NIDs: map a NID in its mountdata and (an MGS's copy) its config logs (repeatable)",
    (v: string, prev: string[] = []) => [...prev, v])
  .option('--json', 'print JSON')
  .action(async (device: string, opts: { to: string; out: string; mgsnode?: string[]; nid?: string[]; json?: boolean }) => {
    await checkDevice(device);
    const { window, txg } = await at(device, opts.to);
    const bar = progressBar(!opts.json);
    const result = await replayCopy(device, txg, opts.out, {
      records: txg - window.baseTxg,
      ...(opts.mgsnode && { mgsNids: opts.mgsnode }),
      ...(opts.nid && { nidMap: parseNidMap(opts.nid) }),
      onProgress: bar ? (p) => {
        if (!bar.isActive || bar.getTotal() !== p.total) { bar.stop(); bar.start(p.total, 0, { phase: p.phase }); }
        bar.update(p.done, { phase: p.phase });
      } : undefined,
    }).finally(() => bar?.stop());
    if (opts.json) return void console.log(JSON.stringify(result));
    console.log(`${result.out}: ${device} as of txg ${result.txg} (${new Date(result.timeMs).toISOString()}), ` +
      `${result.objects} objects, ${result.dataFiles} data files (${result.dataBytes} bytes)` +
      (result.missingData > 0 ? `, ${result.missingData} data objects without a data file (zeros)` : ''));
  });

program
  .command('ls')
  .description('list a directory of an MDT as it was at a point (DEVICE@POINT; now without one)')
  .argument('<device>', 'DEVICE or DEVICE@POINT, e.g. mdt0@time:2026-11-25T03:00:00Z')
  .argument('[path]', 'a path in the namespace', '/')
  .option('--json', 'print JSON')
  .action(async (arg: string, path: string, opts: { json?: boolean }) => {
    const { device, point } = splitDevicePoint(arg);
    await checkDevice(device);
    const { txg } = await at(device, point);
    const past = await stateAt(device, txg);
    const rows = listPath(past, path);
    if (opts.json) return void console.log(JSON.stringify({ txg, path, entries: rows }));
    for (const r of rows) {
      console.log(`${r.mode} ${String(r.nlink).padStart(3)} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ` +
        `${String(r.size).padStart(10)} ${r.mtime} ${r.fid.padEnd(24)} ${r.name}`);
    }
  });

program
  .command('stat')
  .description('the attributes, FID, xattrs and layout of PATH on an MDT at a point')
  .argument('<device>', 'DEVICE or DEVICE@POINT')
  .argument('<path>', 'a path in the namespace')
  .option('--json', 'print JSON')
  .action(async (arg: string, path: string, opts: { json?: boolean }) => {
    const { device, point } = splitDevicePoint(arg);
    await checkDevice(device);
    const { txg } = await at(device, point);
    const s = statPath(await stateAt(device, txg), path);
    if (opts.json) return void console.log(JSON.stringify(s));
    const a = s.attrs;
    const time = (x: number): string => new Date(x * 1000).toISOString();
    console.log(`  File: ${s.path}  (at txg ${s.txg})`);
    console.log(`   FID: ${s.fid}  type: ${a.type}  mode: 0${a.mode.toString(8)}  uid: ${a.uid}  gid: ${a.gid}`);
    console.log(`  Size: ${a.size}  blocks: ${a.blocks}  links: ${a.nlink}  flags: ${a.flags}  version: ${a.version}`);
    console.log(`Access: ${time(a.atime)}\nModify: ${time(a.mtime)}\nChange: ${time(a.ctime)}`);
    console.log(`xattrs: ${s.xattrs.join(', ') || '(none)'}`);
    if (s.layout) {
      console.log(`layout: raid0 stripe_size ${s.layout.stripeSize} stripe_count ${s.layout.objects.length}`);
      for (const o of s.layout.objects) console.log(`  obdidx ${o.ostIndex}  objid ${o.fid}`);
    }
  });

program
  .command('diff')
  .description('what changed between points A and B: MDT: paths created, removed, renamed, attributes, layouts; OST: objects and byte ranges')
  .argument('<device>', 'the device folder')
  .argument('<a>', 'the earlier point')
  .argument('<b>', 'the later point')
  .option('--json', 'print JSON')
  .action(async (device: string, a: string, b: string, opts: { json?: boolean }) => {
    await checkDevice(device);
    const window = await readWindow(device);
    const from = resolvePoint(window, parsePoint(a));
    const to = resolvePoint(window, parsePoint(b));
    if (from > to) throw Object.assign(new Error(`${a} (txg ${from}) is after ${b} (txg ${to}): give the earlier point first`), { code: 'EINVAL' });
    const d = await diffDevice(device, from, to);
    if (opts.json) return void console.log(JSON.stringify(d));
    console.log(`diff of ${device} from txg ${from} (${a}) to txg ${to} (${b}), ${d.kind === 'mdt' ? 'namespace' : 'objects'}:`);
    const lines = formatDiff(d);
    for (const line of lines) console.log(line);
    if (lines.length === 0) console.log('(no change)');
  });

program
  .command('blame')
  .description('every update inside the window that touched PATH (on an MDT) or FID: txg, transno, time, client UUID and NID, operation')
  .argument('<device>', 'DEVICE or DEVICE@POINT (the point at which PATH is looked up; now by default)')
  .argument('<target>', 'a path or a FID like [0x200000400:0x1:0x0]')
  .option('--json', 'print JSON')
  .action(async (arg: string, target: string, opts: { json?: boolean }) => {
    const { device, point } = splitDevicePoint(arg);
    await checkDevice(device);
    const { window, txg } = await at(device, point);
    let fid: Fid;
    if (/^\[.*\]$/.test(target)) {
      try { fid = parseFid(target); } catch { throw Object.assign(new Error(`'${target}' is not a FID (e.g. [0x200000400:0x1:0x0])`), { code: 'EINVAL' }); }
    } else fid = resolvePath(await stateAt(device, txg), target);
    const base = await stateAt(device, window.baseTxg);
    const names: Array<[string, string, string]> = [];
    for (const [f, a] of base.objects()) {
      if (a.type !== 'dir' && a.type !== 'idx') continue;
      for (const e of base.list(f)) names.push([fidToString(f), e.name, fidToString(e.fid)]);
    }
    const lines = await blame(device, fid, window.baseTxg, names);
    if (opts.json) return void console.log(JSON.stringify({ fid: fidToString(fid), window: { baseTxg: window.baseTxg, lastTxg: window.lastTxg }, updates: lines }));
    console.log(`${fidToString(fid)}: ${lines.length} transactions in the window (${describeWindow(window)})`);
    for (const l of lines) {
      console.log(`txg ${l.txg}  transno ${l.transno ?? '-'}  ${l.time}  client ${l.client ?? '-'}  nid ${l.nid ?? '-'}  ${l.opcode ?? '-'}`);
      for (const u of l.updates) console.log(`    ${u}`);
    }
  });

program
  .command('step')
  .description('step one txg at a time from POINT, showing what each changed (Enter for the next on a terminal, q to stop)')
  .argument('<device>', 'the device folder')
  .requiredOption('--from <point>', 'txg:N, transno:N, time:ISO-8601 or now')
  .option('--count <n>', 'stop after this many txgs', parseCount('--count'))
  .option('--json', 'one JSON line per txg')
  .action(async (device: string, opts: { from: string; count?: number; json?: boolean }) => {
    await checkDevice(device);
    const { window, txg } = await at(device, opts.from);
    const past = await stateAt(device, txg);
    const mdt = isMdt(past);
    const interactive = process.stdin.isTTY && process.stdout.isTTY && !opts.json;
    const rl = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : null;
    if (!opts.json) console.log(`from txg ${txg} (${formatPoint(parsePoint(opts.from))}); the window ends at txg ${window.lastTxg}`);
    let steps = 0;
    try {
      for await (const record of readLog(devicePaths(device).log, { afterTxg: txg })) {
        if (opts.count !== undefined && steps >= opts.count) break;
        const before = mdt ? namespaceOf(past) : null;
        const prior = mdt ? null : past.clone();
        const ranges = new RangeCollector();
        for (const u of await past.apply(record)) ranges.add(u);
        const d = mdt ? diffNamespaces(before!, namespaceOf(past), record.txg - 1, record.txg) : diffObjects(prior!, past, ranges, record.txg - 1, record.txg);
        steps++;
        if (opts.json) { console.log(JSON.stringify({ txg: record.txg, time: new Date(record.timeMs).toISOString(), diff: d })); continue; }
        console.log(`txg ${record.txg}  ${new Date(record.timeMs).toISOString()}  ${record.entries.length} transactions`);
        const lines = formatDiff(d);
        for (const line of lines) console.log(`  ${line}`);
        if (lines.length === 0) console.log('  (no visible change)');
        if (rl && (await rl.question('')).trim() === 'q') break;
      }
    } finally {
      rl?.close();
    }
    if (!opts.json) console.log(`${steps} txgs stepped`);
  });

await runCli(program);
