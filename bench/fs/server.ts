// The server side of bench/fs.ts, in its own process as a node's lustre.kernel would be: one
// Kernel on a loopback NID hosting an MGS+MDT and two OSTs (formatted here, under ROOT) and a
// FUSE client mount of the file system at MOUNTPOINT. Prints one JSON line when ready
// ({"ready":true,"nid","spec"}); on stdin's end it unmounts everything and exits.
//   node --import=tsx bench/fs/server.ts <ip> <lnetPort> <root> <mountpoint>
// Run it under `node --cpu-prof` (BENCH_FS_PROF=DIR in bench/fs.ts) to profile the servers,
// llite and the FUSE session together.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Kernel } from '../../src/control/kernel/kernel.js';
import { formatTarget } from '../../src/services/target/index.js';

const FSNAME = 'benchfs';
const OST_COUNT = 2;

const [ip, lnetPort, root, mountpoint] = process.argv.slice(2);
if (!ip || !lnetPort || !root || !mountpoint) throw new Error('usage: server.ts <ip> <lnetPort> <root> <mountpoint>');

const nid = `${ip}@tcp`;
const rundir = join(root, 'run');
await mkdir(rundir, { recursive: true });
const kernel = await Kernel.start({ nid, port: Number(lnetPort), rundir, logFile: join(rundir, 'kernel.log'), logLevel: 'warn' });
await formatTarget(join(root, 'mdt0'), { fsname: FSNAME, mgs: true, mdt: true, index: 0 });
await kernel.mount(join(root, 'mdt0'), []);
for (let i = 0; i < OST_COUNT; i++) {
  await formatTarget(join(root, `ost${i}`), { fsname: FSNAME, ost: true, index: i, mgsNids: [nid] });
  await kernel.mount(join(root, `ost${i}`), []);
}
const spec = `${nid}:/${FSNAME}`;
await mkdir(mountpoint, { recursive: true });
let fuse = true;
try {
  await kernel.mountClient(spec, mountpoint, []);
} catch (err) {
  // No FUSE here: the library figures can still be measured.
  fuse = false;
  process.stderr.write(`no FUSE mount: ${(err as Error).message}\n`);
}
process.stdout.write(`${JSON.stringify({ ready: true, nid, spec, fuse })}\n`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await kernel.stop();
  process.exit(0);
};
process.stdin.resume();
process.stdin.on('end', () => void stop());
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void stop());
