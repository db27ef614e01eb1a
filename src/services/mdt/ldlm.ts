// The MDT's lock manager (Lustre's mdt_object_lock and mdt_intent_policy): the namespace
// 'mdt-<fsname>-MDT0000_UUID' on the MDS request portal, the MDT's own locks around its updates,
// and the intents that answer a lookup or getattr with a lock in one round trip.
//
// Local locks, per MDS_REINT (EX inodebits on objects, CW UPDATE on a directory whose names
// change, as Lustre's pdirops; taken before the request's transaction starts, see
// OpHandler.prepare, and given back once it ended, without waiting for its commit):
//   setattr          the object: UPDATE, and PERM when mode, uid or gid change
//   setxattr         the object: UPDATE|XATTR (PERM for a POSIX ACL, LAYOUT for lustre.lov)
//   create (mkdir, mknod, symlink)  the parent: UPDATE
//   link             the parent: UPDATE; the object: UPDATE (its nlink and ctime)
//   unlink, rmdir    the parent: UPDATE; the child: LOOKUP|UPDATE
//   rename           both parents: UPDATE; the renamed object: LOOKUP; a replaced one: LOOKUP|UPDATE
//   open             O_CREAT of a new name: the parent UPDATE; O_TRUNC: the object LAYOUT|UPDATE
// Early lock cancel: a reint may carry, after its body, an ldlm_request naming its client's own
// locks to give back first (TargetLdlm.earlyCancel), saving the callback to that client.
// A create, unlink, rmdir or open by name that asks to keep its parent's lock (keepParentLock,
// protocol.ts) needs neither: the lock on the parent spares that client's locks (LockRequest.
// spares), and the reply tells it the parent's new attributes (parentAttr), which its lock then
// vouches for: any other client's change there still calls the lock back first.
// A child is found by name before its locks are taken (without them); once they are held the
// name is looked up again and, if it changed meanwhile, the locks are given back and taken
// anew (at most RELOCK_TRIES times). The updates themselves still run under the MDT's object
// locks (locks.ts): these locks only revoke what clients cache.
//
// Intents (an LDLM_ENQUEUE with LDLM_FL_HAS_INTENT; buffers [ldlm_request][ldlm_intent][body]):
//   IT_GETATTR | IT_LOOKUP   body: the MDS_GETATTR request { cred, fid } on the lock's object,
//                            or the MDS_GETATTR_NAME request { cred, parent, name } with the
//                            lock enqueued on the parent: the reply then hands out, instead, a
//                            lock of the same mode and bits on the child the name leads to (its
//                            ldlm_reply's lock desc names the child's resource; Lustre's
//                            ELDLM_LOCK_REPLACED); a name that does not exist keeps the lock on
//                            the parent (any create in it revokes the negative entry)
//   reply buffers [ldlm_reply][body]: the MDS_GETATTR reply { attr }, encoded as protocol.ts
//   lock_policy_res1: the disposition (DISP_IT_EXECD | DISP_LOOKUP_EXECD | DISP_LOOKUP_POS or
//   DISP_LOOKUP_NEG), lock_policy_res2: the intent's status (0, or a negative errno such as
//   -ENOENT for a name that does not exist: the lock is kept, to cache the negative entry).
// The attributes are read only once the lock is granted (the enqueue waits as Lustre's server
// thread does), so a client never caches attributes older than its lock.
//   IT_OPEN (| IT_CREAT)     body: the MDS_REINT open's { op: open, cred, parent, name | fid,
//                            flags, mode, layout }, the lock enqueued on the parent (by name)
//                            or the file (by FID). An update: the enqueue is then modifying (a
//                            tag, executed once, a transno, replayed with its reply's body),
//                            takes the open's local locks first (and the early cancels in its
//                            ldlm_request's slots after the first), and opens in its
//                            transaction before any lock is enqueued; it hands out none
//                            (pb_status ELDLM_LOCK_ABORTED), except to an enqueue of PR for a
//                            file it created: see mdtOpenIntent.
import { fidEquals, fidToString, parseFid, type Fid } from '../../osd/index.js';
import {
  decodeLdlmIntent, decodeLdlmRequest, Disposition, hasFlag, InodeBits, IntentOp, LockFlag, LockMode, LockType, resIdEquals, resIdOfFid,
  type AbortingIntentHandler, type IntentResult, type Lock, type LdlmRequest,
} from '../../ldlm/index.js';
import { Errno, MsgFlag, Opcode, statusError, type IncomingRequest, type OpHandler, type OsdReplyTransaction } from '../../ptlrpc/index.js';
import type { LocalLockSpec, TargetLdlm } from '../target/index.js';
import { mdtError, asMdtError } from './errors.js';
import { LOV_XATTR } from './layout.js';
import { openBody, type MdtParts } from './handlers.js';
import type { Mdd } from './mdd.js';
import { squash } from './perm.js';
import {
  credField, decodeBody, decodeReint, encodeBody, fidField, keptParent, MdsOpcode, MdtProtocolError, OpenFlag, reintOf, ReintOp, str, type Cred, type ReintRequest,
} from './protocol.js';

export { Disposition };

/** How often a reint takes its locks anew when a name moved while it took them. */
export const RELOCK_TRIES = 3;

const POSIX_ACL_PREFIX = 'system.posix_acl_';

type Handler = OpHandler<OsdReplyTransaction>;
type OpenReint = Extract<ReintRequest, { op: typeof ReintOp.OPEN }>;

const ex = (fid: Fid, bits: number): LocalLockSpec => ({ resId: resIdOfFid(fid), type: LockType.IBITS, mode: LockMode.EX, policy: { bits } });
/**
 * A directory whose names change: CW UPDATE, as Lustre's parallel directory operations lock
 * the parent (mdt_lock_pdo_mode). It revokes what clients cache of the directory (their PR
 * locks) but not other updates of other names in it (CW is compatible with CW): creates in one
 * directory run side by side, each name guarded by the MDT's object locks.
 */
const dir = (fid: Fid): LocalLockSpec => ({ resId: resIdOfFid(fid), type: LockType.IBITS, mode: LockMode.CW, policy: { bits: InodeBits.UPDATE } });

/** What a reint's locks depend on: the children its names lead to (undefined: none). */
type Children = Array<Fid | undefined>;

/** The names a reint acts on, by parent: looked up before and after its locks are taken. */
function namesOf(r: ReintRequest): Array<[Fid, string]> {
  const P = (t: string) => fidField(t, 'fid');
  switch (r.op) {
    case ReintOp.UNLINK: return [[P(r.parent), r.name]];
    case ReintOp.RENAME: return [[P(r.parent), r.name], [P(r.newParent), r.newName]];
    case ReintOp.OPEN: return r.fid === undefined ? [[P(r.parent!), r.name!]] : [];
    default: return [];
  }
}

/** The local locks of a reint, given the children its names lead to now. */
export function reintLocks(r: ReintRequest, children: Children): LocalLockSpec[] {
  const P = (t: string) => fidField(t, 'fid');
  const { UPDATE, LOOKUP, PERM, XATTR, LAYOUT } = InodeBits;
  switch (r.op) {
    case ReintOp.SETATTR: {
      const perm = r.attrs.mode !== undefined || r.attrs.uid !== undefined || r.attrs.gid !== undefined;
      return [ex(P(r.fid), UPDATE | (perm ? PERM : 0))];
    }
    case ReintOp.SETXATTR: {
      const extra = r.name.startsWith(POSIX_ACL_PREFIX) ? PERM : r.name === LOV_XATTR ? LAYOUT : 0;
      return [ex(P(r.fid), UPDATE | XATTR | extra)];
    }
    case ReintOp.CREATE: return [dir(P(r.parent))];
    case ReintOp.LINK: return [dir(P(r.parent)), ex(P(r.fid), UPDATE)];
    case ReintOp.UNLINK: return [dir(P(r.parent)), ...(children[0] ? [ex(children[0], LOOKUP | UPDATE)] : [])];
    case ReintOp.RENAME: {
      const out = [dir(P(r.parent)), ...(fidEquals(P(r.parent), P(r.newParent)) ? [] : [dir(P(r.newParent))])];
      if (children[0]) out.push(ex(children[0], LOOKUP));
      if (children[1] && !(children[0] && fidEquals(children[0], children[1]))) out.push(ex(children[1], LOOKUP | UPDATE));
      return out;
    }
    case ReintOp.OPEN: {
      const target = r.fid !== undefined ? P(r.fid) : children[0];
      if (!target) return (r.flags & OpenFlag.CREAT) && r.parent ? [dir(P(r.parent))] : [];
      return (r.flags & OpenFlag.TRUNC) ? [ex(target, LAYOUT | UPDATE)] : [];
    }
  }
}

async function childrenOf(mdd: Mdd, names: Array<[Fid, string]>): Promise<Children> {
  const out: Children = [];
  for (const [parent, name] of names) out.push((await mdd.entry(parent, name).catch(() => undefined))?.fid);
  return out;
}

const sameChildren = (a: Children, b: Children): boolean =>
  a.length === b.length && a.every((f, i) => (f === undefined ? b[i] === undefined : b[i] !== undefined && fidEquals(f, b[i]!)));

/**
 * The prepare step of MDS_REINT: takes the reint's local locks (a malformed request takes
 * none: its handler refuses it).
 */
export async function prepareReint(mdd: Mdd, ldlm: TargetLdlm, request: IncomingRequest): Promise<(() => void) | undefined> {
  ldlm.earlyCancel(request);
  let r: ReintRequest;
  try {
    r = reintOf(request);
  } catch {
    return undefined;
  }
  return lockReint(mdd, ldlm, r, request.export.clientUuid);
}

/**
 * What an enqueue's buffers say of an open intent, decoded once per request: the service asks
 * whether it modifies, its prepare step and its handler each ask again.
 */
const openIntents = new WeakMap<IncomingRequest, { open: boolean; reint?: OpenReint; error?: unknown }>();

function openIntentOf(request: IncomingRequest): { open: boolean; reint?: OpenReint; error?: unknown } {
  let known = openIntents.get(request);
  if (known) return known;
  let open = false;
  if (request.buffers.length >= 3) {
    try {
      open = hasFlag(decodeLdlmRequest(request.buffers[0]).flags, LockFlag.HAS_INTENT) && (decodeLdlmIntent(request.buffers[1]) & IntentOp.OPEN) !== 0;
    } catch {
      open = false; // the enqueue's handler refuses it
    }
  }
  known = { open };
  openIntents.set(request, known);
  return known;
}

/** Whether an LDLM_ENQUEUE carries an open intent: an update, run once in a transaction. */
export function isOpenIntent(request: IncomingRequest): boolean {
  return openIntentOf(request).open;
}

/** An open intent's body, as an MDS_REINT open's (buffers [ldlm_request][ldlm_intent][body]). */
function openOf(request: IncomingRequest): OpenReint {
  const known = openIntentOf(request);
  if (known.reint) return known.reint;
  if (known.error !== undefined) throw known.error;
  try {
    const r = decodeReint([request.buffers[2]!]);
    if (r.op !== ReintOp.OPEN) throw new MdtProtocolError(`an open intent's body is reint op ${r.op}, not open`);
    known.reint = r;
    return r;
  } catch (err) {
    known.error = err;
    throw err;
  }
}

/** The prepare step of an open intent: its early cancels (the ldlm_request's slots after the first), then the open's locks. */
async function prepareOpenIntent(mdd: Mdd, ldlm: TargetLdlm, request: IncomingRequest): Promise<(() => void) | undefined> {
  if (!isOpenIntent(request)) return undefined;
  ldlm.earlyCancel(request, 0, 1);
  let r: OpenReint;
  try {
    r = openOf(request);
  } catch {
    return undefined;
  }
  return lockReint(mdd, ldlm, r, request.export.clientUuid);
}

/**
 * Takes a reint's local locks, looking its names up again once they are held. The lock on the
 * parent of a request that keeps its parent's lock (keepParentLock) spares `client`'s own.
 */
async function lockReint(mdd: Mdd, ldlm: TargetLdlm, r: ReintRequest, client: string): Promise<(() => void) | undefined> {
  let names: Array<[Fid, string]>;
  try {
    names = namesOf(r);
  } catch {
    return undefined;
  }
  let children = await childrenOf(mdd, names);
  const kept = keptParent(r);
  const spared = kept === undefined ? undefined : resIdOfFid(parseFid(kept));
  for (let tries = 1; ; tries++) {
    const specs = reintLocks(r, children);
    if (specs.length === 0) return undefined;
    if (spared) for (const s of specs) if (resIdEquals(s.resId, spared)) s.spares = client;
    const release = await ldlm.lock(specs);
    const now = await childrenOf(mdd, names);
    if (sameChildren(now, children) || tries >= RELOCK_TRIES) return release;
    release();
    children = now;
  }
}

/**
 * The MDT's handlers with MDS_REINT taking its locks first, and LDLM_ENQUEUE / LDLM_CANCEL; an
 * enqueue with an open intent is an update like MDS_REINT's open (modifying, its locks first).
 */
export function withLdlm(ops: Map<number, Handler>, mdd: Mdd, ldlm: TargetLdlm): Map<number, Handler> {
  const out = new Map(ops);
  const reint = ops.get(MdsOpcode.REINT);
  if (reint) out.set(MdsOpcode.REINT, { ...reint, prepare: (request) => prepareReint(mdd, ldlm, request) });
  for (const [opcode, h] of ldlm.handlers<OsdReplyTransaction>()) {
    out.set(opcode, opcode !== Opcode.LDLM_ENQUEUE ? h : { ...h, modifying: isOpenIntent, prepare: (request) => prepareOpenIntent(mdd, ldlm, request) });
  }
  return out;
}

/** The inodebits an open intent's lock on the file it created may cover: what a lookup's does. */
const CREATED_LOCK_BITS = InodeBits.LOOKUP | InodeBits.UPDATE | InodeBits.PERM;

/**
 * The MDT's open intent (Lustre's mdt_intent_open): an IT_OPEN enqueue on the parent (by name)
 * or on the file (by FID) opens as MDS_REINT's open does, in the request's transaction: reply
 * buffers [ldlm_reply][body], the body the open reint's ({ attr, handle, created, layout }),
 * lock_policy_res1 IT_EXECD | OPEN_OPEN, with LOOKUP_EXECD and LOOKUP_POS (the name existed) or
 * LOOKUP_NEG | OPEN_CREATE (created) for an open by name. A failed open answers its errno.
 * It hands out no lock (ELDLM_LOCK_ABORTED), except one: an enqueue that asks for PR with
 * LOOKUP (and UPDATE, PERM) gets that lock on the file it created, when it is granted at once
 * (as Lustre's mdt_object_open_lock tries its LOOKUP lock, never waiting for it), and never on
 * a replay (the client replays the lock it holds after its requests): the client then caches
 * the new name and the file's attributes, which are read again under the lock, with no lookup
 * of its own (Lustre's ELDLM_LOCK_REPLACED).
 */
export function mdtOpenIntent(p: MdtParts, ldlm: () => TargetLdlm): AbortingIntentHandler<OsdReplyTransaction> {
  return (request, dlm, context) => {
    if (!isOpenIntent(request)) return undefined;
    return (async () => {
      const start = performance.now();
      try {
        let r: OpenReint;
        try {
          r = openOf(request);
        } catch (err) {
          if (err instanceof MdtProtocolError) throw statusError(-Errno.EPROTO, `malformed open intent: ${err.message}`);
          throw err;
        }
        const on = parseFid(r.fid ?? r.parent!);
        if (!dlm.lockDesc || !resIdEquals(dlm.lockDesc.resId, resIdOfFid(on))) {
          throw statusError(-Errno.EPROTO, `the open intent names ${fidToString(on)}, not the lock's object`);
        }
        if (!context.tx) throw statusError(-Errno.EPROTO, 'an open intent outside a transaction');
        const body = await openBody(p, request, context.tx.osdTx, squash(r.cred, request.peer.nid, p.mdd.rootSquash), r).catch((err: unknown) => {
          throw asMdtError(err);
        });
        const lookup = r.fid !== undefined ? 0
          : Disposition.LOOKUP_EXECD | (body.created ? Disposition.LOOKUP_NEG | Disposition.OPEN_CREATE : Disposition.LOOKUP_POS);
        const policyRes1 = BigInt(Disposition.IT_EXECD | Disposition.OPEN_OPEN | lookup);
        const lock = body.created && !(request.body.flags & MsgFlag.REPLAY) ? lockCreated(ldlm(), request, dlm, parseFid(body.attr.fid)) : undefined;
        if (lock) body.attr = await p.mdd.getattr(parseFid(body.attr.fid));
        return { buffers: [encodeBody(body)], policyRes1, policyRes2: 0n, ...(lock && { replacement: { lock, waited: false } }) };
      } finally {
        const usecs = (performance.now() - start) * 1000;
        p.mdStats.add('open', usecs);
        request.export.stats.add('open', usecs);
      }
    })();
  };
}

/**
 * The lock an open intent asked for (PR with LOOKUP) on the file it created, for its client
 * under the enqueue's cookie, when granted at once (BLOCK_NOWAIT: a lock of another taken on
 * the new file meanwhile, an unlink's, refuses it before anyone is called back); undefined
 * otherwise. Bits beyond a lookup's are not handed out.
 */
function lockCreated(ldlm: TargetLdlm, request: IncomingRequest, dlm: LdlmRequest, fid: Fid): Lock | undefined {
  const desc = dlm.lockDesc;
  const bits = desc && desc.type === LockType.IBITS && desc.policy && 'bits' in desc.policy ? desc.policy.bits & CREATED_LOCK_BITS : 0;
  if (!desc || desc.reqMode !== LockMode.PR || !(bits & InodeBits.LOOKUP)) return undefined;
  const r = ldlm.service.enqueueLocal({
    resId: resIdOfFid(fid), type: LockType.IBITS, mode: LockMode.PR, policy: { bits }, owner: request.export.clientUuid,
    remoteHandle: dlm.lockHandles[0] ?? 0n, flags: LockFlag.BLOCK_NOWAIT,
  });
  if (r.granted) return r.lock;
  if (!r.error) ldlm.service.cancelLocal(r.lock.handle);
  return undefined;
}

/** The two's complement u64 of a status, as lock_policy_res2 carries it. */
const res2 = (status: number): bigint => BigInt.asUintN(64, BigInt(status));

/** The MDT's intent policy: IT_GETATTR and IT_LOOKUP (see the top of this file). */
export function mdtIntent(mdd: Mdd, ldlm: () => TargetLdlm): (request: IncomingRequest, lock: Lock, dlm: LdlmRequest) => Promise<IntentResult> {
  return async (request, lock, dlm) => {
    if (!hasFlag(dlm.flags, LockFlag.HAS_INTENT) || request.buffers.length < 2) return {};
    let opc: number;
    let body: Record<string, unknown>;
    try {
      opc = decodeLdlmIntent(request.buffers[1]);
      body = decodeBody(request.buffers, 2);
    } catch (err) {
      throw statusError(-Errno.EPROTO, `malformed intent: ${(err as Error).message}`);
    }
    // (An open is served before any lock is enqueued: mdtOpenIntent.)
    if (opc & IntentOp.OPEN) throw statusError(-Errno.EPROTO, 'a malformed open intent');
    if (!(opc & (IntentOp.GETATTR | IntentOp.LOOKUP))) throw mdtError('EOPNOTSUPP', `intent 0x${opc.toString(16)}`);
    if (lock.type !== LockType.IBITS) throw statusError(-Errno.EPROTO, 'a getattr intent on a lock that is not inodebits');
    let query: { fid: Fid } | { parent: Fid; name: string; cred: Cred };
    try {
      const cred = squash(credField(body.cred), request.peer.nid, mdd.rootSquash);
      query = body.name !== undefined ? { parent: fidField(body.parent, 'parent'), name: str(body.name, 'name'), cred } : { fid: fidField(body.fid, 'fid') };
    } catch (err) {
      if (err instanceof MdtProtocolError) throw statusError(-Errno.EPROTO, err.message);
      throw err;
    }
    const on = 'fid' in query ? query.fid : query.parent;
    if (!resIdEquals(lock.resId, resIdOfFid(on))) throw statusError(-Errno.EPROTO, `the intent names ${fidToString(on)}, not the lock's object`);
    if (!('fid' in query)) return lookupByName(mdd, ldlm(), lock, query);
    // Answer only under the lock: attributes read before the grant could be older than it.
    await ldlm().waitGranted(lock);
    const attr = await mdd.getattr(query.fid).catch((err: unknown) => {
      throw asMdtError(err);
    });
    return { buffers: [encodeBody({ attr })], policyRes1: BigInt(Disposition.IT_EXECD), policyRes2: 0n };
  };
}

/**
 * A lookup by name: the lock enqueued on the directory is replaced by one of the same mode and
 * bits on the child the name leads to (Lustre's mdt_getattr_name_lock and ELDLM_LOCK_REPLACED),
 * taken for the same client and cookie; the name is looked up again once the child's lock is
 * granted (a rename or unlink in between revokes nothing of ours yet). A name that does not
 * exist keeps the directory's lock: the client caches the negative entry under it.
 */
async function lookupByName(mdd: Mdd, ldlm: TargetLdlm, lock: Lock, q: { parent: Fid; name: string; cred: Cred }): Promise<IntentResult> {
  const executed = Disposition.IT_EXECD | Disposition.LOOKUP_EXECD;
  for (let tries = 1; ; tries++) {
    let child: Fid;
    try {
      child = parseFid((await mdd.lookup(q.cred, q.parent, q.name)).fid);
    } catch (err) {
      const e = asMdtError(err) as { status?: number };
      if (e.status !== -Errno.ENOENT) throw e;
      await ldlm.waitGranted(lock);
      if (await mdd.entry(q.parent, q.name).catch(() => undefined)) {
        if (tries < RELOCK_TRIES) continue; // created meanwhile: look again
        throw mdtError('ESTALE', `${q.name} keeps changing`);
      }
      return { buffers: [encodeBody({})], policyRes1: BigInt(executed | Disposition.LOOKUP_NEG), policyRes2: res2(-Errno.ENOENT) };
    }
    const bits = lock.requestedPolicy !== undefined && 'bits' in lock.requestedPolicy ? lock.requestedPolicy.bits : InodeBits.LOOKUP;
    const r = ldlm.service.enqueueLocal({
      resId: resIdOfFid(child), type: LockType.IBITS, mode: lock.reqMode, policy: { bits }, owner: lock.owner, remoteHandle: lock.remoteHandle,
    });
    if (r.error) throw statusError(-Errno[r.error], `${r.error} for the lock of ${q.name}`);
    try {
      if (!r.granted) await ldlm.waitGranted(r.lock);
      const now = await mdd.entry(q.parent, q.name).catch(() => undefined);
      if (now && fidEquals(now.fid, child)) {
        const attr = await mdd.getattr(child);
        ldlm.service.cancelLocal(lock.handle); // the directory's lock, replaced
        return {
          buffers: [encodeBody({ attr })], policyRes1: BigInt(executed | Disposition.LOOKUP_POS), policyRes2: 0n,
          replacement: { lock: r.lock, waited: !r.granted },
        };
      }
    } catch (err) {
      ldlm.service.cancelLocal(r.lock.handle);
      throw asMdtError(err);
    }
    ldlm.service.cancelLocal(r.lock.handle);
    if (tries >= RELOCK_TRIES) throw mdtError('ESTALE', `${q.name} keeps changing`);
  }
}
