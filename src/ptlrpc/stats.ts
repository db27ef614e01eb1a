// Counters printed the way Lustre's lprocfs prints them (lprocfs_stats_seq_show in
// lustre/obdclass/lprocfs_status.c):
//   snapshot_time                       1700000000.123456789 secs.nsecs
//   start_time                          1700000000.000000000 secs.nsecs
//   elapsed_time                        0.123456789 secs.nsecs
//   req_waittime                        12 samples [usecs] 5 40 300 9000
// that is name (left-aligned in 35 columns), count, units, then min max sum sumsquare.
// Counters that never counted are not printed. Units are lprocfs_counter_config_units' words:
// usecs (latencies, the default), reqs, bytes.

const NAME_WIDTH = 35;

/** One counter's figures. */
export interface CounterFigures {
  units: string;
  count: number;
  min: number;
  max: number;
  sum: number;
  sumSquare: number;
}

type Counter = CounterFigures;

export class LprocfsStats {
  readonly #counters = new Map<string, Counter>();
  #startNs: bigint;
  readonly #clockNs: () => bigint;

  constructor(clockNs: () => bigint = wallClockNs, startNs: bigint = clockNs()) {
    this.#clockNs = clockNs;
    this.#startNs = startNs;
  }

  /** Adds one sample (a latency in usec, a queue depth in reqs, ...). */
  add(name: string, value: number, units = 'usecs'): void {
    let c = this.#counters.get(name);
    if (!c) {
      c = { units, count: 0, min: Number.POSITIVE_INFINITY, max: 0, sum: 0, sumSquare: 0 };
      this.#counters.set(name, c);
    }
    const v = Math.round(value);
    c.count++;
    if (v < c.min) c.min = v;
    if (v > c.max) c.max = v;
    c.sum += v;
    c.sumSquare += v * v;
  }

  /**
   * Makes a counter before its first sample, so that it prints in this place: Lustre prints a
   * stats file in its table's order (llite_opcode_table), not in the order things happened.
   */
  define(name: string, units = 'usecs'): void {
    if (!this.#counters.has(name)) this.#counters.set(name, { units, count: 0, min: Number.POSITIVE_INFINITY, max: 0, sum: 0, sumSquare: 0 });
  }

  /** One counter's figures, for tests and tools. */
  get(name: string): { count: number; min: number; max: number; sum: number } | undefined {
    const c = this.#counters.get(name);
    return c && { count: c.count, min: c.min, max: c.max, sum: c.sum };
  }

  /** Every counter that counted, in the order each first counted. */
  entries(): Array<[string, CounterFigures]> {
    const out: Array<[string, CounterFigures]> = [];
    for (const [name, c] of this.#counters) if (c.count > 0) out.push([name, { ...c }]);
    return out;
  }

  /**
   * Starts counting again from now (lctl set_param NAME.stats=clear, any value, as Lustre's
   * lprocfs_stats_seq_write): every counter back to zero, in its place.
   */
  clear(): void {
    for (const c of this.#counters.values()) Object.assign(c, { count: 0, min: Number.POSITIVE_INFINITY, max: 0, sum: 0, sumSquare: 0 });
    this.#startNs = this.#clockNs();
  }

  /** When counting started (nanoseconds since the epoch). */
  get startNs(): bigint {
    return this.#startNs;
  }

  reset(): void {
    this.#counters.clear();
  }

  /**
   * One set of stats summing several (the same file of two services, or of every export of a
   * NID): counts and sums add, min and max are taken over all, start_time is the earliest.
   */
  static merge(all: readonly LprocfsStats[], clockNs: () => bigint = wallClockNs): LprocfsStats {
    const earliest = all.reduce((m, s) => (s.#startNs < m ? s.#startNs : m), clockNs());
    const out = new LprocfsStats(clockNs, earliest);
    for (const s of all) {
      for (const [name, c] of s.#counters) {
        if (c.count === 0) continue;
        const m = out.#counters.get(name);
        if (!m) {
          out.#counters.set(name, { ...c });
          continue;
        }
        m.count += c.count;
        m.min = Math.min(m.min, c.min);
        m.max = Math.max(m.max, c.max);
        m.sum += c.sum;
        m.sumSquare += c.sumSquare;
      }
    }
    return out;
  }

  /** The text lctl get_param shows for this stats file. */
  format(): string {
    const now = this.#clockNs();
    const lines = [
      header('snapshot_time', now),
      header('start_time', this.#startNs),
      header('elapsed_time', now - this.#startNs),
    ];
    for (const [name, c] of this.#counters) {
      if (c.count === 0) continue;
      lines.push(`${name.padEnd(NAME_WIDTH)} ${c.count} samples [${c.units}] ${c.min} ${c.max} ${c.sum} ${c.sumSquare}`);
    }
    return lines.join('\n') + '\n';
  }
}

function header(field: string, ns: bigint): string {
  const seconds = ns / 1_000_000_000n;
  const rest = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${field.padEnd(NAME_WIDTH)} ${seconds}.${rest} secs.nsecs`;
}

function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
