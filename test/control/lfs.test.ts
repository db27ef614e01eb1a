// lfs end to end without a kernel: an MGS+MDT and two OSTs in this process, a library mount,
// and the lfs program (src/control/lfs/cli.ts) whose requests go through a JSON round trip and
// checkLfsRequest to serveLfs with a resolver over that mount, as the kernel does: a path under
// the mount point /mnt/lustre, or MGSNID:/fsname/path.
import t from 'tap';
import { startFs } from '../client/fs-helpers.js';
import type { FileSystem } from '../../src/client/index.js';
import { checkLfsRequest, serveLfs, type LfsRequest, type LfsResult } from '../../src/control/lfs/index.js';
import { runLfs } from '../../src/control/lfs/cli.js';
import { ControlError } from '../../src/control/protocol.js';

const MNT = '/mnt/lustre';

interface Run {
  code: number;
  out: string;
  err: string;
  requests: LfsRequest[];
}

function harness(fs: FileSystem, device: string) {
  const resolve = async (path: string) => {
    const none = async (): Promise<void> => {};
    if (path === MNT || path.startsWith(MNT + '/')) return { fs, path: path.slice(MNT.length) || '/', release: none };
    if (path.startsWith(device)) return { fs, path: path.slice(device.length) || '/', release: none };
    throw new ControlError('ENOENT', `${path} is not in a Lustre client mount of this node`);
  };
  return async (args: string[], cwd = MNT): Promise<Run> => {
    const run: Run = { code: 0, out: '', err: '', requests: [] };
    run.code = await runLfs(args, {
      lfs: async (request) => {
        run.requests.push(request);
        const wire = JSON.parse(JSON.stringify(request)) as unknown;
        return JSON.parse(JSON.stringify(await serveLfs(checkLfsRequest(wire), resolve))) as LfsResult;
      },
      clients: async () => [{ spec: device, mountpoint: MNT }],
      cwd,
      out: (s) => (run.out += s),
      err: (s) => (run.err += s),
    });
    return run;
  };
}

t.test('lfs over a library mount', async (t) => {
  const tfs = await startFs(t);
  const fs = await tfs.mount(5);
  const lfs = harness(fs, tfs.device);

  await t.test('setstripe then getstripe shows the layout, in Lustre\'s layout', async (t) => {
    const set = await lfs(['setstripe', '-c', '2', '-S', '128K', '-i', '1', `${MNT}/striped`]);
    t.equal(set.code, 0, set.err);
    const l = await fs.layout('/striped');
    t.ok(l);
    t.equal(l!.stripeSize, 131072);
    t.same(l!.objects.map((o) => o.ostIndex), [1, 0], 'stripe 0 on OST 1 (-i 1), then OST 0');
    const get = await lfs(['getstripe', `${MNT}/striped`]);
    t.equal(get.code, 0, get.err);
    const row = (o: { ostIndex: number; fid: { seq: number; oid: number } }) => {
      const group = o.fid.seq <= 11 ? String(o.fid.seq).padStart(14) : `0x${o.fid.seq.toString(16)}`.padStart(14);
      return `\t${String(o.ostIndex).padStart(6)}\t${String(o.fid.oid).padStart(14)}\t${`0x${o.fid.oid.toString(16)}`.padStart(13)}\t${group}\n`;
    };
    t.equal(get.out, [
      `${MNT}/striped\n`,
      'lmm_stripe_count:  2\n',
      'lmm_stripe_size:   131072\n',
      'lmm_pattern:       raid0\n',
      'lmm_layout_gen:    0\n',
      'lmm_stripe_offset: 1\n',
      '\tobdidx\t\t objid\t\t objid\t\t group\n',
      ...l!.objects.map(row),
      '\n',
    ].join(''));
    t.equal((await lfs(['getstripe', '-c', `${MNT}/striped`])).out, '2\n\n', '-c: the count alone');
    t.equal((await lfs(['getstripe', '-S', 'striped'])).out, '131072\n\n', '-S, a path relative to the working directory');
    t.equal((await lfs(['getstripe', '-i', `${MNT}/striped`])).out, '1\n\n');
    const fid = (await lfs(['path2fid', `${MNT}/striped`])).out.trim();
    const v = await lfs(['getstripe', '-v', `${MNT}/striped`]);
    const [seq, oid] = /^\[0x([0-9a-f]+):0x([0-9a-f]+):0x0\]$/.exec(fid)!.slice(1);
    t.match(v.out, new RegExp(`^${MNT}/striped\nlmm_magic:         0x0BD10BD0\nlmm_seq:           0x${seq}\nlmm_object_id:     0x${oid}\nlmm_fid:           \\[0x${seq}:0x${oid}:0x0\\]\nlmm_stripe_count:  2\n`));
    const q = await lfs(['getstripe', '-q', `${MNT}/striped`]);
    t.equal(q.out, `${MNT}/striped\n\tobdidx\t\t objid\t\t objid\t\t group\n${l!.objects.map(row).join('')}\n`, '-q: the table only');
  });

  await t.test('setstripe on a file that has objects is refused as lfs does', async (t) => {
    await fs.writeFile('/full', 'data');
    const r = await lfs(['setstripe', '-c', '1', `${MNT}/full`]);
    t.equal(r.code, 1);
    t.match(r.err, /^lfs: setstripe for '\/mnt\/lustre\/full' failed: File exists \(setstripe error for '\/mnt\/lustre\/full': stripe already set\)\n$/);
  });

  await t.test('a directory default applies to new files in it; getstripe shows it and the entries', async (t) => {
    await fs.mkdir('/dir');
    const before = await lfs(['getstripe', '-d', `${MNT}/dir`]);
    t.equal(before.out, 'stripe_count:  1 stripe_size:   1048576 pattern:        stripe_offset: -1\n\n', 'no default of its own: the file system\'s, pattern 0');
    t.equal((await lfs(['setstripe', '-c', '-1', '-S', '2M', `${MNT}/dir`])).code, 0);
    t.equal((await lfs(['getstripe', '-d', `${MNT}/dir`])).out, 'stripe_count:  -1 stripe_size:   2097152 pattern:       raid0 stripe_offset: -1\n\n');
    await fs.writeFile('/dir/new', 'x');
    const l = await fs.layout('/dir/new');
    t.equal(l!.objects.length, 2, 'the new file is striped over every OST');
    t.equal(l!.stripeSize, 2 * 1024 * 1024);
    const all = await lfs(['getstripe', `${MNT}/dir`]);
    t.match(all.out, /^\/mnt\/lustre\/dir\nstripe_count:  -1 stripe_size:   2097152 pattern:       raid0 stripe_offset: -1\n\n\/mnt\/lustre\/dir\/new\nlmm_stripe_count:  2\nlmm_stripe_size:   2097152\n/);
    t.equal((await lfs(['getstripe', '-c', `${MNT}/dir`])).out, '-1\n\n', '-c on a directory: its own, no entries');
    t.equal((await lfs(['setstripe', '-d', `${MNT}/dir`])).code, 0);
    t.match((await lfs(['getstripe', '-d', `${MNT}/dir`])).out, /pattern:        stripe_offset: -1/, 'the default is gone');
  });

  await t.test('getstripe of a directory larger than one page walks every entry', async (t) => {
    await fs.mkdir('/many');
    const names = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    for (const n of names) await fs.writeFile(`/many/${n}`, '');
    const seen: string[] = [];
    let cursor: unknown = null;
    let pages = 0;
    do {
      const r = await serveLfs(checkLfsRequest({ op: 'getstripe', path: `${MNT}/many`, maxDepth: 1, limit: 7, cursor }), async (p) => ({ fs, path: p.slice(MNT.length), release: async () => {} }));
      if (r.op !== 'getstripe') throw new Error('wrong op');
      seen.push(...r.entries.map((e) => e.path));
      cursor = r.cursor;
      pages++;
    } while (cursor);
    t.ok(pages >= 6, `${pages} pages of at most 7`);
    t.same(seen.slice(1).sort(), names.map((n) => `${MNT}/many/${n}`), 'each entry once');
    t.equal(seen[0], `${MNT}/many`);
  });

  await t.test('find pages through a directory of several MDT readdir pages, each entry once', async (t) => {
    await fs.mkdir('/long');
    const names = Array.from({ length: 320 }, (_, i) => `${String(i).padStart(3, '0')}-${'n'.repeat(200)}`);
    for (const n of names) await fs.writeFile(`/long/${n}`, '');
    const dirFid = (await lfs(['path2fid', `${MNT}/long`])).out.trim();
    t.equal((await fs.mdc.readdir(dirFid)).end, false, 'the MDT answers this directory in more than one page');
    const seen: string[] = [];
    let cursor: unknown = null;
    let pages = 0;
    do {
      const r = await serveLfs(checkLfsRequest(JSON.parse(JSON.stringify({ op: 'find', path: `${MNT}/long`, maxDepth: -1, type: 'f', limit: 50, cursor }))), async (p) => ({ fs, path: p.slice(MNT.length), release: async () => {} }));
      if (r.op !== 'find') throw new Error('wrong op');
      seen.push(...r.entries.map((e) => e.path));
      cursor = r.cursor;
      pages++;
    } while (cursor);
    t.ok(pages >= 7, `${pages} pages`);
    t.equal(seen.length, names.length, 'no entry twice');
    t.same([...seen].sort(), names.map((n) => `${MNT}/long/${n}`));
  });

  await t.test('df: one row per MDT and OST, the summary adds up the OSTs', async (t) => {
    const r = await lfs(['df', MNT]);
    t.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    t.equal(lines[0], `${'UUID'.padEnd(20)}   1K-blocks        Used   Available Use%  Mounted on`);
    const row = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%  (\S+) $/;
    const rows = lines.slice(1, 4).map((l) => row.exec(l));
    t.ok(rows.every(Boolean), lines.slice(1, 4).join('\n'));
    t.same(rows.map((m) => [m![1], m![6]]), [
      ['testfs-MDT0000_UUID', `${MNT}[MDT:0]`], ['testfs-OST0000_UUID', `${MNT}[OST:0]`], ['testfs-OST0001_UUID', `${MNT}[OST:1]`],
    ]);
    t.equal(lines[4], '');
    const sum = row.exec(lines[5]!);
    t.ok(sum, lines[5]);
    t.equal(sum![1], 'filesystem_summary:');
    t.equal(sum![6], MNT);
    for (const col of [2, 3, 4]) {
      const total = Number(rows[1]![col]) + Number(rows[2]![col]);
      t.ok(Math.abs(Number(sum![col]) - total) <= 1, `column ${col}: ${sum![col]} is the OSTs' ${total}`);
    }
    t.equal(lines.slice(6).join('\n'), '\n', 'a blank line ends it');
    const h = await lfs(['df', '-h', MNT]);
    t.match(h.out, /^UUID {23}bytes        Used   Available Use%  Mounted on\n/);
    t.match(h.out, /\ntestfs-OST0000_UUID +\d+\.\d[KMGTPE] +[\d.]+[KMGTPE]? +[\d.]+[KMGTPE] +\d+%  \/mnt\/lustre\[OST:0\] \n/);
    const i = await lfs(['df', '-i']);
    t.match(i.out, /^UUID {22}Inodes       IUsed       IFree IUse%  Mounted on\n/, 'no path: every mount of the node');
    t.match(i.out, /\nfilesystem_summary: +\d+ +\d+ +\d+ +\d+%  \/mnt\/lustre \n\n$/);
    const remote = await lfs(['df', tfs.device]);
    t.match(remote.out, new RegExp(`testfs-MDT0000_UUID .* ${tfs.device.replace(/[.]/g, '\\.')}\\[MDT:0\\] \\n`));
  });

  await t.test('find filters by name, type, size, stripe count and depth', async (t) => {
    await fs.mkdir('/f/sub/deep', { recursive: true });
    await fs.writeFile('/f/a.txt', Buffer.alloc(3000));
    await fs.writeFile('/f/b.log', Buffer.alloc(10));
    await fs.writeFile('/f/sub/c.txt', Buffer.alloc(2 * 1024 * 1024));
    await (await fs.open('/f/sub/deep/two', 'w', 0o644, { stripeCount: 2 })).close();
    await fs.symlink('a.txt', '/f/link');
    const find = async (...a: string[]) => (await lfs(['find', `${MNT}/f`, ...a])).out.split('\n').filter(Boolean).sort();
    t.same(await find('--name', '*.txt'), [`${MNT}/f/a.txt`, `${MNT}/f/sub/c.txt`]);
    t.same(await find('--type', 'd'), [`${MNT}/f`, `${MNT}/f/sub`, `${MNT}/f/sub/deep`]);
    t.same(await find('--type', 'l'), [`${MNT}/f/link`]);
    t.same(await find('--type', 'f', '--size', '+1M'), [`${MNT}/f/sub/c.txt`]);
    t.same(await find('--type', 'f', '--size', '-1k'), [`${MNT}/f/sub/deep/two`], 'as find(1): less than 1k rounded up is empty');
    t.same(await find('--type', 'f', '--size', '-2k'), [`${MNT}/f/b.log`, `${MNT}/f/sub/deep/two`]);
    t.same(await find('--size', '3k', '--type', 'f'), [`${MNT}/f/a.txt`], '3000 bytes rounds up to 3k');
    t.same(await find('--stripe-count', '2'), [`${MNT}/f/sub/deep/two`]);
    t.same(await find('--stripe-count', '-2', '--type', 'f'), [`${MNT}/f/a.txt`, `${MNT}/f/b.log`, `${MNT}/f/sub/c.txt`]);
    t.same(await find('--maxdepth', '1', '--type', 'f'), [`${MNT}/f/a.txt`, `${MNT}/f/b.log`]);
    t.same(await find('--maxdepth', '0'), [`${MNT}/f`]);
    const rel = await lfs(['find', 'f', '--name', 'two'], MNT);
    t.equal(rel.out, 'f/sub/deep/two\n', 'paths as the user spelled the start');
    const remote = await lfs(['find', `${tfs.device}/f/sub`, '--type', 'f']);
    t.same(remote.out.split('\n').filter(Boolean).sort(), [`${tfs.device}/f/sub/c.txt`, `${tfs.device}/f/sub/deep/two`], 'MGSNID:/fsname/path');
  });

  await t.test('path2fid and fid2path round trip', async (t) => {
    await fs.mkdir('/p/q', { recursive: true });
    await fs.writeFile('/p/q/file', 'x');
    await fs.link('/p/q/file', '/p/hard');
    const one = await lfs(['path2fid', `${MNT}/p/q/file`]);
    t.match(one.out, /^\[0x[0-9a-f]+:0x[0-9a-f]+:0x[0-9a-f]+\]\n$/);
    const fid = one.out.trim();
    const two = await lfs(['path2fid', `${MNT}/p/q/file`, `${MNT}/p/q`]);
    t.match(two.out, new RegExp(`^/mnt/lustre/p/q/file: \\${fid.slice(0, -1)}\\]\\n/mnt/lustre/p/q: \\[0x`));
    const dirFid = two.out.split('\n')[1]!.split(': ')[1]!;
    const back = await lfs(['fid2path', MNT, fid]);
    t.same(back.out.split('\n').filter(Boolean).sort(), [`${MNT}/p/hard`, `${MNT}/p/q/file`], 'every name of the file');
    t.equal((await lfs(['fid2path', MNT, dirFid])).out, `${MNT}/p/q\n`);
    t.equal((await lfs(['fid2path', 'testfs', dirFid.slice(1, -1)])).out, 'p/q\n', 'by fsname: relative to the root, brackets optional');
    t.equal((await lfs(['fid2path', tfs.device, fs.core.rootFid])).out, '/\n', 'the root by fsname is /');
    t.equal((await lfs(['fid2path', MNT, fs.core.rootFid])).out, `${MNT}/\n`);
    t.equal((await lfs(['fid2path', '-f', MNT, dirFid])).out, `${dirFid} ${MNT}/p/q\n`);
    const gone = await lfs(['fid2path', MNT, '[0x200000400:0xfffff:0x0]']);
    t.equal(gone.code, 1);
    t.match(gone.err, /^lfs: fid2path for '\/mnt\/lustre \[0x200000400:0xfffff:0x0\]' failed: No such file or directory/);
  });

  await t.test('errors: a missing path, a path outside any mount, bad arguments', async (t) => {
    const missing = await lfs(['getstripe', `${MNT}/nope`]);
    t.equal(missing.code, 1);
    t.match(missing.err, /^lfs: getstripe for '\/mnt\/lustre\/nope' failed: No such file or directory/);
    const outside = await lfs(['path2fid', '/elsewhere/x']);
    t.match(outside.err, /failed: No such file or directory \(\/elsewhere\/x is not in a Lustre client mount/);
    t.equal((await lfs(['find', `${MNT}/nope`])).code, 1);
    const some = await lfs(['path2fid', `${MNT}/nope`, `${MNT}/p`]);
    t.equal(some.code, 1, 'one failed path fails the command');
    t.match(some.out, /^\/mnt\/lustre\/p: \[0x/, 'the others are still done');
    t.equal((await lfs(['setstripe', '-d', `${MNT}/nope`])).code, 1);
    t.equal(await fs.access('/nope').catch((e: { code: string }) => e.code), 'ENOENT', 'nothing was created');
  });
});

t.test('checkLfsRequest names what is wrong', async (t) => {
  const wrong = (v: unknown): string => {
    try {
      checkLfsRequest(v);
    } catch (err) {
      t.equal((err as { code?: string }).code, 'EINVAL');
      return (err as Error).message;
    }
    throw new Error('accepted ' + JSON.stringify(v));
  };
  t.match(wrong(null), /an object with an op/);
  t.match(wrong({ op: 'mkdir', path: '/x' }), /unknown op "mkdir"/);
  t.match(wrong({ op: 'setstripe', path: '' }), /path must be a non-empty string/);
  t.match(wrong({ op: 'setstripe', path: '/x', stripeSize: 1000 }), /stripeSize 1000 is not a multiple of 65536/);
  t.match(wrong({ op: 'setstripe', path: '/x', stripeCount: 5000 }), /stripeCount must be an integer from -1 to 2000/);
  t.match(wrong({ op: 'getstripe', path: '/x', maxDepth: 2 }), /maxDepth must be an integer from -1 to 1/);
  t.match(wrong({ op: 'find', path: '/x', maxDepth: -1, type: 'x' }), /type must be f, d or l/);
  t.match(wrong({ op: 'find', path: '/x', maxDepth: -1, cursor: { frames: [{ path: '/x', fid: 'nope', depth: 1, cookie: null, skip: 0 }] } }), /cursor frame fid nope is not a FID/);
  t.match(wrong({ op: 'fid2path', root: '/x', fid: '0x1:0x2:0x0' }), /is not a FID/);
  t.same(checkLfsRequest({ op: 'setstripe', path: '/x', stripeCount: -1, stripeSize: 1048576, stripeOffset: 1, extra: 1 }), {
    op: 'setstripe', path: '/x', stripeCount: -1, stripeSize: 1048576, stripeOffset: 1,
  }, 'only known fields pass');
});
