// A FUSE mount's session in lctl: llite.*.fuse_spin_us (how long the session reads for the next
// request itself after a reply; 0 for never) and llite.*.fuse_stats (its request counters), on
// a client mount made with lustre.mount, against an MGS+MDT and two OSTs on loopback NIDs.
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { clientRundir } from '../../src/control/rundir.js';
import { fuseAvailable, startCluster } from '../lib/cluster.js';

const run = promisify(execFile);

/** open+close of PATH, COUNT times, in a process of its own (the session's must never call its own mount). */
async function openClose(path: string, count: number): Promise<void> {
  await run(process.execPath, ['-e', `const fs = require('node:fs'); for (let i = 0; i < ${count}; i++) fs.closeSync(fs.openSync(${JSON.stringify(path)}, 'r'));`]);
}

/** fuse_stats' counters by name. */
function counters(text: string): Record<string, number> {
  return Object.fromEntries(text.trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([k, v]) => [k!, Number(v)]));
}

if (!fuseAvailable()) {
  t.pass('skipped: FUSE mounts need root and /dev/fuse');
} else {
  t.test('llite.*.fuse_spin_us and llite.*.fuse_stats of a FUSE mount', async (t) => {
    const c = await startCluster(t, { fsname: 'spinfs' });
    const mnt = await c.mountClient();
    // lustre.mount runs the client in a client kernel of its own, with a run dir of its own.
    const lctl = (...args: string[]) => c.tool('lctl', ['--rundir', clientRundir(c.rundir, mnt), ...args], { allowFailure: true });
    const file = join(mnt, 'f');
    await run('sh', ['-c', `echo x > ${file}`]);

    const spinning = availableParallelism() >= 2;
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_spin_us')).stdout.trim(), spinning ? '150' : '0',
      `150 us by default with two CPUs or more, else 0 (${availableParallelism()} here)`);
    const before = counters((await lctl('get_param', '-n', 'llite.*.fuse_stats')).stdout);
    t.ok(before.requests! > 0 && 'spin_hits' in before && 'errors' in before, 'fuse_stats counts the requests, the errors and the spins');

    await lctl('set_param', 'llite.*.fuse_spin_us=1000');
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_spin_us')).stdout.trim(), '1000', 'set_param takes up to 1000 us');
    await openClose(file, 200);
    const spun = counters((await lctl('get_param', '-n', 'llite.*.fuse_stats')).stdout);
    t.ok(spun.requests! - before.requests! >= 400, `each open and close reached the session (${spun.requests! - before.requests!} requests)`);
    t.ok(spun.spin_hits! - before.spin_hits! >= 100, `the next request of a synchronous caller read by the spin: ${spun.spin_hits! - before.spin_hits!} times`);

    await lctl('set_param', 'llite.*.fuse_spin_us=0');
    await openClose(file, 100);
    const off = counters((await lctl('get_param', '-n', 'llite.*.fuse_stats')).stdout);
    t.equal(off.spins, spun.spins, 'fuse_spin_us=0: no spin at all');
    t.ok(off.requests! - spun.requests! >= 200, 'and every request still answered');

    for (const bad of ['1001', '-1', '1.5', 'lots']) {
      const r = await lctl('set_param', `llite.*.fuse_spin_us=${bad}`);
      t.not(r.code, 0, `fuse_spin_us=${bad} refused`);
      t.match(r.stderr, /fuse_spin_us must be an integer from 0 to 1000/, 'saying what it takes');
    }
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_spin_us')).stdout.trim(), '0', 'a refused value changes nothing');
  });
}
