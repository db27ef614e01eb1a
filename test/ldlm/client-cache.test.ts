// The client's lock cache: matching, references, blocking callbacks, LRU and early cancel.
import fc from 'fast-check';
import t from 'tap';
import { ClientLockCache, hasFlag, InodeBits, LockFlag, LockMode, LockType, OBD_OBJECT_EOF, resIdOfFid } from '../../src/ldlm/index.js';
import { fid } from '../../src/osd/index.js';

const O1 = resIdOfFid(fid(0x100000000, 1));
const O2 = resIdOfFid(fid(0x100000000, 2));

function setup(opts: { lruSize?: number; lruMaxAgeMs?: number } = {}) {
  const clock = { t: 0 };
  const cache = new ClientLockCache('lustre-OST0000-osc', { now: () => clock.t, ...opts });
  let h = 1n;
  const extent = (mode: LockMode, start: bigint, end: bigint, resId = O1) => {
    const handle = h++;
    return cache.add({ handle, remoteHandle: handle + 1000n, resId, type: LockType.EXTENT, mode, policy: { extent: { start, end } } });
  };
  const ibits = (mode: LockMode, bits: number) => {
    const handle = h++;
    return cache.add({ handle, remoteHandle: handle + 1000n, resId: O2, type: LockType.IBITS, mode, policy: { bits } });
  };
  return { clock, cache, extent, ibits };
}

t.test('match: a mode that covers, an extent that contains, bits that include', async (t) => {
  const { cache, extent, ibits } = setup();
  const pw = extent(LockMode.PW, 0n, 1_048_575n);
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PR, { extent: { start: 4096n, end: 8191n } }), pw, 'PW serves a read');
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PR, { extent: { start: 1_048_000n, end: 1_048_576n } }), undefined, 'not contained');
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.EX, { extent: { start: 0n, end: 1n } }), undefined, 'PW does not serve EX');
  const pr = extent(LockMode.PR, 0n, OBD_OBJECT_EOF);
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PR, { extent: { start: 0n, end: 1n } }), pr, 'the exact mode is preferred');
  t.equal(cache.match(O2, LockType.EXTENT, LockMode.PR, { extent: { start: 0n, end: 1n } }), undefined, 'another object');
  const md = ibits(LockMode.PR, InodeBits.LOOKUP | InodeBits.UPDATE | InodeBits.PERM);
  t.equal(cache.match(O2, LockType.IBITS, LockMode.PR, { bits: InodeBits.UPDATE | InodeBits.PERM }), md);
  t.equal(cache.match(O2, LockType.IBITS, LockMode.PR, { bits: InodeBits.UPDATE | InodeBits.LAYOUT }), undefined);
  const s = cache.stats();
  t.equal(s.match_hits, 3);
  t.equal(s.match_misses, 4);
});

t.test('references keep a lock off the LRU; a blocking callback waits for the last one', async (t) => {
  const { cache, extent } = setup();
  const l = extent(LockMode.PW, 0n, OBD_OBJECT_EOF);
  t.equal(cache.stats().lock_unused_count, 1);
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PW, { extent: { start: 0n, end: 9n } }, { ref: true }), l);
  cache.addRef(l, LockMode.PR);
  t.equal(l.writers, 1);
  t.equal(l.readers, 1);
  t.equal(cache.stats().lock_unused_count, 0);
  const bl = cache.blocking(l.handle);
  t.equal(bl?.cancelNow, false, 'in use: the owner flushes, the last decRef cancels');
  t.ok(hasFlag(l.flags, LockFlag.CBPENDING));
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PR, { extent: { start: 0n, end: 9n } }), undefined, 'a lock being called back is not matched');
  t.equal(cache.decRef(l, LockMode.PW).cancelNow, false, 'a reader still holds it');
  t.equal(cache.decRef(l, LockMode.PR).cancelNow, true, 'the last reference: cancel now');
  t.equal(cache.decRef(cache.addRef(extent(LockMode.PR, 0n, 9n), LockMode.PR), LockMode.PR).cancelNow, false, 'no callback: it just goes to the LRU');
  t.throws(() => cache.addRef(l, LockMode.PR), { code: 'EAGAIN' }, 'a lock being cancelled takes no new reference');
  t.equal(cache.remove(l.handle), l);
  t.equal(cache.lookupRemote(l.remoteHandle), undefined);
  t.equal(cache.blocking(l.handle), undefined, 'a callback for a lock already gone');
});

t.test('an unused lock is cancelled at once on a blocking callback, once', async (t) => {
  const { cache, extent } = setup();
  const l = extent(LockMode.PR, 0n, 9n);
  t.equal(cache.blocking(l.handle)?.cancelNow, true);
  t.equal(cache.blocking(l.handle)?.cancelNow, false, 'a second callback does not cancel twice');
  t.equal(cache.stats().lock_unused_count, 0);
});

t.test('LRU: beyond lru_size and past lru_max_age, least recently used first', async (t) => {
  const { cache, extent, clock } = setup({ lruSize: 3, lruMaxAgeMs: 10_000 });
  const locks = [0, 1, 2, 3, 4].map((i) => extent(LockMode.PR, BigInt(i) * 4096n, BigInt(i) * 4096n + 4095n));
  cache.decRef(cache.addRef(locks[0]!, LockMode.PR), LockMode.PR); // 0 is now the most recent
  const shrunk = cache.lruShrink();
  t.same(shrunk.map((l) => l.handle), [locks[1]!.handle, locks[2]!.handle]);
  t.ok(shrunk.every((l) => hasFlag(l.flags, LockFlag.CANCELING)));
  for (const l of shrunk) cache.remove(l.handle);
  t.equal(cache.stats().lock_count, 3);
  t.same(cache.lruShrink(), [], 'within lru_size');
  clock.t = 10_001;
  cache.addRef(locks[3]!, LockMode.PR);
  t.same(cache.lruShrink().map((l) => l.handle), [locks[4]!.handle, locks[0]!.handle], 'too old, except the one in use');
  cache.lruSize = 0;
  t.equal(cache.stats().lru_size, 0);
  t.throws(() => { cache.lruSize = -1; }, { code: 'EINVAL' });
});

t.test('lru_size 0 (LRU resize): no limit on the number of unused locks; memory pressure gives back the oldest share', async (t) => {
  const { cache, extent, clock } = setup({ lruSize: 0, lruMaxAgeMs: 10_000 });
  const locks = Array.from({ length: 500 }, (_, i) => extent(LockMode.PR, BigInt(i) * 4096n, BigInt(i) * 4096n + 4095n));
  t.same(cache.lruShrink(), [], '500 unused locks stay');
  t.equal(cache.stats().lock_unused_count, 500);
  cache.addRef(locks[0]!, LockMode.PR);
  const half = cache.shrinkOldest(0.5);
  t.equal(half.length, 250, 'half of the 499 unused, rounded up');
  t.same(half.map((l) => l.handle), locks.slice(1, 251).map((l) => l.handle), 'the oldest first, never the one in use');
  t.ok(half.every((l) => hasFlag(l.flags, LockFlag.CANCELING)));
  t.equal(cache.stats().lock_unused_count, 249);
  t.equal(cache.shrinkOldest(0.01).length, 3, 'at least one, rounded up');
  t.equal(cache.shrinkOldest(0).length, 0);
  clock.t = 10_001;
  t.equal(cache.lruShrink().length, 246, 'and lru_max_age still ages them out');
});

t.test('early cancel: unused locks, oldest first, or those on one resource and bits', async (t) => {
  const { cache, extent, ibits } = setup();
  const a = extent(LockMode.PR, 0n, 9n);
  const b = extent(LockMode.PR, 10n, 19n, O2);
  const c = extent(LockMode.PR, 20n, 29n);
  cache.addRef(c, LockMode.PR);
  t.same(cache.cancelUnused(5).map((l) => l.handle), [a.handle, b.handle], 'the one in use stays');
  t.same(cache.cancelUnused(5), [], 'already being cancelled');
  const { cache: md, ibits: ib } = setup();
  void cache; void ibits;
  const lookup = ib(LockMode.PR, InodeBits.LOOKUP);
  ib(LockMode.PR, InodeBits.LAYOUT);
  t.same(md.cancelUnusedOn(O2, { bits: InodeBits.LOOKUP | InodeBits.UPDATE }).map((l) => l.handle), [lookup.handle]);
  t.equal(md.cancelUnusedOn(O1).length, 0);
});

t.test('the known minimum size falls to what the remaining locks vouch for', async (t) => {
  const { cache, extent } = setup();
  const low = extent(LockMode.PW, 0n, 4095n);
  const high = extent(LockMode.PW, 4096n, 1_048_575n);
  t.equal(cache.shiftKms(high, 1_000_000n), 4096n, 'the highest lock goes: [0, 4095] vouches for 4096 bytes');
  t.equal(cache.shiftKms(low, 1_000_000n), 1_000_000n, 'a lower lock goes: unchanged');
  cache.blocking(high.handle);
  t.equal(cache.shiftKms(low, 1_000_000n), 0n, 'a lock being cancelled vouches for nothing');
  const whole = extent(LockMode.PR, 0n, OBD_OBJECT_EOF, O2);
  t.equal(cache.shiftKms(whole, 77n), 0n, 'the last lock of the object');
});

t.test('a completion or a replay updates mode, policy and the server handle', async (t) => {
  const { cache, extent } = setup();
  const l = extent(LockMode.PR, 0n, 9n);
  cache.update(l.handle, { mode: LockMode.PW, policy: { extent: { start: 0n, end: OBD_OBJECT_EOF } }, remoteHandle: 77n });
  t.equal(cache.lookupRemote(77n), l);
  t.equal(cache.match(O1, LockType.EXTENT, LockMode.PW, { extent: { start: 100n, end: 200n } }), l);
  t.same(cache.locks(), [l]);
  t.same(Object.keys(cache.stats()).slice(0, 5), ['lock_count', 'lock_unused_count', 'lru_size', 'lru_max_age', 'resource_count']);
  t.throws(() => cache.add({ handle: l.handle, remoteHandle: 1n, resId: O1, type: LockType.PLAIN, mode: LockMode.PR }), { code: 'EINVAL' });
  t.throws(() => cache.decRef(99n, LockMode.PR), { code: 'EINVAL' });
});

t.test('property: matches cover the need; the LRU holds exactly the unused locks, within lru_size after a shrink', async (t) => {
  const seed = Number(process.env.LDLM_SEED ?? Date.now() % 1_000_000);
  t.comment(`fast-check seed ${seed} (LDLM_SEED reproduces)`);
  const opArb = fc.oneof(
    fc.record({ op: fc.constant('add' as const), mode: fc.constantFrom(LockMode.PR, LockMode.PW), a: fc.nat({ max: 7 }), b: fc.nat({ max: 7 }) }),
    fc.record({ op: fc.constant('match' as const), mode: fc.constantFrom(LockMode.PR, LockMode.PW), a: fc.nat({ max: 7 }), b: fc.nat({ max: 7 }) }),
    fc.record({ op: fc.constant('release' as const), pick: fc.nat() }),
    fc.record({ op: fc.constant('blocking' as const), pick: fc.nat() }),
    fc.record({ op: fc.constant('shrink' as const) }),
  );
  fc.assert(fc.property(fc.array(opArb, { maxLength: 80 }), fc.integer({ min: 1, max: 5 }), (ops, lruSize) => {
    const { cache, extent, clock } = setup({ lruSize });
    const held: { handle: bigint; mode: LockMode }[] = [];
    const gone = (handles: bigint[]) => handles.forEach((h) => cache.remove(h));
    for (const op of ops) {
      clock.t += 1;
      const lo = BigInt(Math.min(op.op === 'add' || op.op === 'match' ? op.a : 0, op.op === 'add' || op.op === 'match' ? op.b : 0)) * 4096n;
      const hi = BigInt(Math.max(op.op === 'add' || op.op === 'match' ? op.a : 0, op.op === 'add' || op.op === 'match' ? op.b : 0)) * 4096n + 4095n;
      if (op.op === 'add') extent(op.mode, lo, hi);
      else if (op.op === 'match') {
        const l = cache.match(O1, LockType.EXTENT, op.mode, { extent: { start: lo, end: hi } }, { ref: true });
        if (l) {
          const e = (l.policy as { extent: { start: bigint; end: bigint } }).extent;
          if (e.start > lo || e.end < hi || (op.mode === LockMode.PW && l.mode !== LockMode.PW)) throw new Error('a match that does not cover');
          if (hasFlag(l.flags, LockFlag.CBPENDING)) throw new Error('a match of a lock being called back');
          held.push({ handle: l.handle, mode: op.mode });
        }
      } else if (op.op === 'release' && held.length > 0) {
        const [r] = held.splice(op.pick % held.length, 1);
        if (cache.decRef(r!.handle, r!.mode).cancelNow) gone([r!.handle]);
      } else if (op.op === 'blocking') {
        const all = cache.locks();
        if (all.length > 0) {
          const l = all[op.pick % all.length]!;
          if (cache.blocking(l.handle)?.cancelNow) gone([l.handle]);
        }
      } else if (op.op === 'shrink') {
        gone(cache.lruShrink().map((l) => l.handle));
        if (cache.stats().lock_unused_count > lruSize) throw new Error('more unused locks than lru_size after a shrink');
      }
      const unused = cache.locks().filter((l) => l.readers === 0 && l.writers === 0 && !hasFlag(l.flags, LockFlag.CBPENDING, LockFlag.CANCELING)).length;
      if (unused !== cache.stats().lock_unused_count) throw new Error(`${unused} unused locks, LRU says ${cache.stats().lock_unused_count}`);
      for (const l of cache.locks()) if (l.readers < 0 || l.writers < 0) throw new Error('negative references');
    }
  }), { seed, numRuns: 300 });
  t.pass('300 random sequences');
});
