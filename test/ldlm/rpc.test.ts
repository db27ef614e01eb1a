// The lock manager over real ptlrpc services: one server namespace behind an OST-like target,
// clients whose LNet pids carry LNET_PID_USERFLAG (as client kernels' do) over TCP on
// loopback. Enqueue, blocking and completion callbacks, cancels, glimpses, intents, and the
// eviction of a client that does not give a lock back within the lock timeout.
import t, { type Test } from 'tap';
import { LNetNI, userspacePid } from '../../src/lnet/index.js';
import {
  Errno, Import, MsgType, Opcode, Portal, ReverseImport, Service, decodeMessage, encodeMessage, makeBody, statusError, targetProfiles,
  type ImportConfig, type OpHandler,
} from '../../src/ptlrpc/index.js';
import {
  CallbackService, LdlmClient, LdlmService, LockFlag, LockMode, LockType, Namespace, OBD_OBJECT_EOF, encodeLdlmRequest,
  lockModeCompat, resId, resIdKey,
  type ClientLock, type IntentHandler, type LdlmClientHooks,
} from '../../src/ldlm/index.js';
import { freePort, until } from '../lib/net.js';
import { prng, seedFrom } from '../lib/prng.js';

const TARGET = 'lustre-OST0000_UUID';
const ost = targetProfiles.ost;
const fastAt = { minMs: 20, maxMs: 2000, historyMs: 1000, extraMs: 40 };
const quiet = () => {};
const RES = resId(0x100000400n, 7n);
const WHOLE = { extent: { start: 0n, end: OBD_OBJECT_EOF } };

let nextHostBlock = (process.pid * 13) % 200;

interface Cluster {
  server: LNetNI;
  service: Service;
  ldlm: LdlmService;
  namespace: Namespace;
  evicted: Array<{ uuid: string; reason: string }>;
  client(uuid: string, hooks?: LdlmClientHooks, importMore?: Partial<ImportConfig>): Promise<{ ni: LNetNI; imp: Import; locks: LdlmClient; callbacks: CallbackService }>;
}

async function cluster(t: Test, opts: { lockTimeoutMs?: number; callbackTimeoutMs?: number; intent?: IntentHandler } = {}): Promise<Cluster> {
  const port = await freePort();
  const block = (nextHostBlock++ % 200) + 20;
  const host = (i: number) => `127.${block}.${(process.pid % 250) + 1}.${i + 2}`;
  const server = await LNetNI.start({ nid: `${host(0)}@tcp`, port, warn: quiet });
  t.teardown(() => server.stop());
  const namespace = new Namespace(`filter-${TARGET}`, { now: () => performance.now(), lockTimeoutMs: opts.lockTimeoutMs ?? 20_000 });
  const evicted: Array<{ uuid: string; reason: string }> = [];
  let service: Service | undefined;
  const ldlm: LdlmService = new LdlmService({
    ni: server, namespace, exports: { byUuid: (uuid) => service!.exports.byUuid(uuid), byHandle: (h) => service!.exports.byHandle(h) },
    evict: (uuid, reason) => {
      evicted.push({ uuid, reason });
      const exp = service!.exports.byUuid(uuid);
      if (exp) service!.exports.remove(exp);
    },
    ...(opts.callbackTimeoutMs !== undefined ? { callbackTimeoutMs: opts.callbackTimeoutMs } : {}),
    ...(opts.intent ? { intent: opts.intent } : {}),
  });
  t.teardown(() => ldlm.stop());
  const ops = new Map<number, OpHandler<never>>(ldlm.handlers());
  service = new Service(server, { name: 'ost', targetUuid: TARGET, ...ost, ops, at: fastAt });
  t.teardown(() => service!.stop());
  let clients = 0;
  return {
    server, service, ldlm, namespace, evicted,
    async client(uuid, hooks, importMore = {}) {
      const index = ++clients;
      const ni = await LNetNI.start({ nid: `${host(index)}@tcp`, port, pid: userspacePid(30_000 + index), warn: quiet });
      t.teardown(() => ni.stop());
      const imp = await Import.connect(ni, {
        target: { nid: server.nid, pid: server.pid }, targetUuid: TARGET, clientUuid: uuid, ...ost, at: fastAt,
        initialEstimateMs: 100, pingIntervalMs: 0, ...importMore,
      });
      t.teardown(() => imp.disconnect());
      const callbacks = CallbackService.of(ni);
      t.teardown(() => callbacks.stop());
      const locks = new LdlmClient(imp, callbacks, hooks);
      t.teardown(() => locks.close());
      return { ni, imp, locks, callbacks };
    },
  };
}

t.test('PW held by one client, PR asked by another: blocking callback, cancel, completion', async (t) => {
  const c = await cluster(t);
  const events: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await c.client('client-1', {
    blocking: async (lock, desc) => {
      events.push(`c1 blocking ${desc.reqMode === LockMode.PR ? 'for PR' : `mode ${desc.reqMode}`}`);
      events.push('c1 cancels');
      await c1Locks.cancel([lock]);
    },
  });
  c1Locks = c1.locks;
  const c2 = await c.client('client-2');

  const pw = await c1.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: { extent: { start: 0n, end: 4095n } } });
  t.equal(pw.mode, LockMode.PW);
  const granted = pw.policy && 'extent' in pw.policy ? pw.policy.extent : undefined;
  t.ok(granted && granted.start === 0n && granted.end >= 4095n, 'granted at once, covering at least what was asked (grown on a quiet resource)');
  t.equal(c.ldlm.counters.grantedAtOnce, 1);
  t.equal(c1.locks.lookup(pw.handle), pw);

  const pr = await c2.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 0n, end: 4095n } } });
  events.push('c2 granted');
  t.same(events, ['c1 blocking for PR', 'c1 cancels', 'c2 granted'], 'the holder was asked, cancelled, then the waiter was granted');
  t.equal(pr.mode, LockMode.PR);
  t.equal(c2.locks.counters.waited, 1, 'the second enqueue waited for its completion callback');
  t.equal(c1.callbacks.counters.blocking, 1);
  t.equal(c2.callbacks.counters.completion, 1);
  t.equal(c1.locks.lookup(pw.handle), undefined, 'the cancelled lock is gone from the client');
  t.equal(c.namespace.locks(), 1, 'the server holds only the PR lock');
  t.equal(c.namespace.lookup(pr.remoteHandle)?.owner, 'client-2');
  t.same(c.evicted, []);

  // A second PR of the first client is compatible: granted at once, no callback.
  const pr1 = await c1.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: WHOLE });
  t.equal(pr1.mode, LockMode.PR);
  t.equal(c2.callbacks.counters.blocking, 0);
  // Early cancel: the PR goes back inside the next enqueue, no cancel of its own.
  const requestsBefore = c1.imp.counters.sent;
  const ex = await c1.locks.enqueue({ resId: resId(0x100000400n, 99n), type: LockType.PLAIN, mode: LockMode.EX, earlyCancels: [pr1] });
  t.equal(c1.imp.counters.sent - requestsBefore, 1, 'one request');
  t.equal(c.namespace.lookup(pr1.remoteHandle), undefined, 'the server cancelled the PR packed in the enqueue');
  t.equal(c1.locks.lookup(pr1.handle), undefined);
  await c1.locks.cancel([ex]);
  await c2.locks.cancel([pr]);
  await until('the server to drop both locks', () => c.namespace.locks() === 0);
  t.equal(c.namespace.resources(), 0);
});

t.test('a client that answers its blocking callback but never cancels is evicted after the lock timeout', async (t) => {
  const c = await cluster(t, { lockTimeoutMs: 300 });
  let blocked = 0;
  const lost: ClientLock[] = [];
  const stuck = await c.client('client-stuck', { blocking: () => { blocked++; }, evicted: (locks) => lost.push(...locks) });
  const other = await c.client('client-other');
  await stuck.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  const granted = await other.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  t.equal(granted.mode, LockMode.PW, 'the other client\'s enqueue completes');
  t.equal(blocked, 1, 'the stuck client was asked once');
  t.equal(c.evicted.length, 1);
  t.equal(c.evicted[0]!.uuid, 'client-stuck');
  t.match(c.evicted[0]!.reason, /lock callback timer expired/);
  t.equal(c.service.exports.byUuid('client-stuck'), undefined, 'the target dropped its export');
  t.same(c.namespace.locksOf('client-stuck'), [], 'its locks were released');
  t.equal(c.namespace.locksOf('client-other').length, 1);

  // The evicted client learns it at its next request: its locks are dropped and its owner told.
  await stuck.imp.ping().catch(() => {});
  await until('the evicted client to drop its locks', () => lost.length === 1);
  t.equal(lost[0]!.mode, LockMode.PW);
  t.same(stuck.locks.locks(), []);
});

t.test('a client that does not answer its blocking callback at all is evicted; the other\'s enqueue completes', async (t) => {
  const c = await cluster(t, { lockTimeoutMs: 5_000, callbackTimeoutMs: 200 });
  const silent = await c.client('client-silent');
  const other = await c.client('client-waiting');
  await silent.locks.enqueue({ resId: RES, type: LockType.IBITS, mode: LockMode.EX, policy: { bits: 0x3 } });
  silent.callbacks.stop(); // its callback portal takes nothing any more: the callback gets no answer
  const granted = await other.locks.enqueue({ resId: RES, type: LockType.IBITS, mode: LockMode.PR, policy: { bits: 0x2 } });
  t.equal(granted.mode, LockMode.PR);
  t.equal(c.evicted.length, 1);
  t.equal(c.evicted[0]!.uuid, 'client-silent');
  t.match(c.evicted[0]!.reason, /blocking callback .* failed: .*ETIMEDOUT|got no reply/);
  t.same(c.namespace.locksOf('client-silent'), []);
});

t.test('glimpse, intents, unknown handles, errors', async (t) => {
  const intent: IntentHandler = (request, lock) => {
    if (request.buffers[1]?.toString() === 'missing') throw statusError(-Errno.ENOENT, 'no such name');
    return {
      buffers: [Buffer.from(`intent ${request.buffers[1]?.toString()} on ${lock.handle === 0n ? '?' : 'lock'}`)],
      policyRes1: 0x11n, policyRes2: 0x22n,
    };
  };
  const c = await cluster(t, { intent });
  const lvb = Buffer.alloc(56, 0xab);
  const writer = await c.client('client-writer', { glimpse: () => lvb });
  const reader = await c.client('client-reader');

  const w = await writer.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE, intent: [Buffer.from('open')] });
  t.equal(w.replyBuffers[0]?.toString(), 'intent open on lock', 'the intent handler\'s buffers follow the ldlm_reply');
  t.equal(w.policyRes1, 0x11n);
  t.equal(w.policyRes2, 0x22n);
  await t.rejects(writer.locks.enqueue({ resId: resId(0x100000400n, 10n), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: 1 }, intent: [Buffer.from('missing')] }),
    { code: 'ENOENT' }, 'a failed intent fails the enqueue');
  t.equal(c.namespace.locks(), 1, 'and leaves no lock behind');

  t.same(await c.ldlm.glimpse(RES, 'client-reader'), lvb, 'the PW holder answered the glimpse with its LVB');
  t.equal(writer.callbacks.counters.glimpse, 1);
  t.equal(await c.ldlm.glimpse(RES, 'client-writer'), undefined, 'no glimpse to the asker itself');
  // A holder with nothing to tell (no glimpse hook) answers -ELDLM_NO_LOCK_DATA: no eviction.
  const R3 = resId(0x100000400n, 9n);
  await reader.locks.enqueue({ resId: R3, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  t.equal(await c.ldlm.glimpse(R3), undefined);
  t.same(c.evicted, []);
  t.equal(c.namespace.locksOf('client-reader').length, 1, 'the holder keeps its lock');

  // A callback for a handle nobody on the client knows: EINVAL, as Lustre's "lock disappeared".
  const exp = c.service.exports.byUuid('client-reader')!;
  const reverse = new ReverseImport(c.server, exp, { timeoutMs: 5_000 });
  const body = encodeLdlmRequest({
    flags: 0, lockCount: 1, lockDesc: { resId: RES, type: LockType.EXTENT, reqMode: LockMode.PR, grantedMode: 0, policy: WHOLE },
    lockHandles: [0x5555n, 0x6666n],
  });
  await t.rejects(reverse.request(Opcode.LDLM_BL_CALLBACK, [body]), { code: 'EINVAL', status: -Errno.EINVAL });
  await t.rejects(reverse.request(Opcode.LDLM_SET_INFO, [body]), { code: 'EPROTO' }, 'an opcode the callback service does not serve');
  t.equal(reader.callbacks.counters.unknownLock, 1);

  // BLOCK_NOWAIT on a conflicting lock: EAGAIN, nothing left behind.
  await t.rejects(reader.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: WHOLE, flags: LockFlag.BLOCK_NOWAIT }),
    { code: 'EAGAIN' });
  t.equal(c.namespace.locks(), 2, 'nothing left behind: the writer\'s PW and the reader\'s PW on R3');
  t.equal(reader.locks.locks().length, 1);

  // Two lock owners on one client NI (two namespaces of one client kernel): each callback goes
  // to the owner of its handle.
  const seen: string[] = [];
  const second = new LdlmClient(reader.imp, reader.callbacks, { blocking: async (lock) => { seen.push('second'); await second.cancel([lock]); } });
  t.teardown(() => second.close());
  const third = new LdlmClient(reader.imp, reader.callbacks, { blocking: async (lock) => { seen.push('third'); await third.cancel([lock]); } });
  t.teardown(() => third.close());
  const OTHER = resId(0x100000400n, 8n);
  await second.enqueue({ resId: OTHER, type: LockType.PLAIN, mode: LockMode.PR });
  await third.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 1n << 40n, end: OBD_OBJECT_EOF } } });
  t.equal(writer.locks.counters.blocking, 1, 'the writer\'s PW blocked the third owner\'s PR');
  t.equal(writer.locks.lookup(w.handle), undefined, 'an owner without a blocking hook cancels at once');
  await writer.locks.enqueue({ resId: OTHER, type: LockType.PLAIN, mode: LockMode.EX });
  t.same(seen, ['second'], 'the blocking callback went to the owner of the handle');
  t.equal(reader.callbacks.owners, 3);

  // A cancel the server knows none of: ESTALE (Lustre's answer), which LdlmClient takes as done.
  const cancel = encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: [0x7777n] });
  await t.rejects(writer.imp.request(Opcode.LDLM_CANCEL, [cancel]), { code: 'ESTALE' });
  t.equal(c.namespace.locksOf('client-writer').length, 1, 'the writer holds only its EX on the other resource');
  t.equal(c.namespace.locksOf('client-reader').length, 2, 'the reader holds its PW on R3, its third owner its PR');
});

t.test('a glimpse that reaches the client before its enqueue\'s reply finds the lock known: no data to tell, and the lock stays', async (t) => {
  // The OST replies to an enqueue once the lock is granted and its LVB read; another client's
  // OST_GETATTR may glimpse the new PW holder meanwhile. Answered "no such lock" (EINVAL), the
  // server would cancel a lock the client then caches and writes under: the next reader's PR
  // would be granted with no blocking callback, and read around the writer's dirty data.
  let glimpsed: Buffer | undefined | 'not asked' = 'not asked';
  const intent: IntentHandler = async (request, lock) => {
    if (request.buffers[1]?.toString() === 'glimpse first') glimpsed = await c.ldlm.glimpse(lock.resId, 'client-reader');
    return {};
  };
  const c = await cluster(t, { intent });
  const writer = await c.client('client-writer', { glimpse: () => Buffer.alloc(56, 0xcd) });
  const reader = await c.client('client-reader');
  const w = await writer.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE, intent: [Buffer.from('glimpse first')] });
  t.equal(glimpsed, undefined, 'the glimpse was answered -ELDLM_NO_LOCK_DATA: the OST reads the size itself');
  t.equal(writer.callbacks.counters.glimpse, 1, 'the glimpse reached the writer before its reply');
  t.equal(c.ldlm.counters.raceCancels, 0, 'not taken as a lock the client no longer has');
  t.equal(c.namespace.lookup(w.remoteHandle)?.grantedMode, LockMode.PW, 'the server still holds the lock the client was granted');
  t.same(c.evicted, []);
  // And it still stands in a reader's way: the reader's PR waits for the writer's cancel.
  const r = reader.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: WHOLE });
  await until('the writer to be called back', () => writer.locks.counters.blocking === 1);
  await r;
  t.equal(writer.locks.lookup(w.handle), undefined, 'the writer gave its lock back before the reader got its own');
});

t.test('a resent enqueue (its reply lost) finds the lock its first copy made', async (t) => {
  const c = await cluster(t);
  let dropped = 0;
  const a = await c.client('client-resend', {}, {
    failLoc: { dropReply: (_xid, opcode) => opcode === Opcode.LDLM_ENQUEUE && dropped++ === 0 },
  });
  const lock = await a.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  t.equal(dropped, 2, 'the first reply was lost, the resend answered');
  t.ok(a.imp.counters.resent >= 1);
  t.equal(c.namespace.locks(), 1, 'one lock on the server, not two');
  t.equal(c.namespace.lookup(lock.remoteHandle)?.remoteHandle, lock.handle);
  t.equal(c.ldlm.counters.enqueues, 2);
});

t.test('an enqueue whose completion callback does not come within cpWaitMs fails and gives its lock back', async (t) => {
  const c = await cluster(t);
  const holder = await c.client('client-holder', { blocking: () => {} });
  const waiter = await c.client('client-impatient');
  await holder.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  await t.rejects(waiter.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: WHOLE, cpWaitMs: 100 }),
    { code: 'ETIMEDOUT' });
  await until('the waiting lock to be cancelled on the server', () => c.namespace.locksOf('client-impatient').length === 0);
  t.equal(c.namespace.locksOf('client-holder').length, 1);
  t.same(waiter.locks.locks(), []);
  t.same(c.evicted, [], 'nobody evicted: the lock timeout has not passed');
});

t.test('randomized: three clients enqueue, hold, cache and cancel; no two ever hold conflicting locks', async (t) => {
  const seed = seedFrom('LDLM_RPC_SEED');
  t.comment(`seed ${seed} (LDLM_RPC_SEED)`);
  const r = prng(seed);
  const c = await cluster(t);
  const RESOURCES = [
    { id: resId(0x100000500n, 1n), type: LockType.EXTENT },
    { id: resId(0x100000500n, 2n), type: LockType.EXTENT },
    { id: resId(0x100000500n, 3n), type: LockType.IBITS },
  ] as const;
  const MODES = [LockMode.PR, LockMode.PW, LockMode.EX, LockMode.CR, LockMode.CW];
  interface Held { client: number; lock: ClientLock; users: number; released?: () => void }
  const held = new Set<Held>();
  const violations: string[] = [];
  const conflict = (a: ClientLock, b: ClientLock): boolean => {
    if (resIdKey(a.resId) !== resIdKey(b.resId) || lockModeCompat(a.mode, b.mode)) return false;
    if (a.type === LockType.EXTENT) {
      const x = (a.policy as { extent: { start: bigint; end: bigint } }).extent;
      const y = (b.policy as { extent: { start: bigint; end: bigint } }).extent;
      return x.start <= y.end && y.start <= x.end;
    }
    return ((a.policy as { bits: number }).bits & (b.policy as { bits: number }).bits) !== 0;
  };
  const clients: LdlmClient[] = [];
  const hook = (index: number): LdlmClientHooks => ({
    // Flush (wait for the users of the lock), then give it back.
    blocking: async (lock) => {
      const h = [...held].find((x) => x.lock === lock);
      if (h && h.users > 0) await new Promise<void>((resolve) => (h.released = resolve));
      if (h) held.delete(h);
      await clients[index]!.cancel([lock]);
    },
  });
  for (let i = 0; i < 3; i++) clients.push((await c.client(`client-rand-${i}`, hook(i))).locks);

  const worker = async (index: number, ops: Array<() => number>): Promise<void> => {
    const me = clients[index]!;
    for (let op = 0; op < 40; op++) {
      const [res, mode, a, b, bits, holdMs, keep] = ops.map((f) => f());
      const resource = RESOURCES[res!]!;
      const policy = resource.type === LockType.EXTENT
        ? { extent: { start: BigInt(Math.min(a!, b!) * 4096), end: BigInt(Math.max(a!, b!) * 4096 + 4095) } }
        : { bits: bits! };
      const lock = await me.enqueue({ resId: resource.id, type: resource.type, mode: MODES[mode!]!, policy });
      const h: Held = { client: index, lock, users: 1 };
      for (const other of held) {
        if (other.client !== index && conflict(other.lock, lock)) violations.push(`client ${index} got ${lock.mode} beside client ${other.client}'s ${other.lock.mode}`);
      }
      held.add(h);
      await new Promise((resolve) => setTimeout(resolve, holdMs));
      h.users--;
      h.released?.();
      if (!keep && held.has(h)) {
        held.delete(h);
        await me.cancel([lock]);
      }
    }
  };
  // Each worker's operations come from the seed, drawn up front so that the sequence does not
  // depend on how the workers interleave.
  const plans = [0, 1, 2].map(() => Array.from({ length: 40 }, () => [
    r.int(RESOURCES.length), r.int(MODES.length), r.int(16), r.int(16), 1 + r.int(7), r.int(3), r.int(2),
  ]));
  await Promise.all(plans.map((plan, i) => {
    let step = 0;
    const draws = Array.from({ length: 7 }, (_, k) => () => plan[Math.floor(step++ / 7)]![k]!);
    return worker(i, draws);
  }));
  t.same(violations, [], `no conflicting locks held at once (seed ${seed})`);
  const blocked = clients.reduce((n, client) => n + client.counters.blocking, 0);
  t.ok(blocked > 10, `the clients contended: ${blocked} blocking callbacks`);
  t.same(c.evicted, [], 'nobody evicted');
  for (const client of clients) await client.cancel(client.locks());
  await until('the server namespace to empty', () => c.namespace.locks() === 0);
  t.equal(c.namespace.resources(), 0);
});

t.test('cancels on LDLM_CANCEL_REQUEST_PORTAL, as Lustre clients send them', async (t) => {
  const c = await cluster(t);
  const a = await c.client('client-cancel-portal', { blocking: () => {} }); // cancels by hand below
  const b = await c.client('client-waits');
  const lock = await a.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  let xid = 0x4000n;
  const send = async (handle: bigint, opcode: number, buffers: Buffer[]): Promise<number> => {
    const id = xid++;
    const md = a.ni.attach(Portal.LDLM_CANCEL_REPLY, { matchBits: id }, { kind: 'sink', maxLength: 4096, once: true });
    const reply = new Promise<number>((resolve) => {
      const sub = a.ni.events$.subscribe((e) => {
        if (e.md.id !== md.id) return;
        sub.unsubscribe();
        resolve(decodeMessage(e.payload).body.status);
      });
    });
    const body = makeBody({ type: MsgType.REQUEST, opcode, handle });
    await a.ni.put({ nid: c.server.nid, pid: c.server.pid }, Portal.LDLM_CANCEL_REQUEST, id, encodeMessage(body, buffers));
    return reply;
  };
  const cancel = encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: [lock.remoteHandle] });
  t.equal(await send(0x9999n, Opcode.LDLM_CANCEL, [cancel]), -Errno.ENOTCONN, 'an export handle no target knows');
  t.equal(await send(a.imp.handle, Opcode.LDLM_CONVERT, [cancel]), -Errno.EPROTO, 'only LDLM_CANCEL is served there');
  // A waiter behind the lock is granted once the cancel arrives on portal 17.
  const waiting = b.locks.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: WHOLE });
  await until('the blocking callback', () => a.callbacks.counters.blocking === 1);
  t.equal(await send(a.imp.handle, Opcode.LDLM_CANCEL, [cancel]), 0, 'the cancel is answered on LDLM_CANCEL_REPLY_PORTAL');
  t.equal((await waiting).mode, LockMode.PW);
  t.same(c.namespace.locksOf('client-cancel-portal'), []);
  t.equal(await send(a.imp.handle, Opcode.LDLM_CANCEL, [cancel]), -Errno.ESTALE, 'again: no such lock any more');
});
