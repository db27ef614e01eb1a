#!/usr/bin/env node
// lustre.mount: asks the node's kernel to mount a device (start the services its profile lists),
// or mounts a file system as a client, with FUSE, at a mount point.
//   lustre.mount /srv/lustre/ost0
//   lustre.mount -o abort_recov /srv/lustre/mdt0
//   lustre.mount 127.0.0.2@tcp:/testfs /mnt/lustre
//
// A client mount runs in a client kernel: a lustre.kernel process of its own (its own session,
// no terminal, output to a file), so that it outlives a crash or restart of the node's kernel.
// It is a user process of the node's NID as Lustre has them (LNet pid with LNET_PID_USERFLAG,
// no acceptor), and its run dir is RUNDIR/clients/<hash of the mount point>. The node's kernel
// must be running when the mount is made (the client takes its NID and LNet port from it), not
// afterwards. lustre.umount DIR unmounts it and the client kernel exits.
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callKernel } from '../control-client.js';
import { runCli, UsageError } from '../cli.js';
import { startBackground, stopKernel } from '../kernel/daemon.js';
import { MOUNT_OPTIONS } from '../kernel/kernel.js';
import { mountOfPath } from '../mounts.js';
import { ControlError } from '../protocol.js';
import { clientRundir, readLNetSettings, resolveRundir, RUNDIR_ENV } from '../rundir.js';

/** MGSNID[:MGSNID]:/fsname, the client form of a mount. */
const CLIENT_SPEC = /^[^/]+@[a-z]+\d*(?:[:,][^/]+)*:\/[A-Za-z0-9_-]+/;

/** lustre.kernel's script beside this one (.ts when run from the sources, .js when built). */
const KERNEL_SCRIPT = fileURLToPath(new URL(`./lustre-kernel${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

async function mountClient(spec: string, mountpoint: string, options: string[], rundir: string): Promise<void> {
  const at = resolve(mountpoint);
  const existing = mountOfPath(at);
  if (existing?.mountpoint === at) {
    throw new ControlError('EALREADY', `${at} is already a Lustre client mount (client kernel pid ${existing.pid}, run dir ${existing.rundir})`);
  }
  let node: { nid: string };
  try {
    node = await callKernel(rundir, 'ping', {});
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOTCONN') throw err;
    throw new ControlError('ENOTCONN', `a client mount runs as this node's NID, which lustre.mount takes from the node's lustre.kernel, and none runs on ${rundir}: start it with lustre.kernel start --nid ADDR@tcp --rundir ${rundir} (or set ${RUNDIR_ENV} to the run dir of a running one)`);
  }
  const port = readLNetSettings(rundir)?.port;
  if (port === undefined) throw new ControlError('ENOENT', `the lustre.kernel of ${rundir} recorded no LNet settings (lnet.json); restart it with this release`);
  const crd = clientRundir(rundir, at);
  const { pid } = await startBackground(crd, KERNEL_SCRIPT, ['start', '--foreground', '--client', '--nid', node.nid, '--port', String(port), '--rundir', crd]);
  try {
    const c = await callKernel(crd, 'mount_client', { spec, mountpoint: at, options });
    process.stdout.write(`mounted ${c.spec} at ${c.mountpoint} (client kernel pid ${pid}, run dir ${crd})\n`);
  } catch (err) {
    await stopKernel(crd).catch(() => { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } });
    throw err;
  }
}

const program = new Command('lustre.mount')
  .description("mount a Lustre device on this node's lustre.kernel (open its OSD, start the services its profile lists, register with the MGS), or a file system as a client at a mount point (FUSE, in a client kernel process of its own under the run dir)")
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
      await mountClient(device, mountpoint, options, rundir);
      return;
    }
    const r = await callKernel(rundir, 'mount', { device: resolve(device), options });
    process.stdout.write(`mounted ${r.svname} (${r.services.join(', ')}) from ${resolve(device)}\n`);
  });

await runCli(program);
