// Serialization helpers. A KeyedLock runs callers of one key one at a time (updates of one
// object); a Mutex is a KeyedLock with one key (the apply step, which touches device counters).

export class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async with<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export class Mutex {
  private lock = new KeyedLock();
  with<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.with('', fn);
  }
}
