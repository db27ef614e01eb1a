// A target's lock manager (Lustre's ns_obd namespace of an MDT or OFD): one server Namespace,
// named as Lustre names it ('mdt-<fsname>-MDT0000_UUID', 'filter-<fsname>-OST0000_UUID'), and
// the LdlmService whose LDLM_ENQUEUE / LDLM_CANCEL handlers the target adds to its request
// portal. It follows the target's exports: a client evicted (the ping evictor, a forced umount,
// the lock timer), disconnected or replaced by a new instance loses its locks. The lock timer's
// evictions drop the client's export from every service of the target (Service.evict).
//
// Local locks (Lustre's mdt_object_lock / ldlm_cli_enqueue_local): the target takes locks of
// its own around an update, so that clients' caches of what it changes are revoked first. Each
// call of lock() is one owner ('[local]:N', never a client UUID), so two updates' locks conflict
// with each other as clients' do. Locks of one call are taken one at a time in resource order
// (by FID, then name hash), which keeps two updates from waiting on each other in a cycle. A
// local lock waits at most LOCAL_WAIT_FACTOR lock timeouts: by then the lock timer has evicted
// any client that did not give its lock back; past it the update fails with ETIMEDOUT.
import type { Subscription } from 'rxjs';
import {
  CANCELS_PER_REQUEST_MAX, decodeLdlmRequest, LdlmService, LockType, Namespace,
  type AbortingIntentHandler, type EnqueueResult, type IntentHandler, type Lock, type LockMode, type Policy, type ResId,
} from '../../ldlm/index.js';
import { Errno, statusError, type IncomingRequest, type Network, type OpHandler, type ReplyTransaction, type Service } from '../../ptlrpc/index.js';

/** The owner prefix of the target's own locks: no client UUID has it. */
export const LOCAL_OWNER_PREFIX = '[local]:';
/** A local lock (or an intent's lock) waits at most this many lock timeouts for its grant. */
export const LOCAL_WAIT_FACTOR = 2;
/** How often overdue client locks are looked for, at most (a short lock_timeout set later is honoured soon). */
export const LOCK_CHECK_INTERVAL_MAX_MS = 1000;

/** One lock a local lock() takes: a resource, a mode and what it covers. */
export interface LocalLockSpec {
  resId: ResId;
  type: LockType;
  mode: LockMode;
  policy: Policy;
  /** The client whose own locks this one leaves alone (LockRequest.spares). */
  spares?: string;
}

export interface TargetLdlmConfig {
  ni: Network;
  /** The namespace's name: namespaceName('mdt', ...) or namespaceName('filter', ...). */
  name: string;
  /** The service whose exports hold the lock owners (the one LDLM_ENQUEUE is served on). */
  service: Service<any>;
  /** Every service of the target: an eviction drops the client's export from each. */
  services?: readonly Service<any>[];
  intent?: IntentHandler;
  abortingIntent?: AbortingIntentHandler<any>;
  lockTimeoutMs?: number;
  now?: () => number;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

interface Waiter {
  resolve(lock: Lock): void;
  reject(err: Error): void;
}

/** Lustre's namespace names: 'mdt-lustre-MDT0000_UUID', 'filter-lustre-OST0000_UUID'. */
export function namespaceName(kind: 'mdt' | 'filter', targetUuid: string): string {
  return `${kind}-${targetUuid}`;
}

/** A bigint-tuple order for resource names. */
function compareResId(a: ResId, b: ResId): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** Locks of one call on one resource become one: inode bits joined, extents spanned, the stronger mode. */
function mergeSpecs(specs: readonly LocalLockSpec[]): LocalLockSpec[] {
  const out: LocalLockSpec[] = [];
  for (const s of specs) {
    const same = out.find((o) => compareResId(o.resId, s.resId) === 0);
    if (!same) {
      out.push({ ...s });
      continue;
    }
    if ('bits' in same.policy && 'bits' in s.policy) same.policy = { bits: same.policy.bits | s.policy.bits };
    else if ('extent' in same.policy && 'extent' in s.policy) {
      const a = same.policy.extent;
      const b = s.policy.extent;
      same.policy = { extent: { start: a.start < b.start ? a.start : b.start, end: a.end > b.end ? a.end : b.end } };
    }
    if (s.mode < same.mode) same.mode = s.mode; // EX 1 < PW 2 < PR 4: the lower value is the stronger mode
    if (s.spares !== same.spares) delete same.spares; // spared only when each part spares the same client
  }
  return out.sort((a, b) => compareResId(a.resId, b.resId));
}

export class TargetLdlm {
  readonly namespace: Namespace;
  readonly service: LdlmService;
  /** Local locks taken, and those that had to wait for clients. */
  readonly counters = { localLocks: 0, localWaited: 0, localTimeouts: 0, earlyCancels: 0 };
  readonly #c: TargetLdlmConfig;
  readonly #waiters = new Map<bigint, Waiter>();
  readonly #subscriptions: Subscription[] = [];
  #nextLocal = 1;
  #stopped = false;

  constructor(config: TargetLdlmConfig) {
    this.#c = config;
    const now = config.now ?? (() => performance.now());
    // Handles must not repeat across restarts: the start time, shifted, is the first one.
    this.namespace = new Namespace(config.name, {
      now, firstHandle: BigInt(Date.now()) << 20n, ...(config.lockTimeoutMs !== undefined && { lockTimeoutMs: config.lockTimeoutMs }),
    });
    const services = config.services ?? [config.service];
    const gone$ = (s: Service<any>) => [s.evictions$, s.disconnects$];
    this.service = new LdlmService({
      ni: config.ni, namespace: this.namespace,
      exports: { byUuid: (uuid) => config.service.exports.byUuid(uuid), byHandle: (h) => config.service.exports.byHandle(h) },
      evict: (uuid, reason) => {
        for (const s of services) s.evict(uuid, reason);
      },
      ...(config.intent && { intent: config.intent }),
      ...(config.abortingIntent && { abortingIntent: config.abortingIntent }),
      isLocal: (owner) => owner.startsWith(LOCAL_OWNER_PREFIX),
      granted: (lock) => this.#granted(lock),
      checkIntervalMs: Math.min(LOCK_CHECK_INTERVAL_MAX_MS, Math.max(10, Math.floor(this.namespace.lockTimeoutMs / 4))),
      log: (message) => config.log('warn', message),
    });
    // A client that goes from any service of the target (evicted, disconnected) loses its locks.
    for (const s of services) for (const o of gone$(s)) this.#subscriptions.push(o.subscribe((exp) => this.service.exportGone(exp.clientUuid)));
  }

  /** LDLM_ENQUEUE and LDLM_CANCEL, for the target's request service. */
  handlers<Tx extends ReplyTransaction = never>(): Map<number, OpHandler<Tx>> {
    return this.service.handlers<Tx>();
  }

  get lockTimeoutMs(): number {
    return this.namespace.lockTimeoutMs;
  }

  set lockTimeoutMs(ms: number) {
    this.namespace.lockTimeoutMs = ms;
  }

  /**
   * Takes the target's own locks (in resource order, each once granted) and returns their
   * release, to call once the update's transaction ended. Fails with ETIMEDOUT when a lock is
   * not granted within LOCAL_WAIT_FACTOR lock timeouts (nothing is then held).
   */
  async lock(specs: readonly LocalLockSpec[]): Promise<() => void> {
    const owner = `${LOCAL_OWNER_PREFIX}${this.#nextLocal++}`;
    const held: Lock[] = [];
    const release = (): void => {
      for (const l of held.splice(0).reverse()) this.service.cancelLocal(l.handle);
    };
    try {
      for (const s of mergeSpecs(specs)) {
        if (this.#stopped) throw statusError(-Errno.ESHUTDOWN, `${this.namespace.name} is stopping`);
        const r: EnqueueResult = this.service.enqueueLocal({ ...s, owner, remoteHandle: 0n });
        this.counters.localLocks++;
        held.push(r.lock);
        if (!r.granted) {
          this.counters.localWaited++;
          await this.waitGranted(r.lock);
        }
      }
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /**
   * Resolves once `lock` is granted (at once if it is); fails with ETIMEDOUT past
   * LOCAL_WAIT_FACTOR lock timeouts, or ESHUTDOWN when the target stops. An intent waits so,
   * to answer with what the lock covers only once the lock protects it.
   */
  waitGranted(lock: Lock): Promise<Lock> {
    if (lock.grantedMode !== undefined) return Promise.resolve(lock);
    if (this.#stopped) return Promise.reject(statusError(-Errno.ESHUTDOWN, `${this.namespace.name} is stopping`));
    if (this.namespace.lookup(lock.handle) !== lock) return Promise.reject(statusError(-Errno.ESTALE, 'the lock is gone'));
    const limitMs = LOCAL_WAIT_FACTOR * this.namespace.lockTimeoutMs;
    const deadline = performance.now() + limitMs;
    return new Promise<Lock>((resolve, reject) => {
      const settle = (): void => {
        clearInterval(timer);
        this.#waiters.delete(lock.handle);
      };
      // A waiting lock may also go without a grant: its client evicted, its enqueue cancelled.
      const timer = setInterval(() => {
        if (this.namespace.lookup(lock.handle) !== lock) {
          settle();
          reject(statusError(-Errno.ESTALE, `${this.namespace.name}: lock ${lock.handle.toString(16)} went while waiting`));
        } else if (performance.now() > deadline) {
          settle();
          this.counters.localTimeouts++;
          reject(statusError(-Errno.ETIMEDOUT, `${this.namespace.name}: lock ${lock.handle.toString(16)} not granted within ${limitMs} ms`));
        }
      }, Math.min(LOCK_CHECK_INTERVAL_MAX_MS, Math.max(10, Math.floor(limitMs / 8))));
      this.#waiters.set(lock.handle, {
        resolve: (l) => {
          settle();
          resolve(l);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
    });
  }

  /**
   * Lustre's early lock cancel (ELC): an update's request may carry, in the buffer after its
   * body, an ldlm_request naming locks its client gives back before the update, those the
   * update would otherwise call back from that very client (its cached attributes of a file it
   * changes). Handles of other clients' locks and unknown ones are skipped; returns how many
   * went. A buffer that is no ldlm_request is refused (EPROTO). `first`: the slot the cancels
   * start at (an enqueue's slot 0 is its own lock's cookie).
   */
  earlyCancel(request: IncomingRequest, index = 1, first = 0): number {
    const buffer = request.buffers[index];
    if (buffer === undefined || buffer.length === 0) return 0;
    let dlm;
    try {
      dlm = decodeLdlmRequest(buffer);
    } catch (err) {
      throw statusError(-Errno.EPROTO, `early cancels: ${(err as Error).message}`);
    }
    let done = 0;
    for (const handle of dlm.lockHandles.slice(first, Math.min(dlm.lockCount, first + CANCELS_PER_REQUEST_MAX))) {
      const lock = handle === 0n ? undefined : this.namespace.lookup(handle);
      if (!lock || lock.owner !== request.export.clientUuid) continue;
      this.service.cancelLocal(handle);
      done++;
    }
    this.counters.earlyCancels += done;
    return done;
  }

  #granted(lock: Lock): void {
    if (lock.grantedMode === undefined) return; // a refused flock waiter
    const w = this.#waiters.get(lock.handle);
    if (!w) return;
    this.#waiters.delete(lock.handle);
    w.resolve(lock);
  }

  /** The namespace's figures for ldlm.namespaces.<name>.* */
  stats(): Record<string, number> {
    const s = this.namespace.stats();
    return {
      lock_count: s.lock_count, resource_count: s.resource_count, lock_timeout_ms: s.lock_timeout_ms,
      lock_timeouts: this.service.counters.evictions, ...this.service.counters, ...this.counters,
    };
  }

  /** Stops the lock timer and the export follower; waits for grants fail with ESHUTDOWN. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const s of this.#subscriptions) s.unsubscribe();
    this.service.stop();
    const waiters = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const w of waiters) w.reject(statusError(-Errno.ESHUTDOWN, `${this.namespace.name} stopped`));
  }
}
