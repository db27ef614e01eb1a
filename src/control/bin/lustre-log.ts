#!/usr/bin/env node
// lustre.log: inspect and verify a device's transaction-group log.
import { Presets, SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { inspect } from 'node:util';
import type { LogEntry } from '../../osd/index.js';
import { parseCount, runCli } from '../cli.js';
import { listTxgs, readTxg, verifyLog } from '../log-view.js';
import { deviceCheckpointTxg, checkDevice, verifyObjects } from '../device-view.js';

const program = new Command('lustre.log')
  .description('Inspect and verify the transaction-group log of a Lustre device')
  .version('0.1.0');

program
  .command('list', { isDefault: true })
  .description('list the txgs of DEVICE (number, time, entries, bytes, state), or decode one with --txg')
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

await runCli(program);
