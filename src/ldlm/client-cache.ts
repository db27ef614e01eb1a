// The client's namespace of one target (an OSC's or MDC's lock cache): the locks the server
// granted to this client, found again by what they cover so that IO and metadata calls need
// no enqueue while a lock is held.
//
// Life of a cached lock: add() once granted -> match() + addRef() by each user (readers and
// writers counted apart, as l_readers / l_writers) -> decRef() -> unused, on the LRU. A
// blocking callback marks it CBPENDING: match() skips it from then on, and the owner flushes
// and cancels it as soon as no reference is left (blocking() and decRef() say when). Unused
// locks beyond lru_size, or older than lru_max_age, are given back (lruShrink); with lru_size 0
// (Lustre's LRU resize) there is no limit on their number, and memory pressure gives back the
// oldest of them (shrinkOldest, from the lock pool: pool.ts). An enqueue or an update may
// carry unused locks to cancel with it (cancelUnused / cancelUnusedOn: Lustre's early lock
// cancel).
//
// A pure state machine: the caller sends the cancels and passes a clock.

import { assert } from './assert.js';
import { LdlmError } from './errors.js';
import { extentContains } from './extent.js';
import { hasFlag, LockFlag, LockMode, lockModeCovers, LockType, OBD_OBJECT_EOF, withFlags, type LockMode as Mode } from './modes.js';
import { resIdKey, type ResId } from './resource.js';
import type { Policy } from './types.js';

/** LDLM_DEFAULT_MAX_ALIVE: unused locks older than this go back to the server (65 min). */
export const LDLM_DEFAULT_LRU_MAX_AGE_MS = 3_900_000;
/** The most locks one client namespace keeps; add() beyond it is ENOMEM. */
export const LDLM_CLIENT_MAX_LOCKS = 1_000_000;

export interface CachedLockInfo {
  /** The client's own cookie for the lock. */
  handle: bigint;
  /** The server's cookie (what cancels and callbacks name). */
  remoteHandle: bigint;
  resId: ResId;
  type: LockType;
  /** The granted mode. */
  mode: Mode;
  policy?: Policy;
  flags?: number;
}

export interface CachedLock {
  readonly handle: bigint;
  remoteHandle: bigint;
  readonly resId: ResId;
  readonly type: LockType;
  mode: Mode;
  policy?: Policy;
  flags: number;
  readers: number;
  writers: number;
  lastUsed: number;
}

export interface ClientLockCacheOptions {
  now: () => number;
  /** lru_size: how many unused locks to keep; 0 = as many as memory allows (LRU resize). */
  lruSize?: number;
  lruMaxAgeMs?: number;
  maxLocks?: number;
}

export interface ClientCacheStats {
  lock_count: number;
  lock_unused_count: number;
  lru_size: number;
  lru_max_age: number;
  resource_count: number;
  match_hits: number;
  match_misses: number;
  cancels: number;
}

/** Is a mode a writer's (l_writers) or a reader's (l_readers) reference? As ldlm_lock_addref. */
const isWriter = (mode: Mode): boolean => mode === LockMode.EX || mode === LockMode.PW || mode === LockMode.CW || mode === LockMode.GROUP || mode === LockMode.COS || mode === LockMode.TXN;

export class ClientLockCache {
  readonly name: string;
  private readonly now: () => number;
  private lruSizeSetting: number;
  private lruMaxAgeMs: number;
  private readonly maxLocks: number;
  private readonly byHandle = new Map<bigint, CachedLock>();
  private readonly byRemote = new Map<bigint, CachedLock>();
  private readonly byResource = new Map<string, Set<CachedLock>>();
  /** Unused locks, least recently used first (Map keeps insertion order). */
  private readonly lru = new Map<bigint, CachedLock>();
  private readonly counters = { hits: 0, misses: 0, cancels: 0 };

  constructor(name: string, opts: ClientLockCacheOptions) {
    this.name = name;
    this.now = opts.now;
    this.lruSizeSetting = opts.lruSize ?? 0;
    this.lruMaxAgeMs = opts.lruMaxAgeMs ?? LDLM_DEFAULT_LRU_MAX_AGE_MS;
    this.maxLocks = opts.maxLocks ?? LDLM_CLIENT_MAX_LOCKS;
  }

  /** lru_size as set (0 = LRU resize: no limit on the number). */
  get lruSize(): number {
    return this.lruSizeSetting;
  }

  set lruSize(n: number) {
    if (!Number.isInteger(n) || n < 0) throw new LdlmError('EINVAL', `lru_size must be a non-negative integer, not ${n}`);
    this.lruSizeSetting = n;
  }

  get lruMaxAge(): number {
    return this.lruMaxAgeMs;
  }

  set lruMaxAge(ms: number) {
    if (!Number.isInteger(ms) || ms <= 0) throw new LdlmError('EINVAL', `lru_max_age must be a positive integer, not ${ms}`);
    this.lruMaxAgeMs = ms;
  }

  private get lruLimit(): number {
    return this.lruSizeSetting === 0 ? Infinity : this.lruSizeSetting;
  }

  /** A lock the server granted (enqueue reply or completion callback); it starts unused. */
  add(info: CachedLockInfo): CachedLock {
    if (this.byHandle.has(info.handle)) throw new LdlmError('EINVAL', `lock handle ${info.handle} is cached already`);
    if (this.byHandle.size >= this.maxLocks) throw new LdlmError('ENOMEM', `${this.name} holds ${this.byHandle.size} locks, its limit`);
    const lock: CachedLock = {
      handle: info.handle, remoteHandle: info.remoteHandle, resId: info.resId, type: info.type, mode: info.mode,
      ...(info.policy !== undefined ? { policy: info.policy } : {}),
      flags: info.flags ?? 0, readers: 0, writers: 0, lastUsed: this.now(),
    };
    this.byHandle.set(lock.handle, lock);
    this.byRemote.set(lock.remoteHandle, lock);
    const key = resIdKey(lock.resId);
    let set = this.byResource.get(key);
    if (set === undefined) this.byResource.set(key, (set = new Set()));
    set.add(lock);
    this.lru.set(lock.handle, lock);
    return lock;
  }

  lookup(handle: bigint): CachedLock | undefined {
    return this.byHandle.get(handle);
  }

  lookupRemote(remoteHandle: bigint): CachedLock | undefined {
    return this.byRemote.get(remoteHandle);
  }

  /**
   * A granted lock that serves a need of `mode` on `policy`: a mode that covers it (PW serves
   * PR), an extent that contains the range, inode bits that include the bits. CBPENDING
   * locks are not matched. With ref, the match takes a reference at once.
   */
  match(resId: ResId, type: LockType, mode: Mode, policy?: Policy, opts: { ref?: boolean } = {}): CachedLock | undefined {
    let best: CachedLock | undefined;
    for (const l of this.byResource.get(resIdKey(resId)) ?? []) {
      if (l.type !== type || hasFlag(l.flags, LockFlag.CBPENDING, LockFlag.CANCELING)) continue;
      if (!lockModeCovers(l.mode, mode) || !policyCovers(type, l.policy, policy)) continue;
      if (best === undefined || (l.mode === mode && best.mode !== mode)) best = l;
    }
    if (best === undefined) {
      this.counters.misses += 1;
      return undefined;
    }
    this.counters.hits += 1;
    if (opts.ref) this.addRef(best, mode);
    return best;
  }

  /** Takes a reader or writer reference (ldlm_lock_addref): the lock leaves the LRU. */
  addRef(lockOrHandle: CachedLock | bigint, mode: Mode): CachedLock {
    const lock = this.get(lockOrHandle);
    if (hasFlag(lock.flags, LockFlag.CANCELING)) throw new LdlmError('EAGAIN', `lock ${lock.handle} is being cancelled`);
    if (isWriter(mode)) lock.writers += 1;
    else lock.readers += 1;
    this.lru.delete(lock.handle);
    lock.lastUsed = this.now();
    return lock;
  }

  /**
   * Drops a reference (ldlm_lock_decref). cancelNow: the last reference of a lock with a
   * blocking callback pending went: the owner flushes and cancels it now.
   */
  decRef(lockOrHandle: CachedLock | bigint, mode: Mode): { lock: CachedLock; cancelNow: boolean } {
    const lock = this.get(lockOrHandle);
    if (isWriter(mode)) {
      assert(lock.writers > 0, 'a writer reference is dropped only when held');
      lock.writers -= 1;
    } else {
      assert(lock.readers > 0, 'a reader reference is dropped only when held');
      lock.readers -= 1;
    }
    lock.lastUsed = this.now();
    const unused = lock.readers === 0 && lock.writers === 0;
    const pending = hasFlag(lock.flags, LockFlag.CBPENDING);
    if (unused && !pending && !hasFlag(lock.flags, LockFlag.NO_LRU)) this.lru.set(lock.handle, lock);
    return { lock, cancelNow: unused && pending && this.startCancel(lock) };
  }

  /**
   * A blocking callback for the lock named by the client's own handle (a callback carries it
   * in lock_handle[0], the server's in lock_handle[1]). It is marked CBPENDING and no longer
   * matched; cancelNow says it is unused, so the owner cancels it at once (else the last
   * decRef says so). undefined: not cached (already cancelled: the callback is answered as
   * for a lock gone).
   */
  blocking(handle: bigint): { lock: CachedLock; cancelNow: boolean } | undefined {
    const lock = this.byHandle.get(handle);
    if (lock === undefined) return undefined;
    lock.flags = withFlags(lock.flags, LockFlag.CBPENDING, LockFlag.BL_AST);
    this.lru.delete(lock.handle);
    const unused = lock.readers === 0 && lock.writers === 0;
    return { lock, cancelNow: unused && this.startCancel(lock) };
  }

  /** The server granted a waiting lock or changed it (completion callback). */
  update(handle: bigint, change: { mode?: Mode; policy?: Policy; remoteHandle?: bigint }): CachedLock {
    const lock = this.get(handle);
    if (change.mode !== undefined) lock.mode = change.mode;
    if (change.policy !== undefined) lock.policy = change.policy;
    if (change.remoteHandle !== undefined && change.remoteHandle !== lock.remoteHandle) {
      this.byRemote.delete(lock.remoteHandle);
      lock.remoteHandle = change.remoteHandle;
      this.byRemote.set(lock.remoteHandle, lock);
    }
    return lock;
  }

  /** The cancel went to the server (or the lock is gone with an eviction): forget the lock. */
  remove(handle: bigint): CachedLock | undefined {
    const lock = this.byHandle.get(handle);
    if (lock === undefined) return undefined;
    this.byHandle.delete(handle);
    if (this.byRemote.get(lock.remoteHandle) === lock) this.byRemote.delete(lock.remoteHandle);
    this.lru.delete(handle);
    const key = resIdKey(lock.resId);
    const set = this.byResource.get(key);
    set?.delete(lock);
    if (set?.size === 0) this.byResource.delete(key);
    return lock;
  }

  /**
   * Up to `count` unused locks, least recently used first, marked CANCELING: the owner sends
   * their cancels (alone, or packed into its next enqueue) and then remove()s them.
   */
  cancelUnused(count: number): CachedLock[] {
    const out: CachedLock[] = [];
    for (const lock of this.lru.values()) {
      if (out.length >= count) break;
      out.push(lock);
    }
    for (const l of out) this.startCancel(l);
    return out;
  }

  /**
   * Unused locks on one resource (optionally only those holding some of `bits`): what an
   * enqueue or a metadata update on that resource cancels early (ldlm_cancel_resource_local).
   */
  cancelUnusedOn(resId: ResId, opts: { bits?: number } = {}): CachedLock[] {
    const out: CachedLock[] = [];
    for (const l of this.byResource.get(resIdKey(resId)) ?? []) {
      if (!this.lru.has(l.handle)) continue;
      if (opts.bits !== undefined && (l.policy === undefined || !('bits' in l.policy) || (l.policy.bits & opts.bits) === 0)) continue;
      out.push(l);
    }
    for (const l of out) this.startCancel(l);
    return out;
  }

  /** Unused locks beyond lru_size, and those unused for longer than lru_max_age, oldest first. */
  lruShrink(): CachedLock[] {
    const now = this.now();
    const out: CachedLock[] = [];
    let excess = this.lru.size - this.lruLimit;
    // The LRU is in lastUsed order (a lock joins it at its last release): past the excess, the
    // first one young enough ends the walk, so a release costs no walk of every unused lock.
    for (const lock of this.lru.values()) {
      if (excess > 0) {
        out.push(lock);
        excess -= 1;
      } else if (now - lock.lastUsed > this.lruMaxAgeMs) {
        out.push(lock);
      } else {
        break;
      }
    }
    for (const l of out) this.startCancel(l);
    return out;
  }

  /** The oldest `share` (0 to 1) of the unused locks, at least one when any is unused: memory pressure. */
  shrinkOldest(share: number): CachedLock[] {
    let n = Math.ceil(this.lru.size * Math.min(Math.max(share, 0), 1));
    const out: CachedLock[] = [];
    for (const lock of this.lru.values()) {
      if (n-- <= 0) break;
      out.push(lock);
    }
    for (const l of out) this.startCancel(l);
    return out;
  }

  /**
   * The known minimum size (KMS) of an object once `lock` is cancelled (ldlm_extent_shift_kms):
   * a lock on [x, y] vouches for a size up to y + 1, so the KMS falls to what the remaining
   * extent locks of the object vouch for, and never rises. Locks being cancelled vouch for
   * nothing (KMS_IGNORE).
   */
  shiftKms(lock: CachedLock, oldKms: bigint): bigint {
    let kms = 0n;
    for (const l of this.byResource.get(resIdKey(lock.resId)) ?? []) {
      if (l === lock || l.type !== LockType.EXTENT || l.policy === undefined || !('extent' in l.policy)) continue;
      if (hasFlag(l.flags, LockFlag.CANCELING, LockFlag.KMS_IGNORE)) continue;
      const end = l.policy.extent.end;
      if (end === OBD_OBJECT_EOF || end + 1n >= oldKms) return oldKms;
      if (end + 1n > kms) kms = end + 1n;
    }
    return kms;
  }

  /** Every lock, for lock replay after a server restart (granted ones only are cached). */
  locks(): CachedLock[] {
    return [...this.byHandle.values()];
  }

  locksOn(resId: ResId): CachedLock[] {
    return [...(this.byResource.get(resIdKey(resId)) ?? [])];
  }

  stats(): ClientCacheStats {
    return {
      lock_count: this.byHandle.size,
      lock_unused_count: this.lru.size,
      lru_size: this.lruSizeSetting,
      lru_max_age: this.lruMaxAgeMs,
      resource_count: this.byResource.size,
      match_hits: this.counters.hits,
      match_misses: this.counters.misses,
      cancels: this.counters.cancels,
    };
  }

  /** Marks a lock CANCELING once; false when a cancel had started already. */
  private startCancel(lock: CachedLock): boolean {
    if (hasFlag(lock.flags, LockFlag.CANCELING)) return false;
    lock.flags = withFlags(lock.flags, LockFlag.CANCELING);
    this.lru.delete(lock.handle);
    this.counters.cancels += 1;
    return true;
  }

  private get(lockOrHandle: CachedLock | bigint): CachedLock {
    const lock = typeof lockOrHandle === 'bigint' ? this.byHandle.get(lockOrHandle) : lockOrHandle;
    if (lock === undefined || this.byHandle.get(lock.handle) !== lock) {
      throw new LdlmError('EINVAL', `no cached lock ${typeof lockOrHandle === 'bigint' ? lockOrHandle : lockOrHandle.handle}`);
    }
    return lock;
  }
}

/** Does a held policy cover a needed one? Extent: contains (same group); bits: superset. */
function policyCovers(type: LockType, held: Policy | undefined, needed: Policy | undefined): boolean {
  switch (type) {
    case LockType.PLAIN:
      return true;
    case LockType.EXTENT: {
      if (held === undefined || !('extent' in held)) return false;
      if (needed === undefined) return held.extent.start === 0n && held.extent.end === 0xffff_ffff_ffff_ffffn;
      if (!('extent' in needed)) return false;
      return extentContains(held.extent, needed.extent) && (held.extent.gid ?? 0n) === (needed.extent.gid ?? 0n);
    }
    case LockType.IBITS: {
      if (held === undefined || !('bits' in held) || needed === undefined || !('bits' in needed)) return false;
      return (held.bits & needed.bits) === needed.bits;
    }
    default:
      return false; // flock locks are never matched from a cache
  }
}
