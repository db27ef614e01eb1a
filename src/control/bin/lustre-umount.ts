#!/usr/bin/env node
// lustre.umount: asks the node's kernel to unmount a device (stop its services once the last
// txg is synced; --force evicts every client at once instead of leaving them to recover), or
// unmounts a client mount point: the client kernel hosting it (found through the mount
// registry, mounts.ts) unmounts it and exits.
//   lustre.umount /srv/lustre/ost0
//   lustre.umount --force testfs-OST0000
//   lustre.umount /mnt/lustre
import { Command, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { callKernel } from '../control-client.js';
import { runCli } from '../cli.js';
import { STOP_WAIT_MS, stopKernel, waitForExit } from '../kernel/daemon.js';
import { mountOfPath, type MountEntry } from '../mounts.js';
import { CLIENTS_DIR, isClientRundir, resolveRundir, RUNDIR_ENV } from '../rundir.js';

/** How long a client kernel may take to exit by itself once its mount is gone. */
const CLIENT_EXIT_WAIT_MS = 10_000;

/**
 * The client mount a path names, when it is one: the mount registry knows it. An explicit
 * --rundir that names neither its kernel nor that kernel's node leaves the path to that kernel.
 */
function clientMountAt(target: string, option: string | undefined): MountEntry | undefined {
  if (!isAbsolute(target)) return undefined;
  const entry = mountOfPath(target);
  if (!entry || entry.mountpoint !== target) return undefined;
  if (option === undefined) return entry;
  const chosen = resolveRundir(option);
  return entry.rundir === chosen || entry.rundir.startsWith(resolve(chosen, CLIENTS_DIR) + '/') ? entry : undefined;
}

async function umountClient(entry: MountEntry, force: boolean): Promise<void> {
  const r = await callKernel(entry.rundir, 'umount', { target: entry.mountpoint, force });
  if (isClientRundir(entry.rundir) && !(await waitForExit(entry.pid, CLIENT_EXIT_WAIT_MS))) {
    // It should have gone by itself with its last mount; ask it, then insist.
    await stopKernel(entry.rundir).catch(() => process.kill(entry.pid, 'SIGTERM'));
    await waitForExit(entry.pid, STOP_WAIT_MS);
  }
  process.stdout.write(`unmounted ${r.svname} from ${entry.mountpoint}\n`);
}

const program = new Command('lustre.umount')
  .description("unmount a Lustre device from this node's lustre.kernel, or a client mount point (its client kernel then exits)")
  .argument('<device>', 'the device folder, its target name (testfs-OST0000), or a client mount point')
  .option('-f, --force', 'a device: evict every client at once and do not wait for them (nothing committed is lost); a mount point: detach it even while in use')
  .addOption(new Option('--rundir <dir>', `the kernel's run dir; default $${RUNDIR_ENV}, else /run/lustre for root (a client mount point is found without it)`))
  .action(async (device: string, o: { force?: boolean; rundir?: string }) => {
    // A target name stays as it is; a path is made absolute for the kernel, whose cwd differs.
    const target = /^[A-Za-z0-9_-]+-(MDT|OST)[0-9a-fA-F]{4}$|^MGS$/.test(device) ? device : resolve(device);
    const client = clientMountAt(target, o.rundir);
    if (client) {
      await umountClient(client, o.force ?? false);
      return;
    }
    const rundir = resolveRundir(o.rundir);
    const r = await callKernel(rundir, 'umount', { target, force: o.force ?? false });
    process.stdout.write(`unmounted ${r.svname}${o.force ? ` (forced: ${r.evicted} client(s) evicted)` : ''}\n`);
  });

await runCli(program);
