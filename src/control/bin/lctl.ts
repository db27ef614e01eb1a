#!/usr/bin/env node
// lctl: the control utility, with Lustre's subcommands and output formats.
//   lctl dl
//   lctl get_param -n 'osd-*.*.kbytesfree'
//   lctl set_param debug=debug
//   lctl list_param 'obdfilter.*.*'
//   lctl dk [FILE]
// A client mount runs in a client kernel of its own, under the node's run dir: its llite.* and
// osc.* parameters are that kernel's (lustre.kernel status lists them).
//   lctl --rundir /run/lustre/clients/1a2b3c4d5e6f get_param 'llite.*.*'
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { callKernel } from '../control-client.js';
import { runCli, UsageError } from '../cli.js';
import { KERNEL_VERSION } from '../kernel/kernel.js';
import { FAIL_POINTS } from '../../log/index.js';
import { formatGetParam } from '../params/index.js';
import { CLIENTS_DIR, resolveRundir, RUNDIR_ENV } from '../rundir.js';

const program = new Command('lctl')
  .description("Lustre's control utility: devices, parameters and the debug log of this node's lustre.kernel")
  .version(KERNEL_VERSION, '--version')
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root`))
  .addHelpText('after', `
A client mount (lustre.mount MGSNID:/fsname DIR) runs in a client kernel of its own, whose run
dir is RUNDIR/${CLIENTS_DIR}/<hash of the mount point>; its llite.* and osc.* parameters are reached there:
  lctl --rundir RUNDIR/${CLIENTS_DIR}/<hash> get_param 'llite.*.*'
lustre.kernel status --rundir RUNDIR lists the client kernels and their run dirs.`);

const rundir = (): string => resolveRundir(program.opts<{ rundir?: string }>().rundir);

program.command('dl').alias('device_list')
  .description('list the devices (obd devices) of this node, as Lustre prints them')
  .action(async () => {
    process.stdout.write(await callKernel(rundir(), 'dl', {}));
  });

program.command('get_param')
  .description('print parameters: NAME=VALUE (globs *, ?, [..], {a,b} per dotted component)')
  .argument('<param...>', "parameter names or patterns, e.g. 'osd-*.*.kbytesfree'")
  .option('-n', 'print values only')
  .option('-N', 'print names only')
  .option('-R', 'every parameter below the directories named too')
  .action(async (patterns: string[], o: { n?: boolean; N?: boolean; R?: boolean }) => {
    const values = await callKernel(rundir(), 'get_param', { patterns, recursive: o.R ?? false });
    process.stdout.write(formatGetParam(values, { valuesOnly: o.n ?? false, namesOnly: o.N ?? false }));
  });

program.command('set_param')
  .description('set tunable parameters: NAME=VALUE ...')
  .argument('<setting...>', "NAME=VALUE, e.g. debug=debug or 'osd-*.*.txg_timeout=5'")
  .option('-n', 'do not print what was set')
  .action(async (settings: string[], o: { n?: boolean }) => {
    const parsed = settings.map((s) => {
      const eq = s.indexOf('=');
      if (eq <= 0) throw new UsageError(`set_param: '${s}' is not NAME=VALUE`, 2);
      return { pattern: s.slice(0, eq), value: s.slice(eq + 1) };
    });
    const set = await callKernel(rundir(), 'set_param', { settings: parsed });
    if (!o.n) for (const v of set) process.stdout.write(`${v.name}=${v.value}\n`);
  });

program.command('list_param')
  .description('list parameter names matching the patterns')
  .argument('<param...>', "names or patterns, e.g. 'obdfilter.*.*'")
  .option('-R', 'every name below the directories named too')
  .action(async (patterns: string[], o: { R?: boolean }) => {
    const names = await callKernel(rundir(), 'list_param', { patterns, recursive: o.R ?? false });
    process.stdout.write(names.map((n) => `${n}\n`).join(''));
  });

program.command('dk').alias('debug_kernel')
  .description('dump the kernel debug log to FILE (or stdout) and clear it')
  .argument('[file]', 'where to write it')
  .option('--keep', 'do not clear the log after dumping it')
  .action(async (file: string | undefined, o: { keep?: boolean }) => {
    const text = await callKernel(rundir(), 'dk', { clear: !o.keep });
    if (file) {
      writeFileSync(file, text);
      process.stdout.write(`Debug log: ${text.split('\n').length - 1} lines written to ${file}\n`);
    } else process.stdout.write(text);
  });

program.command('replay_barrier')
  .description("sync the target, then keep every later update off its disk (Lustre's replay_barrier): the next crash or umount drops them")
  .argument('<target>', 'a mounted target: its name (lustre-MDT0000) or device')
  .action(async (target: string) => {
    const r = await callKernel(rundir(), 'replay_barrier', { target });
    process.stdout.write(`${r.svname}: REPLAY BARRIER at txg ${r.txg}\n`);
  });

program.command('abort_recovery')
  .description("end a target's recovery now: every client that has not finished replaying is evicted (Lustre's lctl --device TARGET abort_recovery)")
  .argument('<target>', 'a mounted MDT or OST by name, e.g. lustre-MDT0000')
  .action(async (target: string) => {
    if (!/^[A-Za-z0-9_-]+$/.test(target)) throw new UsageError(`abort_recovery: '${target}' is not a target name (as lustre-MDT0000)`, 2);
    const set = await callKernel(rundir(), 'set_param', { settings: [{ pattern: `{mdt,obdfilter}.${target}.abort_recovery`, value: '1' }] });
    if (set.length === 0) throw new UsageError(`abort_recovery: no MDT or OST named ${target} is mounted on this node`, 1);
    process.stdout.write(`${target}: recovery aborted\n`);
  });

program.command('fail_loc')
  .description('the fault injection points: set one with set_param fail_loc=ID fail_val=N (modes: 0x80000000 once, 0x20000000 skip, 0x10000000 some, 0x08000000 random)')
  .option('--list', 'list the points (the default)')
  .action(() => {
    process.stdout.write(FAIL_POINTS.map((p) => `0x${p.id.toString(16).padStart(4, '0')}  ${p.name.padEnd(32)} ${p.action.padEnd(6)} ${p.where}\n`).join(''));
  });

await runCli(program);
