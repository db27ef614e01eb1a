#!/usr/bin/env node
// lustre.mount: asks the node's kernel to mount a device (start the services its profile lists),
// or to mount a file system as a client, with FUSE, at a mount point.
//   lustre.mount /srv/lustre/ost0
//   lustre.mount -o abort_recov /srv/lustre/mdt0
//   lustre.mount 127.0.0.2@tcp:/testfs /mnt/lustre
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { callKernel } from '../control-client.js';
import { runCli, UsageError } from '../cli.js';
import { MOUNT_OPTIONS } from '../kernel/kernel.js';
import { resolveRundir, RUNDIR_ENV } from '../rundir.js';

/** MGSNID[:MGSNID]:/fsname, the client form of a mount. */
const CLIENT_SPEC = /^[^/]+@[a-z]+\d*(?:[:,][^/]+)*:\/[A-Za-z0-9_-]+/;

const program = new Command('lustre.mount')
  .description("mount a Lustre device on this node's lustre.kernel (open its OSD, start the services its profile lists, register with the MGS), or a file system as a client at a mount point (FUSE)")
  .argument('<device>', 'the device (a folder formatted by mkfs.lustre), or MGSNID:/fsname for a client')
  .argument('[mountpoint]', 'where a client mount appears')
  .option('-o, --options <list>', `comma-separated mount options: ${MOUNT_OPTIONS.join(', ')}`)
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root`))
  .action(async (device: string, mountpoint: string | undefined, o: { options?: string; rundir?: string }) => {
    const options = o.options ? o.options.split(',').filter((x) => x.length > 0) : [];
    const rundir = resolveRundir(o.rundir);
    if (CLIENT_SPEC.test(device) || mountpoint !== undefined) {
      if (mountpoint === undefined) throw new UsageError(`a client mount needs a mount point: lustre.mount ${device} MOUNTPOINT`, 2);
      if (!CLIENT_SPEC.test(device)) throw new UsageError(`'${device}' is not MGSNID:/fsname (as 127.0.0.2@tcp:/testfs)`, 2);
      const c = await callKernel(rundir, 'mount_client', { spec: device, mountpoint: resolve(mountpoint), options });
      process.stdout.write(`mounted ${c.spec} at ${c.mountpoint}\n`);
      return;
    }
    const r = await callKernel(rundir, 'mount', { device: resolve(device), options });
    process.stdout.write(`mounted ${r.svname} (${r.services.join(', ')}) from ${resolve(device)}\n`);
  });

await runCli(program);
