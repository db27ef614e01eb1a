// lctl's parameter patterns (braces, NID-aware components, fnmatch per component), get_param's
// output, and the txg_timeout value format, without a node.
import t from 'tap';
import fc from 'fast-check';
import {
  compilePattern, expandBraces, formatGetParam, formatSeconds, parseTxgTimeout, splitComponents,
} from '../../src/control/params/index.js';
import { matches } from '../../src/control/params/glob.js';

const matchesName = (pattern: string, path: string[]): boolean => compilePattern(pattern).alternatives.some((a) => matches(a, path));

t.test('braces expand over the whole pattern, nested, in order', async (t) => {
  t.same(expandBraces('osd-*.*.{kbytestotal,kbytesfree}'), ['osd-*.*.kbytestotal', 'osd-*.*.kbytesfree']);
  t.same(expandBraces('{ost.OSS.ost,mds.MDS.mdt}.stats'), ['ost.OSS.ost.stats', 'mds.MDS.mdt.stats']);
  t.same(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
  t.same(expandBraces('{x}.y'), ['{x}.y'], 'a group without a comma is literal, as glob takes it');
  t.same(expandBraces('{a,b}{c,d}'), ['ac', 'ad', 'bc', 'bd']);
  t.throws(() => expandBraces('{a,b}'.repeat(11)), { code: 'EINVAL' }, '2048 alternatives are refused');
});

t.test('components split at dots, a NID after exports. (or .MGC) kept whole', async (t) => {
  t.same(splitComponents('obdfilter.*.exports.127.0.0.5@tcp.stats'), ['obdfilter', '*', 'exports', '127.0.0.5@tcp', 'stats']);
  t.same(splitComponents('exports.127.0.0.5@tcp.stats'), ['exports', '127.0.0.5@tcp', 'stats']);
  t.same(splitComponents('mdt.*.exports.*@tcp.uuid'), ['mdt', '*', 'exports', '*@tcp', 'uuid']);
  t.same(splitComponents('mgs.MGS.exports.0@lo.stats'), ['mgs', 'MGS', 'exports', '0@lo', 'stats']);
  t.same(splitComponents('mgc.MGC192.168.1.1@tcp.import'), ['mgc', 'MGC192.168.1.1@tcp', 'import']);
  t.same(splitComponents('obdfilter.*.exports.127.0.0.5@tcp'), ['obdfilter', '*', 'exports', '127.0.0.5@tcp'], 'a NID last');
  t.same(splitComponents('a.b.c'), ['a', 'b', 'c']);
});

t.test('fnmatch per component: *, ?, [...], [!...], escapes; never across a dot', async (t) => {
  const path = ['obdfilter', 'fs-OST0001', 'exports', '127.0.0.5@tcp', 'stats'];
  for (const yes of [
    'obdfilter.*.exports.*.stats', 'obdfilter.fs-OST000?.exports.127.0.0.5@tcp.stats', '*.*.exports.*@tcp.stats',
    'obdfilter.fs-OST000[0-3].exports.*.stats', 'obdfilter.fs-OST000[!0].exports.*.st*', 'obdfilter.fs-OST000[^0].*.*.stats',
    'obdfilter.*.{uuid,exports}.*.{stats,uuid}', 'obd\\filter.*.exports.*.stats',
  ]) t.ok(matchesName(yes, path), `${yes} matches`);
  for (const no of [
    'obdfilter.*.stats', 'obdfilter.*', 'obdfilter.fs-OST000[!1].exports.*.stats', '*.*.exports.*@o2ib.stats',
    'obdfilter.*.exports.127.*.stats', 'obdfilter.*.exports.*.stats.*', 'obdfilter.fs-OST00?.exports.*.stats',
  ]) t.notOk(matchesName(no, path), `${no} does not match`);
  t.ok(matchesName('a.[]x].b', ['a', ']', 'b']), "']' first in a class is literal");
  t.ok(matchesName('a.[x.b', ['a', '[x', 'b']), 'an unclosed [ is literal');
  t.ok(matchesName('a.x+y(z).b', ['a', 'x+y(z)', 'b']), 'regexp characters are literal');
  t.throws(() => compilePattern(''), { code: 'EINVAL' });
  t.throws(() => compilePattern('a/b'), { code: 'EINVAL' });
  t.throws(() => compilePattern('a=b'), { code: 'EINVAL' });
  t.throws(() => compilePattern('x'.repeat(5000)), { code: 'EINVAL' });
});

t.test('property: a name matches itself and the all-star pattern of its depth, and no other depth', async () => {
  const component = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
  fc.assert(fc.property(fc.array(component, { minLength: 1, maxLength: 6 }), (path) => {
    const name = path.join('.');
    const stars = path.map(() => '*').join('.');
    return matchesName(name, path) && matchesName(stars, path) && !matchesName(`${stars}.*`, path)
      && (path.length === 1 || !matchesName(path.slice(1).map(() => '*').join('.'), path));
  }), { seed: 42, numRuns: 500 });
});

t.test("get_param's output: NAME=VALUE, multi-line values below NAME=, -n, -N", async (t) => {
  const values = [
    { name: 'version', value: '0.1.0' },
    { name: 'obdfilter.fs-OST0000.stats', value: 'snapshot_time 1.000000000 secs.nsecs\nwrite_bytes 1 samples [bytes] 4 4 4 16' },
    { name: 'obdfilter.fs-OST0000.exports.127.0.0.5@tcp.uuid', value: '' },
  ];
  t.equal(formatGetParam(values, {}), 'version=0.1.0\nobdfilter.fs-OST0000.stats=\nsnapshot_time 1.000000000 secs.nsecs\n' +
    'write_bytes 1 samples [bytes] 4 4 4 16\nobdfilter.fs-OST0000.exports.127.0.0.5@tcp.uuid=\n');
  t.equal(formatGetParam(values, { valuesOnly: true }), '0.1.0\nsnapshot_time 1.000000000 secs.nsecs\nwrite_bytes 1 samples [bytes] 4 4 4 16\n',
    '-n: an empty value prints nothing');
  t.equal(formatGetParam(values, { namesOnly: true }), 'version\nobdfilter.fs-OST0000.stats\nobdfilter.fs-OST0000.exports.127.0.0.5@tcp.uuid\n');
});

t.test('txg_timeout: seconds to the millisecond', async (t) => {
  t.equal(parseTxgTimeout('x', '5'), 5000);
  t.equal(parseTxgTimeout('x', '0.25'), 250);
  t.equal(parseTxgTimeout('x', '0.001'), 1);
  for (const bad of ['0', '0.0001', '-1', '1e3', 'five', '', '3601', ' 1']) t.throws(() => parseTxgTimeout('osd.x.txg_timeout', bad), { code: 'EINVAL' }, `'${bad}' refused`);
  for (const ms of [1, 10, 250, 1000, 1500, 3_600_000]) t.equal(parseTxgTimeout('x', formatSeconds(ms)), ms, `${ms} ms round trips as ${formatSeconds(ms)}`);
  t.equal(formatSeconds(1000), '1');
  t.equal(formatSeconds(20), '0.02');
});
