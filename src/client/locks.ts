// A client lock namespace: the locks one import (an MDC's or an OSC's) holds from its target,
// as Lustre's client namespaces '<fsname>-MDT0000-mdc-<instance>' and
// '<fsname>-OST0000-osc-<instance>'. It joins the lock client of the import (LdlmClient:
// enqueue, cancel, callbacks) with the cache of granted locks (ClientLockCache: match,
// reader/writer references, LRU), so that a user asks `lock()` and gets a referenced lock,
// matched from the cache when one is held, enqueued otherwise.
//
// Every way a cached lock goes passes through one path, #cancel: the owner's `revoke` hook
// runs first (write back the dirty data the lock covers, drop the cached pages and attributes
// it protected, tell the kernel), then the LDLM_CANCEL goes, then the lock is forgotten. The
// ways: a blocking callback (at once when the lock is unused, else at its last release), the
// LRU (unused locks beyond lru_size or older than lru_max_age, looked at after each release
// and once a second by the lock pool), memory pressure (the pool: with lru_size 0, Lustre's LRU
// resize, nothing else limits how many unused locks stay) and the namespace's close; an early
// cancel (earlyCancel) runs the hook too, and its request carries the cancel. An eviction
// skips the cancel: the server has forgotten the locks; the owner's `lost` hook drops what
// they covered.
//
// A target that does not serve the lock manager (LDLM_ENQUEUE answered EOPNOTSUPP) makes
// `supported` false: the callers then cache nothing, as a client without locks must.
import {
  CallbackService, ClientLockCache, LDLM_MAX_HANDLES, LdlmClient, LockFlag, hasFlag, lockPool, resIdOfFid, type LockType, type PoolMember,
  type CachedLock, type ClientLock, type EnqueueRequest, type LockDesc, type LockMode, type Policy, type ResId,
} from '../ldlm/index.js';
import type { Import, Network } from '../ptlrpc/index.js';

/** The resource of an OST object (fid_build_reg_res_name of [seq:oid:0]). */
export function objectResId(o: { seq: number; oid: number }): ResId {
  return resIdOfFid({ seq: o.seq, oid: o.oid, ver: 0 });
}

/** A cached lock neither called back nor being cancelled. */
const vouches = (l: CachedLock): boolean => !hasFlag(l.flags, LockFlag.CANCELING, LockFlag.CBPENDING);

/**
 * How long cancelSoon's cancels wait for others to leave with (ms). The objects of unlinked
 * files are destroyed only once the unlink commits (txg_timeout, 1 s by default): their
 * cancels have that long to reach the OST first. At 1 ms a loop of unlinks sent about one
 * LDLM_CANCEL per unlink; at 20 ms, one per 20-30, and unlinks through FUSE ran 4-38% faster
 * in three alternating pairs (2026-11-27).
 */
export const CANCEL_BATCH_MS = 20;

/** What the namespace's user does when a lock goes. */
export interface NamespaceHooks {
  /**
   * Before the cancel: make what the lock covers safe to lose (flush dirty data, drop caches).
   * `wanted`: the lock whose request made the server call this one back (undefined: the LRU,
   * or the namespace's close, gave it back).
   */
  revoke?(lock: CachedLock, wanted: LockDesc | undefined): Promise<void>;
  /** The server evicted this client: these locks are gone without a cancel. */
  lost?(locks: CachedLock[]): void;
  /** Memory ran short (the lock pool): `given` unused locks are being given back. */
  memoryShort?(why: string, given: number): void;
  /** A glimpse callback: the LVB of what the lock covers (throw to answer that nothing is known). */
  glimpse?(lock: ClientLock, desc: LockDesc): Buffer | Promise<Buffer>;
}

export interface NamespaceCounters {
  enqueues: number;
  matched: number;
  revoked: number;
  lruCancels: number;
  /** Unused locks given back because memory ran short. */
  pressureCancels: number;
}

/** Parameters of a client namespace as lctl shows them (ldlm.namespaces.<name>.<param>). */
export const NAMESPACE_PARAMS = ['lock_count', 'lock_unused_count', 'lru_size', 'lru_max_age', 'resource_count'] as const;

export class LockNamespaceError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class ClientNamespace {
  readonly counters: NamespaceCounters = { enqueues: 0, matched: 0, revoked: 0, lruCancels: 0, pressureCancels: 0 };
  readonly cache: ClientLockCache;
  readonly ldlm: LdlmClient;
  /** undefined until the target answered a first enqueue; false: it serves no locks. */
  #supported: boolean | undefined;
  readonly #hooks: NamespaceHooks;
  readonly #cancelling = new Map<bigint, Promise<void>>();
  /** Cancels of cancelSoon waiting to leave together. */
  #batch: { handles: bigint[]; done: Promise<void>; send(): void } | undefined;
  /** What each blocking callback asked for, by our handle, until the cancel. */
  readonly #wanted = new Map<bigint, LockDesc>();
  #closed = false;
  readonly #poolMember: PoolMember = {
    ageOut: () => this.#shrink(),
    shrink: (share, why) => {
      const locks = this.cache.shrinkOldest(share);
      this.counters.pressureCancels += locks.length;
      if (locks.length > 0) this.#hooks.memoryShort?.(why, locks.length);
      for (const l of locks) void this.#cancel(l, true);
      return locks.length;
    },
  };

  constructor(
    readonly name: string,
    imp: Import,
    ni: Network,
    hooks: NamespaceHooks = {},
  ) {
    this.#hooks = hooks;
    this.cache = new ClientLockCache(name, { now: () => Date.now() });
    this.ldlm = new LdlmClient(imp, CallbackService.of(ni), {
      blocking: (lock, desc) => this.#onBlocking(lock, desc),
      glimpse: (lock, desc) => {
        if (!this.#hooks.glimpse) throw new LockNamespaceError('ENODATA', 'no glimpse hook');
        return this.#hooks.glimpse(lock, desc);
      },
      evicted: (locks) => this.#onEvicted(locks),
    });
    lockPool.register(this.#poolMember);
  }

  /** The target granted locks here already: it serves the lock manager. */
  get active(): boolean {
    return this.#supported === true && !this.#closed;
  }

  /** Whether locks (and so caching) are to be used: false once the target refused an enqueue as unknown. */
  get supported(): boolean {
    return this.#supported !== false && !this.#closed;
  }

  /**
   * A lock of `mode` on `policy`, referenced for the caller (release it with release()):
   * matched from the cache, else enqueued (the server may grow an extent). undefined when the
   * target serves no locks.
   */
  async lock(resId: ResId, type: LockType, mode: LockMode, policy: Policy | undefined, more: Partial<EnqueueRequest> = {}): Promise<CachedLock | undefined> {
    if (!this.supported) return undefined;
    const hit = this.cache.match(resId, type, mode, policy, { ref: true });
    if (hit) {
      this.counters.matched++;
      return hit;
    }
    return (await this.lockWithReply(resId, type, mode, policy, more))?.cached;
  }

  /**
   * An enqueue (no match from the cache) whose lock is then cached and referenced; with the
   * granted lock as the server answered (an intent's reply buffers and status). The lock may
   * be on another resource than asked (an MDT lookup replaces the directory's by the child's).
   */
  async lockWithReply(resId: ResId, type: LockType, mode: LockMode, policy: Policy | undefined, more: Partial<EnqueueRequest> = {}): Promise<{ cached: CachedLock; lock: ClientLock } | undefined> {
    const granted = await this.enqueue({ resId, type, mode, ...(policy && { policy }), ...more });
    return granted && { cached: this.#cached(granted, mode), lock: granted };
  }

  /**
   * An intent the server may do without handing out a lock (an open: ELDLM_LOCK_ABORTED), as
   * lockWithReply otherwise: `cached` only when a lock was granted (referenced in `mode`).
   */
  async intentWithReply(resId: ResId, type: LockType, mode: LockMode, policy: Policy | undefined, more: Partial<EnqueueRequest>): Promise<{ cached: CachedLock | undefined; lock: ClientLock } | undefined> {
    const granted = await this.enqueue({ resId, type, mode, ...(policy && { policy }), ...more });
    if (!granted) return undefined;
    return { cached: granted.aborted ? undefined : this.#cached(granted, mode), lock: granted };
  }

  /** A lock just granted, into the cache with a reference of `mode` for the caller. */
  #cached(granted: ClientLock, mode: LockMode): CachedLock {
    const cached = this.cache.add({
      handle: granted.handle, remoteHandle: granted.remoteHandle, resId: granted.resId, type: granted.type, mode: granted.mode,
      ...(granted.policy && { policy: granted.policy }), flags: granted.flags,
    });
    // Synchronously after the grant: a blocking callback (a later network event, or one riding
    // on the grant, which LdlmClient runs after a setImmediate) finds the lock cached.
    this.cache.addRef(cached, mode);
    return cached;
  }

  /** Gives an unused cached lock back now (nothing is left to keep it for). */
  giveBack(lock: CachedLock): Promise<void> {
    if (this.cache.lookup(lock.handle) !== lock) return Promise.resolve();
    // As for a blocking callback: no longer matched, cancelled at once or at its last release.
    const b = this.cache.blocking(lock.handle);
    return b?.cancelNow ? this.#cancel(b.lock, true) : Promise.resolve();
  }

  /** An enqueue outside the cache (FLOCK locks, intents); undefined when the target serves no locks. */
  async enqueue(req: EnqueueRequest): Promise<ClientLock | undefined> {
    if (!this.supported) return undefined;
    this.counters.enqueues++;
    try {
      const lock = await this.ldlm.enqueue(req);
      this.#supported = true;
      return lock;
    } catch (err) {
      if ((err as { code?: string }).code === 'EOPNOTSUPP' && this.#supported === undefined) {
        this.#supported = false;
        return undefined;
      }
      throw err;
    }
  }

  /** Drops the caller's reference; a lock whose blocking callback came meanwhile is cancelled now. */
  release(lock: CachedLock, mode: LockMode): void {
    if (this.cache.lookup(lock.handle) !== lock) return; // gone with an eviction
    const { cancelNow } = this.cache.decRef(lock, mode);
    if (cancelNow) void this.#cancel(lock);
    else this.#shrink();
  }

  /** Granted, cached locks on a resource that still vouch for what they cover (holds). */
  locksOn(resId: ResId): CachedLock[] {
    return this.cache.locksOn(resId).filter((l) => vouches(l));
  }

  /**
   * Whether `lock` is still this namespace's and still vouches for what was cached under it:
   * neither called back (CBPENDING) nor being cancelled.
   */
  holds(lock: CachedLock): boolean {
    return this.cache.lookup(lock.handle) === lock && vouches(lock);
  }

  /**
   * Lustre's early lock cancel for a request of this client that would call these locks back:
   * the unused locks on `resId` with any of `bits` go as a blocking callback would take them
   * (the revoke hook first), but with no LDLM_CANCEL: resolves with their server cookies, for
   * the request to carry (at most `max`). Locks in use stay, and are called back as usual.
   */
  async earlyCancel(resId: ResId, bits: number, max: number): Promise<bigint[]> {
    if (!this.active) return [];
    const locks = this.cache.cancelUnusedOn(resId, { bits });
    if (locks.length === 0) return [];
    await Promise.all(locks.map(async (lock) => {
      try {
        await this.#hooks.revoke?.(lock, undefined);
      } finally {
        this.cache.remove(lock.handle);
      }
    }));
    // More than the request may name (never seen: a resource holds a few): cancelled apart.
    const rest = locks.slice(Math.max(0, max));
    if (rest.length > 0) void this.ldlm.cancel(rest.map((l) => l.handle)).catch(() => undefined);
    return this.ldlm.forgetForEarlyCancel(locks.slice(0, Math.max(0, max)).map((l) => l.handle), Math.max(0, max));
  }

  /**
   * Gives back the unused locks on `resId` unasked, its object being about to go (the unlink of
   * its file): the revoke hook runs for each at once, as for a callback, and their LDLM_CANCELs
   * leave together within CANCEL_BATCH_MS (one request for up to LDLM_MAX_HANDLES), before the
   * MDT's destroy of the object reaches the OST, which then has no blocking callback to send
   * and wait for. A callback that comes first anyway finds the lock gone and is answered with
   * its cancel at once (#onBlocking). `revoke` false: the owner knows nothing the locks covered
   * is cached anywhere that matters any more (the object is destroyed): no hook runs.
   */
  cancelSoon(resId: ResId, revoke = true): void {
    if (!this.active) return;
    for (const lock of this.cache.cancelUnusedOn(resId)) {
      if (this.#cancelling.has(lock.handle)) continue;
      const p = (async () => {
        try {
          if (revoke) await this.#hooks.revoke?.(lock, undefined);
        } finally {
          this.cache.remove(lock.handle);
          await this.#batchCancel(lock.handle);
        }
      })().finally(() => this.#cancelling.delete(lock.handle));
      this.#cancelling.set(lock.handle, p);
      p.catch(() => undefined);
    }
  }

  /** Queues a cancel for the next batch (cancelSoon); resolves once that batch was answered. */
  #batchCancel(handle: bigint): Promise<void> {
    let batch = this.#batch;
    if (!batch) {
      const handles: bigint[] = [];
      let sent!: () => void;
      const done = new Promise<void>((resolve) => (sent = resolve));
      let timer: NodeJS.Timeout | undefined;
      const send = (): void => {
        if (this.#batch === b) this.#batch = undefined;
        clearTimeout(timer);
        void this.ldlm.cancel(handles).catch(() => undefined).finally(sent);
      };
      const b = { handles, done, send };
      timer = setTimeout(send, CANCEL_BATCH_MS);
      batch = this.#batch = b;
    }
    batch.handles.push(handle);
    // Full: it goes now, and the next cancels start another.
    if (batch.handles.length >= LDLM_MAX_HANDLES) batch.send();
    return batch.done;
  }

  /** Waits until every cancel started so far is done. */
  async settled(): Promise<void> {
    while (this.#cancelling.size > 0) await Promise.allSettled([...this.#cancelling.values()]);
  }

  /** Gives every unused lock back (umount, lru_size=clear) and waits for the cancels. */
  async cancelUnused(): Promise<void> {
    for (const l of this.cache.cancelUnused(Number.MAX_SAFE_INTEGER)) void this.#cancel(l, true);
    await this.settled();
  }

  /** lctl get_param ldlm.namespaces.<name>.<param>. */
  param(name: (typeof NAMESPACE_PARAMS)[number]): string {
    const s = this.cache.stats();
    switch (name) {
      case 'lru_max_age': return String(s.lru_max_age);
      default: return String(s[name]);
    }
  }

  /** lctl set_param: lru_size (0 = LRU resize, no fixed limit; 'clear' gives unused locks back) and lru_max_age (ms). */
  setParam(name: string, value: string): void {
    const v = value.trim();
    if (name === 'lru_size') {
      if (v === 'clear') {
        void this.cancelUnused();
        return;
      }
      this.cache.lruSize = Number(v);
      this.#shrink();
    } else if (name === 'lru_max_age') {
      this.cache.lruMaxAge = Number(v);
      this.#shrink();
    } else throw new LockNamespaceError('EINVAL', `ldlm.namespaces.${this.name}.${name} is read-only`);
  }

  /** Gives every lock back (a clean umount) and stops answering callbacks. */
  async close(): Promise<void> {
    if (this.#closed) return;
    lockPool.unregister(this.#poolMember);
    await this.cancelUnused().catch(() => undefined);
    this.#closed = true;
    this.ldlm.close();
  }

  #onBlocking(lock: ClientLock, desc: LockDesc): void {
    const b = this.cache.blocking(lock.handle);
    if (b) this.#wanted.set(lock.handle, desc);
    if (b === undefined) {
      // A lock the cache never held (one taken with enqueue()): given back at once.
      void this.ldlm.cancel([lock]).catch(() => undefined);
      return;
    }
    if (b.cancelNow) void this.#cancel(b.lock);
  }

  #cancel(lock: CachedLock, quiet = false): Promise<void> {
    const running = this.#cancelling.get(lock.handle);
    if (running) return running;
    const p = (async () => {
      try {
        if (!quiet) this.counters.revoked++;
        await this.#hooks.revoke?.(lock, this.#wanted.get(lock.handle));
      } finally {
        this.#wanted.delete(lock.handle);
        this.cache.remove(lock.handle);
        await this.ldlm.cancel([lock.handle]).catch(() => undefined);
      }
    })().finally(() => this.#cancelling.delete(lock.handle));
    this.#cancelling.set(lock.handle, p);
    p.catch(() => undefined);
    return p;
  }

  #shrink(): void {
    for (const l of this.cache.lruShrink()) {
      this.counters.lruCancels++;
      void this.#cancel(l, true);
    }
  }

  #onEvicted(locks: ClientLock[]): void {
    const lost: CachedLock[] = [];
    for (const l of locks) {
      const c = this.cache.remove(l.handle);
      if (c) lost.push(c);
    }
    for (const c of this.cache.locks()) if (this.cache.remove(c.handle)) lost.push(c);
    if (lost.length > 0) this.#hooks.lost?.(lost);
  }
}
