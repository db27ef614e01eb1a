// Serialization helper: a KeyedLock runs callers of one key one at a time (updates of one
// object). The uncontended case — by far the common one — costs a Map lookup and no extra
// promise; an update whose work is synchronous skips it altogether when nobody holds its key
// (held()), since nothing can interleave with it.

export class KeyedLock {
  /** Keys held, with the callers waiting for each, first come first served. */
  #queues = new Map<string, Array<() => void>>();

  /** Whether a caller holds key (others may be waiting behind it). */
  held(key: string): boolean {
    return this.#queues.has(key);
  }

  async with<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const waiting = this.#queues.get(key);
    if (waiting === undefined) this.#queues.set(key, []);
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const queue = this.#queues.get(key)!;
      const next = queue.shift();
      if (next) next();
      else this.#queues.delete(key);
    }
  }
}
