// The server namespace: grants, waits, blocking callbacks, FIFO, cancel, eviction, timeouts,
// replay, glimpse; extent growth and inodebits; and random sequences that must never leave
// two conflicting locks granted nor a waiter that could go.
import fc from 'fast-check';
import t from 'tap';
import {
  describeLock, hasFlag, growExtent, InodeBits, LDLM_MAX_GROWN_EXTENT, LockFlag, LockMode, LockType, Namespace, OBD_OBJECT_EOF, resIdOfFid,
  type Lock, type LockRequest, type Policy, type ResId,
} from '../../src/ldlm/index.js';
import { fid } from '../../src/osd/index.js';

const seed = Number(process.env.LDLM_SEED ?? Date.now() % 1_000_000);
t.comment(`fast-check seed ${seed} (LDLM_SEED reproduces)`);

const EOF = OBD_OBJECT_EOF;
const R1 = resIdOfFid(fid(0x100000000, 1));
const R2 = resIdOfFid(fid(0x100000000, 2));
let remote = 1000n;

function setup(lockTimeoutMs = 1000) {
  const clock = { t: 0 };
  const ns = new Namespace('filter-lustre-OST0000_UUID', { now: () => clock.t, lockTimeoutMs });
  const ext = (owner: string, mode: LockMode, start: bigint, end: bigint, opts: { flags?: number; resId?: ResId } = {}) =>
    ns.enqueue({ resId: opts.resId ?? R1, type: LockType.EXTENT, mode, policy: { extent: { start, end } }, owner, remoteHandle: remote++, ...(opts.flags ? { flags: opts.flags } : {}) });
  const ibits = (owner: string, mode: LockMode, bits: number, tryBits = 0) =>
    ns.enqueue({ resId: R2, type: LockType.IBITS, mode, policy: { bits, tryBits }, owner, remoteHandle: remote++ });
  return { clock, ns, ext, ibits };
}

const extentOf = (l: Lock) => (l.policy as { extent: { start: bigint; end: bigint } }).extent;

t.test('extent growth: a quiet resource grants the whole object', async (t) => {
  const { ext } = setup();
  const a = ext('A', LockMode.PR, 0n, 4095n);
  t.ok(a.granted);
  t.same(extentOf(a.lock), { start: 0n, end: EOF });
  t.ok(a.lock.flags & LockFlag.LOCK_CHANGED, 'the reply says the extent changed');
  t.same(a.lock.requestedPolicy, { extent: { start: 0n, end: 4095n } });
});

t.test('LOCK_CHANGED only when the grant differs from the request', async (t) => {
  const { ext } = setup();
  const whole = ext('A', LockMode.PR, 0n, EOF);
  t.ok(whole.granted);
  t.notOk(whole.lock.flags & LockFlag.LOCK_CHANGED, 'the whole object, as asked');
  const grown = ext('B', LockMode.PR, 0n, 4095n);
  t.ok(grown.granted);
  t.ok(grown.lock.flags & LockFlag.LOCK_CHANGED, 'grown to the whole object');
});

t.test('extent growth stops at conflicting locks and at page boundaries', async (t) => {
  const granted = [{ mode: LockMode.PW, owner: 'B', extent: { start: 1_048_576n, end: 2_097_151n } }];
  t.same(growExtent({ mode: LockMode.PR, owner: 'A', requested: { start: 0n, end: 4095n } }, granted, []), { start: 0n, end: 1_048_575n });
  t.same(growExtent({ mode: LockMode.PR, owner: 'A', requested: { start: 3_000_000n, end: 3_004_095n } }, granted, []),
    { start: 3_000_000n, end: EOF }, 'a conflicting lock below pins the start at the request');
  const capped = [{ mode: LockMode.PW, owner: 'B', extent: { start: 10_000n, end: 20_000n } }];
  t.same(growExtent({ mode: LockMode.PR, owner: 'A', requested: { start: 4096n, end: 8191n } }, capped, []),
    { start: 4096n, end: 8191n }, 'shrunk to the page below the conflicting lock');
  t.same(growExtent({ mode: LockMode.PR, owner: 'A', requested: { start: 0n, end: 4095n } }, [{ ...granted[0]!, mode: LockMode.PR }], []),
    { start: 0n, end: EOF }, 'compatible locks do not limit growth');
  t.same(growExtent({ mode: LockMode.PW, owner: 'A', requested: { start: 0n, end: 4095n } }, [{ ...granted[0]!, owner: 'A' }], []),
    { start: 0n, end: EOF }, 'the client\'s own locks do not limit growth');
  const waiting = [{ mode: LockMode.PW, owner: 'C', requested: { start: 65_536n, end: 69_631n } }];
  t.same(growExtent({ mode: LockMode.PR, owner: 'A', requested: { start: 0n, end: 4095n } }, [], waiting),
    { start: 0n, end: 65_535n }, 'a waiting request above caps the end');
  const many = Array.from({ length: 33 }, (_, i) => ({ mode: LockMode.PR, owner: `B${i}`, extent: { start: 1n << 40n + BigInt(i), end: (1n << 40n) + BigInt(i) } }));
  t.same(growExtent({ mode: LockMode.PW, owner: 'A', requested: { start: 0n, end: 4095n } }, many, []),
    { start: 0n, end: LDLM_MAX_GROWN_EXTENT }, 'more than 32 conflicting locks hold a writer to 32 MiB');
});

t.test('extent growth around waiting requests', async (t) => {
  const req = { mode: LockMode.PR, owner: 'A', requested: { start: 65_536n, end: 69_631n } };
  t.same(growExtent(req, [], [{ mode: LockMode.PW, owner: 'B', requested: { start: 0n, end: 4095n } }]),
    { start: 4096n, end: EOF }, 'grows down only to just above a waiting writer');
  const five = [1, 2, 3, 4, 5].map((i) => ({ mode: LockMode.PW, owner: `B${i}`, requested: { start: BigInt(i) << 30n, end: (BigInt(i) << 30n) + 4095n } }));
  t.same(growExtent(req, [], five), { start: 65_536n, end: (1n << 30n) - 1n }, 'more than 4 contending waiters: no growth downwards');
  t.same(growExtent({ ...req, requested: { start: 0n, end: 4095n } }, [], [{ mode: LockMode.PR, owner: 'A', requested: { start: 1_048_576n, end: 1_052_671n } }]),
    { start: 0n, end: 1_048_575n }, 'the client\'s own waiting request limits growth even in a compatible mode');
  t.same(growExtent(req, [], [{ mode: LockMode.PW, owner: 'B', requested: { start: 69_000n, end: 80_000n } }]),
    { start: 0n, end: EOF }, 'a request that overlaps ours would ping-pong anyway: it does not limit growth');
});

t.test('a conflicting request waits, and the holder gets one blocking callback', async (t) => {
  const { ns, ext } = setup();
  const a = ext('A', LockMode.PR, 0n, 4095n);
  const b = ext('B', LockMode.PW, 8192n, 12287n);
  t.notOk(b.granted, 'A\'s grown extent covers B\'s range');
  t.same(b.blocking.map((l) => l.handle), [a.lock.handle]);
  t.ok(a.lock.flags & LockFlag.AST_SENT);
  t.equal(a.lock.blockingHandle, b.lock.handle);
  t.ok(b.lock.flags & LockFlag.BLOCK_GRANTED);
  const c = ext('C', LockMode.PW, 16384n, 20479n);
  t.same(c.blocking, [], 'AST_SENT: no second callback for A');
  const done = ns.cancel(a.lock.handle);
  t.same(done.granted.map((l) => l.handle), [b.lock.handle, c.lock.handle].slice(0, done.granted.length));
  t.ok(b.lock.grantedMode === LockMode.PW, 'B granted once A cancelled');
  t.equal(ns.stats().blocking_ast_count, 1 + done.blocking.length);
});

t.test('FIFO: a compatible request waits behind an earlier conflicting waiter; others pass', async (t) => {
  const { ns, ext } = setup();
  const a = ext('A', LockMode.PR, 0n, EOF);
  const b = ext('B', LockMode.PW, 0n, 4095n);
  t.notOk(b.granted);
  const c = ext('C', LockMode.PR, 0n, 4095n);
  t.notOk(c.granted, 'C is compatible with A but conflicts with B ahead of it');
  t.ok(c.lock.flags & LockFlag.BLOCK_WAIT);
  const d = ext('D', LockMode.PR, 1_048_576n, 2_097_151n);
  t.ok(d.granted, 'D conflicts with nobody and passes');
  const r1 = ns.cancel(a.lock.handle);
  t.same(r1.granted.map((l) => l.handle), [b.lock.handle]);
  t.same(r1.blocking.map((l) => l.handle), [b.lock.handle], 'B, just granted, is asked at once for C');
  t.notOk(c.lock.grantedMode);
  const r2 = ns.cancel(b.lock.handle);
  t.same(r2.granted.map((l) => l.handle), [c.lock.handle]);
  t.equal(ns.stats().waiting, 0);
});

t.test('GROUP locks: one group shares, and joins ahead of waiters; other locks wait for the group to go', async (t) => {
  const { ns } = setup();
  const g = (owner: string, gid: bigint, mode: LockMode = LockMode.GROUP) =>
    ns.enqueue({ resId: R1, type: LockType.EXTENT, mode, policy: { extent: { start: 0n, end: EOF, gid } }, owner, remoteHandle: remote++ });
  t.ok(g('A', 7n).granted);
  const pw = g('B', 0n, LockMode.PW);
  t.notOk(pw.granted, 'a PW lock waits for the group');
  t.same(pw.blocking.map((l) => l.owner), ['A']);
  t.ok(g('C', 7n).granted, 'the same group joins, ahead of the waiting PW');
  t.notOk(g('D', 8n).granted, 'another group waits');
  ns.evict('A');
  t.notOk(pw.lock.grantedMode, 'C still holds the group');
  ns.evict('C');
  t.equal(pw.lock.grantedMode, LockMode.PW);
});

t.test('BLOCK_NOWAIT fails with EAGAIN and keeps nothing', async (t) => {
  const { ns, ext } = setup();
  ext('A', LockMode.PW, 0n, 4095n);
  const before = ns.locks();
  const b = ext('B', LockMode.PR, 0n, 4095n, { flags: LockFlag.BLOCK_NOWAIT });
  t.equal(b.error, 'EAGAIN');
  t.notOk(b.granted);
  t.equal(ns.locks(), before);
  t.equal(ns.lookup(b.lock.handle), undefined);
});

t.test('a client\'s own locks never block it', async (t) => {
  const { ext } = setup();
  ext('A', LockMode.PR, 0n, EOF);
  const w = ext('A', LockMode.PW, 0n, 4095n);
  t.ok(w.granted);
  t.same(w.blocking, []);
});

t.test('a lock that spares a client passes its locks by, granted or waiting, and calls none of them back; others\' still wait', async (t) => {
  const { ns } = setup();
  const on = (owner: string, mode: LockMode, bits: number, spares?: string) =>
    ns.enqueue({ resId: R2, type: LockType.IBITS, mode, policy: { bits }, owner, remoteHandle: remote++, ...(spares !== undefined && { spares }) });
  const a = on('A', LockMode.PR, InodeBits.UPDATE | InodeBits.PERM);
  t.ok(a.granted);
  const mdt = on('mdt-local-1', LockMode.CW, InodeBits.UPDATE, 'A');
  t.ok(mdt.granted, 'A\'s own update: its lock on the directory stays');
  t.same(mdt.blocking, [], 'and is not called back');
  t.equal(a.lock.grantedMode, LockMode.PR);
  const again = on('A', LockMode.PR, InodeBits.UPDATE);
  t.notOk(again.granted, 'a new lock of A still waits for the update\'s');
  ns.cancel(mdt.lock.handle);
  t.equal(again.lock.grantedMode, LockMode.PR, 'granted once the update is done');
  const other = on('mdt-local-2', LockMode.CW, InodeBits.UPDATE, 'B');
  t.notOk(other.granted, 'sparing B does nothing for A\'s locks');
  t.same(new Set(other.blocking.map((l) => l.owner)), new Set(['A']));
  t.throws(() => on('mdt-local-3', LockMode.CW, InodeBits.UPDATE, ''), { code: 'EINVAL' }, 'spares must name a client');
});

t.test('eviction drops every lock of a client and lets the waiters through', async (t) => {
  const { ns, ext } = setup();
  const a1 = ext('A', LockMode.PW, 0n, 4095n);
  ext('A', LockMode.PW, 0n, 4095n, { resId: R2 });
  const b = ext('B', LockMode.PR, 0n, 4095n);
  t.notOk(b.granted);
  t.equal(ns.locksOf('A').length, 2);
  const r = ns.evict('A');
  t.same(r.granted.map((l) => l.handle), [b.lock.handle]);
  t.same(ns.locksOf('A'), []);
  t.equal(ns.lookup(a1.lock.handle), undefined);
  t.equal(ns.resources(), 1, 'R2 had only A\'s lock: gone with it');
  t.equal(ns.stats().eviction_count, 1);
});

t.test('a lock whose callback is not answered within the lock timeout is overdue; IO under it prolongs', async (t) => {
  const { ns, ext, clock } = setup(1000);
  const a = ext('A', LockMode.PW, 0n, 4095n);
  clock.t = 100;
  ext('B', LockMode.PW, 0n, 4095n);
  t.equal(a.lock.blockingSentAt, 100);
  clock.t = 1100;
  t.same(ns.overdue(), [], 'not before the timeout');
  clock.t = 1101;
  t.same(ns.overdue().map((l) => l.handle), [a.lock.handle]);
  ns.prolong(a.lock.handle);
  t.same(ns.overdue(), [], 'prolonged');
  clock.t = 2200;
  t.same(ns.overdue().map((l) => l.owner), ['A']);
  ns.cancel(a.lock.handle);
  t.same(ns.overdue(), []);
});

t.test('lock replay grants what the client held, conflicts or not', async (t) => {
  const { ns } = setup();
  const req = (owner: string, start: bigint, end: bigint): LockRequest & { grantedMode: LockMode } => ({
    resId: R1, type: LockType.EXTENT, mode: LockMode.PW, grantedMode: LockMode.PW, policy: { extent: { start, end } }, owner, remoteHandle: remote++,
  });
  const a = ns.replay(req('A', 0n, 1_048_575n));
  const b = ns.replay(req('B', 1_048_576n, EOF));
  t.equal(a.grantedMode, LockMode.PW);
  t.same(extentOf(b), { start: 1_048_576n, end: EOF }, 'granted as it was, not grown');
  t.ok(a.flags & LockFlag.REPLAY);
  t.equal(ns.stats().granted, 2);
  t.equal(ns.lookupRemote('B', b.remoteHandle), b);
  const w = ns.enqueue({ resId: R1, type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 0n, end: 4095n } }, owner: 'C', remoteHandle: remote++ });
  t.same(w.blocking.map((l) => l.owner), ['A']);
  const late = ns.replay({ ...req('D', 0n, 4095n), mode: LockMode.EX, grantedMode: LockMode.EX });
  t.ok(hasFlag(late.flags, LockFlag.AST_SENT), 'a replayed lock in a waiter\'s way is owed a blocking callback');
});

t.test('glimpse asks the writer whose lock reaches furthest', async (t) => {
  const { ns } = setup();
  const mk = (owner: string, mode: LockMode, start: bigint, end: bigint) =>
    ns.replay({ resId: R1, type: LockType.EXTENT, mode, policy: { extent: { start, end } }, owner, remoteHandle: remote++ });
  t.equal(ns.glimpseTarget(R1), undefined);
  mk('A', LockMode.PR, 0n, EOF);
  t.equal(ns.glimpseTarget(R1), undefined, 'readers know nothing new');
  mk('B', LockMode.PW, 0n, 1_048_575n);
  const c = mk('C', LockMode.PW, 1_048_576n, EOF);
  t.equal(ns.glimpseTarget(R1), c);
  t.equal(ns.glimpseTarget(R1, 'C')?.owner, 'B', 'not the asker itself');
});

t.test('inodebits: intersecting bits conflict, disjoint pass, try bits only if free', async (t) => {
  const { ns, ibits } = setup();
  const a = ibits('A', LockMode.PR, InodeBits.LOOKUP | InodeBits.UPDATE);
  t.ok(a.granted);
  const b = ibits('B', LockMode.PW, InodeBits.UPDATE);
  t.notOk(b.granted);
  t.same(b.blocking.map((l) => l.owner), ['A']);
  const c = ibits('C', LockMode.EX, InodeBits.LAYOUT);
  t.ok(c.granted, 'disjoint bits');
  const d = ibits('D', LockMode.PR, InodeBits.LOOKUP, InodeBits.LAYOUT | InodeBits.PERM);
  t.ok(d.granted);
  t.same(d.lock.policy, { bits: InodeBits.LOOKUP | InodeBits.PERM }, 'LAYOUT is held by C in EX: not granted');
  const e = ibits('E', LockMode.PW, 0, InodeBits.LAYOUT);
  t.equal(e.error, 'EAGAIN', 'only try bits, all taken');
  ns.cancel(a.lock.handle);
  t.equal(b.lock.grantedMode, LockMode.PW);
});

t.test('plain locks conflict by mode alone', async (t) => {
  const { ns } = setup();
  const p = (owner: string, mode: LockMode) => ns.enqueue({ resId: R2, type: LockType.PLAIN, mode, owner, remoteHandle: remote++ });
  t.ok(p('A', LockMode.CR).granted);
  t.ok(p('B', LockMode.CW).granted);
  t.notOk(p('C', LockMode.PR).granted, 'PR and CW conflict');
  t.ok(p('D', LockMode.NL).granted, 'NL is compatible with every mode');
  const e = p('E', LockMode.CW);
  t.notOk(e.granted, 'CW suits the granted CR and CW, but waits behind C\'s PR (FIFO)');
  t.ok(e.lock.flags & LockFlag.BLOCK_WAIT);
});

t.test('bad requests are EINVAL; a resource keeps one lock type; the lock limit is ENOMEM', async (t) => {
  const { ns, ext } = setup();
  ext('A', LockMode.PR, 0n, 4095n);
  t.throws(() => ns.enqueue({ resId: R1, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: 1 }, owner: 'A', remoteHandle: 1n }), { code: 'EINVAL' });
  t.throws(() => ext('A', LockMode.PR, 10n, 5n), { code: 'EINVAL' });
  t.throws(() => ns.enqueue({ resId: R1, type: LockType.EXTENT, mode: 3 as LockMode, owner: 'A', remoteHandle: 1n }), { code: 'EINVAL' });
  t.throws(() => ns.enqueue({ resId: R1, type: LockType.EXTENT, mode: LockMode.PR, owner: '', remoteHandle: 1n }), { code: 'EINVAL' });
  t.throws(() => ns.enqueue({ resId: R2, type: LockType.FLOCK, mode: LockMode.EX, policy: { flock: { start: 0n, end: 1n, owner: 1n, pid: 1 } }, owner: 'A', remoteHandle: 1n }), { code: 'EINVAL' });
  const small = new Namespace('x', { now: () => 0, maxLocks: 1 });
  small.enqueue({ resId: R1, type: LockType.PLAIN, mode: LockMode.PR, owner: 'A', remoteHandle: 1n });
  t.throws(() => small.enqueue({ resId: R1, type: LockType.PLAIN, mode: LockMode.PR, owner: 'B', remoteHandle: 2n }), { code: 'ENOMEM' });
  const h = new Namespace('y', { now: () => 0, firstHandle: 1n << 40n });
  t.equal(h.enqueue({ resId: R1, type: LockType.PLAIN, mode: LockMode.PR, owner: 'A', remoteHandle: 1n }).lock.handle, 1n << 40n);
  t.same(Object.keys(ns.stats()).slice(0, 4), ['lock_count', 'resource_count', 'granted', 'waiting']);
});

// ---- random sequences ----

const OWNERS = ['A', 'B', 'C', 'D'];
type Op =
  | { op: 'enqueue'; owner: number; res: number; mode: LockMode; a: number; b: number; bits: number; tryBits: number; nowait: boolean }
  | { op: 'cancel'; pick: number }
  | { op: 'evict'; owner: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    op: fc.constant('enqueue' as const), owner: fc.nat({ max: 3 }), res: fc.nat({ max: 2 }),
    mode: fc.constantFrom(LockMode.PR, LockMode.PW, LockMode.EX, LockMode.CR, LockMode.CW, LockMode.GROUP),
    a: fc.nat({ max: 15 }), b: fc.nat({ max: 15 }), bits: fc.integer({ min: 1, max: 0x7f }), tryBits: fc.nat({ max: 0x7f }), nowait: fc.boolean(),
  }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('evict' as const), owner: fc.nat({ max: 3 }) }) },
);

// Resource 0 takes extent locks, 1 inodebits, 2 plain. Independent conflict rules, from the
// matrix in lustre_dlm.h, not from the code under test.
const RES = [resIdOfFid(fid(0x100000000, 10)), resIdOfFid(fid(0x100000000, 11)), resIdOfFid(fid(0x100000000, 12))];
const TYPES = [LockType.EXTENT, LockType.IBITS, LockType.PLAIN];
const COMPAT: Record<number, number> = { 1: 32, 2: 48, 4: 52, 8: 56, 16: 62, 32: 0xff, 64: 96, 128: 160 };
const compat = (a: number, b: number) => (COMPAT[a]! & b) !== 0;

function modelConflict(type: LockType, a: { mode: number; policy?: Policy }, b: { mode: number; policy?: Policy }): boolean {
  if (type === LockType.EXTENT) {
    const x = (a.policy as { extent: { start: bigint; end: bigint; gid?: bigint } }).extent;
    const y = (b.policy as { extent: { start: bigint; end: bigint; gid?: bigint } }).extent;
    if (a.mode === LockMode.GROUP || b.mode === LockMode.GROUP) return !(a.mode === b.mode && (x.gid ?? 0n) === (y.gid ?? 0n));
    return x.start <= y.end && y.start <= x.end && !compat(a.mode, b.mode);
  }
  if (type === LockType.IBITS) {
    const x = (a.policy as { bits: number }).bits;
    const y = (b.policy as { bits: number }).bits;
    if (a.mode === LockMode.GROUP && b.mode === LockMode.GROUP) return false;
    return (x & y) !== 0 && !compat(a.mode, b.mode);
  }
  return !compat(a.mode, b.mode);
}

function request(op: Extract<Op, { op: 'enqueue' }>): LockRequest {
  const type = TYPES[op.res]!;
  const lo = BigInt(Math.min(op.a, op.b)) * 4096n;
  const hi = BigInt(Math.max(op.a, op.b)) * 4096n + 4095n;
  const policy: Policy | undefined = type === LockType.EXTENT ? { extent: { start: lo, end: hi === 15n * 4096n + 4095n ? EOF : hi, gid: BigInt(op.owner % 2) } }
    : type === LockType.IBITS ? { bits: op.bits, tryBits: op.tryBits } : undefined;
  return { resId: RES[op.res]!, type, mode: op.mode, ...(policy ? { policy } : {}), owner: OWNERS[op.owner]!, remoteHandle: remote++, ...(op.nowait ? { flags: LockFlag.BLOCK_NOWAIT } : {}) };
}

function checkInvariants(ns: Namespace): void {
  const st = ns.stats();
  if (st.granted + st.waiting !== st.lock_count) throw new Error(`${st.lock_count} locks but ${st.granted} granted + ${st.waiting} waiting`);
  for (const [i, resId] of RES.entries()) {
    const { granted, waiting } = ns.locksOn(resId);
    const type = TYPES[i]!;
    const held = (l: Lock) => ({ mode: l.grantedMode!, policy: l.policy });
    const asked = (l: Lock) => ({ mode: l.reqMode, policy: l.requestedPolicy });
    for (const [j, x] of granted.entries()) {
      for (const y of granted.slice(j + 1)) {
        if (x.owner !== y.owner && modelConflict(type, held(x), held(y))) {
          throw new Error(`granted locks conflict: ${x.owner} ${x.handle} and ${y.owner} ${y.handle}`);
        }
      }
      if (type === LockType.EXTENT) {
        const g = (x.policy as { extent: { start: bigint; end: bigint } }).extent;
        const r = (x.requestedPolicy as { extent: { start: bigint; end: bigint } }).extent;
        if (g.start > r.start || g.end < r.end) throw new Error('a granted extent smaller than requested');
      }
    }
    for (const [j, w] of waiting.entries()) {
      const byGranted = granted.filter((g) => g.owner !== w.owner && modelConflict(type, held(g), asked(w)));
      const gid = (l: Lock) => (l.requestedPolicy as { extent: { gid?: bigint } }).extent.gid ?? 0n;
      const joins = type === LockType.EXTENT && w.reqMode === LockMode.GROUP
        && granted.some((g) => g.grantedMode === LockMode.GROUP && gid(g) === gid(w));
      const byWaiting = !joins && waiting.slice(0, j).some((e) => e.owner !== w.owner && modelConflict(type, asked(e), asked(w)));
      if (byGranted.length === 0 && !byWaiting) throw new Error(`waiter ${w.handle} could be granted`);
      for (const g of byGranted) if (!(g.flags & LockFlag.AST_SENT)) throw new Error(`holder ${g.handle} blocks a waiter without a callback`);
    }
  }
}

t.test('property: granted locks of different clients never conflict; no waiter could go; blockers are told', async (t) => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
    const ns = new Namespace('mdt-lustre-MDT0000_UUID', { now: () => 0 });
    for (const op of ops) {
      if (op.op === 'enqueue') ns.enqueue(request(op));
      else if (op.op === 'cancel') {
        const all = OWNERS.flatMap((o) => ns.locksOf(o));
        if (all.length > 0) ns.cancel(all[op.pick % all.length]!.handle);
      } else ns.evict(OWNERS[op.owner]!);
      checkInvariants(ns);
    }
  }), { seed, numRuns: 400 });
  t.pass('400 random sequences of enqueue, cancel and evict');
});

t.test('property: every waiter is granted once the holders answer their callbacks', async (t) => {
  fc.assert(fc.property(fc.array(opArb.filter((o) => o.op === 'enqueue'), { minLength: 1, maxLength: 40 }), (ops) => {
    const ns = new Namespace('mdt-lustre-MDT0000_UUID', { now: () => 0 });
    const everGranted = new Set<bigint>();
    const enqueued: bigint[] = [];
    for (const op of ops) {
      const r = ns.enqueue(request({ ...op, nowait: false } as Extract<Op, { op: 'enqueue' }>));
      if (r.error) continue;
      enqueued.push(r.lock.handle);
      if (r.granted) everGranted.add(r.lock.handle);
    }
    // The clients answer: each lock that got a blocking callback is cancelled, round after round.
    for (let round = 0; ns.stats().waiting > 0; round++) {
      if (round > ops.length) throw new Error('waiters left with no holder asked to cancel');
      const asked = OWNERS.flatMap((o) => ns.locksOf(o)).filter((l) => l.grantedMode !== undefined && l.flags & LockFlag.AST_SENT);
      if (asked.length === 0) throw new Error('waiters, but no lock was asked to cancel');
      for (const l of asked) for (const g of ns.cancel(l.handle).granted) everGranted.add(g.handle);
    }
    for (const h of enqueued) if (!everGranted.has(h)) throw new Error(`lock ${h} never granted`);
  }), { seed, numRuns: 300 });
  t.pass('300 random request sets drained');
});

t.test('describeLock reads like LDLM_DEBUG', async (t) => {
  const { ext } = setup();
  const a = ext('client-uuid-1', LockMode.PR, 0n, 4095n);
  t.equal(describeLock(a.lock, 'filter-lustre-OST0000_UUID'),
    `ns: filter-lustre-OST0000_UUID lock: 0x${a.lock.handle.toString(16)} mode: PR/PR res: [0x100000000:0x1:0x0].0x0 `
    + `type: EXT [0->18446744073709551615] (req 0->4095) flags: 0x1 owner: client-uuid-1 remote: 0x${a.lock.remoteHandle.toString(16)}`);
});
