// Object locks of the MDT: updates of one object run one at a time, as Lustre's MDT holds its
// object locks (mdt_object_lock) around a reint. Locks are taken after the request's
// transaction started (the framework starts it), so holders never wait for a txg; to stay free
// of deadlocks they are taken parent before child, several at once in FID order, and renames
// hold the file system's rename lock first (Lustre's mdt_rename_lock), so that no two renames
// reorder the tree under each other.
import { fidKey, type Fid } from '../../osd/index.js';

/** Callers of one key run one at a time, in arrival order. */
export class LockMap {
  readonly #tails = new Map<string, Promise<void>>();

  /** Waits for the key and returns its release (call it exactly once). */
  async acquire(key: string): Promise<() => void> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }

  get held(): number {
    return this.#tails.size;
  }
}

/** The locks one operation holds, released together. */
export class LockSet {
  readonly #releases: (() => void)[] = [];
  readonly #held = new Set<string>();
  constructor(private readonly map: LockMap) {}

  /** Locks these FIDs (those not held yet), in FID order. */
  async lock(...fids: Fid[]): Promise<void> {
    const keys = [...new Set(fids.map(fidKey))].filter((k) => !this.#held.has(k)).sort();
    for (const k of keys) await this.lockKey(k);
  }

  async lockKey(key: string): Promise<void> {
    if (this.#held.has(key)) return;
    this.#held.add(key);
    this.#releases.push(await this.map.acquire(key));
  }

  releaseAll(): void {
    for (const r of this.#releases.reverse()) r();
    this.#releases.length = 0;
    this.#held.clear();
  }
}

export async function withLocks<T>(map: LockMap, fn: (locks: LockSet) => Promise<T>): Promise<T> {
  const set = new LockSet(map);
  try {
    return await fn(set);
  } finally {
    set.releaseAll();
  }
}
