// The lfs utility without a kernel: what each command line sends (one structured request per
// path, arguments checked and paths made absolute first), the argument errors it names, the
// pure argument parsers, and the real bin's --help and its message when no kernel runs.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolCommand } from '../lib/tools.js';
import { promisify } from 'node:util';
import { runLfs, getstripeFormat } from '../../src/control/lfs/cli.js';
import {
  parseCountTest, parseFidArg, parseSizeTest, parseStripeCount, parseStripeSize, type LfsRequest, type LfsResult,
  VERBOSE_DEFAULT, VERBOSE_DETAIL, VERBOSE_OBJID, VERBOSE_STRIPE_COUNT,
} from '../../src/control/lfs/index.js';

const run = promisify(execFile);

async function lfs(args: string[], answer: (r: LfsRequest) => LfsResult = (r) => ({ op: 'setstripe', path: r.op === 'fid2path' ? r.root : r.path, created: true })) {
  const requests: LfsRequest[] = [];
  let out = '';
  let err = '';
  const code = await runLfs(args, {
    lfs: async (r) => {
      requests.push(r);
      return answer(r);
    },
    clients: async () => [{ spec: '127.0.0.2@tcp:/testfs', mountpoint: '/mnt/lustre' }],
    cwd: '/mnt/lustre/work',
    out: (s) => (out += s),
    err: (s) => (err += s),
  });
  return { code, out, err, requests };
}

t.test('setstripe sends one checked request per path, relative paths made absolute', async (t) => {
  const r = await lfs(['setstripe', '-c', '2', '-S', '4M', '-i', '1', 'a', '/mnt/lustre/b', '127.0.0.2@tcp:/testfs/c']);
  t.equal(r.code, 0, r.err);
  t.same(r.requests, ['/mnt/lustre/work/a', '/mnt/lustre/b', '127.0.0.2@tcp:/testfs/c'].map((path) => ({
    op: 'setstripe', path, stripeCount: 2, stripeSize: 4 * 1024 * 1024, stripeOffset: 1,
  })));
  t.same((await lfs(['setstripe', '-c', '-1', 'x'])).requests, [{ op: 'setstripe', path: '/mnt/lustre/work/x', stripeCount: -1 }]);
  t.same((await lfs(['setstripe', '-S', '256', 'x'])).requests[0], { op: 'setstripe', path: '/mnt/lustre/work/x', stripeSize: 256 * 1024 }, 'a size under 4096 is KiB, as lfs takes it');
});

t.test('bad arguments are named and nothing is sent', async (t) => {
  for (const [args, message] of [
    [['setstripe', '-S', '1000K', 'x'], /invalid stripe size '1000K'/],
    [['setstripe', '-S', '-1M', 'x'], /invalid stripe size '-1M'/],
    [['setstripe', '-c', 'two', 'x'], /invalid stripe count 'two'/],
    [['setstripe', '-c', '3000', 'x'], /invalid stripe count '3000'/],
    [['setstripe', '-i', 'x', 'y'], /invalid stripe offset 'x'/],
    [['setstripe', '-d', '-c', '1', 'x'], /cannot specify -d with -c, -S or -i/],
    [['find', '/mnt/lustre', '--size', '1Q'], /bad size '1Q'/],
    [['find', '/mnt/lustre', '--stripe-count', 'many'], /bad stripe count 'many'/],
    [['find', '/mnt/lustre', '--maxdepth', '-1'], /bad maxdepth '-1'/],
    [['fid2path', '/mnt/lustre', '0x1:2'], /invalid FID '0x1:2'/],
    [['fid2path', 'otherfs', '[0x200000400:0x1:0x0]'], /cannot resolve mount point for 'otherfs'/],
  ] as const) {
    const r = await lfs([...args]);
    t.not(r.code, 0, args.join(' '));
    t.match(r.err, message, args.join(' '));
    t.same(r.requests, [], `${args.join(' ')}: nothing sent`);
  }
  const typ = await lfs(['find', '/mnt/lustre', '--type', 'x']);
  t.match(typ.err, /argument 'x' is invalid. Allowed choices are f, d, l/);
  const none = await lfs(['getstripe']);
  t.match(none.err, /missing required argument 'path'/);
});

t.test('getstripe options map onto lfs\'s verbose bits and depth', async (t) => {
  t.same(getstripeFormat({}), { verbose: VERBOSE_DEFAULT, maxDepth: 1 });
  t.same(getstripeFormat({ stripeCount: true }), { verbose: VERBOSE_STRIPE_COUNT, maxDepth: 0 });
  t.same(getstripeFormat({ directory: true }), { verbose: VERBOSE_DEFAULT, maxDepth: 0 });
  t.same(getstripeFormat({ recursive: true }), { verbose: VERBOSE_DEFAULT, maxDepth: -1 });
  t.same(getstripeFormat({ verbose: true, stripeCount: true }), { verbose: VERBOSE_DEFAULT | VERBOSE_DETAIL, maxDepth: 1 });
  t.same(getstripeFormat({ quiet: true }), { verbose: VERBOSE_OBJID, maxDepth: 1 });
  const r = await lfs(['getstripe', '-r', 'd'], () => ({ op: 'getstripe', entries: [], cursor: null }));
  t.same(r.requests, [{ op: 'getstripe', path: '/mnt/lustre/work/d', maxDepth: -1 }]);
});

t.test('find asks page after page until the cursor ends', async (t) => {
  const frames = [{ path: '/mnt/lustre/work/d', fid: '[0x200000400:0x1:0x0]', depth: 1, cookie: null, skip: 3 }];
  let n = 0;
  const r = await lfs(['find', 'd', '--name', '*.c', '--type', 'f', '--size', '+1M', '--stripe-count', '-2', '--maxdepth', '3'], () => {
    n++;
    return n === 1
      ? { op: 'find', entries: [{ path: '/mnt/lustre/work/d/x.c' }], cursor: { frames } }
      : { op: 'find', entries: [{ path: '/mnt/lustre/work/d/y/z.c' }], cursor: null };
  });
  t.equal(r.out, 'd/x.c\nd/y/z.c\n', 'paths as the start was spelled');
  const first = {
    op: 'find', path: '/mnt/lustre/work/d', maxDepth: 3, name: '*.c', type: 'f',
    size: { sign: 1, value: 1024 * 1024, units: 1024 * 1024 }, stripeCount: { sign: -1, value: 2 },
  };
  t.same(r.requests, [first, { ...first, cursor: { frames } }]);
});

t.test('df without a path covers every client mount of the node', async (t) => {
  const r = await lfs(['df', '-h'], () => ({ op: 'df', fsname: 'testfs', mount: '/mnt/lustre', targets: [] }));
  t.same(r.requests, [{ op: 'df', path: '/mnt/lustre' }]);
  t.match(r.out, /^UUID {23}bytes/);
});

t.test('argument parsers', async (t) => {
  t.equal(parseStripeSize('1M'), 1048576);
  t.equal(parseStripeSize('64k'), 65536);
  t.equal(parseStripeSize('0x100000'), 1048576);
  t.equal(parseStripeSize('1.5M'), 1572864);
  t.throws(() => parseStripeSize('4G'), /invalid stripe size '4G'/, 'past lmm_stripe_size\'s 32 bits');
  t.equal(parseStripeCount('-1'), -1);
  t.same(parseSizeTest('+1M'), { sign: 1, value: 1048576, units: 1048576 });
  t.same(parseSizeTest('-10k'), { sign: -1, value: 10240, units: 1024 });
  t.same(parseSizeTest('100'), { sign: 0, value: 100, units: 1 });
  t.same(parseCountTest('+2'), { sign: 1, value: 2 });
  t.equal(parseFidArg('0x200000400:0x1:0x0'), '[0x200000400:0x1:0x0]');
  t.equal(parseFidArg('[0x200000400:0x0A:0x0]'), '[0x200000400:0xa:0x0]');
});

t.test('the bin: --help per subcommand, and what it says when no kernel runs', async (t) => {
  const node = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, [...toolCommand('lfs'), ...args], { env: { ...process.env, ...env } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const help = await node(['--help']);
  t.equal(help.code, 0);
  for (const c of ['setstripe', 'getstripe', 'df', 'find', 'path2fid', 'fid2path']) t.match(help.stdout, new RegExp(`\\n  ${c} `));
  const sub = await node(['setstripe', '--help']);
  t.match(sub.stdout, /-c, --stripe-count <count>/);
  t.match(sub.stdout, /-S, --stripe-size <size>/);
  t.match(sub.stdout, /-i, --stripe-index <index>/);
  const df = await node(['df', '--help']);
  t.match(df.stdout, /-h, --human-readable/);
  const dir = await mkdtemp(join(tmpdir(), 'lfs-nokernel-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const r = await node(['getstripe', '/mnt/lustre/x'], { LUSTRE_RUNDIR: dir });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^lfs: no lustre\\.kernel is running on ${dir}; start one with: lustre\\.kernel start`));
  const bad = await node(['--rundir', dir, 'setstripe', '-S', '100K', 'x']);
  t.equal(bad.code, 2, 'argument errors come before any kernel is asked');
  t.match(bad.stderr, /^lfs: setstripe: invalid stripe size '100K'/);
});
