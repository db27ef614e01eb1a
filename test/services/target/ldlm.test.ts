// TargetLdlm's local locks (src/services/target/ldlm.ts) without a network: ordering keeps
// concurrent updates free of deadlock and of overlap, waits are bounded, stop ends them.
import t from 'tap';
import { Subject } from 'rxjs';
import { InodeBits, LockMode, LockType, resIdOfFid } from '../../../src/ldlm/index.js';
import type { Network, Service } from '../../../src/ptlrpc/index.js';
import { TargetLdlm, type LocalLockSpec } from '../../../src/services/target/index.js';
import { prng, seedFrom } from '../../lib/prng.js';

function ldlm(lockTimeoutMs: number): TargetLdlm {
  const service = {
    exports: { byUuid: () => undefined, byHandle: () => undefined }, evictions$: new Subject(), disconnects$: new Subject(), evict: () => false,
  } as unknown as Service<never>;
  const ni = { attach: () => ({ id: 1, unlink() {} }), events$: new Subject() } as unknown as Network;
  const l = new TargetLdlm({ ni, name: 'mdt-test-MDT0000_UUID', service, lockTimeoutMs, log: () => {} });
  return l;
}

const ex = (oid: number, bits: number): LocalLockSpec => ({
  resId: resIdOfFid({ seq: 0x200000400, oid, ver: 0 }), type: LockType.IBITS, mode: LockMode.EX, policy: { bits },
});

t.test('randomized: concurrent updates over random objects never deadlock nor overlap', async (t) => {
  const seed = seedFrom('LDLM_TARGETS_SEED');
  t.comment(`seed ${seed} (LDLM_TARGETS_SEED=${seed} reproduces it)`);
  const r = prng(seed);
  // Waits are short when locks are taken in order; a deadlock would end in ETIMEDOUT after 4 s.
  const l = ldlm(2000);
  t.teardown(() => l.stop());
  const holders = new Map<number, number>(); // oid -> holders of its UPDATE bit now
  let overlaps = 0;
  const update = async (): Promise<void> => {
    // Each update names its objects in a random order, as parent/child orders differ per op.
    const oids = [...new Set(Array.from({ length: 1 + r.int(3) }, () => r.int(6)))];
    const release = await l.lock(oids.map((o) => ex(o, InodeBits.UPDATE)));
    for (const o of oids) {
      holders.set(o, (holders.get(o) ?? 0) + 1);
      if (holders.get(o)! > 1) overlaps++;
    }
    await new Promise((resolve) => setTimeout(resolve, r.int(3)));
    for (const o of oids) holders.set(o, holders.get(o)! - 1);
    release();
  };
  await Promise.all(Array.from({ length: 200 }, () => update()));
  t.equal(overlaps, 0, 'no two updates held one object at once');
  t.equal(l.namespace.locks(), 0, 'every lock given back');
  t.equal(l.counters.localTimeouts, 0);
  t.ok(l.counters.localWaited > 0, 'updates did wait for each other');
});

t.test('locks of one call on one object become one; bits that do not overlap do not wait', async (t) => {
  const l = ldlm(60_000);
  t.teardown(() => l.stop());
  const a = await l.lock([ex(1, InodeBits.UPDATE), ex(1, InodeBits.LOOKUP), ex(2, InodeBits.UPDATE)]);
  t.equal(l.namespace.locks(), 2, 'two objects, two locks');
  t.same(l.namespace.locksOn(ex(1, 0).resId).granted[0]?.policy, { bits: InodeBits.UPDATE | InodeBits.LOOKUP }, 'bits joined');
  const b = await l.lock([ex(1, InodeBits.XATTR)]);
  t.equal(l.counters.localWaited, 0, 'XATTR beside UPDATE|LOOKUP: granted at once');
  a();
  b();
  t.equal(l.namespace.locks(), 0);
});

t.test('a local lock waits at most twice the lock timeout; stop ends the waits', async (t) => {
  const l = ldlm(50);
  const held = await l.lock([ex(1, InodeBits.UPDATE)]);
  await t.rejects(l.lock([ex(2, InodeBits.UPDATE), ex(1, InodeBits.UPDATE)]), { code: 'ETIMEDOUT' });
  t.equal(l.namespace.locks(), 1, 'the timed-out call holds nothing (its lock on object 2 went too)');
  t.equal(l.counters.localTimeouts, 1);
  const waiting = l.lock([ex(1, InodeBits.UPDATE)]);
  l.stop();
  await t.rejects(waiting, { code: 'ESHUTDOWN' });
  await t.rejects(l.lock([ex(3, InodeBits.UPDATE)]), { code: 'ESHUTDOWN' }, 'nothing is taken once stopped');
  held();
});
