// A budget of bytes shared by a mount's open files: dirty bytes (writers wait when it is spent)
// and read-ahead bytes (a prefetch is skipped when it is spent). The limit is read at every use,
// so that a tunable set while running takes effect at once.
export class ByteBudget {
  #used = 0;
  readonly #waiters: Array<{ n: number; wake: () => void }> = [];

  constructor(
    private readonly limit: () => number,
    /** Called when a reservation has to wait: the owner starts flushing to free bytes. */
    private readonly onPressure: () => void = () => {},
  ) {}

  get used(): number {
    return this.#used;
  }

  /** Takes n bytes when they fit (or nothing is in use: one oversized take may pass); waits otherwise. */
  async reserve(n: number): Promise<void> {
    if (this.#fits(n) && this.#waiters.length === 0) {
      this.#used += n;
      return;
    }
    this.onPressure();
    await new Promise<void>((wake) => this.#waiters.push({ n, wake }));
  }

  /** Takes n bytes if they fit now; false (and nothing taken) otherwise. */
  tryTake(n: number): boolean {
    if (this.#used + n > this.limit()) return false;
    this.#used += n;
    return true;
  }

  release(n: number): void {
    this.#used -= n;
    if (this.#used < 0) throw new Error(`budget released more than it held (${this.#used})`);
    this.#wakeWaiters();
  }

  #fits(n: number): boolean {
    return this.#used + n <= this.limit() || this.#used === 0;
  }

  #wakeWaiters(): void {
    // FIFO: the first waiter goes before any later one, so that a large write is not starved.
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.n)) {
      const w = this.#waiters.shift()!;
      this.#used += w.n;
      w.wake();
    }
  }
}
