// Executed-once needs, per client and slot (pb_tag), the last modifying request's xid,
// transno, status and reply, written in the same transaction as the update it answers
// (Lustre's last_rcvd / reply_data). ptlrpc defines only this small interface; a storage
// layer implements it (the OSD-backed one writes through the storage core's log) and hands
// each handler its transaction, so the update and the record are durable together or not at all.

/** What a client's slot remembers of its last modifying request. */
export interface ReplyRecord {
  tag: number;
  xid: bigint;
  transno: bigint;
  status: number;
  /** The reply's operation buffers, sent again as they were when the request is resent. */
  buffers: Buffer[];
}

/** One storage transaction, opened for one modifying request. */
export interface ReplyTransaction {
  readonly transno: bigint;
}

export interface ReplyStore<Tx extends ReplyTransaction = ReplyTransaction> {
  /** The record kept for a client's slot, if any. */
  lookup(clientUuid: string, tag: number): ReplyRecord | undefined;
  /**
   * Opens the transaction of one modifying request, with the next transno, or with `transno`
   * when a replay brings the one it had before the restart (later transnos follow it).
   */
  begin(clientUuid: string, transno?: bigint): Promise<Tx> | Tx;
  /**
   * Writes the slot record into tx and closes tx. Resolves once the transaction is applied
   * (readable), before it is durable; lastCommitted() says when it is.
   */
  finish(tx: Tx, clientUuid: string, record: ReplyRecord): Promise<void> | void;
  /** The highest transno on stable storage. */
  lastCommitted(): bigint;
  /** Calls back whenever lastCommitted advances; returns the unsubscribe. */
  onCommit(listener: (lastCommitted: bigint) => void): () => void;
  /** Drops every slot of a client (it disconnected or was evicted), and its client record. */
  forget(clientUuid: string): Promise<void> | void;
  /**
   * Records that a client is connected (Lustre's last_rcvd client slot), so that a restarted
   * target expects it back even if it never changed anything. Resolves once it is durable.
   */
  addClient(clientUuid: string): Promise<void> | void;
  /** The clients recorded: those a restarted target expects back. */
  clients(): string[];
  /** The highest transno given (committed or not). */
  lastTransno(): bigint;
}

export interface MemoryReplyStoreOptions {
  /** Transactions become "durable" this often (a txg timer); 0 commits at once. */
  commitIntervalMs?: number;
}

/**
 * A ReplyStore in memory, with a commit timer standing in for txgs. It keeps nothing across a
 * restart: for tests of the RPC layer and for nodes without storage.
 */
export class MemoryReplyStore implements ReplyStore<ReplyTransaction> {
  readonly #slots = new Map<string, Map<number, ReplyRecord>>();
  readonly #open = new Set<bigint>();
  readonly #listeners = new Set<(lastCommitted: bigint) => void>();
  readonly #commitIntervalMs: number;
  #lastTransno = 0n;
  #lastCommitted = 0n;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryReplyStoreOptions = {}) {
    this.#commitIntervalMs = options.commitIntervalMs ?? 0;
  }

  lookup(clientUuid: string, tag: number): ReplyRecord | undefined {
    return this.#slots.get(clientUuid)?.get(tag);
  }

  readonly #clients = new Set<string>();

  begin(_clientUuid: string, replayed?: bigint): ReplyTransaction {
    const transno = replayed ?? this.#lastTransno + 1n;
    if (transno > this.#lastTransno) this.#lastTransno = transno;
    this.#open.add(transno);
    return { transno };
  }

  finish(tx: ReplyTransaction, clientUuid: string, record: ReplyRecord): void {
    let slots = this.#slots.get(clientUuid);
    if (!slots) this.#slots.set(clientUuid, (slots = new Map()));
    slots.set(record.tag, record);
    this.#open.delete(tx.transno);
    this.#scheduleCommit();
  }

  lastCommitted(): bigint {
    return this.#lastCommitted;
  }

  onCommit(listener: (lastCommitted: bigint) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  forget(clientUuid: string): void {
    this.#slots.delete(clientUuid);
    this.#clients.delete(clientUuid);
  }

  addClient(clientUuid: string): void {
    this.#clients.add(clientUuid);
  }

  clients(): string[] {
    return [...this.#clients];
  }

  lastTransno(): bigint {
    return this.#lastTransno;
  }

  /** Stops the commit timer (the store stays readable). */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #scheduleCommit(): void {
    if (this.#commitIntervalMs === 0) return this.#commit();
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#commit();
    }, this.#commitIntervalMs);
    this.#timer.unref();
  }

  #commit(): void {
    // Invariant: a transno counts as committed only when every lower one is closed too.
    let committed = this.#lastTransno;
    for (const t of this.#open) if (t - 1n < committed) committed = t - 1n;
    if (committed <= this.#lastCommitted) return;
    this.#lastCommitted = committed;
    for (const l of this.#listeners) l(committed);
  }
}
