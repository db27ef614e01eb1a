// A client mount's figures as lctl shows them: llite.*.stats (each operation counted once,
// whether it came through the library or through the FUSE ops), mdc.*.stats and osc.*.stats
// (per RPC, Lustre's line format) and mdc.*.import / osc.*.import, read through the parameter
// tree lctl uses, against an MGS+MDT and two OSTs on loopback NIDs.
import t from 'tap';
import { Llite } from '../../src/client/llite.js';
import type { RequestContext } from '../../src/client/fuse/index.js';
import { ParamTree, type KernelView, type ParamValue } from '../../src/control/params/index.js';
import { startFs } from './fs-helpers.js';

const O_RDWR = 2;
const O_CREAT = 0o100;
const ctx = (): RequestContext => ({ uid: 0, gid: 0, pid: 1, unique: 1n, signal: new AbortController().signal });

interface Counter { count: number; units: string; min: number; max: number; sum: number }
/** One counter line of a stats file: "name  N samples [units] min max sum sumsq". */
function counter(stats: string, name: string): Counter | undefined {
  const m = new RegExp(`^${name} +(\\d+) samples \\[(\\w+)\\] (\\d+) (\\d+) (\\d+) (\\d+)$`, 'm').exec(stats);
  return m ? { count: Number(m[1]), units: m[2]!, min: Number(m[3]), max: Number(m[4]), sum: Number(m[5]) } : undefined;
}
const count = (stats: string, name: string): number => counter(stats, name)?.count ?? 0;
const only = (values: ParamValue[], name: string): string => {
  const v = values.find((x) => x.name === name);
  if (!v) throw new Error(`${name} missing from ${values.map((x) => x.name).join(', ')}`);
  return v.value;
};

t.test('a client mount in lctl get_param: llite, mdc and osc stats, and the imports', async (t) => {
  const sys = await startFs(t);
  const fs = await sys.mount(5);
  const view: KernelView = {
    version: 'test', nid: '127.0.0.5@tcp', startedAtMs: Date.now(), ni: undefined, targets: () => [],
    debug: { get: () => 'info', set: () => undefined }, clients: () => [fs],
  };
  const tree = new ParamTree(view);
  const id = fs.core.instance;
  const llite = `llite.testfs-${id}.stats`;
  const mdc = `testfs-MDT0000-mdc-${id}`;
  const oscs = [`testfs-OST0000-osc-${id}`, `testfs-OST0001-osc-${id}`];
  const lliteStats = async (): Promise<string> => only(await tree.get('llite.*.stats'), llite);

  t.test('the names, as list_param and globs find them', async (t) => {
    t.same(await tree.list('*.*.stats'), [`mdc.${mdc}.stats`, ...oscs.map((o) => `osc.${o}.stats`), llite].sort(), 'every stats file of the mount');
    t.same(await tree.list('{mdc,osc}.*.import'), [`mdc.${mdc}.import`, ...oscs.map((o) => `osc.${o}.import`)]);
    const below = await tree.list('llite', { recursive: true });
    t.ok(below.includes(llite) && below.includes(`llite.testfs-${id}.max_read_ahead_mb`), 'list_param -R llite: the stats beside the tunables');
    t.ok(fs.params.get('mdc.*.import')[0]!.value.startsWith('import:\n'), 'ClientParams lists the files too');
  });

  t.test('library calls: each counted once in llite.*.stats', async (t) => {
    const before = await lliteStats();
    await fs.mkdir('/d');
    await fs.writeFile('/d/a', Buffer.alloc(5000, 1));
    await fs.writeFile('/d/b', 'hello');
    t.equal((await fs.readFile('/d/a')).length, 5000);
    await fs.stat('/d/b');
    await fs.chmod('/d/b', 0o600);
    await fs.unlink('/d/a');
    t.same(await fs.readdir('/d'), ['b']);
    const after = await lliteStats();
    const delta = (name: string): number => count(after, name) - count(before, name);
    t.same(
      Object.fromEntries(['mkdir', 'create', 'open', 'close', 'getattr', 'setattr', 'unlink', 'readdir', 'read_bytes', 'write_bytes'].map((n) => [n, delta(n)])),
      { mkdir: 1, create: 2, open: 3, close: 3, getattr: 1, setattr: 1, unlink: 1, readdir: 1, read_bytes: 1, write_bytes: 2 },
    );
    t.equal(counter(after, 'write_bytes')!.units, 'bytes');
    t.equal(counter(after, 'write_bytes')!.sum - (counter(before, 'write_bytes')?.sum ?? 0), 5005, 'write_bytes sums what was written');
    t.equal(counter(after, 'read_bytes')!.sum - (counter(before, 'read_bytes')?.sum ?? 0), 5000);
    t.equal(counter(after, 'create')!.units, 'usecs');
    t.match(after, /^snapshot_time +\d+\.\d{9} secs\.nsecs$/m, 'the header lines of a stats file');
    t.ok(after.indexOf('read_bytes') < after.indexOf('write_bytes') && after.indexOf('open') < after.indexOf('create'), 'in llite_opcode_table\'s order');
  });

  t.test('FUSE ops: counted once too, those through a handle by the handle', async (t) => {
    const l = new Llite(fs);
    const before = await lliteStats();
    const { entry, open } = await l.create(ctx(), 1, 'f', 0o644, O_RDWR | O_CREAT, 0o022);
    t.equal(await l.write(ctx(), entry.nodeid, open.fh, 0, Buffer.alloc(4096, 2)), 4096);
    t.equal((await l.read(ctx(), entry.nodeid, open.fh, 0, 4096)).length, 4096);
    await l.setattr(ctx(), entry.nodeid, { size: 100, fh: open.fh });
    await l.setattr(ctx(), entry.nodeid, { mode: 0o600 });
    await l.getattr(ctx(), entry.nodeid, undefined);
    await l.fsync(ctx(), entry.nodeid, open.fh, false);
    await l.release(ctx(), entry.nodeid, open.fh);
    const dir = await l.mkdir(ctx(), 1, 'fd', 0o755, 0o022);
    const dh = await l.opendir(ctx(), dir.nodeid);
    await l.readdir(ctx(), dir.nodeid, dh.fh, 0, 4096);
    await l.releasedir(ctx(), dir.nodeid, dh.fh);
    await l.setxattr(ctx(), entry.nodeid, 'user.k', Buffer.from('v'), 0);
    t.equal((await l.getxattr(ctx(), entry.nodeid, 'user.k')).toString(), 'v');
    await l.rename(ctx(), 1, 'f', 1, 'g', 0);
    await l.unlink(ctx(), 1, 'g');
    await l.rmdir(ctx(), 1, 'fd');
    await l.statfs(ctx());
    const after = await lliteStats();
    const delta = (name: string): number => count(after, name) - count(before, name);
    t.same(
      Object.fromEntries(['create', 'open', 'close', 'write_bytes', 'read_bytes', 'truncate', 'setattr', 'getattr', 'fsync', 'mkdir', 'readdir',
        'setxattr', 'getxattr', 'rename', 'unlink', 'rmdir', 'statfs'].map((n) => [n, delta(n)])),
      {
        create: 1, open: 2, close: 2, write_bytes: 1, read_bytes: 1, truncate: 1, setattr: 1, getattr: 1, fsync: 1, mkdir: 1, readdir: 1,
        setxattr: 1, getxattr: 1, rename: 1, unlink: 1, rmdir: 1, statfs: 1,
      },
      'one count per operation (a SETATTR\'s reply and a handle\'s calls are not counted twice)',
    );
  });

  t.test('mdc.*.stats and osc.*.stats: per RPC, as the servers name the opcodes', async (t) => {
    const m = only(await tree.get('mdc.*.stats'), `mdc.${mdc}.stats`);
    for (const name of ['mds_close', 'ldlm_enqueue', 'req_waittime']) {
      const c = counter(m, name);
      t.ok(c && c.count > 0, `${name} counted`);
      t.equal(c?.units, 'usecs', `${name} in usecs`);
    }
    t.equal(counter(m, 'req_active')?.units, 'reqs');
    t.ok(counter(m, 'req_active')!.min >= 1, 'a request is in flight when it is sent');
    const perOpcode = [...m.matchAll(/^(\w+) +(\d+) samples \[usecs\]/gm)].filter((x) => x[1] !== 'req_waittime').reduce((n, x) => n + Number(x[2]), 0);
    t.equal(perOpcode, counter(m, 'req_waittime')!.count, 'each reply in req_waittime and under its opcode');

    const osc = await tree.get('osc.*.stats');
    const written = osc.reduce((n, v) => n + (counter(v.value, 'write_bytes')?.sum ?? 0), 0);
    const writes = osc.reduce((n, v) => n + count(v.value, 'ost_write'), 0);
    t.equal(written, 5000 + 5 + 4096, 'write_bytes: every byte written, once');
    t.ok(writes > 0 && writes === osc.reduce((n, v) => n + count(v.value, 'write_bytes'), 0), 'one write_bytes sample per ost_write');
    t.ok(osc.some((v) => counter(v.value, 'read_bytes')?.units === 'bytes'), 'read_bytes of the OST_READs');
  });

  t.test('mdc.*.import and osc.*.import: the import\'s state in Lustre\'s layout', async (t) => {
    const imports = await tree.get('{mdc,osc}.*.import');
    const m = only(imports, `mdc.${mdc}.import`);
    t.match(m, new RegExp(`^import:\\n    name: ${mdc}\\n    target: testfs-MDT0000_UUID\\n    state: FULL\\n    connection:\\n`));
    t.match(m, /^       current_connection: 127\.0\.0\.2@tcp$/m, 'the MDS NID');
    t.match(m, /^       connection_attempts: 1$/m);
    t.match(m, /^    rpcs:\n       inflight: \d+\n       timeouts: 0\n       avg_waittime: [1-9]\d* usecs$/m, 'the average wait of the replies');
    const waits = counter(only(await tree.get('mdc.*.stats'), `mdc.${mdc}.stats`), 'req_waittime')!;
    const avg = Number(/avg_waittime: (\d+)/.exec(m)![1]);
    t.ok(avg <= waits.max && avg >= waits.min, 'avg_waittime lies between req_waittime\'s min and max');
    for (const [i, o] of oscs.entries()) {
      const v = only(imports, `osc.${o}.import`);
      t.match(v, /^    state: FULL$/m, `${o}: FULL`);
      t.match(v, new RegExp(`^       current_connection: 127\\.0\\.0\\.${3 + i}@tcp$`, 'm'), `${o}: the OSS NID`);
      t.match(v, new RegExp(`^    target: testfs-OST000${i}_UUID$`, 'm'));
    }
  });

  t.test('writing a stats file clears it, as Lustre\'s (lctl set_param NAME=clear)', async (t) => {
    t.ok(count(await lliteStats(), 'getattr') > 0 && count(only(await tree.get('mdc.*.stats'), `mdc.${mdc}.stats`), 'ldlm_enqueue') > 0);
    t.same((await tree.set('*.*.stats', 'clear')).map((v) => v.name), [`mdc.${mdc}.stats`, ...oscs.map((o) => `osc.${o}.stats`), llite].sort());
    const cleared = await tree.get('*.*.stats');
    t.ok(cleared.every((v) => !/samples/.test(v.value)), 'no counter left in any of them');
    await fs.stat('/d/b');
    t.equal(count(await lliteStats(), 'getattr'), 1, 'counting starts again from zero');
    await t.rejects(tree.set('mdc.*.import', 'clear'), { code: 'EROFS' }, 'an import file is read-only');
    t.equal(fs.params.set('llite.*.stats', 'clear'), 1, 'the library\'s ClientParams clears it too');
    t.equal(count(await lliteStats(), 'getattr'), 0);
    t.throws(() => fs.params.set('mdc.*.import', 'x'), { code: 'EINVAL', message: /import is read-only/ });
  });
});
