// Serialization helpers. A KeyedLock runs callers of one key one at a time (updates of one
// object); a Mutex is a KeyedLock with one key (the apply step, which touches device counters).
// The uncontended case — by far the common one — costs a Map lookup and no extra promise.

export class KeyedLock {
  /** Keys held, with the callers waiting for each, first come first served. */
  private held = new Map<string, Array<() => void>>();

  async with<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const waiting = this.held.get(key);
    if (waiting === undefined) this.held.set(key, []);
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const queue = this.held.get(key)!;
      const next = queue.shift();
      if (next) next();
      else this.held.delete(key);
    }
  }
}

export class Mutex {
  private lock = new KeyedLock();
  with<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.with('', fn);
  }
}
