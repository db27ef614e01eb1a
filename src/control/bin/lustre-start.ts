#!/usr/bin/env node
// lustre.start: the all-in-one file system of one machine (npm start). Formats, when they are
// not formatted yet, an MGS+MDT and two OSTs under one folder, runs a lustre.kernel in this
// process that mounts them, mounts a FUSE client at DIR/mnt, says where everything is and how
// to use it, and on Ctrl-C (or SIGTERM) unmounts everything cleanly.
import { Command, Option } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LNET_DEFAULT_PORT, parseNid } from '../../lnet/index.js';
import { formatTarget } from '../../services/target/index.js';
import { parseCount, runCli, UsageError } from '../cli.js';
import { runForeground } from '../kernel/daemon.js';
import type { Kernel } from '../kernel/kernel.js';
import { resolveRundir, RUNDIR_ENV } from '../rundir.js';

interface StartOptions { dir: string; fsname: string; nid: string; port: number; rundir?: string; mount: boolean }

/** Formats what is not formatted yet; returns the devices, MGS+MDT first. */
async function prepare(o: StartOptions): Promise<string[]> {
  const devices = ['mdt0', 'ost0', 'ost1'].map((d) => join(o.dir, d));
  mkdirSync(o.dir, { recursive: true });
  const [mdt, ...osts] = devices as [string, ...string[]];
  if (!existsSync(join(mdt, 'mountdata'))) {
    process.stdout.write(`formatting ${mdt} (MGS+MDT of '${o.fsname}')\n`);
    await formatTarget(mdt, { fsname: o.fsname, mgs: true, mdt: true, index: 0 });
  }
  for (const [index, ost] of osts.entries()) {
    if (existsSync(join(ost, 'mountdata'))) continue;
    process.stdout.write(`formatting ${ost} (OST${String(index).padStart(4, '0')})\n`);
    await formatTarget(ost, { fsname: o.fsname, ost: true, index, mgsNids: [o.nid] });
  }
  return devices;
}

function usage(k: Kernel, o: StartOptions, rundir: string, mnt: string | undefined, fuseProblem: string | undefined): string {
  const env = process.env[RUNDIR_ENV] === rundir || rundir === resolveRundir() ? '' : `LUSTRE_RUNDIR=${rundir} `;
  const lines = [
    '',
    `Lustre file system '${o.fsname}' is up (lustre.kernel ${k.version}, pid ${process.pid}, NID ${k.nid}):`,
    ...k.targets().map((t) => `  ${t.svname.padEnd(16)} ${t.device}  (${t.mountdata.profile.join('+')})`),
  ];
  if (mnt) {
    lines.push(`  mounted ${k.nid}:/${o.fsname} at ${mnt}`, '', 'Try:',
      `  cp -r /usr/share/doc ${mnt}/ && ls ${mnt}/doc | head`,
      `  ${env}npx lfs df -h ${mnt}`,
      `  ${env}npx lfs setstripe -c 2 -S 1M ${mnt}/wide && dd if=/dev/zero of=${mnt}/wide bs=1M count=8 && ${env}npx lfs getstripe ${mnt}/wide`);
  } else {
    lines.push(`  no FUSE mount: ${fuseProblem}`, '  the servers keep running for the client library and lfs:', '', 'Try:',
      `  ${env}npx lfs df -h ${k.nid}:/${o.fsname}`);
  }
  lines.push(`  ${env}npx lctl dl`, `  ${env}npx lctl get_param obdfilter.*.stats osd-*.*.kbytesfree`, `  ${env}npx lustre.kernel status`,
    '', 'Ctrl-C unmounts everything and stops.', '');
  return lines.join('\n');
}

const program = new Command('lustre.start')
  .description('the all-in-one file system of this machine: an MGS+MDT and two OSTs under DIR, one lustre.kernel, a FUSE client at DIR/mnt; Ctrl-C stops it cleanly')
  .option('--dir <dir>', 'where the devices and the mount point live', 'lustre')
  .option('--fsname <name>', 'the file system name (formatting only)', 'lustre')
  .option('--nid <nid>', "this node's NID", '127.0.0.2@tcp')
  .option('--port <port>', "LNet's acceptor port", parseCount('--port'), LNET_DEFAULT_PORT)
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root`))
  .option('--no-mount', 'do not mount a FUSE client')
  .action(async (opts: StartOptions) => {
    try {
      parseNid(opts.nid);
    } catch (err) {
      throw new UsageError(`--nid: ${(err as Error).message}`, 2);
    }
    const o = { ...opts, dir: resolve(opts.dir) };
    const devices = await prepare(o);
    const rundir = resolveRundir(o.rundir);
    let failure: unknown;
    await runForeground({ nid: o.nid, port: o.port, rundir }, (k) => {
      void (async () => {
        try {
          for (const d of devices) {
            const t = await k.mount(d, []);
            process.stdout.write(`mounted ${t.svname} from ${d}\n`);
          }
          let mnt: string | undefined;
          let problem: string | undefined;
          if (o.mount) {
            mnt = join(o.dir, 'mnt');
            mkdirSync(mnt, { recursive: true });
            try {
              await k.mountClient(`${k.nid}:/${o.fsname}`, mnt, []);
            } catch (err) {
              problem = (err as Error).message;
              mnt = undefined;
            }
          } else problem = '--no-mount';
          process.stdout.write(usage(k, o, rundir, mnt, problem));
        } catch (err) {
          failure = err;
          process.kill(process.pid, 'SIGTERM'); // the kernel stops cleanly, then we report
        }
      })();
    });
    if (failure) throw failure;
    process.stdout.write('stopped: every client and device unmounted\n');
    process.exit(0);
  });

await runCli(program);
