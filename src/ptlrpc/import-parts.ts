// Small pieces of the client side: xids, modify slots (pb_tag) and the replay list.
import type { Network } from './transport.js';

/**
 * Xids are unique per network interface, since replies are matched on the NI's reply portal
 * by xid alone. Like Lustre's ptlrpc_init_xid they start from the clock, so that a restarted
 * client does not reuse the xids of its previous life.
 */
const xidCounters = new WeakMap<Network, { next: bigint }>();

export function nextXid(ni: Network): bigint {
  let c = xidCounters.get(ni);
  if (!c) xidCounters.set(ni, (c = { next: BigInt(Date.now()) << 20n }));
  return c.next++;
}

/** Tags 1..max for modifying requests in flight; each is held until its reply arrives. */
export class TagSlots {
  #free: number[] = [];
  #max = 0;

  constructor(max: number) {
    this.resize(max);
  }

  resize(max: number): void {
    if (max === this.#max) return;
    const busy = new Set<number>();
    for (let t = 1; t <= this.#max; t++) if (!this.#free.includes(t)) busy.add(t);
    this.#max = max;
    this.#free = [];
    for (let t = max; t >= 1; t--) if (!busy.has(t)) this.#free.push(t);
  }

  get available(): number {
    return this.#free.length;
  }

  take(): number | undefined {
    return this.#free.pop();
  }

  give(tag: number): void {
    if (tag >= 1 && tag <= this.#max && !this.#free.includes(tag)) this.#free.push(tag);
  }
}

export interface ReplayEntry {
  xid: bigint;
  transno: bigint;
  opcode: number;
  /** The slot (pb_tag) it held. */
  tag: number;
  buffers: Buffer[];
  /** A buffer of its reply (RequestOptions.replayReply): a replay carries it so that the server can redo it alike. */
  reply: Buffer;
  /** A bulk write's data, sent again by the replay. */
  bulk?: Buffer[];
}

/**
 * Requests the server executed but has not yet committed (transno > last_committed), kept in
 * transno order so that they can be replayed should the server lose them.
 */
export class ReplayList {
  #entries: ReplayEntry[] = [];
  readonly #max: number;
  dropped = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#entries.length;
  }

  entries(): readonly ReplayEntry[] {
    return this.#entries;
  }

  add(entry: ReplayEntry): void {
    if (this.#entries.length >= this.#max) {
      // The limit keeps a server that never commits from filling the client's memory.
      this.#entries.shift();
      this.dropped++;
    }
    let i = this.#entries.length;
    while (i > 0 && this.#entries[i - 1]!.transno > entry.transno) i--;
    this.#entries.splice(i, 0, entry);
  }

  /** Drops every entry the server has committed. */
  commit(lastCommitted: bigint): void {
    let n = 0;
    while (n < this.#entries.length && this.#entries[n]!.transno <= lastCommitted) n++;
    if (n > 0) this.#entries.splice(0, n);
  }

  clear(): void {
    this.#entries = [];
  }
}
