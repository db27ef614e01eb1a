// POSIX and BSD locks of applications (FLOCK): split, merge, unlock, F_GETLK, EAGAIN, waiting
// and deadlock detection; and an owner's lock set against a byte-map model.
import fc from 'fast-check';
import t from 'tap';
import {
  bsdFlockPolicy, flockApply, LockFlag, LockMode, LockType, Namespace, OBD_OBJECT_EOF, resIdOfFid, type Lock, type ResId,
} from '../../src/ldlm/index.js';
import { fid } from '../../src/osd/index.js';

const seed = Number(process.env.LDLM_SEED ?? Date.now() % 1_000_000);
t.comment(`fast-check seed ${seed} (LDLM_SEED reproduces)`);

const F1 = resIdOfFid(fid(0x200000401, 1));
const F2 = resIdOfFid(fid(0x200000401, 2));
const F3 = resIdOfFid(fid(0x200000401, 3));
let remote = 1n;

function setup() {
  const ns = new Namespace('mdt-lustre-MDT0000_UUID', { now: () => 0 });
  // An owner is "client:owner", e.g. 'A:1' is flock owner 1 on client A.
  const lk = (who: string, mode: LockMode, start: bigint, end: bigint, opts: { flags?: number; res?: ResId; pid?: number } = {}) => {
    const [client, owner] = who.split(':');
    return ns.enqueue({
      resId: opts.res ?? F1, type: LockType.FLOCK, mode, owner: client!, remoteHandle: remote++,
      policy: { flock: { start, end, owner: BigInt(owner!), pid: opts.pid ?? 100 } }, ...(opts.flags ? { flags: opts.flags } : {}),
    });
  };
  const ranges = (who: string, res: ResId = F1) => {
    const [client, owner] = who.split(':');
    return ns.locksOn(res).granted
      .filter((l) => l.owner === client && (l.policy as { flock: { owner: bigint } }).flock.owner === BigInt(owner!))
      .map((l) => {
        const f = (l.policy as { flock: { start: bigint; end: bigint } }).flock;
        return `${l.grantedMode === LockMode.PW ? 'W' : 'R'}${f.start}-${f.end === OBD_OBJECT_EOF ? 'EOF' : f.end}`;
      })
      .sort();
  };
  return { ns, lk, ranges };
}

t.test('an owner\'s locks split, merge and unlock', async (t) => {
  const { ns, lk, ranges } = setup();
  t.ok(lk('A:1', LockMode.PR, 0n, 99n).granted);
  t.ok(lk('A:1', LockMode.PW, 40n, 59n).granted, 'the owner\'s own read lock does not block its write lock');
  t.same(ranges('A:1'), ['R0-39', 'R60-99', 'W40-59'], 'the read lock split around the write lock');
  lk('A:1', LockMode.PR, 40n, 59n);
  t.same(ranges('A:1'), ['R0-99'], 'back to read: merged into one');
  lk('A:1', LockMode.PR, 100n, 199n);
  t.same(ranges('A:1'), ['R0-199'], 'touching ranges of one mode merge');
  lk('A:1', LockMode.NL, 50n, 149n);
  t.same(ranges('A:1'), ['R0-49', 'R150-199'], 'unlock in the middle splits');
  lk('A:1', LockMode.NL, 0n, OBD_OBJECT_EOF);
  t.same(ranges('A:1'), []);
  t.equal(ns.locks(), 0);
  t.equal(ns.resources(), 0);
});

t.test('owners: readers share, a writer excludes; F_GETLK tells who', async (t) => {
  const { ns, lk } = setup();
  lk('A:1', LockMode.PR, 0n, 99n, { pid: 11 });
  t.ok(lk('B:1', LockMode.PR, 50n, 149n).granted, 'two readers');
  t.ok(lk('A:2', LockMode.PW, 200n, 299n, { pid: 12 }).granted, 'another owner on the same client, another range');
  const test = lk('C:1', LockMode.PW, 250n, 260n, { flags: LockFlag.TEST_LOCK });
  t.equal(test.conflict?.owner, 'A');
  t.equal(test.lock.reqMode, LockMode.PW, 'the conflicting lock\'s mode');
  t.same(test.lock.policy, { flock: { start: 200n, end: 299n, owner: 2n, pid: 12 } }, 'its range and pid');
  const free = lk('C:1', LockMode.PW, 300n, 400n, { flags: LockFlag.TEST_LOCK });
  t.equal(free.lock.reqMode, LockMode.NL, 'nothing in the way: F_UNLCK');
  t.equal(free.conflict, undefined);
  const before = ns.locks();
  t.equal(lk('C:1', LockMode.PW, 90n, 95n, { flags: LockFlag.BLOCK_NOWAIT }).error, 'EAGAIN', 'F_SETLK on a read-locked range');
  t.equal(ns.locks(), before, 'a test or a refused request leaves nothing');
});

t.test('a waiter is granted when the holder unlocks; an unlock withdraws an equal waiter', async (t) => {
  const { lk, ranges } = setup();
  lk('A:1', LockMode.PW, 0n, 99n);
  const b = lk('B:1', LockMode.PR, 10n, 19n);
  t.notOk(b.granted);
  t.same(b.blocking, [], 'no blocking callbacks for flocks');
  t.ok(b.lock.flags & LockFlag.BLOCK_GRANTED);
  const c = lk('C:1', LockMode.PW, 50n, 59n);
  t.notOk(c.granted);
  const gone = lk('C:1', LockMode.NL, 50n, 59n);
  t.same(gone.aborted.map((l) => l.handle), [c.lock.handle], 'an interrupted F_SETLKW');
  const un = lk('A:1', LockMode.PR, 0n, 99n);
  t.same(un.completions.map((l) => l.handle), [b.lock.handle], 'a downgrade to read lets the reader in');
  t.same(ranges('B:1'), ['R10-19']);
});

t.test('deadlock: a 2-cycle and a 3-cycle are refused with EDEADLK, across files too', async (t) => {
  const { ns, lk } = setup();
  lk('A:1', LockMode.PW, 0n, 9n);
  lk('B:1', LockMode.PW, 10n, 19n);
  t.notOk(lk('A:1', LockMode.PW, 10n, 19n).granted, 'A waits for B');
  const dl = lk('B:1', LockMode.PW, 0n, 9n);
  t.equal(dl.error, 'EDEADLK', 'B waiting for A closes the cycle');
  t.ok(dl.lock.flags & LockFlag.FLOCK_DEADLOCK);

  lk('C:1', LockMode.PW, 0n, 9n, { res: F2 });
  lk('D:1', LockMode.PW, 10n, 19n, { res: F2 });
  lk('E:1', LockMode.PW, 0n, 9n, { res: F3 });
  t.notOk(lk('C:1', LockMode.PW, 10n, 19n, { res: F2 }).granted, 'C waits for D');
  t.notOk(lk('D:1', LockMode.PW, 0n, 9n, { res: F3 }).granted, 'D waits for E, on another file');
  const three = lk('E:1', LockMode.PW, 0n, 9n, { res: F2 });
  t.equal(three.error, 'EDEADLK', 'E waiting for C closes C -> D -> E -> C');
  t.notOk(lk('F:1', LockMode.PW, 0n, 9n, { res: F2 }).granted, 'F waiting for C is no cycle: it waits');
  t.equal(ns.stats().waiting, 4, 'A, C, D and F wait; the refused ones left nothing');
});

t.test('BSD flock() locks are whole-file and exclude POSIX locks of others', async (t) => {
  const { ns } = setup();
  const p = bsdFlockPolicy(0xf11en, 7);
  t.same(p, { start: 0n, end: OBD_OBJECT_EOF, owner: 0xf11en, pid: 7 });
  t.ok(ns.enqueue({ resId: F1, type: LockType.FLOCK, mode: LockMode.PW, policy: { flock: p }, owner: 'A', remoteHandle: 1n }).granted);
  const posix = ns.enqueue({ resId: F1, type: LockType.FLOCK, mode: LockMode.PR, policy: { flock: { start: 1n << 40n, end: 1n << 40n, owner: 5n, pid: 8 } }, owner: 'B', remoteHandle: 2n, flags: LockFlag.BLOCK_NOWAIT });
  t.equal(posix.error, 'EAGAIN');
});

t.test('eviction releases a client\'s flocks and grants the waiters', async (t) => {
  const { ns, lk } = setup();
  lk('A:1', LockMode.PW, 0n, 99n);
  lk('A:2', LockMode.PW, 100n, 199n);
  const b = lk('B:1', LockMode.PW, 0n, 199n);
  t.notOk(b.granted);
  const r = ns.evict('A');
  t.same(r.granted.map((l: Lock) => l.handle), [b.lock.handle]);
  t.same(ns.locksOf('A'), []);
});

t.test('flockApply on the edges: EOF and offset 0', async (t) => {
  const piece = (start: bigint, end: bigint, mode: LockMode, item: string) => ({ start, end, mode, item });
  t.same(flockApply([piece(0n, OBD_OBJECT_EOF, LockMode.PR, 'a')], piece(0n, 0n, LockMode.PW, 'n')),
    [piece(0n, 0n, LockMode.PW, 'n'), piece(1n, OBD_OBJECT_EOF, LockMode.PR, 'a')]);
  t.same(flockApply([piece(0n, 9n, LockMode.PW, 'a')], piece(10n, OBD_OBJECT_EOF, LockMode.PW, 'n')),
    [piece(0n, OBD_OBJECT_EOF, LockMode.PW, 'n')], 'merged, the new lock absorbs the old');
  t.same(flockApply([piece(5n, OBD_OBJECT_EOF, LockMode.PR, 'a')], piece(0n, OBD_OBJECT_EOF, LockMode.NL, 'n')), []);
});

// ---- the byte-map model ----

const SIZE = 48;
const ownersArb = fc.constantFrom('A:1', 'A:2', 'B:1');
const opArb = fc.record({
  who: ownersArb, mode: fc.constantFrom(LockMode.PR, LockMode.PW, LockMode.NL), a: fc.nat({ max: SIZE - 1 }), b: fc.nat({ max: SIZE - 1 }),
});

t.test('property: each owner\'s locks equal a byte-map model, merged as far as they go', async (t) => {
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 50 }), (ops) => {
    const { lk, ranges } = setup();
    const model = new Map<string, string[]>(['A:1', 'A:2', 'B:1'].map((o) => [o, Array<string>(SIZE).fill('')]));
    for (const op of ops) {
      const lo = Math.min(op.a, op.b);
      const hi = Math.max(op.a, op.b);
      const r = lk(op.who, op.mode, BigInt(lo), BigInt(hi), { flags: LockFlag.BLOCK_NOWAIT });
      const want = op.mode === LockMode.PW ? 'W' : op.mode === LockMode.PR ? 'R' : '';
      let conflict = false;
      for (const [o, bytes] of model) {
        if (o === op.who) continue;
        for (let i = lo; i <= hi; i++) if (want !== '' && bytes[i] !== '' && (bytes[i] === 'W' || want === 'W')) conflict = true;
      }
      if (conflict !== (r.error === 'EAGAIN')) throw new Error(`${op.who} ${want || 'U'}${lo}-${hi}: model conflict ${conflict}, got ${r.error}`);
      if (!conflict) for (let i = lo; i <= hi; i++) model.get(op.who)![i] = want;
      for (const [o, bytes] of model) {
        const runs: string[] = [];
        for (let i = 0; i < SIZE; ) {
          if (bytes[i] === '') { i++; continue; }
          let j = i;
          while (j + 1 < SIZE && bytes[j + 1] === bytes[i]) j++;
          runs.push(`${bytes[i]}${i}-${j}`);
          i = j + 1;
        }
        const got = ranges(o);
        if (JSON.stringify(got) !== JSON.stringify(runs.sort())) throw new Error(`${o}: locks ${JSON.stringify(got)}, model ${JSON.stringify(runs)}`);
      }
    }
  }), { seed, numRuns: 400 });
  t.pass('400 random sequences of lock, relock and unlock');
});

t.test('property: with waiting requests, granted flocks never conflict and no waiter could go', async (t) => {
  const blockingOp = fc.record({ op: opArb, nowait: fc.boolean() });
  fc.assert(fc.property(fc.array(blockingOp, { minLength: 1, maxLength: 40 }), (ops) => {
    const { ns, lk } = setup();
    const key = (l: Lock) => `${l.owner}:${(l.policy as { flock: { owner: bigint } }).flock.owner}`;
    const range = (l: Lock) => (l.policy as { flock: { start: bigint; end: bigint } }).flock;
    const clash = (x: Lock, y: Lock, yMode: LockMode) => key(x) !== key(y) && range(x).start <= range(y).end && range(y).start <= range(x).end
      && (x.grantedMode === LockMode.PW || yMode === LockMode.PW);
    for (const { op, nowait } of ops) {
      // A waiting owner is a blocked process: it makes no other request.
      const [client, owner] = op.who.split(':');
      if (ns.locksOn(F1).waiting.some((w) => w.owner === client && (w.requestedPolicy as { flock: { owner: bigint } }).flock.owner === BigInt(owner!))) continue;
      const lo = BigInt(Math.min(op.a, op.b));
      const hi = BigInt(Math.max(op.a, op.b));
      lk(op.who, op.mode, lo, hi, nowait ? { flags: LockFlag.BLOCK_NOWAIT } : {});
      const { granted, waiting } = ns.locksOn(F1);
      for (const [i, x] of granted.entries()) {
        for (const y of granted.slice(i + 1)) if (clash(x, y, y.grantedMode!)) throw new Error('granted flocks conflict');
      }
      for (const w of waiting) {
        const asked = { ...w, policy: w.requestedPolicy } as Lock;
        if (!granted.some((g) => clash(g, asked, w.reqMode))) throw new Error('a flock waiter could be granted');
      }
    }
  }), { seed, numRuns: 300 });
  t.pass('300 random sequences with waiting requests');
});
