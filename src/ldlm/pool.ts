// The client's side of Lustre's lock pools (ldlm_pool.c), as far as a client in user space
// needs it. With lru_size 0 (Lustre's LRU resize, its default) a client namespace keeps its
// unused locks with no limit on their number: they go back when they have been unused for
// lru_max_age, or when memory runs short. Lustre's kernel asks for the latter through the VM's
// shrinker (ldlm_pools_shrink); here a timer looks once a second (the period of
// ldlm_pools_recalc) at the process's heap and at the memory the process may still take
// (process.availableMemory: the cgroup's limit when one is set), and under pressure asks each
// namespace to give back the older half of its unused locks. The same tick ages out unused
// locks of namespaces nobody used for a while (the LRU is otherwise looked at on a release).
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

/** How often the pool looks (ms). */
export const POOL_RECALC_MS = 1000;
/** Heap pressure: more than this share of the heap limit in use. */
export const HEAP_PRESSURE = 0.75;
/** Memory pressure: less than this share of the machine's memory still available to the process. */
export const AVAILABLE_MIN = 1 / 16;
/** The share of its unused locks a namespace gives back at each tick under pressure. */
export const PRESSURE_SHRINK = 0.5;

/** A client namespace as the pool sees it. */
export interface PoolMember {
  /** Gives back unused locks past lru_max_age (and beyond a fixed lru_size). */
  ageOut(): void;
  /** Gives back the oldest `share` of the unused locks, because of `why`; returns how many. */
  shrink(share: number, why: string): number;
}

/** Why memory is short now, or undefined when it is not. */
export type PressureProbe = () => string | undefined;

/** The process's heap beyond HEAP_PRESSURE of its limit, or its available memory below AVAILABLE_MIN. */
export function memoryPressure(): string | undefined {
  const h = getHeapStatistics();
  if (h.used_heap_size > HEAP_PRESSURE * h.heap_size_limit) {
    return `heap ${Math.round(h.used_heap_size / 2 ** 20)} MiB of its ${Math.round(h.heap_size_limit / 2 ** 20)} MiB limit`;
  }
  // constrainedMemory: the cgroup's limit, 0 (or a huge number) when there is none.
  const limit = process.constrainedMemory() ?? 0;
  const of = limit > 0 ? Math.min(limit, totalmem()) : totalmem();
  const available = process.availableMemory();
  if (available < AVAILABLE_MIN * of) return `${Math.round(available / 2 ** 20)} MiB of memory available of ${Math.round(of / 2 ** 20)} MiB`;
  return undefined;
}

export interface PoolTick {
  /** Why memory was short, when it was. */
  pressure?: string;
  /** Unused locks given back for it. */
  cancelled: number;
}

/** The client namespaces of this process, looked at once a second. */
export class LockPool {
  readonly #members = new Set<PoolMember>();
  #timer: NodeJS.Timeout | undefined;
  /** What tells memory pressure (tests put their own). */
  probe: PressureProbe = memoryPressure;
  /** Ticks that found memory short, and the locks they gave back. */
  readonly counters = { pressureTicks: 0, pressureCancels: 0 };

  register(m: PoolMember): void {
    this.#members.add(m);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.tick(), POOL_RECALC_MS);
      // The pool keeps nothing alive: mounts and servers do.
      this.#timer.unref();
    }
  }

  unregister(m: PoolMember): void {
    this.#members.delete(m);
    if (this.#members.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One look: age out, and under memory pressure give back the older half of each namespace's unused locks. */
  tick(): PoolTick {
    for (const m of this.#members) m.ageOut();
    const pressure = this.probe();
    if (pressure === undefined) return { cancelled: 0 };
    let cancelled = 0;
    for (const m of this.#members) cancelled += m.shrink(PRESSURE_SHRINK, pressure);
    this.counters.pressureTicks++;
    this.counters.pressureCancels += cancelled;
    return { pressure, cancelled };
  }
}

/** The pool of this process's client namespaces. */
export const lockPool = new LockPool();
