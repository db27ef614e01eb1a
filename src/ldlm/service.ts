// The lock manager of a target on the network (Lustre's ldlm_handle_enqueue / ldlm_handle_cancel
// and the server ASTs of ldlm_lockd.c): the LDLM_ENQUEUE and LDLM_CANCEL handlers a target
// adds to its request portal, over one server Namespace, and the callbacks the namespace's
// answers call for, sent to clients through their exports' reverse imports.
//
//   enqueue   [ldlm_request][intent...] -> [ldlm_reply][intent reply...]
//     The lock is granted at once (the reply describes it as granted: an extent may have
//     grown) or waits (the reply has BLOCK_GRANTED or BLOCK_WAIT: the client waits for its
//     completion callback). Holders of conflicting locks get a blocking callback. A resent
//     enqueue (MSG_RESENT) finds the lock its first copy made by the client's cookie. Handles
//     after the first one (lock_count > 1) are early cancels, done before the enqueue.
//     An intent handler, when the target gave one, runs after the enqueue with the lock and
//     adds its buffers and lock_policy_res1/res2 to the reply (the MDT's lookup/getattr). An
//     aborting intent (the MDT's open) runs first instead, and when it takes the request no
//     lock is enqueued: pb_status ELDLM_LOCK_ABORTED, the ldlm_reply describes the lock asked
//     for with no handle, and the intent's buffers and lock_policy_res1/res2 follow. Or it
//     hands out a lock of its own, granted (the MDT's open of a file it created: a lock on that
//     file, Lustre's ELDLM_LOCK_REPLACED): pb_status 0, the ldlm_reply describes that lock.
//     Such an enqueue is an update, executed once: a resent copy gets the reply recorded, its
//     lock named only while the lock is still the client's (else as ELDLM_LOCK_ABORTED, as
//     Lustre's mdt_intent_fixup_resent finds no lock: a server restarted meanwhile forgot it).
//   replay    [ldlm_request with LDLM_FL_REPLAY and a granted mode] -> [ldlm_reply]
//     Lock replay after the target restarted (the client's ldlm_replay_locks; the ptlrpc
//     service runs these in its recovery's lock phase, after every request replay): the lock is
//     granted again as the client held it (Namespace.replay), with no intent and no callbacks to
//     others, and the reply gives the client the lock's new server cookie. A lock that conflicts
//     with one another client replayed before it is refused (EAGAIN): the client drops it. A
//     replay sent again finds the lock its first copy made.
//   cancel    [ldlm_request with lock_count server cookies] -> [] (ESTALE if none was known)
//     Each cancel lets waiters through: they get completion callbacks. Served on the target's
//     request portal and, as Lustre clients send it, on the node's LDLM_CANCEL_REQUEST_PORTAL
//     (cancel-portal.ts) when the export table can be searched by handle.
//
// A client that answers a blocking or completion callback with -EINVAL no longer has the lock
// (it cancelled it meanwhile): the lock is cancelled here, as Lustre's ldlm_handle_ast_error
// does. A callback that fails otherwise (no answer within the callback timeout, the client
// unreachable) evicts the client; so does a blocking callback answered but not followed by a
// cancel within the namespace's lock timeout (a timer looks for such locks). Evicting calls the
// target's hook (which drops the export) and releases the client's locks, so others proceed.
import assert from 'node:assert/strict';
import {
  Errno, MsgFlag, Opcode, PtlrpcError, ReverseImport, LDLM_TIMEOUT_MS, statusError,
  type Export, type HandlerReply, type IncomingRequest, type Network, type OpHandler, type ReplyTransaction, type RequestContext,
} from '../ptlrpc/index.js';
import type { Observable, Subscription } from 'rxjs';
import { ELDLM_NO_LOCK_DATA } from './callbacks.js';
import { CancelPortal, type CancelTarget } from './cancel-portal.js';
import { LdlmError } from './errors.js';
import { hasFlag, LockFlag } from './modes.js';
import type { EnqueueResult, Namespace } from './namespace.js';
import { resIdToString } from './resource.js';
import type { Lock, LockRequest } from './types.js';
import { ELDLM_LOCK_ABORTED, decodeLdlmReply, decodeLdlmRequest, encodeLdlmReply, encodeLdlmRequest, type LdlmReply, type LdlmRequest, type LockDesc } from './wire.js';

/** LDLM_FL_BLOCKED_MASK: the reply flags that tell the client to wait for its completion callback. */
const BLOCKED_MASK = LockFlag.BLOCK_GRANTED | 0x4 /* BLOCK_CONV */ | LockFlag.BLOCK_WAIT;
/** LDLM_FL_AST_MASK: flags a callback carries to the client (what it should do with its cache). */
const AST_MASK = LockFlag.FLOCK_DEADLOCK | LockFlag.DISCARD_DATA;
/** The longest period between two looks for locks whose blocking callback is overdue. */
const CHECK_INTERVAL_MAX_MS = 1000;
/** Cancels one LDLM_CANCEL (or an enqueue's early cancels) may name. */
export const CANCELS_PER_REQUEST_MAX = 1024;

export interface IntentResult {
  buffers?: Buffer[];
  policyRes1?: bigint;
  policyRes2?: bigint;
  /**
   * The lock the reply hands out instead of the one enqueued (Lustre's ELDLM_LOCK_REPLACED: a
   * lookup by name locks the child it found, not the directory named). The intent handler took
   * it for the same client and cookie, and gave the enqueued one back; `waited`: it was not
   * granted at once (the reply then tells the client to wait for its completion callback).
   */
  replacement?: { lock: Lock; waited: boolean };
}

/** Runs an enqueue's intent (lookup, getattr) in the same round trip, with the lock taken. */
export type IntentHandler = (request: IncomingRequest, lock: Lock, ldlmRequest: LdlmRequest) => IntentResult | Promise<IntentResult>;

/**
 * An intent done before any lock is enqueued, which hands out none (the MDT's open, as Lustre's
 * intent policy returning ELDLM_LOCK_ABORTED): undefined for an enqueue that is not such an
 * intent (it goes on as usual). Runs in the request's context: a modifying enqueue's
 * transaction is there.
 */
export type AbortingIntentHandler<Tx extends ReplyTransaction = ReplyTransaction> =
  (request: IncomingRequest, ldlmRequest: LdlmRequest, context: RequestContext<Tx>) => Promise<IntentResult | undefined> | undefined;

export interface LdlmServiceConfig {
  ni: Network;
  namespace: Namespace;
  /**
   * The target's clients (its service's export table): callbacks go to their reverse imports.
   * With byHandle, cancels are also taken on LDLM_CANCEL_REQUEST_PORTAL.
   */
  exports: { byUuid(uuid: string): Export | undefined; byHandle?(handle: bigint): Export | undefined };
  /** The target's eviction hook: drop the client's export. Its locks are released here. */
  evict(exportUuid: string, reason: string): void;
  /**
   * Exports the target drops on its own (the ping evictor, a forced umount: its service's
   * evictions$): their locks are released. A disconnect is the target's to report (exportGone).
   */
  exportsGone$?: Observable<{ clientUuid: string }>;
  intent?: IntentHandler;
  abortingIntent?: AbortingIntentHandler<any>;
  /**
   * The target's own locks (Lustre's local locks: mdt_object_lock, the OST's punch lock): owners
   * that are no client, taken with enqueueLocal. They get no callbacks (a holder gives its lock
   * back when its update is done), the lock timer never evicts them, a glimpse passes them by.
   */
  isLocal?(owner: string): boolean;
  /** Told of each lock granted after waiting, before its completion callback goes out (a local one gets none). */
  granted?(lock: Lock): void;
  /** How long a callback waits for the client's answer: min(LDLM_TIMEOUT_MS, the lock timeout). */
  callbackTimeoutMs?: number;
  /** How often overdue locks are looked for: a quarter of the lock timeout (at least 10 ms). */
  checkIntervalMs?: number;
  /** Where evictions and failed callbacks are told. */
  log?: (message: string) => void;
}

export interface LdlmServiceCounters {
  enqueues: number;
  grantedAtOnce: number;
  cancels: number;
  blockingSent: number;
  completionSent: number;
  glimpseSent: number;
  callbackErrors: number;
  /** Callbacks answered -EINVAL: the client had cancelled already; the lock was cancelled here. */
  raceCancels: number;
  evictions: number;
  /** Locks granted again by lock replay, and replays refused (they conflicted with one replayed before). */
  replayed: number;
  replayRefused: number;
  /** Enqueues whose intent was done with no lock handed out (ELDLM_LOCK_ABORTED: the MDT's opens). */
  intentsAborted: number;
  /** Enqueues whose aborting intent handed out a lock of its own instead (the MDT's open of a file it created). */
  intentsReplaced: number;
}

export class LdlmService {
  readonly counters: LdlmServiceCounters = {
    enqueues: 0, grantedAtOnce: 0, cancels: 0, blockingSent: 0, completionSent: 0, glimpseSent: 0,
    callbackErrors: 0, raceCancels: 0, evictions: 0, replayed: 0, replayRefused: 0, intentsAborted: 0, intentsReplaced: 0,
  };
  readonly namespace: Namespace;
  readonly #c: LdlmServiceConfig;
  readonly #callbackTimeoutMs: number | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #log: (message: string) => void;
  readonly #gone: Subscription | undefined;
  readonly #cancelTarget: CancelTarget | undefined;
  readonly #cancelPortal: CancelPortal | undefined;
  #stopped = false;

  constructor(config: LdlmServiceConfig) {
    this.#c = config;
    this.namespace = config.namespace;
    this.#callbackTimeoutMs = config.callbackTimeoutMs;
    this.#log = config.log ?? (() => {});
    // lock_timeout may be lowered while running: the timer looks often enough for any value.
    const intervalMs = config.checkIntervalMs ?? Math.max(10, Math.min(CHECK_INTERVAL_MAX_MS, Math.floor(config.namespace.lockTimeoutMs / 4)));
    this.#timer = setInterval(() => this.#evictOverdue(), intervalMs);
    this.#timer.unref();
    this.#gone = config.exportsGone$?.subscribe((exp) => this.exportGone(exp.clientUuid));
    const byHandle = config.exports.byHandle?.bind(config.exports);
    if (byHandle) {
      this.#cancelTarget = { exportByHandle: byHandle, cancelRequest: (exp, buffers) => this.#cancelRequest(exp, buffers) };
      this.#cancelPortal = CancelPortal.join(config.ni, this.#cancelTarget);
    }
  }

  /** The handlers to add to the target's request portal: LDLM_ENQUEUE and LDLM_CANCEL. */
  handlers<Tx extends ReplyTransaction = never>(): Map<number, OpHandler<Tx>> {
    return new Map<number, OpHandler<Tx>>([
      [Opcode.LDLM_ENQUEUE, {
        lockReplay: true, handle: (request, context) => this.#enqueue(request, context),
        reconstruct: (request, recorded) => this.#reconstruct(request, recorded),
      }],
      [Opcode.LDLM_CANCEL, { highPriority: true, handle: (request) => this.#cancel(request) }],
    ]);
  }

  /** Stops the lock timer; callbacks in flight settle on their own. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#gone?.unsubscribe();
    if (this.#cancelTarget) this.#cancelPortal?.leave(this.#cancelTarget);
  }

  /**
   * Evicts a client: the target's hook drops its export, and its locks are released (waiters
   * behind them are granted).
   */
  evict(exportUuid: string, reason: string): void {
    this.counters.evictions++;
    const exp = this.#c.exports.byUuid(exportUuid);
    this.#log(`${this.namespace.name}: evicting client ${exportUuid} at ${exp?.peer.nid ?? 'an unknown NID'}: ${reason}`);
    try {
      this.#c.evict(exportUuid, reason);
    } catch (err) {
      this.#log(`${this.namespace.name}: the eviction hook failed for ${exportUuid}: ${(err as Error).message}`);
    }
    exp?.reverse?.close(`evicted: ${reason}`);
    this.exportGone(exportUuid);
  }

  /**
   * A lock of the target itself (config.isLocal owns request.owner): enqueued, and the blocking
   * callbacks it calls for sent to the clients in its way. When it waits, config.granted tells
   * when it is granted.
   */
  enqueueLocal(request: LockRequest): EnqueueResult {
    const r = this.namespace.enqueue(request);
    this.#sendCallbacks(r.completions, r.blocking, r.aborted);
    return r;
  }

  /** Gives a lock of the target itself back (granted or waiting): waiters behind it proceed. */
  cancelLocal(handle: bigint): void {
    const r = this.namespace.cancel(handle);
    this.#sendCallbacks(r.granted, r.blocking, r.aborted);
  }

  /** A client's export is gone (disconnect, ping eviction): its locks are released. */
  exportGone(exportUuid: string): void {
    const r = this.namespace.evict(exportUuid);
    this.#sendCallbacks(r.granted, r.blocking, r.aborted);
  }

  /**
   * Glimpse: asks the holder of the furthest-reaching PW/EX extent lock on the resource for its
   * LVB (its idea of the size). undefined when nobody else holds such a lock or the holder has
   * nothing to tell; a holder that does not answer is evicted.
   */
  async glimpse(lockResId: Lock['resId'], exceptOwner?: string): Promise<Buffer | undefined> {
    const lock = this.namespace.glimpseTarget(lockResId, exceptOwner);
    if (!lock || this.#c.isLocal?.(lock.owner)) return undefined;
    this.counters.glimpseSent++;
    try {
      const reply = await this.#send(lock, Opcode.LDLM_GL_CALLBACK, descOf(lock), 0);
      return reply?.buffers[0];
    } catch (err) {
      // The holder has the lock but nothing to tell: the caller reads the size itself.
      if ((err as PtlrpcError).status === -ELDLM_NO_LOCK_DATA) return undefined;
      this.#callbackFailed(lock, 'glimpse', err as PtlrpcError);
      return undefined;
    }
  }

  async #enqueue(request: IncomingRequest, context: RequestContext<ReplyTransaction>): Promise<{ status?: number; buffers: Buffer[] }> {
    const dlm = decodeRequest(request.buffers[0]);
    const owner = request.export.clientUuid;
    this.counters.enqueues++;
    this.#cancelHandles(owner, dlm.lockHandles.slice(1, Math.min(dlm.lockCount, CANCELS_PER_REQUEST_MAX + 1)));
    const clientHandle = dlm.lockHandles[0] ?? 0n;
    if ((dlm.flags & LockFlag.REPLAY) !== 0 && dlm.lockDesc?.grantedMode) return this.#replay(dlm, owner, clientHandle);
    const done = hasFlag(dlm.flags, LockFlag.HAS_INTENT) ? await this.#c.abortingIntent?.(request, dlm, context) : undefined;
    if (done) {
      if (!dlm.lockDesc) throw statusError(-Errno.EPROTO, 'an enqueue without a lock desc');
      const given = done.replacement;
      if (given) {
        // Invariant: an aborting intent hands out only a lock granted at once (nothing to wait for).
        assert(!given.waited && given.lock.grantedMode !== undefined, 'an aborting intent handed out a lock not granted');
        this.counters.intentsReplaced++;
        const reply = encodeLdlmReply({
          flags: given.lock.flags & 0xffffffff & ~BLOCKED_MASK, lockDesc: descOf(given.lock), lockHandle: given.lock.handle,
          policyRes1: done.policyRes1 ?? 0n, policyRes2: done.policyRes2 ?? 0n,
        });
        return { buffers: [reply, ...(done.buffers ?? [])] };
      }
      // No lock was enqueued: the reply describes the one asked for, with no handle.
      this.counters.intentsAborted++;
      return { status: ELDLM_LOCK_ABORTED, buffers: [abortedReply(dlm.lockDesc, done.policyRes1 ?? 0n, done.policyRes2 ?? 0n), ...(done.buffers ?? [])] };
    }
    let lock = (request.body.flags & MsgFlag.RESENT) !== 0 ? this.namespace.lookupRemote(owner, clientHandle) : undefined;
    if (!lock) {
      const desc = dlm.lockDesc;
      if (!desc) throw statusError(-Errno.EPROTO, 'an enqueue without a lock desc');
      let result;
      try {
        result = this.namespace.enqueue({
          resId: desc.resId, type: desc.type, mode: desc.reqMode, policy: desc.policy, owner, remoteHandle: clientHandle,
          flags: dlm.flags,
        });
      } catch (err) {
        if (err instanceof LdlmError) throw statusError(-(Errno[err.code as keyof typeof Errno] ?? Errno.EINVAL), err.message);
        throw err;
      }
      if (result.error) throw statusError(-Errno[result.error], `${result.error} for a ${desc.type} lock on ${resIdToString(desc.resId)}`);
      lock = result.lock;
      if (result.granted) this.counters.grantedAtOnce++;
      this.#sendCallbacks(result.completions, result.blocking, result.aborted);
    }
    const granted = lock.grantedMode !== undefined;
    let flags = lock.flags & 0xffffffff & ~BLOCKED_MASK;
    if (!granted && (dlm.flags & LockFlag.TEST_LOCK) === 0) flags |= (lock.flags & BLOCKED_MASK) || LockFlag.BLOCK_GRANTED;
    let intent: IntentResult = {};
    try {
      if (this.#c.intent) intent = await this.#c.intent(request, lock, dlm);
    } catch (err) {
      // The client never learns of a lock whose enqueue failed: it must not stay behind.
      this.#cancelHandles(owner, [lock.handle]);
      throw err;
    }
    if (intent.replacement) {
      lock = intent.replacement.lock;
      flags = (lock.flags & 0xffffffff & ~BLOCKED_MASK) | (intent.replacement.waited ? LockFlag.BLOCK_GRANTED : 0);
    }
    const reply = encodeLdlmReply({
      flags, lockDesc: descOf(lock), lockHandle: lock.handle, policyRes1: intent.policyRes1 ?? 0n, policyRes2: intent.policyRes2 ?? 0n,
    });
    return { buffers: [reply, ...(intent.buffers ?? [])] };
  }

  /**
   * The reply recorded for an enqueue that was an update (an open intent), for its resent copy:
   * as recorded, unless it names a lock that is no longer this client's under that cookie (a
   * server restart forgot it; a cancel or an eviction took it): then as ELDLM_LOCK_ABORTED,
   * the intent's outcome without the lock, which the client must not believe it holds.
   */
  #reconstruct(request: IncomingRequest, recorded: HandlerReply): HandlerReply {
    if ((recorded.status ?? 0) !== 0 || !recorded.buffers?.[0]) return recorded;
    let dlm: LdlmRequest;
    let r: LdlmReply;
    try {
      dlm = decodeLdlmRequest(request.buffers[0]);
      r = decodeLdlmReply(recorded.buffers[0]);
    } catch {
      return recorded;
    }
    if (r.lockHandle === 0n) return recorded;
    const lock = this.namespace.lookup(r.lockHandle);
    if (lock && lock.owner === request.export.clientUuid && lock.remoteHandle === (dlm.lockHandles[0] ?? 0n)) return recorded;
    const asked = dlm.lockDesc ?? r.lockDesc;
    return { status: ELDLM_LOCK_ABORTED, buffers: [abortedReply(asked, r.policyRes1, r.policyRes2), ...recorded.buffers.slice(1)] };
  }

  /** A replayed lock, granted as the client held it; EAGAIN when another client's replayed lock conflicts. */
  #replay(dlm: LdlmRequest, owner: string, clientHandle: bigint): { buffers: Buffer[] } {
    const desc = dlm.lockDesc!;
    let lock = this.namespace.lookupRemote(owner, clientHandle);
    if (!lock) {
      // Clients replay a lock in the mode it was granted, asked for as such; a conversion
      // (granted another mode than asked, Lustre's BLOCK_CONV) is not served here.
      if (desc.grantedMode !== desc.reqMode) throw statusError(-Errno.EPROTO, `a replayed lock granted ${desc.grantedMode} for ${desc.reqMode}`);
      const request = {
        resId: desc.resId, type: desc.type, mode: desc.reqMode, grantedMode: desc.reqMode, policy: desc.policy, owner, remoteHandle: clientHandle,
      };
      try {
        const conflict = this.namespace.replayConflict(request);
        if (conflict) {
          this.counters.replayRefused++;
          throw statusError(-Errno.EAGAIN, `replayed ${desc.type} lock on ${resIdToString(desc.resId)} conflicts with lock ` +
            `${conflict.handle.toString(16)} of ${conflict.owner} replayed before it`);
        }
        lock = this.namespace.replay(request);
      } catch (err) {
        if (err instanceof LdlmError) throw statusError(-(Errno[err.code as keyof typeof Errno] ?? Errno.EINVAL), err.message);
        throw err;
      }
      this.counters.replayed++;
      // Should a waiter already stand behind it, the replayed lock is owed its blocking callback.
      if (lock.flags & LockFlag.AST_SENT) this.#sendCallbacks([], [lock], []);
    }
    const reply = encodeLdlmReply({ flags: lock.flags & 0xffffffff & ~BLOCKED_MASK, lockDesc: descOf(lock), lockHandle: lock.handle, policyRes1: 0n, policyRes2: 0n });
    return { buffers: [reply] };
  }

  #cancel(request: IncomingRequest): { status?: number } {
    const status = this.#cancelRequest(request.export, request.buffers);
    return status === 0 ? {} : { status };
  }

  /** LDLM_CANCEL of `exp`, from either portal; returns the status to answer. */
  #cancelRequest(exp: Export, buffers: Buffer[]): number {
    let dlm: LdlmRequest;
    try {
      dlm = decodeLdlmRequest(buffers[0]);
    } catch {
      return -Errno.EPROTO;
    }
    const count = Math.min(Math.max(dlm.lockCount, 1), CANCELS_PER_REQUEST_MAX);
    const done = this.#cancelHandles(exp.clientUuid, dlm.lockHandles.slice(0, count));
    // Lustre answers ESTALE when none of the locks was known.
    return done > 0 ? 0 : -Errno.ESTALE;
  }

  /** Cancels the locks of `owner` among `handles` (others' and unknown ones are skipped); returns how many. */
  #cancelHandles(owner: string, handles: bigint[]): number {
    let done = 0;
    for (const handle of handles) {
      const lock = handle === 0n ? undefined : this.namespace.lookup(handle);
      if (!lock || lock.owner !== owner) continue;
      done++;
      this.counters.cancels++;
      const r = this.namespace.cancel(handle);
      this.#sendCallbacks(r.granted, r.blocking, r.aborted);
    }
    return done;
  }

  /**
   * Sends what a namespace call asked for: completion callbacks to the newly granted (with
   * AST_SENT when the lock also blocks someone already: one callback carries both, as Lustre
   * does), blocking callbacks to the others, and completions with no mode to refused flock waiters.
   */
  #sendCallbacks(granted: Lock[], blocking: Lock[], aborted: Lock[]): void {
    if (this.#stopped) return;
    const both = new Set(granted.filter((l) => blocking.includes(l)));
    for (const lock of granted) this.#completion(lock, both.has(lock) ? LockFlag.AST_SENT : 0);
    for (const lock of aborted) this.#completion(lock, LockFlag.FLOCK_DEADLOCK);
    for (const lock of blocking) if (!both.has(lock)) this.#blocking(lock);
  }

  #blocking(lock: Lock): void {
    if (this.#c.isLocal?.(lock.owner)) return; // given back once its update is done
    this.counters.blockingSent++;
    const blocker = lock.blockingHandle !== undefined ? this.namespace.lookup(lock.blockingHandle) : undefined;
    this.#send(lock, Opcode.LDLM_BL_CALLBACK, descOf(blocker ?? lock), (lock.flags & AST_MASK) | LockFlag.AST_SENT)
      .catch((err: PtlrpcError) => this.#callbackFailed(lock, 'blocking', err));
  }

  #completion(lock: Lock, flags: number): void {
    this.#c.granted?.(lock);
    if (this.#c.isLocal?.(lock.owner)) return;
    this.counters.completionSent++;
    this.#send(lock, Opcode.LDLM_CP_CALLBACK, descOf(lock), (lock.flags & AST_MASK) | flags)
      .catch((err: PtlrpcError) => this.#callbackFailed(lock, 'completion', err));
  }

  /** A callback to the lock's client; undefined when the client's export is already gone. */
  async #send(lock: Lock, opcode: number, desc: LockDesc, flags: number) {
    const exp = this.#c.exports.byUuid(lock.owner);
    if (!exp) {
      // The client is gone without its locks having been released: release them now.
      this.exportGone(lock.owner);
      return undefined;
    }
    exp.reverse ??= new ReverseImport(this.#c.ni, exp);
    const body = encodeLdlmRequest({ flags, lockCount: 1, lockDesc: desc, lockHandles: [lock.remoteHandle, lock.handle] });
    // A callback may take as long as the lock timeout as it is now (ldlm.namespaces.*.lock_timeout).
    const timeoutMs = this.#callbackTimeoutMs ?? Math.min(LDLM_TIMEOUT_MS, this.namespace.lockTimeoutMs);
    return exp.reverse.request(opcode, [body], { timeoutMs, urgent: opcode === Opcode.LDLM_BL_CALLBACK });
  }

  #callbackFailed(lock: Lock, what: string, err: PtlrpcError): void {
    this.counters.callbackErrors++;
    if (this.namespace.lookup(lock.handle) !== lock) return; // cancelled meanwhile: nothing to settle
    if (err.code === 'EINVAL') {
      // The client no longer has the lock (it cancelled it meanwhile): a normal race.
      this.counters.raceCancels++;
      const r = this.namespace.cancel(lock.handle);
      this.#sendCallbacks(r.granted, r.blocking, r.aborted);
      return;
    }
    if (err.code === 'ESHUTDOWN') return; // the export was closed: whoever closed it released the locks
    this.evict(lock.owner, `${what} callback for lock ${lock.handle.toString(16)} on ${resIdToString(lock.resId)} failed: ${err.message}`);
  }

  #evictOverdue(): void {
    const owners = new Map<string, Lock>();
    for (const lock of this.namespace.overdue()) {
      if (!owners.has(lock.owner) && !this.#c.isLocal?.(lock.owner)) owners.set(lock.owner, lock);
    }
    for (const [owner, lock] of owners) {
      this.evict(owner, `lock callback timer expired: lock ${lock.handle.toString(16)} on ${resIdToString(lock.resId)} ` +
        `not cancelled ${this.namespace.lockTimeoutMs} ms after its blocking callback`);
    }
  }
}

function decodeRequest(buffer: Buffer | undefined): LdlmRequest {
  try {
    return decodeLdlmRequest(buffer);
  } catch (err) {
    throw statusError(-Errno.EPROTO, `malformed ldlm_request: ${(err as Error).message}`);
  }
}

/** The ldlm_reply of an intent done with no lock handed out: the lock asked for, with no handle. */
function abortedReply(asked: LockDesc, policyRes1: bigint, policyRes2: bigint): Buffer {
  return encodeLdlmReply({ flags: 0, lockDesc: asked, lockHandle: 0n, policyRes1, policyRes2 });
}

/** ldlm_lock2desc: the lock as the wire describes it. */
function descOf(lock: Lock): LockDesc {
  return { resId: lock.resId, type: lock.type, reqMode: lock.reqMode, grantedMode: lock.grantedMode ?? 0, policy: lock.policy };
}
