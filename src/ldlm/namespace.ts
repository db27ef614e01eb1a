// The server namespace of one target ('mdt-lustre-MDT0000_UUID', 'filter-lustre-OST0000_UUID'):
// every lock the target's clients hold or wait for, by resource. A pure state machine: no
// network, no timers; the caller passes a clock, sends the callbacks each call returns, and
// asks overdue() which clients to evict.
//
// Granting (PLAIN, EXTENT, IBITS): a resource keeps a granted list and a FIFO waiting list. A
// request is granted at once when no granted lock and no earlier waiter conflicts with it;
// otherwise it waits, and every granted lock it conflicts with gets one blocking callback
// (AST_SENT marks it; the lock timeout runs from then). A cancel (or an eviction) reprocesses
// the waiting list in order: a waiter is granted when nothing granted and nothing waiting
// ahead of it conflicts, and each lock granted this way gets a completion callback.
//
// Locks of one export never conflict with each other here: a client keeps its locks coherent
// itself (one cache, one lock cache), so the server does not ask a client to cancel its own
// lock for its own request. Lustre sends such callbacks; this namespace does not.
//
// FLOCK locks follow flock.ts: owners are (export, flock owner), no blocking callbacks, no
// FIFO, merge and split of an owner's ranges, F_GETLK, EAGAIN, EDEADLK.

import { assert } from './assert.js';
import { LdlmError } from './errors.js';
import { extentConflicts, growExtent } from './extent.js';
import { flockApply, flockConflicts, flockDeadlock, flockOwnerKey, type FlockPiece } from './flock.js';
import { filterTryBits, ibitsConflicts } from './inodebits.js';
import { hasFlag, LockFlag, LockMode, lockModeCompat, LockType, wireFlags, withFlags, withoutFlags, type LockMode as Mode } from './modes.js';
import { plainConflicts } from './plain.js';
import { resIdKey, type ResId } from './resource.js';
import { isFlockPolicy, type Extent, type FlockPolicy, type InodeBitsPolicy, type Lock, type LockRequest, type Policy } from './types.js';
import { checkRequest } from './validate.js';

/** LDLM_TIMEOUT_DEFAULT: seconds a client has to answer a blocking callback. */
export const LDLM_TIMEOUT_DEFAULT_MS = 20_000;
/** The most locks one namespace holds; beyond it enqueue fails with ENOMEM. */
export const LDLM_NAMESPACE_MAX_LOCKS = 1_000_000;

export interface NamespaceOptions {
  now: () => number;
  lockTimeoutMs?: number;
  maxLocks?: number;
  /**
   * The first server handle. Handles must not repeat across a restart (a client could cancel
   * a stranger's lock with a handle from before), so a service passes a base that differs
   * per start, e.g. the boot time shifted left.
   */
  firstHandle?: bigint;
}

export interface EnqueueResult {
  lock: Lock;
  granted: boolean;
  /** Granted locks of other exports that must get a blocking callback now (each once). */
  blocking: Lock[];
  error?: 'EAGAIN' | 'EDEADLK';
  /** F_GETLK (TEST_LOCK): the lock that conflicts, if any (lock then describes it too). */
  conflict?: Lock;
  /** Other waiters this request let through (a flock unlock): completion callbacks. */
  completions: Lock[];
  /** Flock waiters this request withdrew or found deadlocked: completion with no mode. */
  aborted: Lock[];
}

export interface ReleaseResult {
  /** Waiters granted now: send them completion callbacks. */
  granted: Lock[];
  /** Granted locks that now block a waiter: send them blocking callbacks. */
  blocking: Lock[];
  /** Flock waiters refused on the way (deadlock): completion with FLOCK_DEADLOCK. */
  aborted: Lock[];
}

export interface ReplayRequest extends LockRequest {
  /** The mode the client held; defaults to the requested mode. */
  grantedMode?: Mode;
}

export interface NamespaceStats {
  lock_count: number;
  resource_count: number;
  granted: number;
  waiting: number;
  enqueue_count: number;
  cancel_count: number;
  blocking_ast_count: number;
  completion_ast_count: number;
  eviction_count: number;
  lock_timeout_ms: number;
}

interface Resource {
  readonly key: string;
  readonly resId: ResId;
  readonly type: LockType;
  /** Granted locks in grant order; and the same by granted mode (Lustre's lr_itree per mode). */
  readonly granted: Set<Lock>;
  readonly grantedByMode: Map<Mode, Set<Lock>>;
  /** Waiting locks, first come first. */
  waiting: Lock[];
}

const emptyRelease = (): ReleaseResult => ({ granted: [], blocking: [], aborted: [] });

export class Namespace {
  readonly name: string;
  /** Settable while running (ldlm.namespaces.*.lock_timeout): overdue() reads it at each call. */
  lockTimeoutMs: number;
  private readonly now: () => number;
  private readonly maxLocks: number;
  private nextHandle: bigint;
  private readonly resourcesByKey = new Map<string, Resource>();
  private readonly byHandle = new Map<bigint, Lock>();
  private readonly byOwner = new Map<string, Set<Lock>>();
  private readonly resourceOf = new Map<Lock, Resource>();
  /** Locks with a blocking callback sent and not yet cancelled. */
  private readonly astSent = new Set<Lock>();
  /** Waiting flock locks by owner key, for deadlock detection across files. */
  private readonly flockWaiters = new Map<string, Set<Lock>>();
  private readonly counters = { enqueue: 0, cancel: 0, blocking: 0, completion: 0, eviction: 0 };

  constructor(name: string, opts: NamespaceOptions) {
    this.name = name;
    this.now = opts.now;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? LDLM_TIMEOUT_DEFAULT_MS;
    this.maxLocks = opts.maxLocks ?? LDLM_NAMESPACE_MAX_LOCKS;
    this.nextHandle = opts.firstHandle !== undefined && opts.firstHandle > 0n ? opts.firstHandle : 1n;
  }

  enqueue(request: LockRequest): EnqueueResult {
    const req = checkRequest(request);
    this.counters.enqueue += 1;
    const res = this.resourceFor(req.resId, req.type);
    const lock = this.newLock(req);
    const result = req.type === LockType.FLOCK ? this.enqueueFlock(res, lock) : this.enqueueRegular(res, lock);
    this.counters.completion += result.completions.length;
    this.dropIfEmpty(res);
    return result;
  }

  cancel(handle: bigint): ReleaseResult {
    const lock = this.byHandle.get(handle);
    if (lock === undefined) return emptyRelease();
    this.counters.cancel += 1;
    const res = this.resourceOf.get(lock)!;
    this.detach(lock);
    const result = this.reprocess(res);
    this.counters.completion += result.granted.length;
    this.dropIfEmpty(res);
    return result;
  }

  /** Drops every lock of a client (evicted, or gone) and lets the waiters behind them through. */
  evict(owner: string): ReleaseResult {
    const locks = this.byOwner.get(owner);
    if (locks === undefined) return emptyRelease();
    this.counters.eviction += 1;
    const touched = new Set<Resource>();
    for (const lock of [...locks]) {
      touched.add(this.resourceOf.get(lock)!);
      this.detach(lock);
    }
    const out = emptyRelease();
    for (const res of touched) {
      const r = this.reprocess(res);
      this.counters.completion += r.granted.length;
      out.granted.push(...r.granted);
      out.blocking.push(...r.blocking);
      out.aborted.push(...r.aborted);
      this.dropIfEmpty(res);
    }
    return out;
  }

  /** Locks whose blocking callback went out more than lockTimeoutMs ago: their clients are to be evicted. */
  overdue(): Lock[] {
    const now = this.now();
    return [...this.astSent].filter((l) => l.blockingSentAt !== undefined && now - l.blockingSentAt > this.lockTimeoutMs);
  }

  /** The client is busy under this lock (IO after the callback): its timeout starts again. */
  prolong(handle: bigint): void {
    const lock = this.byHandle.get(handle);
    if (lock !== undefined && this.astSent.has(lock)) lock.blockingSentAt = this.now();
  }

  lookup(handle: bigint): Lock | undefined {
    return this.byHandle.get(handle);
  }

  /** The lock of `owner` with the client cookie `remoteHandle` (a resent enqueue finds its lock). */
  lookupRemote(owner: string, remoteHandle: bigint): Lock | undefined {
    for (const l of this.byOwner.get(owner) ?? []) if (l.remoteHandle === remoteHandle) return l;
    return undefined;
  }

  locksOf(owner: string): Lock[] {
    return [...(this.byOwner.get(owner) ?? [])];
  }

  /** Granted and waiting locks of one resource, in queue order. */
  locksOn(resId: ResId, type?: LockType): { granted: Lock[]; waiting: Lock[] } {
    const key = resIdKey(resId);
    const res = type === LockType.FLOCK ? this.resourcesByKey.get(`${key}:flock`) : this.resourcesByKey.get(key) ?? this.resourcesByKey.get(`${key}:flock`);
    return { granted: [...(res?.granted ?? [])], waiting: [...(res?.waiting ?? [])] };
  }

  resources(): number {
    return this.resourcesByKey.size;
  }

  locks(): number {
    return this.byHandle.size;
  }

  /**
   * Lock replay after a server restart: the client's granted lock, granted again as it was
   * (mode and policy), with no conflict check: the clients held these together before.
   * Clients replay their granted locks before their waiting ones (ldlm_replay_locks), which
   * come as ordinary enqueues; should a replayed lock still stand in a waiter's way, it comes
   * back with AST_SENT set, and its holder is owed a blocking callback.
   */
  replay(request: ReplayRequest): Lock {
    const req = checkRequest(request);
    this.checkRoom();
    const res = this.resourceFor(req.resId, req.type);
    const lock = this.newLock(req);
    lock.flags = withFlags(lock.flags, LockFlag.REPLAY);
    this.attach(res, lock);
    this.grant(res, lock, request.grantedMode ?? req.mode, req.policy);
    if (res.type !== LockType.FLOCK) for (const w of res.waiting) this.askToCancel(res, lock, w, []);
    return lock;
  }

  /**
   * The granted lock of another client that a replayed lock would conflict with: two clients
   * cannot both have held them (one of them replays a lock the server had taken back), so the
   * later replay is refused (Lustre trusts its clients here; its bug 268 asks for this check).
   */
  replayConflict(request: ReplayRequest): Lock | undefined {
    const req = checkRequest(request);
    const res = this.resourcesByKey.get(req.type === LockType.FLOCK ? `${resIdKey(req.resId)}:flock` : resIdKey(req.resId));
    if (res === undefined || res.type !== req.type) return undefined;
    const probe: Lock = {
      handle: 0n, resId: req.resId, type: req.type, reqMode: request.grantedMode ?? req.mode, owner: req.owner,
      remoteHandle: req.remoteHandle, flags: 0, ...(req.policy !== undefined ? { policy: req.policy, requestedPolicy: req.policy } : {}),
    };
    if (res.type === LockType.FLOCK) return [...res.granted].find((g) => flockConflicts(flockHolder(g), flockHolder(probe)));
    return [...this.grantedAgainst(res, probe.reqMode)].find((g) => this.conflicts(res, g, probe));
  }

  /**
   * Glimpse: the granted PW or EX extent lock whose holder knows the current size (the one
   * reaching furthest), other than the asker's own.
   */
  glimpseTarget(resId: ResId, exceptOwner?: string): Lock | undefined {
    const res = this.resourcesByKey.get(resIdKey(resId));
    let best: Lock | undefined;
    const writers = [...(res?.grantedByMode.get(LockMode.PW) ?? []), ...(res?.grantedByMode.get(LockMode.EX) ?? [])];
    for (const l of writers) {
      if (l.owner === exceptOwner) continue;
      const end = l.policy !== undefined && 'extent' in l.policy ? l.policy.extent.end : 0n;
      const bestEnd = best?.policy !== undefined && 'extent' in best.policy ? best.policy.extent.end : -1n;
      if (best === undefined || end >= bestEnd) best = l;
    }
    return best;
  }

  stats(): NamespaceStats {
    let granted = 0;
    let waiting = 0;
    for (const r of this.resourcesByKey.values()) {
      granted += r.granted.size;
      waiting += r.waiting.length;
    }
    return {
      lock_count: this.byHandle.size,
      resource_count: this.resourcesByKey.size,
      granted,
      waiting,
      enqueue_count: this.counters.enqueue,
      cancel_count: this.counters.cancel,
      blocking_ast_count: this.counters.blocking,
      completion_ast_count: this.counters.completion,
      eviction_count: this.counters.eviction,
      lock_timeout_ms: this.lockTimeoutMs,
    };
  }

  // ---- PLAIN, EXTENT, IBITS ----

  private enqueueRegular(res: Resource, lock: Lock): EnqueueResult {
    const base = { lock, blocking: [] as Lock[], completions: [] as Lock[], aborted: [] as Lock[] };
    if (lock.type === LockType.IBITS && !this.ibitsPossible(res, lock)) {
      return { ...base, granted: false, error: 'EAGAIN' };
    }
    const blocked = this.grantedConflict(res, lock)
      || (!this.joinsGroup(res, lock) && res.waiting.some((w) => this.conflicts(res, w, lock)));
    if (blocked && hasFlag(lock.flags, LockFlag.BLOCK_NOWAIT)) return { ...base, granted: false, error: 'EAGAIN' };
    this.checkRoom();
    this.attach(res, lock);
    const r = this.reprocess(res, lock);
    // Invariant: a request appended to the queue lets no earlier waiter through.
    assert(r.granted.every((l) => l === lock), 'enqueue grants nothing but the new lock');
    return { ...base, granted: lock.grantedMode !== undefined, blocking: r.blocking };
  }

  /**
   * A GROUP extent request whose group already holds a granted lock joins it at once, ahead
   * of any waiter (ldlm_extent_compat_queue: "group lock, grant it immediately if compatible").
   */
  private joinsGroup(res: Resource, req: Lock): boolean {
    if (res.type !== LockType.EXTENT || req.reqMode !== LockMode.GROUP) return false;
    const gid = extentOf(req.requestedPolicy).gid ?? 0n;
    for (const g of res.grantedByMode.get(LockMode.GROUP) ?? []) if ((extentOf(g.policy).gid ?? 0n) === gid) return true;
    return false;
  }

  /** An IBITS request with only try bits, all of them held by others: nothing to grant. */
  private ibitsPossible(res: Resource, lock: Lock): boolean {
    const p = lock.requestedPolicy as { bits: number; tryBits?: number };
    if (p.bits !== 0) return true;
    const others = [...res.granted, ...res.waiting].filter((l) => l.owner !== lock.owner).map((l) => this.holder(l));
    return filterTryBits(lock.reqMode, p.tryBits ?? 0, others.map((h) => ({ mode: h.mode, bits: (h.policy as { bits: number }).bits }))) !== 0;
  }

  /** Does `held` (granted, or waiting ahead) stand in the way of the waiting or new lock `req`? */
  private conflicts(res: Resource, held: Lock, req: Lock): boolean {
    if (held === req || held.owner === req.owner || held.owner === req.spares) return false;
    const heldMode = held.grantedMode ?? held.reqMode;
    const mode = req.reqMode;
    // Compatible modes never conflict, whatever they cover, except GROUP locks (their group
    // ids decide): most checks on a busy resource end here.
    if (heldMode !== LockMode.GROUP && mode !== LockMode.GROUP && lockModeCompat(heldMode, mode)) return false;
    const h = this.holder(held);
    switch (res.type) {
      case LockType.PLAIN:
        return plainConflicts(h.mode, mode);
      case LockType.EXTENT:
        return extentConflicts({ mode: h.mode, extent: extentOf(h.policy) }, { mode, extent: extentOf(req.requestedPolicy) });
      case LockType.IBITS:
        return ibitsConflicts({ mode: h.mode, bits: bitsOf(h.policy), gid: gidOf(h.policy) }, { mode, bits: bitsOf(req.requestedPolicy), gid: gidOf(req.requestedPolicy) });
      default:
        assert(false, `regular policy for type ${res.type}`);
    }
  }

  /** Granted locks that may conflict with a request of `mode`: those of incompatible modes, and GROUP locks. */
  private *grantedAgainst(res: Resource, mode: Mode): Iterable<Lock> {
    for (const [m, locks] of res.grantedByMode) {
      if (m === LockMode.GROUP || mode === LockMode.GROUP || !lockModeCompat(m, mode)) yield* locks;
    }
  }

  private grantedConflict(res: Resource, req: Lock): boolean {
    for (const g of this.grantedAgainst(res, req.reqMode)) if (this.conflicts(res, g, req)) return true;
    return false;
  }

  /** The mode and policy a lock stands in others' way with: as granted, or as requested. */
  private holder(l: Lock): { mode: Mode; policy: Policy | undefined } {
    return l.grantedMode !== undefined ? { mode: l.grantedMode, policy: l.policy } : { mode: l.reqMode, policy: l.requestedPolicy };
  }

  /**
   * Grants the waiters that can go, in order, and sends the blocking callbacks that are due.
   * `fresh` is a lock just put on the waiting list by an enqueue.
   *
   * Invariant (kept by every call): each granted lock that conflicts with a waiter has had its
   * blocking callback. So only two kinds of pairs need a look: locks granted in this pass
   * against the waiters left, and every granted lock against a fresh waiter. A cancel that
   * grants nothing sends nothing, however many locks the resource holds.
   */
  private reprocess(res: Resource, fresh?: Lock): ReleaseResult {
    if (res.type === LockType.FLOCK) return this.reprocessFlock(res);
    const out = emptyRelease();
    const still: Lock[] = [];
    // grant() takes each granted waiter out of res.waiting: walk a copy.
    for (const w of [...res.waiting]) {
      const byGranted = this.grantedConflict(res, w);
      const byWaiting = !this.joinsGroup(res, w) && still.some((x) => this.conflicts(res, x, w));
      if (!byGranted && !byWaiting) {
        this.grant(res, w, w.reqMode, this.grantedPolicy(res, w, still));
        out.granted.push(w);
        continue;
      }
      w.flags = withFlags(withoutFlags(w.flags, LockFlag.BLOCK_GRANTED, LockFlag.BLOCK_WAIT), byGranted ? LockFlag.BLOCK_GRANTED : LockFlag.BLOCK_WAIT);
      still.push(w);
    }
    res.waiting = still;
    for (const w of still) {
      const holders = w === fresh ? this.grantedAgainst(res, w.reqMode) : out.granted;
      for (const g of holders) this.askToCancel(res, g, w, out.blocking);
    }
    return out;
  }

  /** A blocking callback for `g`, if it stands in `w`'s way and has not had one. */
  private askToCancel(res: Resource, g: Lock, w: Lock, blocking: Lock[]): void {
    if (hasFlag(g.flags, LockFlag.AST_SENT) || !this.conflicts(res, g, w)) return;
    g.flags = withFlags(g.flags, LockFlag.AST_SENT);
    g.blockingSentAt = this.now();
    g.blockingHandle = w.handle;
    this.astSent.add(g);
    this.counters.blocking += 1;
    blocking.push(g);
  }

  /** The policy to grant `w` with: an extent grown as far as allowed; inode bits plus free try bits. */
  private grantedPolicy(res: Resource, w: Lock, waitingAhead: Lock[]): Policy | undefined {
    const p = w.requestedPolicy;
    if (res.type === LockType.EXTENT) {
      // Only locks that can limit growth: granted ones of an incompatible mode held by other
      // clients; waiting ones of an incompatible mode, or of this client.
      const granted = [...this.grantedAgainst(res, w.reqMode)].filter((g) => g.owner !== w.owner && !lockModeCompat(g.grantedMode!, w.reqMode))
        .map((g) => ({ mode: g.grantedMode!, owner: g.owner, extent: extentOf(g.policy) }));
      const waiting = res.waiting.filter((x) => x !== w && x.grantedMode === undefined && (x.owner === w.owner || !lockModeCompat(x.reqMode, w.reqMode)))
        .map((x) => ({ mode: x.reqMode, owner: x.owner, requested: extentOf(x.requestedPolicy) }));
      const extent = growExtent({ mode: w.reqMode, owner: w.owner, requested: extentOf(p) }, granted, waiting);
      return { extent };
    }
    if (res.type === LockType.IBITS) {
      const { bits, tryBits, gid } = p as InodeBitsPolicy;
      const group = gid !== undefined ? { gid } : {};
      if (!tryBits) return { bits, ...group };
      const others = [...res.granted, ...waitingAhead].filter((l) => l.owner !== w.owner)
        .map((l) => ({ mode: this.holder(l).mode, bits: bitsOf(this.holder(l).policy) }));
      return { bits: bits | filterTryBits(w.reqMode, tryBits, others), ...group };
    }
    return p;
  }

  // ---- FLOCK ----

  private enqueueFlock(res: Resource, lock: Lock): EnqueueResult {
    const base = { lock, blocking: [] as Lock[], completions: [] as Lock[], aborted: [] as Lock[] };
    const key = flockKeyOf(lock);
    if (hasFlag(lock.flags, LockFlag.TEST_LOCK)) {
      const conflict = [...res.granted].find((g) => flockConflicts(flockHolder(g), flockHolder(lock)));
      if (conflict === undefined) {
        lock.reqMode = LockMode.NL;
        return { ...base, granted: false };
      }
      lock.reqMode = conflict.grantedMode!;
      lock.policy = { flock: { ...flockOf(conflict) } };
      lock.flags = withFlags(lock.flags, LockFlag.LOCK_CHANGED);
      return { ...base, granted: false, conflict };
    }
    if (lock.reqMode === LockMode.NL) {
      const aborted = this.withdrawWaiting(res, lock);
      this.applyFlock(res, lock);
      const r = this.reprocessFlock(res);
      return { ...base, granted: true, completions: r.granted, aborted: [...aborted, ...r.aborted] };
    }
    const blockers = [...res.granted].filter((g) => flockConflicts(flockHolder(g), flockHolder(lock)));
    if (blockers.length > 0) {
      if (hasFlag(lock.flags, LockFlag.BLOCK_NOWAIT)) return { ...base, granted: false, error: 'EAGAIN' };
      if (flockDeadlock(key, blockers.map(flockKeyOf), (o) => this.flockWaitsFor(o))) {
        lock.flags = withFlags(lock.flags, LockFlag.FLOCK_DEADLOCK);
        return { ...base, granted: false, error: 'EDEADLK' };
      }
      this.checkRoom();
      this.attach(res, lock);
      lock.flags = withFlags(lock.flags, LockFlag.BLOCK_GRANTED);
      return { ...base, granted: false };
    }
    this.checkRoom();
    this.attach(res, lock);
    this.applyFlock(res, lock);
    const r = this.reprocessFlock(res);
    return { ...base, granted: true, completions: r.granted, aborted: r.aborted };
  }

  /** An unlock equal to a waiting lock of the same owner withdraws it (an interrupted F_SETLKW). */
  private withdrawWaiting(res: Resource, unlock: Lock): Lock[] {
    const u = flockOf(unlock);
    const key = flockKeyOf(unlock);
    const gone = res.waiting.filter((w) => flockKeyOf(w) === key && flockOf(w).start === u.start && flockOf(w).end === u.end);
    for (const w of gone) this.detach(w);
    return gone;
  }

  /** Grants `lock` into its owner's lock set: merge, split and replace, as flockApply says. */
  private applyFlock(res: Resource, lock: Lock): void {
    const key = flockKeyOf(lock);
    const own = [...res.granted].filter((g) => flockKeyOf(g) === key);
    const req = flockOf(lock);
    const pieces = flockApply<Lock>(
      own.map((g) => ({ start: flockOf(g).start, end: flockOf(g).end, mode: g.grantedMode!, item: g })),
      { start: req.start, end: req.end, mode: lock.reqMode, item: lock },
    );
    const seen = new Set<Lock>();
    for (const p of pieces) {
      if (p.item === lock) continue;
      if (!seen.has(p.item)) {
        seen.add(p.item);
        p.item.policy = { flock: { ...flockOf(p.item), start: p.start, end: p.end } };
        continue;
      }
      this.splitOff(res, p);
    }
    for (const g of own) if (!seen.has(g)) this.detach(g);
    const mine = pieces.find((p) => p.item === lock);
    if (mine === undefined) {
      // An unlock: it takes nothing itself.
      if (this.byHandle.has(lock.handle)) this.detach(lock);
      lock.grantedMode = LockMode.NL;
      return;
    }
    this.grant(res, lock, lock.reqMode, { flock: { ...req, start: mine.start, end: mine.end } });
  }

  /** The second half of a split lock: a new granted lock of the same owner. */
  private splitOff(res: Resource, p: FlockPiece<Lock>): void {
    const from = p.item;
    const half = this.newLock({
      resId: from.resId, type: from.type, mode: p.mode, owner: from.owner, remoteHandle: from.remoteHandle,
      policy: { flock: { ...flockOf(from), start: p.start, end: p.end } },
    });
    this.attach(res, half);
    this.grant(res, half, p.mode, half.requestedPolicy);
  }

  private reprocessFlock(res: Resource): ReleaseResult {
    const out = emptyRelease();
    for (let changed = true; changed; ) {
      changed = false;
      for (const w of [...res.waiting]) {
        const blockers = [...res.granted].filter((g) => flockConflicts(flockHolder(g), flockHolder(w)));
        if (blockers.length === 0) {
          this.applyFlock(res, w);
          out.granted.push(w);
          changed = true;
        } else if (flockDeadlock(flockKeyOf(w), blockers.map(flockKeyOf), (o) => this.flockWaitsFor(o, w))) {
          this.detach(w);
          w.flags = withFlags(w.flags, LockFlag.FLOCK_DEADLOCK, LockFlag.AST_SENT);
          out.aborted.push(w);
          changed = true;
        }
      }
    }
    return out;
  }

  /** The owners that owner `o` waits for now (through any of its waiting flock locks). */
  private flockWaitsFor(o: string, except?: Lock): string[] {
    const out: string[] = [];
    for (const w of this.flockWaiters.get(o) ?? []) {
      if (w === except) continue;
      const res = this.resourceOf.get(w)!;
      for (const g of res.granted) if (flockConflicts(flockHolder(g), flockHolder(w))) out.push(flockKeyOf(g));
    }
    return out;
  }

  // ---- bookkeeping ----

  private newLock(req: LockRequest): Lock {
    const handle = this.nextHandle;
    this.nextHandle += 1n;
    return {
      handle, resId: req.resId, type: req.type, reqMode: req.mode,
      ...(req.policy !== undefined ? { policy: req.policy, requestedPolicy: req.policy } : {}),
      owner: req.owner, remoteHandle: req.remoteHandle, ...(req.spares !== undefined && { spares: req.spares }),
      flags: wireFlags(req.flags ?? 0), enqueuedAt: this.now(),
    };
  }

  private checkRoom(): void {
    if (this.byHandle.size >= this.maxLocks) {
      throw new LdlmError('ENOMEM', `namespace ${this.name} holds ${this.byHandle.size} locks, its limit`);
    }
  }

  private resourceFor(resId: ResId, type: LockType): Resource {
    // An application's flock locks on a file name the file's FID, as its inodebits locks do
    // (ll_file_flock): they are kept apart, in a resource of their own.
    const key = type === LockType.FLOCK ? `${resIdKey(resId)}:flock` : resIdKey(resId);
    let res = this.resourcesByKey.get(key);
    if (res === undefined) {
      res = { key, resId, type, granted: new Set(), grantedByMode: new Map(), waiting: [] };
      this.resourcesByKey.set(key, res);
    } else if (res.type !== type) {
      throw new LdlmError('EINVAL', `resource ${key} holds locks of type ${res.type}, not ${type}`);
    }
    return res;
  }

  private dropIfEmpty(res: Resource): void {
    if (res.granted.size === 0 && res.waiting.length === 0) this.resourcesByKey.delete(res.key);
  }

  /** Puts a new lock on the resource's waiting list and in the indexes. */
  private attach(res: Resource, lock: Lock): void {
    this.byHandle.set(lock.handle, lock);
    this.resourceOf.set(lock, res);
    let set = this.byOwner.get(lock.owner);
    if (set === undefined) this.byOwner.set(lock.owner, (set = new Set()));
    set.add(lock);
    res.waiting.push(lock);
    if (res.type === LockType.FLOCK) {
      const key = flockKeyOf(lock);
      let w = this.flockWaiters.get(key);
      if (w === undefined) this.flockWaiters.set(key, (w = new Set()));
      w.add(lock);
    }
  }

  /** Moves a waiting lock to the granted list. */
  private grant(res: Resource, lock: Lock, mode: Mode, policy: Policy | undefined): void {
    const i = res.waiting.indexOf(lock);
    assert(i >= 0, 'a lock is granted from the waiting list');
    res.waiting.splice(i, 1);
    this.unwait(lock);
    lock.grantedMode = mode;
    if (policy !== undefined) lock.policy = policy;
    if (policy !== undefined && !samePolicy(policy, lock.requestedPolicy)) {
      lock.flags = withFlags(lock.flags, LockFlag.LOCK_CHANGED);
    }
    lock.flags = withoutFlags(lock.flags, LockFlag.BLOCK_GRANTED, LockFlag.BLOCK_WAIT);
    lock.grantedAt = this.now();
    res.granted.add(lock);
    let byMode = res.grantedByMode.get(mode);
    if (byMode === undefined) res.grantedByMode.set(mode, (byMode = new Set()));
    byMode.add(lock);
  }

  private unwait(lock: Lock): void {
    if (lock.type !== LockType.FLOCK) return;
    const key = flockKeyOf(lock);
    const w = this.flockWaiters.get(key);
    w?.delete(lock);
    if (w?.size === 0) this.flockWaiters.delete(key);
  }

  /** Takes a lock out of its resource and every index. */
  private detach(lock: Lock): void {
    const res = this.resourceOf.get(lock);
    assert(res !== undefined, 'a detached lock is attached');
    if (res.granted.delete(lock)) {
      const byMode = res.grantedByMode.get(lock.grantedMode!);
      byMode?.delete(lock);
      if (byMode?.size === 0) res.grantedByMode.delete(lock.grantedMode!);
    } else {
      res.waiting = res.waiting.filter((l) => l !== lock);
    }
    this.unwait(lock);
    this.byHandle.delete(lock.handle);
    this.resourceOf.delete(lock);
    this.astSent.delete(lock);
    const set = this.byOwner.get(lock.owner);
    set?.delete(lock);
    if (set?.size === 0) this.byOwner.delete(lock.owner);
  }
}

/**
 * Whether a granted policy says what was asked for (fields left undefined count as absent): a
 * walk of the two, where comparing their JSON texts (with a replacer for the bigints) showed
 * in an MDT's profile at every grant.
 */
function samePolicy(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let defined = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    defined++;
    if (!samePolicy(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) defined--;
  return defined === 0;
}

function extentOf(p: Policy | undefined): Extent {
  assert(p !== undefined && 'extent' in p, 'an extent lock has an extent');
  return p.extent;
}

function bitsOf(p: Policy | undefined): number {
  assert(p !== undefined && 'bits' in p, 'an ibits lock has bits');
  return p.bits;
}

function gidOf(p: Policy | undefined): bigint | undefined {
  return p !== undefined && 'bits' in p ? p.gid : undefined;
}

function flockOf(l: Lock): FlockPolicy {
  const p = l.grantedMode !== undefined ? l.policy : l.requestedPolicy;
  assert(isFlockPolicy(p), 'a flock lock has a flock policy');
  return p.flock;
}

function flockKeyOf(l: Lock): string {
  return flockOwnerKey(l.owner, flockOf(l));
}

function flockHolder(l: Lock): { ownerKey: string; mode: Mode; range: { start: bigint; end: bigint } } {
  const f = flockOf(l);
  return { ownerKey: flockKeyOf(l), mode: l.grantedMode ?? l.reqMode, range: { start: f.start, end: f.end } };
}
