// The lock namespaces of the MDT and the OST (src/services/*/ldlm.ts, src/services/target/ldlm.ts):
// a mounted MDT and OST in this process over TCP on loopback, two clients on their own NIs, each
// with an MDC / OSC and an LdlmClient answering callbacks through its CallbackService.
import t, { type Test } from 'tap';
import type { Mdc } from '../../src/client/mdc.js';
import { Osc } from '../../src/client/osc.js';
import {
  CallbackService, decodeLdlmReply, decodeOstLvb, ELDLM_LOCK_ABORTED, encodeLdlmIntent, LockFlag, encodeLdlmRequest, encodeOstLvb, InodeBits, IntentOp, LdlmClient, LockMode, LockType,
  OBD_OBJECT_EOF, resIdOfFid, type ClientLock, type LdlmClientHooks,
} from '../../src/ldlm/index.js';
import { LNetNI, userspacePid } from '../../src/lnet/index.js';
import { parseFid } from '../../src/osd/index.js';
import { ParamTree, type KernelView } from '../../src/control/params/index.js';
import { decodeAttr, decodeBody, encodeBody, MdsOpcode, OpenFlag, ReintOp } from '../../src/services/mdt/protocol.js';
import { Disposition, reintLocks } from '../../src/services/mdt/ldlm.js';
import { encodeBody as encodeOstBody, FID_SEQ_OST_MDT0, objectResId } from '../../src/services/ost/index.js';
import { Errno, Opcode } from '../../src/ptlrpc/index.js';
import { CFS_FAIL_ONCE, FAIL, failLoc } from '../../src/log/index.js';
import type { Target } from '../../src/services/target/index.js';
import { until } from '../lib/net.js';
import {
  connectMdc, freePort, hosts, mdtMountdata, newDir, ostMountdata, removeDir, startMdtNode, startOstNode, type MdtNode, type OstNode,
} from './mdt/helpers.js';

const quiet = () => {};
const LOCK_TIMEOUT_MS = 1500;
const ROOT_CRED = { uid: 0, gid: 0, groups: [] };
const PR_BITS = InodeBits.LOOKUP | InodeBits.UPDATE | InodeBits.PERM;
const SEQ = FID_SEQ_OST_MDT0;

let salt = 0;

interface Client {
  ni: LNetNI;
  mdc: Mdc;
  mdLocks: LdlmClient;
  osc: Osc;
  ostLocks: LdlmClient;
}

interface Setup {
  mdt: MdtNode;
  ost: OstNode;
  root: string;
  client(uuid: string, hooks?: { md?: LdlmClientHooks; ost?: LdlmClientHooks }): Promise<Client>;
}

async function setup(t: Test): Promise<Setup> {
  const port = await freePort();
  const [mdtNid, ostNid, ...clientNids] = hosts(6, salt++).map((h) => `${h}@tcp`);
  const mdtDir = await newDir('ldlm-mdt-');
  const ostDir = await newDir('ldlm-ost-');
  t.teardown(() => Promise.all([removeDir(mdtDir), removeDir(ostDir)]));
  const ost = await startOstNode(ostDir, ostNid!, port, 0);
  ost.ost.ldlm.lockTimeoutMs = LOCK_TIMEOUT_MS;
  t.teardown(async () => {
    await ost.stop();
    await ost.ni.stop();
  });
  const mdt = await startMdtNode(mdtDir, mdtNid!, port, {}, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  t.teardown(async () => {
    await mdt.stop();
    await mdt.ni.stop();
  });
  let clients = 0;
  const setupClient = async (uuid: string, hooks: { md?: LdlmClientHooks; ost?: LdlmClientHooks } = {}): Promise<Client> => {
    const index = clients++;
    const ni = await LNetNI.start({ nid: clientNids[index]!, port, pid: userspacePid(31_000 + index), warn: quiet });
    t.teardown(() => ni.stop());
    const mdc = await connectMdc(ni, mdt.ni.nid, uuid);
    t.teardown(() => mdc.disconnect());
    const osc = await Osc.connect(ni, {
      nid: ost.ni.nid, targetUuid: 'testfs-OST0000_UUID', clientUuid: uuid,
      importOptions: { pingIntervalMs: 0, initialEstimateMs: 200, at: { minMs: 50, maxMs: 5000 } },
    });
    t.teardown(() => osc.disconnect());
    const callbacks = CallbackService.of(ni);
    t.teardown(() => callbacks.stop());
    const mdLocks = new LdlmClient(mdc.import, callbacks, hooks.md);
    const ostLocks = new LdlmClient(osc.imports.ost, callbacks, hooks.ost);
    t.teardown(() => {
      mdLocks.close();
      ostLocks.close();
    });
    return { ni, mdc, mdLocks, osc, ostLocks };
  };
  const first = await setupClient('setup-client');
  const root = await first.mdc.root();
  return { mdt, ost, root, client: setupClient };
}

/** A PR inodebits lock on a file, as a client caching its attributes takes it. */
function prOn(c: Client, fid: string): Promise<ClientLock> {
  return c.mdLocks.enqueue({ resId: resIdOfFid(parseFid(fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS } });
}

t.test('the namespaces have Lustre\'s names and the reints\' locks are what Lustre takes', async (t) => {
  const s = await setup(t);
  t.equal(s.mdt.mdt.ldlm.namespace.name, 'mdt-testfs-MDT0000_UUID');
  t.equal(s.ost.ost.ldlm.namespace.name, 'filter-testfs-OST0000_UUID');
  const f = '[0x200000400:0x5:0x0]';
  const p = '[0x200000400:0x1:0x0]';
  const q = '[0x200000400:0x2:0x0]';
  const cred = ROOT_CRED;
  const bits = (specs: ReturnType<typeof reintLocks>) => specs.map((x) => ('bits' in x.policy ? x.policy.bits : -1));
  t.same(bits(reintLocks({ op: 1, cred, fid: f, attrs: { mtime: 5 } }, [])), [InodeBits.UPDATE], 'setattr of times: UPDATE');
  t.same(bits(reintLocks({ op: 1, cred, fid: f, attrs: { mode: 0o600 } }, [])), [InodeBits.UPDATE | InodeBits.PERM], 'chmod: UPDATE|PERM');
  t.same(bits(reintLocks({ op: 7, cred, fid: f, name: 'user.a', value: null, flags: 0 }, [])), [InodeBits.UPDATE | InodeBits.XATTR]);
  t.same(bits(reintLocks({ op: 2, cred, parent: p, name: 'x', mode: 0o100644 }, [])), [InodeBits.UPDATE], 'create: the parent');
  t.same(bits(reintLocks({ op: 4, cred, parent: p, name: 'x', rmdir: false }, [parseFid(f)])),
    [InodeBits.UPDATE, InodeBits.LOOKUP | InodeBits.UPDATE], 'unlink: parent UPDATE, child LOOKUP|UPDATE');
  t.same(bits(reintLocks({ op: 5, cred, parent: p, name: 'x', newParent: q, newName: 'y' }, [parseFid(f), undefined])),
    [InodeBits.UPDATE, InodeBits.UPDATE, InodeBits.LOOKUP], 'rename: both parents, the object\'s LOOKUP');
  t.same(bits(reintLocks({ op: 6, cred, fid: f, flags: 0o1001, mode: 0 }, [])), [InodeBits.LAYOUT | InodeBits.UPDATE], 'open O_TRUNC: LAYOUT');
  t.same(reintLocks({ op: 6, cred, fid: f, flags: 0, mode: 0 }, []), [], 'a plain open takes nothing');
});

t.test('a PR lock of client 1 is revoked by client 2\'s setattr, which then completes', async (t) => {
  const s = await setup(t);
  const events: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await s.client('client-1', {
    md: {
      blocking: async (lock) => {
        events.push('c1 blocking callback');
        await c1Locks.cancel([lock]);
        events.push('c1 cancelled');
      },
    },
  });
  c1Locks = c1.mdLocks;
  const c2 = await s.client('client-2');
  const file = await c1.mdc.create(s.root, 'f', 0o100644);
  const lock = await prOn(c1, file.fid);
  t.equal(lock.mode, LockMode.PR);
  const ns = s.mdt.mdt.ldlm.namespace;
  t.equal(ns.locksOf('client-1').length, 1, 'the MDT holds client 1\'s lock');

  const attr = await c2.mdc.setattr(file.fid, { mode: 0o600 });
  events.push('c2 setattr done');
  t.equal(attr.mode & 0o7777, 0o600);
  t.same(events, ['c1 blocking callback', 'c1 cancelled', 'c2 setattr done'], 'the lock went back before the change was answered');
  t.same(ns.locksOf('client-1'), [], 'client 1 holds nothing');
  t.equal(ns.locks(), 0, 'the MDT\'s own lock is given back after the update');
  t.equal(s.mdt.mdt.ldlm.counters.localWaited, 1, 'the setattr\'s lock waited for the cancel');

  // A lock that does not conflict (LOOKUP only) stays through a chmod of times.
  const lookupOnly = await c1.mdLocks.enqueue({ resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.LOOKUP } });
  await c2.mdc.setattr(file.fid, { mtime: 1000 });
  t.equal(c1.mdLocks.lookup(lookupOnly.handle), lookupOnly, 'a LOOKUP lock survives a setattr (UPDATE)');
  // unlink revokes the name (LOOKUP on the child).
  await c2.mdc.unlink(s.root, 'f');
  t.equal(c1.mdLocks.lookup(lookupOnly.handle), undefined, 'unlink revoked the LOOKUP lock');
});

t.test('a create in a directory revokes a PR UPDATE lock on the directory; rename revokes the name', async (t) => {
  const s = await setup(t);
  const blocked: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await s.client('dir-client-1', {
    md: {
      blocking: async (lock) => {
        blocked.push(lock.resId.join(':'));
        await c1Locks.cancel([lock]);
      },
    },
  });
  c1Locks = c1.mdLocks;
  const c2 = await s.client('dir-client-2');
  const dir = await c2.mdc.mkdir(s.root, 'd', 0o755);
  const file = await c2.mdc.create(dir.fid, 'a', 0o100644);
  const dirLock = await prOn(c1, dir.fid);
  const fileLock = await c1.mdLocks.enqueue({ resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.LOOKUP } });
  await c2.mdc.create(dir.fid, 'b', 0o100644);
  t.equal(c1.mdLocks.lookup(dirLock.handle), undefined, 'the directory\'s lock went');
  t.equal(c1.mdLocks.lookup(fileLock.handle), fileLock, 'the file\'s lock stayed');
  await c2.mdc.rename(dir.fid, 'a', dir.fid, 'c');
  t.equal(c1.mdLocks.lookup(fileLock.handle), undefined, 'rename revoked the renamed object\'s LOOKUP lock');
  t.equal(blocked.length, 2);
  t.equal(s.mdt.mdt.ldlm.namespace.locks(), 0);
});

t.test('early lock cancel: a setattr and a punch that name their client\'s own locks need no callback', async (t) => {
  const s = await setup(t);
  let blocking = 0;
  const c1 = await s.client('elc-client', { md: { blocking: () => void blocking++ }, ost: { blocking: () => void blocking++ } });
  const file = await c1.mdc.create(s.root, 'e', 0o100644);
  const lock = await prOn(c1, file.fid);
  const elc = (handles: bigint[]) => encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: handles });
  const body = encodeBody({ op: ReintOp.SETATTR, cred: ROOT_CRED, fid: file.fid, attrs: { mode: 0o600 } });
  await c1.mdc.import.request(MdsOpcode.REINT, [body, elc([lock.remoteHandle])], { modifying: true });
  t.equal(blocking, 0, 'no blocking callback');
  t.equal(s.mdt.mdt.ldlm.service.counters.blockingSent, 0);
  t.equal(s.mdt.mdt.ldlm.counters.earlyCancels, 1);
  t.same(s.mdt.mdt.ldlm.namespace.locksOf('elc-client'), [], 'the lock went with the setattr');
  t.equal((await c1.mdc.getattr(file.fid)).mode & 0o7777, 0o600);
  // Another client's handle is not ours to cancel; a malformed buffer is refused.
  const c2 = await s.client('elc-other');
  const theirs = await prOn(c2, file.fid);
  await c1.mdc.import.request(MdsOpcode.REINT, [encodeBody({ op: ReintOp.SETATTR, cred: ROOT_CRED, fid: file.fid, attrs: { mtime: 5 } }),
    elc([theirs.remoteHandle])], { modifying: true });
  t.equal(s.mdt.mdt.ldlm.counters.earlyCancels, 1, 'nothing cancelled for another client');
  await t.rejects(c1.mdc.import.request(MdsOpcode.REINT, [body, Buffer.alloc(5)], { modifying: true }), { code: 'EPROTO' });
  // A malformed reint (decoded once for its locks and its handler): EPROTO, no lock left behind.
  const locksBefore = s.mdt.mdt.ldlm.namespace.stats().lock_count;
  await t.rejects(c1.mdc.import.request(MdsOpcode.REINT, [encodeBody({ op: ReintOp.UNLINK, cred: ROOT_CRED, parent: 'not a fid', name: 'x' })], { modifying: true }),
    { code: 'EPROTO' });
  t.equal(s.mdt.mdt.ldlm.namespace.stats().lock_count, locksBefore, 'no lock taken or left for it');
  t.equal((await c1.mdc.getattr(file.fid)).mode & 0o7777, 0o600, 'and the MDT serves the next request');

  await c1.osc.precreate(SEQ, 1);
  const id = { seq: SEQ, oid: 1 };
  const pr = await c1.ostLocks.enqueue({ resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 0n, end: OBD_OBJECT_EOF } } });
  await c1.osc.imports.io.request(Opcode.OST_PUNCH, [encodeOstBody({ seq: SEQ, oid: 1, start: 0, end: null }), elc([pr.remoteHandle])], { modifying: true });
  t.equal(blocking, 0, 'the punch called nobody back');
  t.same(s.ost.ost.ldlm.namespace.locksOf('elc-client'), []);
});

t.test('a client that never cancels is evicted after lock_timeout, and the setattr completes', async (t) => {
  const s = await setup(t);
  let calls = 0;
  const c1 = await s.client('silent-client', { md: { blocking: () => void calls++ } });
  const c2 = await s.client('busy-client');
  const file = await c2.mdc.create(s.root, 'g', 0o100644);
  await prOn(c1, file.fid);
  const attr = await c2.mdc.setattr(file.fid, { uid: 7 });
  t.equal(attr.uid, 7, 'the setattr completed');
  t.equal(calls, 1, 'the client was asked once');
  const ldlm = s.mdt.mdt.ldlm;
  t.equal(ldlm.service.counters.evictions, 1, 'one eviction');
  t.same(ldlm.namespace.locksOf('silent-client'), [], 'its locks are gone');
  const service = s.mdt.mdt.services[0]!;
  t.equal(service.exports.byUuid('silent-client'), undefined, 'its export is gone');
  t.equal(service.exports.byUuid('busy-client') !== undefined, true, 'the other client stays');
  // The OST's export of the client stays: each target evicts its own.
  t.ok(s.ost.ost.services[0]!.exports.byUuid('silent-client'), 'the OST still knows it');
});

t.test('an IT_GETATTR enqueue answers the attributes with a PR lock; IT_LOOKUP by name, negative too', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('intent-client');
  const file = await c1.mdc.create(s.root, 'h', 0o100640);
  const intent = (opc: number, body: object) => [encodeLdlmIntent(opc), encodeBody({ cred: ROOT_CRED, ...body })];
  const lock = await c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS },
    intent: intent(IntentOp.GETATTR, { fid: file.fid }),
  });
  t.equal(lock.mode, LockMode.PR);
  t.equal(lock.policy && 'bits' in lock.policy ? lock.policy.bits : 0, PR_BITS, 'LOOKUP|UPDATE|PERM granted');
  const attr = decodeAttr(decodeBody(lock.replyBuffers).attr);
  t.equal(attr.fid, file.fid);
  t.equal(attr.mode, 0o100640);
  t.equal(lock.policyRes1 & BigInt(Disposition.IT_EXECD), BigInt(Disposition.IT_EXECD));
  t.equal(s.mdt.mdt.ldlm.namespace.locksOf('intent-client').length, 1, 'the lock is held');

  const byName = await c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.UPDATE },
    intent: intent(IntentOp.LOOKUP, { parent: s.root, name: 'h' }),
  });
  t.equal(decodeAttr(decodeBody(byName.replyBuffers).attr).fid, file.fid, 'the lookup found the name');
  t.equal(byName.policyRes1 & BigInt(Disposition.LOOKUP_POS), BigInt(Disposition.LOOKUP_POS));
  t.same(byName.resId, resIdOfFid(parseFid(file.fid)), 'the lock handed out is the child\'s (the directory\'s was replaced)');
  const serverLocks = s.mdt.mdt.ldlm.namespace.locksOf('intent-client');
  t.same(serverLocks.map((l) => l.resId), [resIdOfFid(parseFid(file.fid)), resIdOfFid(parseFid(file.fid))], 'the server holds two locks on the file, none on the directory');
  // The child's lock is revoked by an unlink of the name, like any lock of the client.
  const c2 = await s.client('intent-unlinker');
  const doomed = await c2.mdc.create(s.root, 'doomed', 0o100644);
  const doomedLock = await c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.LOOKUP },
    intent: intent(IntentOp.LOOKUP, { parent: s.root, name: 'doomed' }),
  });
  t.same(doomedLock.resId, resIdOfFid(parseFid(doomed.fid)));
  await c2.mdc.unlink(s.root, 'doomed');
  t.equal(c1.mdLocks.lookup(doomedLock.handle), undefined, 'unlink revoked the lock the lookup handed out');
  const negative = await c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.UPDATE },
    intent: intent(IntentOp.LOOKUP, { parent: s.root, name: 'nothing' }),
  });
  t.equal(negative.policyRes1 & BigInt(Disposition.LOOKUP_NEG), BigInt(Disposition.LOOKUP_NEG), 'a negative lookup');
  t.equal(BigInt.asIntN(64, negative.policyRes2), -2n, 'ENOENT in lock_policy_res2, the lock kept');
  await t.rejects(c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.UPDATE },
    intent: intent(IntentOp.GETATTR, { fid: file.fid }),
  }), { code: 'EPROTO' }, 'an intent about another object than the lock\'s is refused');
  await t.rejects(c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.CR, policy: { bits: InodeBits.OPEN },
    intent: intent(IntentOp.OPEN, { fid: file.fid }),
  }), { code: 'EPROTO' }, 'an IT_OPEN whose body is no open is refused');
  t.equal(s.mdt.mdt.ldlm.namespace.locksOf('intent-client').length, 3, 'failed intents leave no lock behind');
  t.same(negative.resId, resIdOfFid(parseFid(s.root)), 'the negative lookup\'s lock is the directory\'s');
});

t.test('an IT_GETATTR waits behind a setattr\'s lock and answers what the setattr wrote', async (t) => {
  const s = await setup(t);
  let c1Locks!: LdlmClient;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const c1 = await s.client('slow-holder', {
    md: {
      blocking: async (lock) => {
        await released; // cancels only when told
        await c1Locks.cancel([lock]);
      },
    },
  });
  c1Locks = c1.mdLocks;
  const c2 = await s.client('writer');
  const c3 = await s.client('reader');
  const file = await c2.mdc.create(s.root, 'k', 0o100644);
  await prOn(c1, file.fid);
  const setattr = c2.mdc.setattr(file.fid, { mode: 0o100600 });
  await until('the setattr to wait for its lock', () => s.mdt.mdt.ldlm.counters.localWaited === 1);
  const getattr = c3.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS },
    intent: [encodeLdlmIntent(IntentOp.GETATTR), encodeBody({ cred: ROOT_CRED, fid: file.fid })],
  });
  await until('the getattr to queue', () => s.mdt.mdt.ldlm.namespace.locksOn(resIdOfFid(parseFid(file.fid))).waiting.length === 2);
  release();
  await setattr;
  const lock = await getattr;
  t.equal(decodeAttr(decodeBody(lock.replyBuffers).attr).mode & 0o7777, 0o600, 'the getattr saw the setattr');
});

t.test('a lookup by name whose child\'s lock must wait is handed out once granted', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('waiting-lookup');
  const file = await c1.mdc.create(s.root, 'w', 0o100644);
  const ldlm = s.mdt.mdt.ldlm;
  const child = resIdOfFid(parseFid(file.fid));
  const release = await ldlm.lock([{ resId: child, type: LockType.IBITS, mode: LockMode.EX, policy: { bits: InodeBits.LOOKUP } }]);
  const lookup = c1.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: PR_BITS },
    intent: [encodeLdlmIntent(IntentOp.LOOKUP), encodeBody({ cred: ROOT_CRED, parent: s.root, name: 'w' })],
  });
  await until('the child\'s lock to queue', () => ldlm.namespace.locksOn(child).waiting.length === 1);
  release();
  const lock = await lookup;
  t.same(lock.resId, child, 'the child\'s lock');
  t.equal(lock.mode, LockMode.PR);
  t.equal(decodeAttr(decodeBody(lock.replyBuffers).attr).fid, file.fid);
  t.equal(c1.mdLocks.counters.waited, 1, 'the client waited for its completion callback');
  t.same(ldlm.namespace.locksOf('waiting-lookup').map((l) => l.resId), [child], 'nothing left on the directory');
});

t.test('the target\'s own lock gets no callback and is never evicted; a client waits for it', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('patient-client');
  const file = await c1.mdc.create(s.root, 'n', 0o100644);
  const ldlm = s.mdt.mdt.ldlm;
  const release = await ldlm.lock([{ resId: resIdOfFid(parseFid(file.fid)), type: LockType.IBITS, mode: LockMode.EX, policy: { bits: InodeBits.UPDATE } }]);
  let granted = false;
  const waiting = prOn(c1, file.fid).then((l) => {
    granted = true;
    return l;
  });
  await until('the client\'s lock to queue', () => ldlm.namespace.locksOn(resIdOfFid(parseFid(file.fid))).waiting.length === 1);
  // Longer than the lock timeout: the local holder is not evicted, nor is the waiter.
  const evictions = ldlm.service.counters.evictions;
  await new Promise((r) => setTimeout(r, LOCK_TIMEOUT_MS * 1.5));
  t.equal(granted, false, 'the client still waits');
  t.equal(ldlm.service.counters.evictions, evictions, 'nobody was evicted');
  t.equal(ldlm.service.counters.blockingSent, 0, 'no blocking callback went anywhere');
  release();
  t.equal((await waiting).mode, LockMode.PR, 'granted once the target gave its lock back');
});

t.test('exports that go release their locks: disconnect, forced umount', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('leaving-client');
  const file = await c1.mdc.create(s.root, 'm', 0o100644);
  await prOn(c1, file.fid);
  const id = { seq: SEQ, oid: 1 };
  await c1.osc.precreate(SEQ, 1);
  await c1.ostLocks.enqueue({ resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PR, policy: { extent: { start: 0n, end: OBD_OBJECT_EOF } } });
  t.equal(s.mdt.mdt.ldlm.namespace.locksOf('leaving-client').length, 1);
  t.equal(s.ost.ost.ldlm.namespace.locksOf('leaving-client').length, 1);
  c1.mdLocks.close();
  c1.ostLocks.close();
  await c1.mdc.disconnect();
  await c1.osc.disconnect();
  t.same(s.mdt.mdt.ldlm.namespace.locksOf('leaving-client'), [], 'the MDT dropped its locks');
  t.same(s.ost.ost.ldlm.namespace.locksOf('leaving-client'), [], 'the OST dropped its locks');

  const c2 = await s.client('forced-client');
  const other = await c2.mdc.create(s.root, 'o', 0o100644);
  await prOn(c2, other.fid);
  t.equal(s.mdt.mdt.ldlm.namespace.locksOf('forced-client').length, 1);
  await s.mdt.mdt.services[0]!.evictAll(); // what lustre.umount --force does
  t.same(s.mdt.mdt.ldlm.namespace.locksOf('forced-client'), [], 'a forced umount\'s evictions dropped its locks');
});

t.test('OST: punch revokes a PR extent lock; the enqueue reply carries the LVB; a glimpse asks the PW holder', async (t) => {
  const s = await setup(t);
  const events: string[] = [];
  let c1Locks!: LdlmClient;
  const c1 = await s.client('ost-client-1', {
    ost: {
      blocking: async (lock) => {
        events.push('c1 blocking callback');
        await c1Locks.cancel([lock]);
      },
      glimpse: () => encodeOstLvb({ size: 12_345n, blocks: 32n, mtime: 2_000_000_000, atime: 0, ctime: 0, mtimeNs: 0, atimeNs: 0, ctimeNs: 0 }),
    },
  });
  c1Locks = c1.ostLocks;
  const c2 = await s.client('ost-client-2');
  await c2.osc.precreate(SEQ, 2);
  const id = { seq: SEQ, oid: 1 };
  await c2.osc.write(id, 0, Buffer.alloc(8192, 7));
  const whole = { extent: { start: 0n, end: OBD_OBJECT_EOF } };
  const pr = await c1.ostLocks.enqueue({ resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PR, policy: whole });
  t.equal(decodeOstLvb(pr.replyBuffers[0]!).size, 8192n, 'the enqueue reply carries the object\'s LVB');
  const attrs = await c2.osc.punch(id, 100);
  events.push('punch done');
  t.equal(attrs.size, 100);
  t.same(events, ['c1 blocking callback', 'punch done'], 'the PR lock went back before the punch was answered');
  t.equal(s.ost.ost.ldlm.namespace.locks(), 0, 'nothing held after the punch');

  // A PW holder caching dirty data: a getattr from another client learns its size.
  const id2 = { seq: SEQ, oid: 2 };
  await c1.ostLocks.enqueue({ resId: objectResId(id2), type: LockType.EXTENT, mode: LockMode.PW, policy: whole });
  const seen = await c2.osc.getattr(id2);
  t.equal(seen.size, 12_345, 'the size the PW holder reported');
  t.equal(seen.mtime, 2_000_000_000, 'and its mtime');
  t.equal(s.ost.ost.ldlm.service.counters.glimpseSent, 1);
  t.equal((await c1.osc.getattr(id2)).size, 0, 'the holder itself is not glimpsed');
  t.equal(s.ost.ost.ldlm.service.counters.glimpseSent, 1);

  // Destroy revokes the holder's lock.
  events.length = 0;
  await c2.osc.destroy(id2);
  t.same(events, ['c1 blocking callback'], 'destroy revoked the PW lock');
});

t.test('lctl: ldlm.namespaces.*.lock_count and resource_count count; lock_timeout is settable', async (t) => {
  const s = await setup(t);
  const c1 = await s.client('param-client');
  const fakeTarget = (svname: string, running: unknown, md: unknown, node: MdtNode | OstNode) =>
    ({ svname, mountdata: md, recovery: {}, osd: node.osd, running: [running] }) as unknown as Target;
  const view: KernelView = {
    version: 'test', nid: s.mdt.ni.nid, startedAtMs: 0, ni: undefined, debug: { get: () => 'info', set: () => {} },
    targets: () => [fakeTarget('testfs-MDT0000', s.mdt.mdt, mdtMountdata(), s.mdt), fakeTarget('testfs-OST0000', s.ost.ost, ostMountdata(0), s.ost)],
  };
  const tree = new ParamTree(view);
  const get = async (pattern: string) => Object.fromEntries((await tree.get(pattern)).map((p) => [p.name, p.value]));
  t.same(await get('ldlm.namespaces.*.lock_count'), {
    'ldlm.namespaces.filter-testfs-OST0000_UUID.lock_count': '0', 'ldlm.namespaces.mdt-testfs-MDT0000_UUID.lock_count': '0',
  });
  const a = await c1.mdc.create(s.root, 'p', 0o100644);
  const b = await c1.mdc.create(s.root, 'q', 0o100644);
  await prOn(c1, a.fid);
  await prOn(c1, b.fid);
  await c1.mdLocks.enqueue({ resId: resIdOfFid(parseFid(b.fid)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.XATTR } });
  t.same(await get('ldlm.namespaces.mdt-*.{lock_count,resource_count}'), {
    'ldlm.namespaces.mdt-testfs-MDT0000_UUID.lock_count': '3', 'ldlm.namespaces.mdt-testfs-MDT0000_UUID.resource_count': '2',
  });
  t.same(await get('ldlm.namespaces.*.lock_timeout'), {
    'ldlm.namespaces.filter-testfs-OST0000_UUID.lock_timeout': '1.5', 'ldlm.namespaces.mdt-testfs-MDT0000_UUID.lock_timeout': '1.5',
  });
  await tree.set('ldlm.namespaces.mdt-*.lock_timeout', '3');
  t.equal(s.mdt.mdt.ldlm.namespace.lockTimeoutMs, 3000);
  await t.rejects(tree.set('ldlm.namespaces.mdt-*.lock_timeout', 'soon'), { code: 'EINVAL' });
  await t.rejects(tree.set('ldlm.namespaces.mdt-*.lock_count', '5'), { code: 'EROFS' });
});

t.test('an IT_OPEN enqueue opens (and creates) in its transaction, executed once, and hands out no lock', async (t) => {
  const s = await setup(t);
  const mdt = s.mdt.mdt;
  const calls: string[] = [];
  const cacher = await s.client('open-cacher', { md: { blocking: async (lock) => void calls.push(`blocking ${lock.handle}`) } });
  // A mount caching the directory's name holds PR LOOKUP|PERM on it: creates in it leave that alone.
  const dirName = await cacher.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode: LockMode.PR, policy: { bits: InodeBits.LOOKUP | InodeBits.PERM },
  });
  const c = await s.client('open-client');
  const before = { aborted: mdt.ldlm.service.counters.intentsAborted, opens: mdt.mdStats.get('open')?.count ?? 0 };
  const O_RDWR = 2;
  const created = await c.mdc.open(s.root, 'new', OpenFlag.CREAT | OpenFlag.EXCL | O_RDWR, 0o640);
  t.equal(created.created, true, 'O_CREAT made the file');
  t.equal(created.attr.mode, 0o100640);
  t.match(created.handle, /^[0-9a-f]{16}$/, 'an open handle');
  t.equal(mdt.ldlm.service.counters.intentsAborted, before.aborted + 1, 'it went as an intent (no MDS_REINT)');
  t.equal(mdt.mdStats.get('open')?.count, before.opens + 1, 'counted in md_stats as an open');
  t.equal(mdt.ldlm.namespace.locksOf('open-client').length, 0, 'no lock handed out (ELDLM_LOCK_ABORTED)');
  t.same(calls, [], 'no callback to the mount caching the directory\'s name');
  t.ok(cacher.mdLocks.lookup(dirName.handle), 'its lock stays');
  t.equal(mdt.opens.table.get(created.handle)?.client, 'open-client', 'the MDT holds the handle');

  const again = await c.mdc.open(s.root, 'new', O_RDWR);
  t.equal(again.created, false);
  t.equal(again.attr.fid, created.attr.fid, 'an open of the existing name finds the same file');
  await t.rejects(c.mdc.open(s.root, 'new', OpenFlag.CREAT | OpenFlag.EXCL | O_RDWR, 0o640), { code: 'EEXIST' });
  await t.rejects(c.mdc.open(s.root, 'absent', O_RDWR), { code: 'ENOENT' });
  const byFid = await c.mdc.openFid(created.attr.fid, 0);
  t.equal(byFid.attr.fid, created.attr.fid, 'open by FID');
  for (const h of [created.handle, again.handle, byFid.handle]) await c.mdc.close(h);

  // The wire, as Lustre's: pb_status ELDLM_LOCK_ABORTED, a transno, the dispositions.
  const body = (name: string) => encodeBody({ cred: ROOT_CRED, op: ReintOp.OPEN, parent: s.root, name, flags: OpenFlag.CREAT | O_RDWR, mode: 0o600 });
  const enqueue = (name: string, resource = s.root) => c.mdc.import.request(Opcode.LDLM_ENQUEUE, [
    encodeLdlmRequest({
      flags: LockFlag.HAS_INTENT,
      lockDesc: { resId: resIdOfFid(parseFid(resource)), type: LockType.IBITS, reqMode: LockMode.CW, grantedMode: 0, policy: { bits: InodeBits.LOOKUP } },
      lockHandles: [77n],
    }),
    encodeLdlmIntent(IntentOp.OPEN | IntentOp.CREAT), body(name),
  ], { modifying: true });
  const raw = await enqueue('raw');
  t.equal(raw.status, ELDLM_LOCK_ABORTED);
  t.ok(raw.transno > 0n, 'a transno: it is an update, replayed until committed');
  const dlm = decodeLdlmReply(raw.buffers[0]);
  t.equal(dlm.lockHandle, 0n, 'no lock handle');
  t.equal(dlm.policyRes1, BigInt(Disposition.IT_EXECD | Disposition.OPEN_OPEN | Disposition.LOOKUP_EXECD | Disposition.LOOKUP_NEG | Disposition.OPEN_CREATE));
  t.equal(decodeBody(raw.buffers, 1).created, true);
  const existing = decodeLdlmReply((await enqueue('raw')).buffers[0]);
  t.equal(existing.policyRes1, BigInt(Disposition.IT_EXECD | Disposition.OPEN_OPEN | Disposition.LOOKUP_EXECD | Disposition.LOOKUP_POS), 'the name existed');
  await t.rejects(enqueue('elsewhere', created.attr.fid), { code: 'EPROTO' }, 'an intent on another resource than its name\'s parent: EPROTO');
  t.equal(mdt.ldlm.namespace.locksOf('open-client').length, 0, 'still no lock');

  // An MDT that answers the open intent EOPNOTSUPP (fail_loc OBD_FAIL_SRV_REQUEST_ERR on
  // LDLM_ENQUEUE): the mount opens with MDS_REINT from then on.
  const late = await s.client('open-fallback');
  t.teardown(() => {
    failLoc.set(0);
    failLoc.err = 0;
  });
  failLoc.err = Errno.EOPNOTSUPP;
  failLoc.set((CFS_FAIL_ONCE | FAIL.OBD_FAIL_SRV_REQUEST_ERR!) >>> 0, Opcode.LDLM_ENQUEUE);
  const aborted = mdt.ldlm.service.counters.intentsAborted;
  const fallback = await late.mdc.open(s.root, 'by-reint', OpenFlag.CREAT | O_RDWR, 0o600);
  t.equal(fallback.created, true, 'created through MDS_REINT after the EOPNOTSUPP');
  const next = await late.mdc.open(s.root, 'by-reint-too', OpenFlag.CREAT | O_RDWR, 0o600);
  t.equal(next.created, true);
  t.equal(mdt.ldlm.service.counters.intentsAborted, aborted, 'no intent served to that mount');
  for (const h of [fallback.handle, next.handle]) await late.mdc.close(h);
});

t.test('an IT_OPEN enqueue of PR with LOOKUP gets that lock on the file it creates, granted at once; a resent copy names it only while it holds', async (t) => {
  const s = await setup(t);
  const mdt = s.mdt.mdt;
  const calls: string[] = [];
  const c = await s.client('open-locker', { md: { blocking: async (lock) => { calls.push('blocking'); await c.mdLocks.cancel([lock]); } } });
  const other = await s.client('open-other');
  const O_RDWR = 2;
  const body = (name: string, flags = OpenFlag.CREAT | O_RDWR) => encodeBody({ cred: ROOT_CRED, op: ReintOp.OPEN, parent: s.root, name, flags, mode: 0o600 });
  const open = (name: string, mode: LockMode = LockMode.PR, flags?: number) => c.mdLocks.enqueue({
    resId: resIdOfFid(parseFid(s.root)), type: LockType.IBITS, mode, policy: { bits: PR_BITS },
    intent: [encodeLdlmIntent(IntentOp.OPEN | IntentOp.CREAT), body(name, flags)], update: { replayReply: 1 },
  });
  const replaced = mdt.ldlm.service.counters.intentsReplaced;
  const made = await open('locked');
  const m = decodeBody(made.replyBuffers);
  const fid = String((m.attr as { fid: string }).fid);
  t.equal(m.created, true);
  t.notOk(made.aborted, 'a lock was handed out');
  t.same(made.resId, resIdOfFid(parseFid(fid)), 'on the file created, not on the directory');
  t.equal(made.mode, LockMode.PR);
  t.match(made.policy, { bits: PR_BITS });
  t.equal(mdt.ldlm.service.counters.intentsReplaced, replaced + 1);
  t.ok(c.mdLocks.lookup(made.handle), 'the client holds it');
  t.equal(mdt.ldlm.namespace.lookup(made.remoteHandle)?.owner, 'open-locker', 'the MDT granted it to that client');
  t.equal(made.policyRes1, BigInt(Disposition.IT_EXECD | Disposition.OPEN_OPEN | Disposition.LOOKUP_EXECD | Disposition.LOOKUP_NEG | Disposition.OPEN_CREATE));
  await c.mdc.close(String(m.handle));

  // A lock like any other: the other client's unlink of the name calls it back first.
  await other.mdc.unlink(s.root, 'locked');
  t.same(calls, ['blocking'], 'the unlink called the lock back');
  t.notOk(c.mdLocks.lookup(made.handle), 'and it went');

  // No lock for a name that existed, nor for an enqueue of another mode (CW: Lustre's clients' own).
  await other.mdc.close((await other.mdc.open(s.root, 'kept', OpenFlag.CREAT | O_RDWR, 0o600)).handle);
  for (const [what, r] of [['an existing name', await open('kept')], ['CW', await open('cw', LockMode.CW)]] as const) {
    t.ok(r.aborted, `${what}: ELDLM_LOCK_ABORTED, no lock`);
    t.notOk(c.mdLocks.lookup(r.handle), `${what}: nothing held`);
    await c.mdc.close(String(decodeBody(r.replyBuffers).handle));
  }
  t.equal(mdt.ldlm.namespace.locksOf('open-locker').length, 0, 'the client holds no lock at the MDT');

  // A reply lost: the resent copy gets the recorded reply, its lock while it is still the client's...
  t.teardown(() => failLoc.set(0));
  failLoc.set((CFS_FAIL_ONCE | FAIL.OBD_FAIL_MDS_ALL_REPLY_NET!) >>> 0);
  const resent = await open('resent');
  t.notOk(resent.aborted, 'the resent copy names the lock granted by the first');
  t.equal(mdt.ldlm.namespace.lookup(resent.remoteHandle)?.owner, 'open-locker');
  t.ok(c.mdc.import.counters.resent >= 1, 'it was resent');
  // ... and without it once the lock is gone (as after a server restart): only the open's outcome.
  failLoc.set((CFS_FAIL_ONCE | FAIL.OBD_FAIL_MDS_ALL_REPLY_NET!) >>> 0);
  const gone = open('gone');
  let granted: bigint | undefined;
  await until('the lost reply\'s lock to be granted', () => (granted = mdt.ldlm.namespace.locksOf('open-locker').find((l) => l.handle !== resent.remoteHandle)?.handle) !== undefined);
  t.equal(mdt.ldlm.namespace.locksOf('open-locker').length, 2, 'the first copy\'s lock, granted');
  mdt.ldlm.service.cancelLocal(granted!);
  const r = await gone;
  t.ok(r.aborted, 'the resent copy hands out no lock it no longer holds (ELDLM_LOCK_ABORTED)');
  t.equal(decodeBody(r.replyBuffers).created, true, 'the open stands, done once');
  t.notOk(c.mdLocks.lookup(r.handle), 'the client holds nothing');
});
