#!/usr/bin/env node
// lustre.mount: asks the node's kernel to mount a device (start the services its profile lists).
//   lustre.mount /srv/lustre/ost0
//   lustre.mount -o abort_recov /srv/lustre/mdt0
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { callKernel } from '../control-client.js';
import { runCli, UsageError } from '../cli.js';
import { MOUNT_OPTIONS } from '../kernel/kernel.js';
import { resolveRundir, RUNDIR_ENV } from '../rundir.js';

/** MGSNID[:MGSNID]:/fsname, the client form of a mount. */
const CLIENT_SPEC = /^[^/]+@[a-z]+\d*(?:[:,][^/]+)*:\/[A-Za-z0-9_-]+/;

const program = new Command('lustre.mount')
  .description('mount a Lustre device on this node\'s lustre.kernel: open its OSD, start the services its profile lists, register with the MGS')
  .argument('<device>', 'the device (a folder formatted by mkfs.lustre)')
  .argument('[mountpoint]', 'for a client mount (MGSNID:/fsname MOUNTPOINT)')
  .option('-o, --options <list>', `comma-separated mount options: ${MOUNT_OPTIONS.join(', ')}`)
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root`))
  .action(async (device: string, mountpoint: string | undefined, o: { options?: string; rundir?: string }) => {
    if (CLIENT_SPEC.test(device) || mountpoint !== undefined) {
      throw new UsageError(`client mounts (MGSNID:/fsname MOUNTPOINT) are not part of this build yet; mount a device: lustre.mount DEVICE`, 2);
    }
    const options = o.options ? o.options.split(',').filter((x) => x.length > 0) : [];
    const r = await callKernel(resolveRundir(o.rundir), 'mount', { device: resolve(device), options });
    process.stdout.write(`mounted ${r.svname} (${r.services.join(', ')}) from ${resolve(device)}\n`);
  });

await runCli(program);
