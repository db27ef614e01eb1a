// Lock replay after a server restart (LdlmClient's replay step on the import, LdlmService's
// LDLM_FL_REPLAY enqueues, the recovery's lock phase): a real MDT in this process over TCP on
// loopback, stopped without its clients disconnecting and mounted again on the same NI with a
// TargetRecovery of the clients its last_rcvd recorded, as a restarted target is.
import t, { type Test } from 'tap';
import { alive } from '../../src/control/rundir.js';
import { join } from 'node:path';
import { mount } from '../../src/client/index.js';
import { formatTarget } from '../../src/services/target/index.js';
import { kernelDirs, runTool } from '../lib/tools.js';
import type { Mdc } from '../../src/client/mdc.js';
import { Osc } from '../../src/client/osc.js';
import {
  CallbackService, encodeOstLvb, InodeBits, LdlmClient, LockFlag, LockMode, LockType, OBD_OBJECT_EOF, resIdOfFid,
  type ClientLock, type LdlmClientHooks,
} from '../../src/ldlm/index.js';
import { LNetNI, userspacePid } from '../../src/lnet/index.js';
import { parseFid } from '../../src/osd/index.js';
import { TargetRecovery, type PtlrpcError } from '../../src/ptlrpc/index.js';
import { startMdtWith, type RunningMdt } from '../../src/services/mdt/index.js';
import { createOst, FID_SEQ_OST_MDT0, objectResId, type RunningOst } from '../../src/services/ost/index.js';
import { until } from '../lib/net.js';
import { connectMdc, freePort, hosts, mdtMountdata, newDir, openNode, ostMountdata, removeDir, type Node } from '../services/mdt/helpers.js';

const quiet = () => {};
const LOCK_TIMEOUT_MS = 3000;
const PR_BITS = InodeBits.LOOKUP | InodeBits.UPDATE | InodeBits.PERM;
/** Long enough that nobody is evicted by the window in these tests; the clients come back at once. */
const WINDOW = { softMs: 20_000, hardMs: 60_000 };

let salt = 0;

interface Client {
  uuid: string;
  mdc: Mdc;
  locks: LdlmClient;
  /** What the `evicted` hook was told. */
  lost: ClientLock[];
  /** What the `replayRefused` hook was told. */
  refused: ClientLock[];
}

interface Mdt {
  node: Node;
  mdt: RunningMdt;
  recovery: TargetRecovery;
}

interface Setup {
  mdt(): Mdt;
  /**
   * Stops the MDT as a crash would leave its clients (no disconnect), and mounts it again with
   * recovery; the clients connected (or `opts.clients`) reconnect and replay.
   */
  restart(opts?: { beforeClients?: (m: Mdt) => void; window?: typeof WINDOW; clients?: Client[] }): Promise<Mdt>;
  /** Stops the MDT and mounts it again with recovery; nobody is told. */
  crash(): Promise<Mdt>;
  client(uuid: string, hooks?: LdlmClientHooks): Promise<Client>;
  root: string;
}

async function startMdt(dir: string, nid: string, port: number, ni?: LNetNI, window = WINDOW): Promise<Mdt> {
  const node = await openNode(dir, nid, port, mdtMountdata(), {}, ni);
  const recovery = new TargetRecovery(node.ctx.replyStore.clients(), node.ctx.replyStore.lastTransno(), window);
  node.ctx.recovery = recovery;
  const mdt = await startMdtWith(node.ctx, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  return { node, mdt, recovery };
}

async function stopMdt(m: Mdt): Promise<void> {
  // The service first: a client whose queued replays recovery drops must find no MDT to
  // reconnect to, as after a crash (a reconnect to this instance would find it out of recovery).
  await m.mdt.stop({ force: false });
  m.recovery.close();
  await m.node.osd.close();
}

async function setup(t: Test): Promise<Setup> {
  const port = await freePort();
  const [mdtNid, ...clientNids] = hosts(5, 40 + salt++).map((h) => `${h}@tcp`);
  const dir = await newDir('ldlm-replay-');
  t.teardown(() => removeDir(dir));
  let current = await startMdt(dir, mdtNid!, port);
  const ni = current.node.ni;
  t.teardown(async () => {
    await stopMdt(current);
    await ni.stop();
  });
  const clients: Client[] = [];
  const client = async (uuid: string, hooks: LdlmClientHooks = {}): Promise<Client> => {
    const cni = await LNetNI.start({ nid: clientNids[clients.length]!, port, pid: userspacePid(32_000 + clients.length), warn: quiet });
    t.teardown(() => cni.stop());
    const mdc = await connectMdc(cni, ni.nid, uuid);
    t.teardown(() => mdc.disconnect());
    const callbacks = CallbackService.of(cni);
    t.teardown(() => callbacks.stop());
    const lost: ClientLock[] = [];
    const refused: ClientLock[] = [];
    const locks = new LdlmClient(mdc.import, callbacks, { ...hooks, evicted: (l) => void lost.push(...l), replayRefused: (l) => void refused.push(...l) });
    t.teardown(() => locks.close());
    const c = { uuid, mdc, locks, lost, refused };
    clients.push(c);
    return c;
  };
  const first = await client('replay-setup');
  const root = await first.mdc.root();
  await first.mdc.disconnect(); // a clean disconnect: recovery does not wait for it
  return {
    mdt: () => current,
    async crash() {
      await stopMdt(current);
      current = await startMdt(dir, mdtNid!, port, ni);
      return current;
    },
    async restart(opts = {}) {
      await stopMdt(current);
      current = await startMdt(dir, mdtNid!, port, ni, opts.window);
      opts.beforeClients?.(current);
      // The clients notice the restart (their pingers are off here): they reconnect and replay.
      const live = opts.clients ?? clients.filter((c) => c.mdc.import.state === 'full');
      for (const c of live) c.mdc.import.forceReconnect();
      await until('recovery over', () => current.recovery.figures().status === 'COMPLETE');
      await until('clients back', () => live.every((c) => c.mdc.import.state === 'full'));
      return current;
    },
    client,
    root,
  };
}

const flockPolicy = (owner: bigint, pid: number, start: bigint, end: bigint) => ({ flock: { start, end, owner, pid } });

t.test('a PR ibits lock and a flock survive an MDT restart: replayed, still exclusive, still revoked by a setattr', async (t) => {
  const s = await setup(t);
  const events: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await s.client('replay-client-1', {
    blocking: async (lock) => {
      events.push('c1 blocking callback');
      await c1Locks.cancel([lock]);
    },
  });
  c1Locks = c1.locks;
  const c2 = await s.client('replay-client-2');
  const file = await c1.mdc.create(s.root, 'f', 0o100644);
  const resId = resIdOfFid(parseFid(file.fid));
  const pr = await c1.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const fl = await c1.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(7n, 100, 0n, 99n) });
  c1.locks.forgetLocal([fl]); // as llite does: the flock table, not the entry, is what is replayed
  t.equal(s.mdt().mdt.ldlm.stats().lock_count, 2, 'the MDT holds both locks before the restart');
  const oldRemote = pr.remoteHandle;

  const m = await s.restart();
  const ns = m.mdt.ldlm.namespace;
  t.equal(m.recovery.figures().evicted, 0, 'nobody was evicted');
  t.equal(m.recovery.figures().locksReplayed, 2, 'two lock replays ran in the lock phase');
  t.equal(m.mdt.ldlm.stats().lock_count, 2, 'lock_count: both locks are back');
  t.equal(ns.locksOf('replay-client-1').length, 2);
  const back = ns.lookupRemote('replay-client-1', pr.handle);
  t.ok(back, 'the PR lock is known by the client\'s cookie');
  t.equal(back?.grantedMode, LockMode.PR);
  t.ok(hasFlag(back?.flags ?? 0, LockFlag.REPLAY), 'flagged as replayed');
  t.not(pr.remoteHandle, oldRemote, 'the client has the new server cookie');
  t.equal(pr.remoteHandle, back?.handle);
  t.equal(c1.locks.lookup(pr.handle), pr, 'the client still holds its lock');
  t.same([...c1.lost, ...c1.refused], [], 'nothing was lost');
  t.same(c1.locks.flocks().map((f) => [f.owner, f.start, f.end, f.mode]), [[7n, 0n, 99n, LockMode.PW]]);

  // Another client's conflicting flock is refused as before the restart.
  const err = await c2.locks.enqueue({
    resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(9n, 200, 50n, 60n), flags: LockFlag.BLOCK_NOWAIT,
  }).then(() => undefined, (e: PtlrpcError) => e);
  t.equal(err?.code, 'EAGAIN', 'a conflicting flock of client 2 gets EAGAIN');
  const free = await c2.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(9n, 200, 100n, 199n), flags: LockFlag.BLOCK_NOWAIT });
  t.equal(free.mode, LockMode.PW, 'a flock beside it is granted');

  // A setattr of client 2 still revokes client 1's PR lock.
  await c2.mdc.setattr(file.fid, { mode: 0o600 });
  events.push('c2 setattr done');
  t.same(events, ['c1 blocking callback', 'c2 setattr done'], 'the blocking callback reached client 1 before the setattr was answered');
  t.equal(c1.locks.lookup(pr.handle), undefined, 'client 1 gave the PR lock back');
  t.equal(ns.lookupRemote('replay-client-1', pr.handle), undefined);

  // The flock's unlock works on the replayed lock.
  const unlock = await c1.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.NL, policy: flockPolicy(7n, 100, 0n, OBD_OBJECT_EOF) });
  c1.locks.forgetLocal([unlock]);
  t.same(c1.locks.flocks(), [], 'the client holds no flock');
  const now = await c2.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(9n, 200, 50n, 60n), flags: LockFlag.BLOCK_NOWAIT });
  t.equal(now.mode, LockMode.PW, 'client 2 takes the range once client 1 unlocked it');
});

t.test('a replayed lock that conflicts with one replayed before is refused: the client drops it and is told', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('refused-client');
  const file = await c1.mdc.create(s.root, 'g', 0o100644);
  const resId = resIdOfFid(parseFid(file.fid));
  const pr = await c1.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const other = await c1.mdc.create(s.root, 'h', 0o100644);
  const kept = await c1.locks.enqueue({ resId: resIdOfFid(parseFid(other.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const fl = await c1.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PR, policy: flockPolicy(3n, 30, 0n, 9n) });
  c1.locks.forgetLocal([fl]);

  // Before the client is back, another owner's EX lock and write flock stand on the file (as
  // if another client had replayed them first).
  const m = await s.restart({ beforeClients: (m) => {
    m.mdt.ldlm.namespace.replay({ resId, type: LockType.IBITS, mode: LockMode.EX, policy: { bits: InodeBits.UPDATE }, owner: 'ghost', remoteHandle: 1n });
    m.mdt.ldlm.namespace.replay({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(1n, 1, 5n, 5n), owner: 'ghost', remoteHandle: 2n });
  } });
  t.equal(c1.locks.lookup(pr.handle), undefined, 'the conflicting lock is dropped');
  t.equal(c1.locks.lookup(kept.handle), kept, 'the other lock is kept');
  t.same(c1.refused.map((l) => [l.type, l.mode]).sort(), [[LockType.IBITS, LockMode.PR], [LockType.FLOCK, LockMode.PR]].sort(),
    'the replayRefused hook is told of both refused locks');
  t.same(c1.lost, [], 'no eviction');
  t.same(c1.locks.flocks(), [], 'the refused flock is gone from the client');
  t.equal(m.mdt.ldlm.service.counters.replayRefused, 2);
  t.same(m.mdt.ldlm.namespace.locksOf('refused-client').map((l) => l.handle), [kept.remoteHandle], 'the server holds only the kept lock');
});

t.test('an enqueue waiting for its grant when the MDT restarts is sent again and granted once the holder gives its lock back', async (t) => {
  const s = await setup(t);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let c1Locks!: LdlmClient;
  let blocking = 0;
  const c1 = await s.client('holder-client', {
    blocking: async (lock) => {
      blocking++;
      await released;
      await c1Locks.cancel([lock]);
    },
  });
  c1Locks = c1.locks;
  const c2 = await s.client('waiter-client');
  const file = await c1.mdc.create(s.root, 'w', 0o100644);
  const resId = resIdOfFid(parseFid(file.fid));
  const pr = await c1.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const waiting = c2.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.EX, policy: { bits: InodeBits.UPDATE } });
  await until('the holder is asked and the waiter told to wait', () => blocking === 1 && c2.locks.counters.waited === 1);
  const m = await s.restart();
  await until('the waiter is enqueued again', () => m.mdt.ldlm.namespace.locksOf('waiter-client').length === 1);
  t.equal(c2.locks.counters.requeued, 1, 'the waiting enqueue was sent again');
  t.equal(m.mdt.ldlm.namespace.lookupRemote('holder-client', pr.handle)?.grantedMode, LockMode.PR, 'the holder\'s lock was replayed');
  release();
  const ex = await waiting;
  t.equal(ex.mode, LockMode.EX, 'the waiter is granted');
  t.equal(m.mdt.ldlm.namespace.lookupRemote('waiter-client', ex.handle)?.handle, ex.remoteHandle, 'under its new server cookie');
  t.equal(c1.locks.lookup(pr.handle), undefined);
});

t.test('a client evicted by recovery (it came back too late) has no locks, on the server nor at home', async (t) => {
  const s = await setup(t);
  const late = await s.client('late-client');
  const prompt = await s.client('prompt-client');
  const file = await late.mdc.create(s.root, 'l', 0o100644);
  const resId = resIdOfFid(parseFid(file.fid));
  const pr = await late.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const fl = await late.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(4n, 40, 0n, OBD_OBJECT_EOF) });
  late.locks.forgetLocal([fl]);
  const kept = await prompt.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.LOOKUP } });

  // Only the prompt client comes back within the window; the late one is evicted at its soft limit.
  const m = await s.restart({ window: { softMs: 300, hardMs: 5000 }, clients: [prompt] });
  t.equal(m.recovery.figures().evicted, 1, 'recovery evicted the late client');
  t.same(m.mdt.ldlm.namespace.locksOf('late-client'), [], 'the server holds none of its locks');
  t.equal(m.mdt.ldlm.namespace.lookupRemote('prompt-client', kept.handle)?.grantedMode, LockMode.PR, 'the prompt client\'s lock was replayed');

  late.mdc.import.forceReconnect();
  await until('the late client learns it was evicted', () => late.mdc.import.state === 'full' && late.lost.length > 0);
  t.equal(late.mdc.import.counters.evictions, 1);
  t.same(late.lost.map((l) => l.handle), [pr.handle], 'the evicted hook is told of the lock it lost');
  t.same(late.locks.locks(), [], 'the client holds no lock');
  t.same(late.locks.flocks(), [], 'nor any flock');
  const fresh = await late.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(5n, 50, 0n, 9n), flags: LockFlag.BLOCK_NOWAIT });
  t.equal(fresh.mode, LockMode.PW, 'its old flock is gone from the MDT: a new one is granted');
});

t.test('the MDT restarting again while a client\'s lock replays wait: they are replayed anew to the next instance', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('again-client-1');
  const c2 = await s.client('again-client-2');
  const file = await c1.mdc.create(s.root, 'a', 0o100644);
  const resId = resIdOfFid(parseFid(file.fid));
  const pr = await c1.locks.enqueue({ resId, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
  const fl = await c1.locks.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PR, policy: flockPolicy(6n, 60, 0n, 9n) });
  c1.locks.forgetLocal([fl]);

  const first = await s.crash();
  c1.mdc.import.forceReconnect();
  // Client 2 has not come back: client 1's lock replays wait for the lock phase.
  await until('client 1\'s lock replays are queued', () => first.recovery.figures().locksQueued === 2);
  t.equal(first.mdt.ldlm.stats().lock_count, 0, 'none has run');
  const second = await s.crash();
  await until('client 1 replays to the next instance', () => second.recovery.figures().locksQueued === 2);
  c2.mdc.import.forceReconnect();
  await until('recovery over', () => second.recovery.figures().status === 'COMPLETE');
  await until('client 1 is back', () => c1.mdc.import.state === 'full');
  t.equal(second.recovery.figures().evicted, 0, 'nobody was evicted');
  t.equal(second.mdt.ldlm.namespace.lookupRemote('again-client-1', pr.handle)?.handle, pr.remoteHandle, 'the PR lock is held, under its new cookie');
  t.equal(second.mdt.ldlm.namespace.locksOf('again-client-1').length, 2, 'and the flock');
  t.equal(c1.locks.counters.replayed, 2, 'each replayed once it was answered');
  t.same([...c1.lost, ...c1.refused], [], 'nothing lost');
  t.equal(c1.locks.lookup(pr.handle), pr);
});

t.test('TargetRecovery runs lock replays only once no client may still replay a request', async (t) => {
  const r = new TargetRecovery(['a', 'b', 'c'], 10n, { softMs: 60_000, hardMs: 60_000 });
  t.teardown(() => r.close());
  const order: string[] = [];
  const lockReplay = (key: string) => r.enqueueLock(key, async () => void order.push(`${key} lock`), () => void order.push(`${key} dropped`));
  r.connected('a');
  r.connected('b');
  r.connected('c');
  lockReplay('a');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(order, [], 'a\'s lock replay waits while b and c may replay requests');
  t.match(r.formatStatus(), /lock_repay_clients: 1/);
  r.enqueue('b', 11n, async () => {
    order.push('b 11');
    return { failed: false };
  }, () => void order.push('b 11 dropped'));
  await until('b\'s request replayed', () => order.includes('b 11'));
  lockReplay('b');
  r.replayDone('c'); // c had nothing to replay
  await until('the lock phase ran', () => order.length === 3);
  t.same(order, ['b 11', 'a lock', 'b lock'], 'requests first, then locks in arrival order');
  t.equal(r.figures().locksReplayed, 2);
  t.equal(r.figures().lockReplaying, 2);
  t.equal(r.figures().status, 'RECOVERING', 'recovery goes on until their final pings');
  r.replayDone('a');
  r.replayDone('b');
  await r.done;
  t.equal(r.figures().status, 'COMPLETE');
});

t.test('TargetRecovery: a client that never returns holds the lock phase up only until the soft limit; an evicted client\'s lock replays are dropped', async (t) => {
  const r = new TargetRecovery(['a', 'b'], 0n, { softMs: 100, hardMs: 60_000 });
  t.teardown(() => r.close());
  const order: string[] = [];
  r.connected('a');
  r.enqueueLock('a', async () => void order.push('a lock'), () => void order.push('a dropped'));
  await until('b is evicted and a\'s lock replayed', () => order.length === 1);
  t.same(order, ['a lock']);
  t.equal(r.figures().evicted, 1);
  r.enqueueLock('b', async () => void order.push('b lock'), () => void order.push('b dropped'));
  t.same(order, ['a lock', 'b dropped'], 'the evicted client\'s lock replay is answered without running');
  r.abort();
  await r.done;
  t.equal(r.figures().evicted, 2, 'a client still replaying its locks is evicted by abort_recov');
});

t.test('an OST\'s extent locks survive its restart: a PW holder is still glimpsed and still called back', async (t) => {
  const port = await freePort();
  const [ostNid, ...clientNids] = hosts(3, 90 + salt++).map((h) => `${h}@tcp`);
  const dir = await newDir('ldlm-replay-ost-');
  t.teardown(() => removeDir(dir));
  const start = async (ni?: LNetNI): Promise<{ node: Node; ost: RunningOst; recovery: TargetRecovery }> => {
    const node = await openNode(dir, ostNid!, port, ostMountdata(0), {}, ni);
    const recovery = new TargetRecovery(node.ctx.replyStore.clients(), node.ctx.replyStore.lastTransno(), WINDOW);
    node.ctx.recovery = recovery;
    return { node, ost: await createOst(node.ctx, { lockTimeoutMs: LOCK_TIMEOUT_MS }), recovery };
  };
  const stop = async (o: Awaited<ReturnType<typeof start>>) => {
    o.recovery.close();
    await o.ost.stop({ force: false });
    await o.node.osd.close();
  };
  let o = await start();
  const ni = o.node.ni;
  t.teardown(async () => {
    await stop(o);
    await ni.stop();
  });
  const client = async (i: number, uuid: string, hooks: LdlmClientHooks) => {
    const cni = await LNetNI.start({ nid: clientNids[i]!, port, pid: userspacePid(33_000 + i), warn: quiet });
    t.teardown(() => cni.stop());
    const osc = await Osc.connect(cni, {
      nid: ni.nid, targetUuid: 'testfs-OST0000_UUID', clientUuid: uuid,
      importOptions: { pingIntervalMs: 0, initialEstimateMs: 200, at: { minMs: 50, maxMs: 5000 } },
    });
    t.teardown(() => osc.disconnect());
    const callbacks = CallbackService.of(cni);
    t.teardown(() => callbacks.stop());
    const locks = new LdlmClient(osc.imports.ost, callbacks, hooks);
    t.teardown(() => locks.close());
    return { osc, locks };
  };
  const events: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await client(0, 'ost-replay-1', {
    blocking: async (lock) => {
      events.push('c1 blocking callback');
      await c1Locks.cancel([lock]);
    },
    glimpse: () => encodeOstLvb({ size: 4242n, blocks: 8n, mtime: 1_900_000_000, atime: 0, ctime: 0, mtimeNs: 0, atimeNs: 0, ctimeNs: 0 }),
  });
  c1Locks = c1.locks;
  const c2 = await client(1, 'ost-replay-2', {});
  await c2.osc.precreate(FID_SEQ_OST_MDT0, 1);
  const id = { seq: FID_SEQ_OST_MDT0, oid: 1 };
  const pw = await c1.locks.enqueue({ resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PW, policy: { extent: { start: 0n, end: OBD_OBJECT_EOF } } });

  await stop(o);
  o = await start(ni);
  for (const c of [c1, c2]) for (const imp of [c.osc.imports.ost, c.osc.imports.io]) imp.forceReconnect();
  await until('the OST\'s recovery is over', () => o.recovery.figures().status === 'COMPLETE');
  t.equal(o.recovery.figures().evicted, 0);
  const back = o.ost.ldlm.namespace.lookupRemote('ost-replay-1', pw.handle);
  t.equal(back?.grantedMode, LockMode.PW, 'the PW extent lock is back');
  t.same(back?.policy, pw.policy, 'over the extent it was granted');
  t.equal(pw.remoteHandle, back?.handle);

  const seen = await c2.osc.getattr(id);
  t.equal(seen.size, 4242, 'a getattr of client 2 glimpses the PW holder for the size it caches');
  const pr = await c2.locks.enqueue({ resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 0n, end: 4095n } } });
  events.push('c2 PR granted');
  t.equal(pr.mode, LockMode.PR);
  t.same(events, ['c1 blocking callback', 'c2 PR granted'], 'the replayed PW lock was called back before the PR was granted');
});

t.test('an application\'s flock survives a SIGKILL of the MDT\'s kernel: replayed, it still excludes another client', async (t) => {
  // The MGS+MDT in its own lustre.kernel (127.0.0.2 of this port), an OST in another; two
  // library mounts here. The clients find the restart by their pings, reconnect and replay.
  const port = await freePort();
  const { root, rd, pidOf, closers } = await kernelDirs(t, 'ldlm-replay-e2e-', [2, 3]);
  const tool = async (name: string, args: string[], k: number) => {
    const r = await runTool(name, args, { env: { LUSTRE_RUNDIR: rd(k) } });
    if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const start = (k: number) => tool('lustre-kernel', ['start', '--nid', `127.0.0.${k}@tcp`, '--port', String(port), '--rundir', rd(k)], k);
  await start(2);
  await start(3);
  await formatTarget(join(root, 'mdt0'), { fsname: 'lkreplay', mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname: 'lkreplay', ost: true, index: 0, mgsNids: ['127.0.0.2@tcp'] });
  await tool('lustre-mount', [join(root, 'mdt0')], 2);
  await tool('lustre-mount', [join(root, 'ost0')], 3);
  const client = async (k: number, uuid: string) => {
    const ni = await LNetNI.start({ nid: `127.0.0.${k}@tcp`, port, warn: quiet });
    closers.push(() => ni.stop());
    const fs = await mount('127.0.0.2@tcp:/lkreplay', { ni, clientUuid: uuid, requestDeadlineMs: 120_000, connectDeadlineMs: 60_000 });
    closers.unshift(() => fs.umount({ force: true }));
    return fs;
  };
  const a = await client(5, 'lkreplay-client-a');
  const b = await client(6, 'lkreplay-client-b');
  await a.writeFile('/locked', 'x');
  const resId = resIdOfFid(parseFid((await a.mdc.lookup(await a.mdc.root(), 'locked')).fid));
  const nsA = a.core.mdcNamespace!;
  const nsB = b.core.mdcNamespace!;
  const held = await nsA.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PW, policy: flockPolicy(11n, 1111, 0n, OBD_OBJECT_EOF) });
  t.equal(held?.mode, LockMode.PW, 'client a holds a write flock on the file');
  nsA.ldlm.forgetLocal([held!]);
  const lockCount = async () => Number(await tool('lctl', ['get_param', '-n', 'ldlm.namespaces.mdt-*.lock_count'], 2));
  t.equal(await lockCount(), 1);

  process.kill(pidOf(2), 'SIGKILL');
  await until('the MDT\'s kernel is gone', () => {
    return !alive(pidOf(2));
  });
  await start(2);
  await tool('lustre-mount', [join(root, 'mdt0')], 2);
  await until('the MDT recovered', async () => /status: COMPLETE/.test(await tool('lctl', ['get_param', '-n', 'mdt.*.recovery_status'], 2)), 120_000);
  t.match(await tool('lctl', ['get_param', '-n', 'mdt.*.recovery_status'], 2), /completed_clients: 2\/2/, 'both clients recovered');
  t.equal(await lockCount(), 1, 'the restarted MDT holds the flock again (lock_count)');
  t.equal(nsA.ldlm.counters.replayed, 1, 'client a replayed it');
  const err = await nsB.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PR, policy: flockPolicy(22n, 2222, 10n, 20n), flags: LockFlag.BLOCK_NOWAIT })
    .then(() => undefined, (e: PtlrpcError) => e);
  t.equal(err?.code, 'EAGAIN', 'client b\'s read flock on the range is refused');
  const unlock = await nsA.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.NL, policy: flockPolicy(11n, 1111, 0n, OBD_OBJECT_EOF) });
  nsA.ldlm.forgetLocal([unlock!]);
  const now = await nsB.enqueue({ resId, type: LockType.FLOCK, mode: LockMode.PR, policy: flockPolicy(22n, 2222, 10n, 20n), flags: LockFlag.BLOCK_NOWAIT });
  t.equal(now?.mode, LockMode.PR, 'granted once client a unlocked');
});

function hasFlag(flags: number, flag: number): boolean {
  return (flags & flag) !== 0;
}
