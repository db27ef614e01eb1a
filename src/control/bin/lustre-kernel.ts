#!/usr/bin/env node
// lustre.kernel: starts, stops and shows the daemon that hosts a node's services.
//   lustre.kernel start --nid 127.0.0.2@tcp --rundir /run/lustre-a
//   lustre.kernel status
//   lustre.kernel stop
// Client mounts run in client kernels of their own under the run dir (RUNDIR/clients/*), which
// lustre.mount MGSNID:/fsname DIR starts (start --client); stop stops them too.
import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import type { LevelWithSilent } from 'pino';
import { LNET_DEFAULT_PORT, parseNid } from '../../lnet/index.js';
import { callKernel } from '../control-client.js';
import { parseCount, runCli, UsageError } from '../cli.js';
import { LOG_LEVELS } from '../kernel/debug-log.js';
import { holder, runForeground, startBackground, stopClientKernels, stopKernel } from '../kernel/daemon.js';
import type { KernelStatus } from '../protocol.js';
import { clientRundirs, resolveRundir, RUNDIR_ENV } from '../rundir.js';

const rundirOption = (): Option =>
  new Option('--rundir <dir>', `the kernel's run dir (control socket, pid file, log); default $${RUNDIR_ENV}, else /run/lustre for root`);

function checkNid(nid: string): string {
  try {
    parseNid(nid);
  } catch (err) {
    throw new UsageError(`--nid: ${(err as Error).message}`, 2);
  }
  return nid;
}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:([\d.]+|localhost):)?(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--metrics must be [HOST:]PORT, not '${value}'`, 2);
  return { host: m[1] ?? '127.0.0.1', port: Number(m[2]) };
}

function formatUptime(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d` : ''}${d || h ? `${h}h` : ''}${m}m${s % 60}s`;
}

export function formatStatus(s: KernelStatus): string {
  const lines = [
    `lustre.kernel ${s.version}  pid ${s.pid}  nid ${s.nid}  up ${formatUptime(s.uptimeSeconds)} (since ${s.startedAt})`,
    `run dir ${s.rundir}`,
    s.devices.length === 0 ? 'no devices mounted' : `${s.devices.length} device(s) mounted:`,
  ];
  for (const d of s.devices) {
    lines.push(`  ${d.svname.padEnd(16)} ${d.device}  profile ${d.kind.join(',')}  services ${d.services.join(', ')}  clients ${d.clients.length}`);
    for (const c of d.clients) lines.push(`      ${c.service.padEnd(7)} ${c.nid.padEnd(18)} ${c.uuid}`);
  }
  for (const c of s.clients) lines.push(`  client ${c.spec} at ${c.mountpoint}`);
  return lines.join('\n') + '\n';
}

const program = new Command('lustre.kernel')
  .description("the daemon that hosts one node's Lustre services (MGS, MDT, OST) and answers its utilities");

program.command('start')
  .description('start the kernel: LNet on the NID, a control socket in the run dir; returns once it answers')
  .requiredOption('--nid <nid>', "this node's NID, e.g. 127.0.0.2@tcp", checkNid)
  .option('--port <port>', "LNet's acceptor port on every node (Lustre's accept_port)", parseCount('--port'), LNET_DEFAULT_PORT)
  .addOption(rundirOption())
  .addOption(new Option('--log-level <level>', 'the debug log level (lctl set_param debug=LEVEL later)').choices(LOG_LEVELS as string[]).default('info'))
  .option('--metrics <[host:]port>', 'serve Prometheus metrics on this loopback port', parseListen)
  .option('--foreground', 'run in this process instead of in the background')
  .option('--client', 'a client kernel (lustre.mount MGSNID:/fsname DIR starts one per mount): hosts one client mount as a user process of the NID (no LNet acceptor), exits when the mount is gone')
  .action(async (o: { nid: string; port: number; rundir?: string; logLevel: LevelWithSilent; metrics?: { host: string; port: number }; foreground?: boolean; client?: boolean }) => {
    const rundir = resolveRundir(o.rundir);
    if (o.foreground) {
      await runForeground({ nid: o.nid, port: o.port, rundir, logLevel: o.logLevel, ...(o.metrics && { metrics: o.metrics }), ...(o.client && { client: true }) },
        (k) => process.stdout.write(`lustre.kernel ${k.version} running${o.client ? ' (client kernel)' : ''}: pid ${process.pid}, nid ${k.nid}, run dir ${rundir}\n`));
      process.exit(0); // every device is unmounted and LNet is down: nothing may keep the daemon alive
    }
    const argv = ['start', '--foreground', '--nid', o.nid, '--port', String(o.port), '--rundir', rundir, '--log-level', o.logLevel];
    if (o.metrics) argv.push('--metrics', `${o.metrics.host}:${o.metrics.port}`);
    if (o.client) argv.push('--client');
    const { pid, nid } = await startBackground(rundir, fileURLToPath(import.meta.url), argv);
    process.stdout.write(`lustre.kernel started: pid ${pid}, nid ${nid}, run dir ${rundir}\n`);
  });

program.command('stop')
  .description("unmount every device cleanly (last txg synced), bring LNet down and exit; the node's client kernels (its client mounts, forced) stop first")
  .addOption(rundirOption())
  .action(async (o: { rundir?: string }) => {
    const rundir = resolveRundir(o.rundir);
    const clients = await stopClientKernels(rundir);
    if (clients.length > 0) process.stdout.write(`stopped ${clients.length} client kernel(s): ${clients.join(', ')}\n`);
    // With no node kernel left but client kernels stopped, the stop did what it could.
    if (clients.length > 0 && holder(rundir) === undefined) return;
    const { pid, unmounted } = await stopKernel(rundir);
    process.stdout.write(`lustre.kernel (pid ${pid}) stopped${unmounted.length ? `; unmounted ${unmounted.join(', ')}` : ''}\n`);
  });

program.command('status')
  .description('NID, uptime, mounted devices, their services and connected clients')
  .addOption(rundirOption())
  .option('--json', 'print the status as JSON')
  .action(async (o: { rundir?: string; json?: boolean }) => {
    const rundir = resolveRundir(o.rundir);
    const s = await callKernel(rundir, 'status', {});
    if (o.json) { process.stdout.write(JSON.stringify(s, null, 2) + '\n'); return; }
    // The node's client kernels, each a process of its own (lctl --rundir DIR reaches its llite.* and osc.*).
    const clients: string[] = [];
    for (const dir of clientRundirs(rundir)) {
      if (holder(dir) === undefined) continue;
      const c = await callKernel(dir, 'status', {}).catch(() => undefined);
      for (const m of c?.clients ?? []) clients.push(`  client ${m.spec} at ${m.mountpoint}  client kernel pid ${c!.pid}, run dir ${dir}`);
    }
    process.stdout.write(formatStatus(s) + (clients.length ? clients.join('\n') + '\n' : ''));
  });

await runCli(program);
