// The client side of lock requests: what an MDC or OSC does to take a lock from its target
// and give it back (Lustre's ldlm_cli_enqueue, ldlm_cli_cancel and the client half of the
// callbacks). One LdlmClient per import, registered with the process's CallbackService.
//
//   enqueue: a cookie of our own for the lock (lock_handle[0]) is registered before the
//     LDLM_ENQUEUE leaves, so that a completion callback overtaking the reply finds it. The
//     reply (ldlm_reply) gives the server's cookie and either the granted lock or a BLOCK_*
//     flag: then the lock is granted by a completion callback (LDLM_CP_CALLBACK), waited for
//     at most cpWaitMs (the lock is cancelled and the enqueue fails with ETIMEDOUT past it).
//   blocking callback: the owner's `blocking` hook runs (flush what the lock covers, then
//     cancel); without a hook the lock is cancelled at once. A completion callback flagged
//     AST_SENT carries a blocking callback along: the hook runs once the lock is granted.
//   cancel: LDLM_CANCEL with the server's cookies; the lock is forgotten first, so that a
//     blocking callback racing with it is answered "no such lock" (-EINVAL), which the server
//     takes as the cancel it is.
//   glimpse callback: the owner's `glimpse` hook gives the LVB (its idea of the size). A lock
//     whose grant has not reached us yet has nothing to tell (-ELDLM_NO_LOCK_DATA), never "no
//     such lock", which the server would take as a cancel.
//   eviction: when the import finds the server no longer knows it (state 'evicted'), every
//     lock is gone on the server: they are dropped here, waiting enqueues fail with EIO, and
//     the owner's `evicted` hook is told which locks it lost (to drop what they covered).
//   lock replay: when the server restarted (the import replays to a recovering target), after
//     the import's request replays and before its final ping, each granted lock is enqueued
//     again with LDLM_FL_REPLAY | BLOCK_GRANTED, its granted mode and policy and our cookie,
//     flagged MSG_REQ_REPLAY_DONE (Lustre's ldlm_replay_locks / replay_one_lock); the reply
//     carries the lock's new server cookie. The server refuses a lock that conflicts with one
//     another client replayed first: it is dropped, and the `replayRefused` hook (else
//     `evicted`) told (what it covered is no longer coherent). FLOCK locks are replayed from
//     what each lock owner of this client holds (a table kept from every flock grant and
//     unlock: callers forget flock locks at once, the server merges and splits them). An enqueue that was waiting for its completion
//     callback is sent again, as an ordinary enqueue with the same cookie, once recovery is over.
import { randomBytes } from 'node:crypto';
import type { Subscription } from 'rxjs';
import { Errno, Opcode, PtlrpcError, statusError, type Import, type ReplaySend } from '../ptlrpc/index.js';
import { ELDLM_NO_LOCK_DATA, type CallbackInfo, type CallbackService } from './callbacks.js';
import { flockApply, type FlockPiece } from './flock.js';
import { hasFlag, LockFlag, LockMode as Mode, LockType, withFlags, withoutFlags, type LockMode } from './modes.js';
import { resIdKey, type ResId } from './resource.js';
import { isFlockPolicy, type Policy } from './types.js';
import { ELDLM_LOCK_ABORTED, LDLM_MAX_HANDLES, decodeLdlmReply, encodeLdlmRequest, type LockDesc } from './wire.js';

/** LDLM_FL_BLOCKED_MASK: an enqueue reply with one of these waits for its completion callback. */
export const LDLM_FL_BLOCKED_MASK = LockFlag.BLOCK_GRANTED | 0x4 /* BLOCK_CONV */ | LockFlag.BLOCK_WAIT;
/** How long an enqueue waits for its completion callback by default (Lustre waits on; a bound is kept here). */
export const CP_WAIT_MS = 300_000;
/** Lock replays one client has on the wire at once after a server restart. */
export const LOCK_REPLAYS_IN_FLIGHT = 8;
/** Locks one client namespace keeps. */
export const CLIENT_LOCKS_MAX = 1 << 20;

export interface EnqueueRequest {
  resId: ResId;
  type: LockType;
  mode: LockMode;
  policy?: Policy;
  flags?: number;
  /** Buffers after the ldlm_request: an intent (open, lookup, getattr) for the server's intent handler. */
  intent?: Buffer[];
  /** The longest wait for the completion callback when the lock is blocked. */
  cpWaitMs?: number;
  /**
   * Early cancel: unused locks given back in the same request (their server cookies follow
   * the new lock's in lock_handle[], as Lustre packs them), saving a cancel round trip.
   */
  earlyCancels?: Array<ClientLock | bigint>;
  /**
   * Server cookies of locks forgotten here already (an early cancel the caller gathered, as the
   * MDC's hook does for an open): they follow the new lock's and `earlyCancels`' in lock_handle[].
   */
  remoteCancels?: bigint[];
  /**
   * The enqueue is an update (an open intent): executed once by the server with a transno, and
   * replayed with the intent's reply buffer `replayReply` (the import's request options).
   */
  update?: { replayReply: number };
}

export interface ClientLock {
  /** Our cookie (what callbacks name the lock by). */
  readonly handle: bigint;
  /** The server's cookie (what cancels name it by). */
  remoteHandle: bigint;
  readonly resId: ResId;
  readonly type: LockType;
  /** The granted mode. */
  mode: LockMode;
  /** The policy as granted: an extent may have grown. */
  policy: Policy | undefined;
  /** The reply's flags, and AST_SENT/CBPENDING once a blocking callback came. */
  flags: number;
  /** The LVB a completion callback carried. */
  lvb?: Buffer;
  /** The enqueue reply's buffers after the ldlm_reply (what an intent handler answered). */
  replyBuffers: Buffer[];
  /** ldlm_reply.lock_policy_res1 and res2 (an intent's disposition and status). */
  policyRes1: bigint;
  policyRes2: bigint;
  /**
   * The server did the intent and handed out no lock (ELDLM_LOCK_ABORTED, the MDT's open of a
   * file it did not create): nothing is held, only replyBuffers and policyRes1/2 say anything.
   */
  aborted?: true;
}

export interface LdlmClientHooks {
  /** The server wants the lock back: flush what it covers, then cancel. Default: cancel at once. */
  blocking?(lock: ClientLock, blockingDesc: LockDesc): void | Promise<void>;
  /** The LVB (ost_lvb) of what the lock covers. Without it a glimpse is answered -ELDLM_NO_LOCK_DATA. */
  glimpse?(lock: ClientLock, desc: LockDesc): Buffer | Promise<Buffer>;
  /** The server evicted this client: these locks are lost (what they covered is no longer coherent). */
  evicted?(locks: ClientLock[]): void;
  /**
   * A restarted server refused these locks at their replay (another client's replayed lock
   * conflicts): they are lost, the others are kept. Without it, `evicted` is told of them.
   */
  replayRefused?(locks: ClientLock[]): void;
}

interface Entry {
  lock: ClientLock | undefined;
  /** A completion callback that came before the enqueue reply. */
  early: CallbackInfo | undefined;
  granted: boolean;
  /** Settles the wait of a blocked enqueue: the completion callback, or an error. */
  wake: ((info: CallbackInfo | Error) => void) | undefined;
  blockingPending: LockDesc | undefined;
  cancelling: boolean;
  /** The enqueue's flags (without HAS_INTENT): a waiting enqueue sent again after a server restart. */
  reqFlags: number;
  /** A waiting enqueue is to be sent again (the server restarted and forgot it). */
  requeued: boolean;
}

/** The flock locks of one resource: by lock owner, its ranges (item: the pid). */
interface FlockResource {
  resId: ResId;
  owners: Map<bigint, FlockPiece<number>[]>;
}

let nextCookie = randomBytes(8).readBigUInt64LE(0) & 0x0fff_ffff_ffff_ffffn;

function newCookie(): bigint {
  nextCookie = (nextCookie + 1n) & 0x0fff_ffff_ffff_ffffn;
  return nextCookie === 0n ? newCookie() : nextCookie;
}

export interface LdlmClientCounters {
  enqueues: number;
  grantedAtOnce: number;
  waited: number;
  blocking: number;
  cancels: number;
  glimpses: number;
  /** Locks replayed to a restarted server, and those it refused. */
  replayed: number;
  replayRefused: number;
  /** Waiting enqueues sent again after a server restart. */
  requeued: number;
}

export class LdlmClient {
  readonly counters: LdlmClientCounters = {
    enqueues: 0, grantedAtOnce: 0, waited: 0, blocking: 0, cancels: 0, glimpses: 0, replayed: 0, replayRefused: 0, requeued: 0,
  };
  readonly #import: Import;
  readonly #hooks: LdlmClientHooks;
  readonly #entries = new Map<bigint, Entry>();
  readonly #unregister: () => void;
  readonly #state: Subscription;
  readonly #removeReplayStep: () => void;
  /** The flock locks this client holds, by resource key (what a lock replay sends). */
  readonly #flocks = new Map<string, FlockResource>();

  constructor(imp: Import, callbacks: CallbackService, hooks: LdlmClientHooks = {}) {
    this.#import = imp;
    this.#hooks = hooks;
    this.#unregister = callbacks.register((handle) => this.#entries.has(handle), {
      blocking: (info) => this.#onBlocking(info),
      completion: (info) => this.#onCompletion(info),
      glimpse: (info) => this.#onGlimpse(info),
    });
    this.#state = imp.state$.subscribe((state) => {
      if (state === 'evicted') this.#dropAll(new PtlrpcError('EIO', `evicted by the server: the lock is lost`), true);
    });
    this.#removeReplayStep = imp.addReplayStep((send) => this.#replayLocks(send));
  }

  /** Granted locks, by our cookie. */
  lookup(handle: bigint): ClientLock | undefined {
    const e = this.#entries.get(handle);
    return e?.granted ? e.lock : undefined;
  }

  locks(): ClientLock[] {
    const out: ClientLock[] = [];
    for (const e of this.#entries.values()) if (e.granted && e.lock) out.push(e.lock);
    return out;
  }

  /** Stops answering callbacks for this import's locks (they are answered -EINVAL from now on). */
  close(): void {
    this.#unregister();
    this.#state.unsubscribe();
    this.#removeReplayStep();
    this.#dropAll(new PtlrpcError('ESHUTDOWN', 'the lock client was closed during the enqueue'), false);
  }

  /** Forgets every lock; blocked enqueues fail with `err`. */
  #dropAll(err: Error, tell: boolean): void {
    const lost: ClientLock[] = [];
    for (const e of this.#entries.values()) {
      if (e.granted && e.lock) lost.push(e.lock);
      e.wake?.(err);
    }
    this.#entries.clear();
    this.#flocks.clear();
    if (tell && lost.length > 0) this.#hooks.evicted?.(lost);
  }

  /** Takes a lock: resolves once it is granted, or fails with the server's error (EAGAIN, EDEADLK, ...). */
  async enqueue(req: EnqueueRequest): Promise<ClientLock> {
    if (this.#entries.size >= CLIENT_LOCKS_MAX) throw new PtlrpcError('ENOLCK', `${this.#entries.size} locks held (CLIENT_LOCKS_MAX)`);
    const handle = newCookie();
    const entry: Entry = {
      lock: undefined, early: undefined, granted: false, wake: undefined, blockingPending: undefined, cancelling: false,
      reqFlags: (req.flags ?? 0) & ~LockFlag.HAS_INTENT, requeued: false,
    };
    this.#entries.set(handle, entry);
    this.counters.enqueues++;
    const cancels = this.#forget(req.earlyCancels ?? [], LDLM_MAX_HANDLES - 1, true);
    this.counters.cancels += cancels.length;
    cancels.push(...(req.remoteCancels ?? []).slice(0, LDLM_MAX_HANDLES - 1 - cancels.length));
    const body = encodeLdlmRequest({
      flags: (req.flags ?? 0) | (req.intent ? LockFlag.HAS_INTENT : 0),
      lockDesc: { resId: req.resId, type: req.type, reqMode: req.mode, grantedMode: 0, policy: req.policy },
      lockHandles: cancels.length > 0 ? [handle, ...cancels] : [handle, 0n],
      lockCount: 1 + cancels.length,
    });
    let reply;
    try {
      reply = await this.#import.request(Opcode.LDLM_ENQUEUE, [body, ...(req.intent ?? [])], req.update && { modifying: true, replayReply: req.update.replayReply });
    } catch (err) {
      this.#entries.delete(handle);
      throw err;
    }
    let r;
    try {
      r = decodeLdlmReply(reply.buffers[0]);
    } catch (err) {
      this.#entries.delete(handle);
      throw err;
    }
    if (reply.status === ELDLM_LOCK_ABORTED) {
      // The intent was done, no lock handed out: nothing to keep (a callback naming the cookie is answered "no such lock").
      this.#entries.delete(handle);
      return {
        handle, remoteHandle: 0n, resId: r.lockDesc.resId, type: req.type, mode: 0 as LockMode, policy: req.policy, flags: r.flags,
        replyBuffers: reply.buffers.slice(1), policyRes1: r.policyRes1, policyRes2: r.policyRes2, aborted: true,
      };
    }
    const lock: ClientLock = {
      // The reply's resource: an intent by name may hand out a lock on the child it found.
      handle, remoteHandle: r.lockHandle, resId: r.lockDesc.resId, type: req.type,
      // F_GETLK: the reply's requested mode is the conflicting lock's (NL: none).
      mode: r.lockDesc.grantedMode || (hasFlag(req.flags ?? 0, LockFlag.TEST_LOCK) ? r.lockDesc.reqMode : req.mode),
      policy: r.lockDesc.policy ?? req.policy, flags: r.flags, replyBuffers: reply.buffers.slice(1),
      policyRes1: r.policyRes1, policyRes2: r.policyRes2,
    };
    entry.lock = lock;
    if (this.#entries.get(handle) !== entry) throw new PtlrpcError('EIO', 'the lock was dropped during its enqueue (eviction or close)');
    if ((req.flags ?? 0) & LockFlag.TEST_LOCK) {
      // F_GETLK: the reply describes the conflicting lock (mode NL: none); nothing is held.
      this.#entries.delete(handle);
      return lock;
    }
    if ((r.flags & LDLM_FL_BLOCKED_MASK) === 0) {
      this.counters.grantedAtOnce++;
      this.#grant(entry, undefined);
      this.#flockGranted(lock, req);
      return lock;
    }
    this.counters.waited++;
    const info = entry.early ?? (await this.#waitCompletion(entry, req.cpWaitMs ?? CP_WAIT_MS));
    this.#grant(entry, info);
    this.#flockGranted(lock, req);
    return lock;
  }

  /** Flock locks this client holds (owner, range, mode), as a lock replay sends them. */
  flocks(): Array<{ resId: ResId; owner: bigint; pid: number; start: bigint; end: bigint; mode: LockMode }> {
    const out = [];
    for (const r of this.#flocks.values()) {
      for (const [owner, pieces] of r.owners) for (const p of pieces) out.push({ resId: r.resId, owner, pid: p.item, start: p.start, end: p.end, mode: p.mode });
    }
    return out;
  }

  /** A flock request was granted (an unlock too): the owner's ranges change as the server's did. */
  #flockGranted(lock: ClientLock, req: EnqueueRequest): void {
    if (lock.type !== LockType.FLOCK || !isFlockPolicy(req.policy)) return;
    const mode = lock.mode;
    if (mode !== Mode.PR && mode !== Mode.PW && mode !== Mode.NL) return; // a refused waiter holds nothing
    const f = req.policy.flock;
    const key = resIdKey(lock.resId);
    let r = this.#flocks.get(key);
    if (!r) this.#flocks.set(key, (r = { resId: lock.resId, owners: new Map() }));
    const pieces = flockApply(r.owners.get(f.owner) ?? [], { start: f.start, end: f.end, mode, item: f.pid });
    if (pieces.length > 0) r.owners.set(f.owner, pieces);
    else r.owners.delete(f.owner);
    if (r.owners.size === 0) this.#flocks.delete(key);
  }

  /**
   * The import's replay step: every granted lock, then every flock range, replayed with up to
   * LOCK_REPLAYS_IN_FLIGHT on the wire; refused ones are dropped and the owner told. Throws
   * when the server is gone again (the import then connects anew and replays again).
   */
  async #replayLocks(send: ReplaySend): Promise<void> {
    const lost: ClientLock[] = [];
    const tasks: Array<() => Promise<void>> = [];
    for (const [handle, e] of [...this.#entries]) {
      if (!e.lock || e.cancelling) continue;
      if (!e.granted) {
        this.#requeue(handle, e);
        continue;
      }
      const lock = e.lock;
      if (lock.type === LockType.FLOCK) continue; // the flock table replays those
      tasks.push(async () => {
        if (this.#entries.get(handle) !== e || e.cancelling) return;
        const remote = await this.#replayOne(send, handle, lock.resId, lock.type, lock.mode, lock.policy);
        if (this.#entries.get(handle) !== e || e.cancelling) {
          // Cancelled meanwhile, under its old cookie: the server's new lock goes too.
          if (remote !== undefined) void this.#cancelRemote(remote);
        } else if (remote !== undefined) lock.remoteHandle = remote;
        else {
          this.#entries.delete(handle);
          lost.push(lock);
        }
      });
    }
    for (const r of this.#flocks.values()) {
      for (const [owner, pieces] of r.owners) {
        for (const p of pieces) {
          tasks.push(async () => {
            const policy = { flock: { start: p.start, end: p.end, owner, pid: p.item } };
            const handle = newCookie();
            if ((await this.#replayOne(send, handle, r.resId, LockType.FLOCK, p.mode, policy)) !== undefined) return;
            const left = (r.owners.get(owner) ?? []).filter((x) => x !== p);
            if (left.length > 0) r.owners.set(owner, left);
            else r.owners.delete(owner);
            lost.push({
              handle, remoteHandle: 0n, resId: r.resId, type: LockType.FLOCK, mode: p.mode, policy, flags: 0, replyBuffers: [], policyRes1: 0n, policyRes2: 0n,
            });
          });
        }
      }
    }
    // Several replays on the wire at once (Lustre's imp_replay_inflight): the round trips
    // overlap; the first failure (the server gone again) stops the others from starting.
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (next < tasks.length && !failure) {
        try {
          await tasks[next++]!();
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOCK_REPLAYS_IN_FLIGHT, tasks.length) }, worker));
    for (const [key, r] of [...this.#flocks]) if (r.owners.size === 0) this.#flocks.delete(key);
    if (lost.length > 0) (this.#hooks.replayRefused ?? this.#hooks.evicted)?.(lost);
    if (failure) throw failure.err;
  }

  /** One lock replay; the server's new cookie, or undefined when it refused the lock. */
  async #replayOne(send: ReplaySend, handle: bigint, resId: ResId, type: LockType, mode: LockMode, policy: Policy | undefined): Promise<bigint | undefined> {
    const body = encodeLdlmRequest({
      flags: LockFlag.REPLAY | LockFlag.BLOCK_GRANTED,
      lockDesc: { resId, type, reqMode: mode, grantedMode: mode, policy },
      lockHandles: [handle, 0n], lockCount: 1,
    });
    try {
      const reply = await send(Opcode.LDLM_ENQUEUE, [body]);
      this.counters.replayed++;
      return decodeLdlmReply(reply.buffers[0]).lockHandle;
    } catch (err) {
      // No answer, or no export for us (ENOTCONN): the import connects again (and learns of an eviction).
      if (!(err instanceof PtlrpcError) || err.status === undefined || err.status === -Errno.ENOTCONN) throw err;
      this.counters.replayRefused++;
      return undefined;
    }
  }

  /**
   * A waiting enqueue the restarted server forgot: sent again with the same cookie once the
   * import is back (ordinary requests wait for the end of recovery). Granted at once, its
   * waiter wakes as by a completion callback; else the completion callback wakes it.
   */
  #requeue(handle: bigint, e: Entry): void {
    if (e.requeued) return; // already queued by an earlier replay
    e.requeued = true;
    this.counters.requeued++;
    const lock = e.lock!;
    const body = encodeLdlmRequest({
      flags: e.reqFlags, lockDesc: { resId: lock.resId, type: lock.type, reqMode: lock.mode, grantedMode: 0, policy: lock.policy },
      lockHandles: [handle, 0n], lockCount: 1,
    });
    void this.#import.request(Opcode.LDLM_ENQUEUE, [body]).then((reply) => {
      e.requeued = false;
      const r = decodeLdlmReply(reply.buffers[0]);
      if (this.#entries.get(handle) !== e) {
        void this.#cancelRemote(r.lockHandle); // it went meanwhile (its wait timed out)
        return;
      }
      lock.remoteHandle = r.lockHandle;
      if (e.granted || (r.flags & LDLM_FL_BLOCKED_MASK) !== 0) return;
      // Granted at once: as a completion callback would (the peer is the reply's).
      const info: CallbackInfo = { handle, remoteHandle: r.lockHandle, desc: r.lockDesc, flags: r.flags, peer: { nid: '', pid: 0 } };
      if (e.wake) e.wake(info);
      else e.early = info;
    }, (err: Error) => {
      e.requeued = false;
      if (this.#entries.get(handle) !== e || e.granted) return;
      this.#entries.delete(handle);
      e.wake?.(err);
    });
  }

  /** LDLM_CANCEL of a server cookie no entry names any more. */
  async #cancelRemote(remote: bigint): Promise<void> {
    await this.#import.request(Opcode.LDLM_CANCEL, [encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: [remote] })]).catch(() => undefined);
  }

  /** Gives locks back (LDLM_CANCEL with the server's cookies); unknown ones are skipped. */
  async cancel(locks: Array<ClientLock | bigint>): Promise<void> {
    for (let left = locks; left.length > 0; left = left.slice(LDLM_MAX_HANDLES)) {
      const remote = this.#forget(left.slice(0, LDLM_MAX_HANDLES), LDLM_MAX_HANDLES, false);
      if (remote.length === 0) continue;
      this.counters.cancels += remote.length;
      try {
        // Urgent: the requests in flight may be waiting on the server for this very cancel.
        await this.#import.request(Opcode.LDLM_CANCEL, [encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: remote })], { urgent: true });
      } catch (err) {
        // ESTALE: the server had none of them any more (it cancelled them itself): nothing to do.
        if ((err as PtlrpcError).code !== 'ESTALE') throw err;
      }
    }
  }

  /**
   * Forgets granted locks here without telling the server: a FLOCK lock, which the server
   * merges, splits and ends by the owner's later requests (an unlock is an enqueue of mode NL).
   */
  forgetLocal(locks: Array<ClientLock | bigint>): void {
    for (const l of locks) this.#entries.delete(typeof l === 'bigint' ? l : l.handle);
  }

  /**
   * Forgets up to `max` of the given locks the server answered for (only granted ones when
   * `grantedOnly`: a waiting lock is given back by its own cancel); returns their server cookies.
   */
  /**
   * Early cancels that ride on another request (a reint's): these granted locks are forgotten
   * here, and their server cookies returned for that request to name (at most `max`).
   */
  forgetForEarlyCancel(locks: Array<ClientLock | bigint>, max = LDLM_MAX_HANDLES): bigint[] {
    const remote = this.#forget(locks, max, true);
    this.counters.cancels += remote.length;
    return remote;
  }

  #forget(locks: Array<ClientLock | bigint>, max: number, grantedOnly: boolean): bigint[] {
    const remote: bigint[] = [];
    for (const l of locks) {
      if (remote.length >= max) break;
      const handle = typeof l === 'bigint' ? l : l.handle;
      const e = this.#entries.get(handle);
      if (!e?.lock || (grantedOnly && !e.granted)) continue;
      this.#entries.delete(handle);
      e.cancelling = true;
      remote.push(e.lock.remoteHandle);
    }
    return remote;
  }

  #waitCompletion(entry: Entry, waitMs: number): Promise<CallbackInfo> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        entry.wake = undefined;
        const lock = entry.lock!;
        void this.cancel([lock.handle]).catch(() => {});
        reject(new PtlrpcError('ETIMEDOUT', `no completion callback for lock ${lock.remoteHandle.toString(16)} within ${waitMs} ms`));
      }, waitMs);
      entry.wake = (info) => {
        clearTimeout(timer);
        entry.wake = undefined;
        if (info instanceof Error) reject(info);
        else resolve(info);
      };
    });
  }

  /** The lock is granted (by the reply, or by `cp`): a blocking callback that rode along runs now. */
  #grant(entry: Entry, cp: CallbackInfo | undefined): void {
    const lock = entry.lock!;
    entry.granted = true;
    if (cp) {
      // A flock waiter withdrawn or refused (deadlock) is completed with no mode: mode 0.
      if (cp.desc.grantedMode || lock.type === LockType.FLOCK) lock.mode = cp.desc.grantedMode as LockMode;
      if (cp.desc.policy) lock.policy = cp.desc.policy;
      if (cp.lvb) lock.lvb = cp.lvb;
      lock.flags = withFlags(withoutFlags(lock.flags, LDLM_FL_BLOCKED_MASK), cp.flags & (LockFlag.AST_SENT | LockFlag.FLOCK_DEADLOCK));
      if (cp.flags & LockFlag.AST_SENT) entry.blockingPending ??= cp.desc;
    }
    if (entry.blockingPending) {
      // After the enqueue's caller has the lock (and has taken it into use): the owner's
      // blocking hook then sees it in use, as Lustre's blocking AST waits for the lock's users.
      const desc = entry.blockingPending;
      entry.blockingPending = undefined;
      setImmediate(() => void this.#runBlocking(entry, desc));
    }
  }

  #onCompletion(info: CallbackInfo): void {
    const entry = this.#entries.get(info.handle);
    if (!entry) throw statusError(-Errno.EINVAL, 'no such lock');
    if (entry.granted) return; // a completion sent again
    if (entry.wake) entry.wake(info);
    else entry.early = info;
  }

  #onBlocking(info: CallbackInfo): void {
    const entry = this.#entries.get(info.handle);
    if (!entry) return;
    this.counters.blocking++;
    if (!entry.granted) {
      entry.blockingPending = info.desc;
      return;
    }
    void this.#runBlocking(entry, info.desc);
  }

  async #runBlocking(entry: Entry, desc: LockDesc): Promise<void> {
    const lock = entry.lock!;
    if (entry.cancelling || hasFlag(lock.flags, LockFlag.CBPENDING)) return;
    lock.flags = withFlags(lock.flags, LockFlag.CBPENDING, LockFlag.AST_SENT);
    try {
      if (this.#hooks.blocking) await this.#hooks.blocking(lock, desc);
      else await this.cancel([lock]);
    } catch {
      // The owner failed to flush or cancel: the server's lock timeout settles it (eviction).
    }
  }

  async #onGlimpse(info: CallbackInfo): Promise<Buffer> {
    const entry = this.#entries.get(info.handle);
    if (!entry) throw statusError(-Errno.EINVAL, 'no such lock');
    // Granted on the server, its reply or completion not seen here yet: nothing was written
    // under it, the OST knows all there is. "No such lock" would make the server cancel a lock
    // this client is about to hold and use (Lustre's osc_ldlm_glimpse_ast answers so too).
    if (!entry.granted || !entry.lock) throw statusError(-ELDLM_NO_LOCK_DATA, 'the lock is not granted here yet');
    if (!this.#hooks.glimpse) throw statusError(-ELDLM_NO_LOCK_DATA, 'no lock data');
    this.counters.glimpses++;
    return this.#hooks.glimpse(entry.lock, info.desc);
  }
}
