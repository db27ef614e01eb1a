// The client lock pool: each tick ages out every namespace's LRU, and memory pressure (as the
// probe tells it) makes each give back the older half of its unused locks.
import t from 'tap';
import { LockPool, memoryPressure, PRESSURE_SHRINK, type PoolMember } from '../../src/ldlm/index.js';

function member(unused: number): PoolMember & { unused: number; aged: number; why: string[] } {
  const m = {
    unused,
    aged: 0,
    why: [] as string[],
    ageOut: () => { m.aged++; },
    shrink: (share: number, why: string) => {
      const n = Math.ceil(m.unused * share);
      m.unused -= n;
      m.why.push(why);
      return n;
    },
  };
  return m;
}

t.test('a tick ages out every member; under pressure each gives back the older half', async (t) => {
  const pool = new LockPool();
  const a = member(1000);
  const b = member(7);
  pool.register(a);
  pool.register(b);
  let short: string | undefined;
  pool.probe = () => short;
  t.same(pool.tick(), { cancelled: 0 }, 'no pressure: nothing given back');
  t.same([a.aged, b.aged, a.unused, b.unused], [1, 1, 1000, 7]);
  short = 'heap 900 MiB of its 1000 MiB limit';
  t.same(pool.tick(), { pressure: short, cancelled: 504 }, `${PRESSURE_SHRINK} of each, rounded up`);
  t.same([a.unused, b.unused], [500, 3]);
  t.same([a.why, b.why], [[short], [short]], 'each is told why');
  t.same(pool.counters, { pressureTicks: 1, pressureCancels: 504 });
  pool.unregister(a);
  pool.unregister(b);
  short = 'still short';
  t.same(pool.tick(), { pressure: short, cancelled: 0 }, 'a member gone is not asked');
});

t.test('the real probe says what is short, or nothing', async (t) => {
  const why = memoryPressure();
  t.ok(why === undefined || /^heap \d+ MiB of its \d+ MiB limit$|^\d+ MiB of memory available of \d+ MiB$/.test(why), String(why));
});
