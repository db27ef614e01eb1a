#!/usr/bin/env node
// lustre.umount: asks the node's kernel to unmount a device (stop its services once the last
// txg is synced; --force evicts every client at once instead of leaving them to recover), or a
// client mount point.
//   lustre.umount /srv/lustre/ost0
//   lustre.umount --force testfs-OST0000
import { Command, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { callKernel } from '../control-client.js';
import { runCli } from '../cli.js';
import { rundirOfPath } from '../mounts.js';
import { resolveRundir, RUNDIR_ENV } from '../rundir.js';

const program = new Command('lustre.umount')
  .description("unmount a Lustre device from this node's lustre.kernel")
  .argument('<device>', 'the device folder, its target name (testfs-OST0000), or a client mount point')
  .option('-f, --force', 'a device: evict every client at once and do not wait for them (nothing committed is lost); a mount point: detach it even while in use')
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root`))
  .action(async (device: string, o: { force?: boolean; rundir?: string }) => {
    // A target name stays as it is; a path is made absolute for the kernel, whose cwd differs.
    const target = /^[A-Za-z0-9_-]+-(MDT|OST)[0-9a-fA-F]{4}$|^MGS$/.test(device) || isAbsolute(device) ? device : resolve(device);
    const rundir = resolveRundir(o.rundir ?? process.env[RUNDIR_ENV] ?? rundirOfPath(target));
    const r = await callKernel(rundir, 'umount', { target, force: o.force ?? false });
    process.stdout.write(`unmounted ${r.svname}${o.force ? ` (forced: ${r.evicted} client(s) evicted)` : ''}\n`);
  });

await runCli(program);
