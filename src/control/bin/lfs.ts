#!/usr/bin/env node
// lfs: Lustre's file utility, asking this node's lustre.kernel (which hosts the client mounts)
// through its control socket: one `lfs` request per path or page (src/control/lfs).
//   lfs setstripe -c 2 -S 1M /mnt/lustre/file
//   lfs getstripe /mnt/lustre/dir
//   lfs df -h
//   lfs find /mnt/lustre --type f --size +1M
//   lfs path2fid /mnt/lustre/file ; lfs fid2path /mnt/lustre '[0x200000400:0x1:0x0]'
// --rundir DIR (or $LUSTRE_RUNDIR) names the kernel, as for lctl; without them, a path inside a
// client mount finds the kernel that hosts it (src/control/mounts.ts).
import { UsageError } from '../cli.js';
import { ControlClient } from '../control-client.js';
import { KERNEL_VERSION } from '../kernel/kernel.js';
import type { ControlOps } from '../protocol.js';
import { runLfs } from '../lfs/cli.js';
import type { LfsRequest, LfsResult } from '../lfs/index.js';
import { rundirOfPath } from '../mounts.js';
import { resolveRundir, RUNDIR_ENV } from '../rundir.js';

/** --rundir DIR / --rundir=DIR anywhere before the subcommand's own arguments. */
function takeRundir(argv: string[]): { rundir: string; args: string[] } {
  const args: string[] = [];
  let option: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--rundir' && i + 1 < argv.length) option = argv[++i];
    else if (a.startsWith('--rundir=')) option = a.slice('--rundir='.length);
    else args.push(a);
  }
  // No kernel named: the one hosting the mount of a path given, else the default.
  // A path in a client mount belongs to the kernel hosting it (a client kernel), whatever $LUSTRE_RUNDIR says.
  const fromPath = option ?? args.filter((a) => !a.startsWith('-')).map((a) => rundirOfPath(a)).find((r) => r) ?? process.env[RUNDIR_ENV];
  return { rundir: resolveRundir(fromPath), args };
}

// One control connection for the whole command, opened at the first request (so that --help
// and argument errors need no kernel); a kernel that cannot be reached ends the command at once.
let client: ControlClient | undefined;
async function kernel(): Promise<ControlClient> {
  try {
    client ??= await ControlClient.connect(rundir);
  } catch (err) {
    throw new UsageError((err as Error).message, 1);
  }
  return client;
}
// The `lfs` op is wired into the control protocol by the kernel; typed here by its shape.
type Request = (op: string, args: unknown) => Promise<unknown>;
const ask = async (op: string, args: unknown): Promise<unknown> => {
  const c = await kernel();
  return (c.request.bind(c) as unknown as Request)(op, args);
};

const { rundir, args } = takeRundir(process.argv.slice(2));
try {
  process.exitCode = await runLfs(args, {
    lfs: async (request: LfsRequest) => (await ask('lfs', { request })) as LfsResult,
    clients: async () => ((await ask('status', {})) as ControlOps['status']['result']).clients,
    cwd: process.cwd(),
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  }, KERNEL_VERSION);
} finally {
  client?.close();
}
