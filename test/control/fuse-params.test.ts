// A FUSE mount's parameters in lctl, on a client mount made with lustre.mount, against an
// MGS+MDT and two OSTs on loopback NIDs: llite.*.fuse_spin_us (how long the session reads for the
// next request itself after a reply; 0 for never), llite.*.fuse_stats (its request counters) and
// llite.*.fuse_direct_write (whether files opened write-only bypass the kernel's page cache).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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

/**
 * In a process of its own: PATH written write-only ('w') in COUNT writes of 1 MiB from one
 * Node buffer (which does not start a page), each byte i of write k being (k + i) & 0xff;
 * then, with a read-only descriptor left open on it and its pages cached, its first MiB
 * overwritten in place (write-only, no truncation) with 0x5a: prints what that descriptor reads.
 */
async function writeThenOverwrite(path: string, count: number): Promise<string> {
  const script = `
    const fs = require('node:fs');
    const p = ${JSON.stringify(path)};
    const b = Buffer.alloc(1 << 20);
    let fd = fs.openSync(p, 'w');
    for (let k = 0; k < ${count}; k++) { for (let i = 0; i < b.length; i++) b[i] = (k + i) & 0xff; fs.writeSync(fd, b, 0, b.length, k * b.length); }
    fs.closeSync(fd);
    const r = fs.openSync(p, 'r');
    const seen = Buffer.alloc(1 << 20);
    fs.readSync(r, seen, 0, seen.length, 0);
    fd = fs.openSync(p, fs.constants.O_WRONLY);
    fs.writeSync(fd, Buffer.alloc(1 << 20, 0x5a), 0, 1 << 20, 0);
    fs.closeSync(fd);
    fs.readSync(r, seen, 0, seen.length, 0);
    fs.closeSync(r);
    process.stdout.write(seen.every((x) => x === 0x5a) ? 'new' : 'stale');`;
  return (await run(process.execPath, ['-e', script])).stdout;
}

/** The samples of llite.*.stats' write_bytes: how many, and their sum. */
function writeSamples(stats: string): { count: number; sum: number } {
  const m = /write_bytes\s+(\d+) samples \[bytes\] \d+ \d+ (\d+)/.exec(stats);
  return m ? { count: Number(m[1]), sum: Number(m[2]) } : { count: 0, sum: 0 };
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

  t.test('llite.*.fuse_direct_write: files opened write-only bypass the page cache', async (t) => {
    const c = await startCluster(t, { fsname: 'dwfs' });
    const mnt = await c.mountClient();
    const lctl = (...args: string[]) => c.tool('lctl', ['--rundir', clientRundir(c.rundir, mnt), ...args], { allowFailure: true });
    const stats = async () => counters((await lctl('get_param', '-n', 'llite.*.fuse_stats')).stdout);
    const file = join(mnt, 'f');
    await run('sh', ['-c', `echo x > ${file}`]); // no negative LOOKUP (an error answer) below
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_direct_write')).stdout.trim(), '1', 'on by default');

    const expected = (count: number): Buffer => {
      const b = Buffer.alloc(count << 20);
      for (let i = 0; i < b.length; i++) b[i] = ((i >> 20) + (i & 0xfffff)) & 0xff;
      b.fill(0x5a, 0, 1 << 20);
      return b;
    };
    // The session counts an errno answer as an error: through the page cache, the kernel asks
    // for security.capability before each write, and llite answers ENODATA.
    let before = await stats();
    const llBefore = writeSamples((await lctl('get_param', '-n', 'llite.*.stats')).stdout);
    t.equal(await writeThenOverwrite(file, 8), 'new', 'a read-only descriptor of the same mount reads the write-only overwrite, not its cached pages');
    t.ok((await readFile(file)).equals(expected(8)), 'every byte as written');
    let after = await stats();
    // (The O_TRUNC open asks once: the kernel's truncate checks for privileges to drop too.)
    t.ok(after.errors! - before.errors! < 9, `direct: no GETXATTR of security.capability before each write (${after.errors! - before.errors!} errno answers for 9 writes)`);
    const ll = writeSamples((await lctl('get_param', '-n', 'llite.*.stats')).stdout);
    const writes = ll.count - llBefore.count;
    t.equal(ll.sum - llBefore.sum, 9 << 20, `the writes reached llite (${writes} WRITEs)`);
    if (existsSync('/proc/sys/fs/fuse/max_pages_limit')) {
      t.equal(writes, 9, 'each 1 MiB write from a buffer not starting a page in one WRITE (max_pages_limit raised)');
    }

    await lctl('set_param', 'llite.*.fuse_direct_write=0');
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_direct_write')).stdout.trim(), '0', 'set_param turns it off');
    before = await stats();
    t.equal(await writeThenOverwrite(file, 8), 'new', 'through the page cache, the overwrite is read too');
    t.ok((await readFile(file)).equals(expected(8)), 'every byte as written');
    after = await stats();
    t.ok(after.errors! - before.errors! >= 9, `cached: a GETXATTR answered ENODATA before each write (${after.errors! - before.errors!})`);

    for (const bad of ['2', '-1', 'yes']) {
      const r = await lctl('set_param', `llite.*.fuse_direct_write=${bad}`);
      t.not(r.code, 0, `fuse_direct_write=${bad} refused`);
      t.match(r.stderr, /fuse_direct_write must be an integer from 0 to 1/, 'saying what it takes');
    }
    t.equal((await lctl('get_param', '-n', 'llite.*.fuse_direct_write')).stdout.trim(), '0', 'a refused value changes nothing');
  });
}
