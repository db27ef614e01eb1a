// Adaptive timeouts, after Lustre's at_* (lustre/include/lustre_import.h, ptlrpc/import.c):
// the estimate is the worst value measured over a sliding history split into AT_BINS bins, so
// one slow reply raises it at once and it decays only after the whole history has passed.
// A request's timeout is est2timeout(service estimate) + network latency, bounded by
// [minMs, maxMs]. Lustre counts in seconds; a user-space node on loopback needs milliseconds,
// so this counts in ms and converts only at the wire (pb_timeout, pb_service_time).

export const AT_BINS = 4;

export interface AdaptiveTimeoutConfig {
  /** Lower bound of the estimate (Lustre's at_min). */
  minMs: number;
  /** Upper bound of the estimate (Lustre's at_max). */
  maxMs: number;
  /** How long a measurement counts (Lustre's at_history, 600 s there). */
  historyMs: number;
  /** Fixed margin est2timeout adds (Lustre adds 5 s). */
  extraMs: number;
}

export const defaultAtConfig: AdaptiveTimeoutConfig = {
  minMs: 50,
  maxMs: 30_000,
  historyMs: 60_000,
  extraMs: 250,
};

export class AdaptiveTimeout {
  readonly #config: AdaptiveTimeoutConfig;
  readonly #hist: number[] = new Array<number>(AT_BINS).fill(0);
  #binStartMs = 0;
  #current: number;
  #worstMs: number;

  constructor(initialMs: number, config: AdaptiveTimeoutConfig) {
    this.#config = config;
    this.#current = this.#bound(initialMs);
    this.#worstMs = this.#current;
  }

  /** The current estimate, within [minMs, maxMs]. */
  get estimateMs(): number {
    return this.#current;
  }

  get worstMs(): number {
    return this.#worstMs;
  }

  /** Records one measurement taken at nowMs and returns the new estimate. */
  measured(valueMs: number, nowMs: number): number {
    if (!(valueMs > 0)) return this.#current;
    const binMs = Math.max(1, this.#config.historyMs / AT_BINS);
    if (this.#binStartMs === 0) {
      this.#hist[0] = valueMs;
      this.#binStartMs = nowMs;
    } else if (nowMs - this.#binStartMs < binMs) {
      this.#hist[0] = Math.max(this.#hist[0]!, valueMs);
    } else {
      const shift = Math.min(AT_BINS, Math.floor((nowMs - this.#binStartMs) / binMs));
      for (let i = AT_BINS - 1; i >= 0; i--) this.#hist[i] = i >= shift ? this.#hist[i - shift]! : 0;
      this.#hist[0] = valueMs;
      this.#binStartMs = nowMs - ((nowMs - this.#binStartMs) % binMs);
    }
    let worst = 0;
    for (const v of this.#hist) if (v > worst) worst = v;
    this.#current = this.#bound(worst);
    this.#worstMs = Math.max(this.#worstMs, valueMs);
    return this.#current;
  }

  #bound(ms: number): number {
    return Math.min(this.#config.maxMs, Math.max(this.#config.minMs, ms));
  }
}

/** Lustre's at_est2timeout: 125% of the estimate plus a fixed margin. */
export function est2timeout(estimateMs: number, extraMs: number): number {
  return estimateMs + estimateMs / 4 + extraMs;
}

/**
 * Milliseconds as whole seconds for pb_timeout and pb_service_time, rounded down as Lustre's
 * second clocks do: a fast service reports 0 and the client relies on what it measured.
 */
export function msToWireSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.min(0xffffffff, Math.floor(ms / 1000));
}
