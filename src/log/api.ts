// The public shape of the transaction-group log. The log knows nothing of files, objects or
// RPCs: an entry is an opaque CBOR-encodable value that its owner (the OSD) gives it and gets
// back, in the same order, when the log is replayed.

/** Where a txg is in its life. At most one txg is in each of the first three states. */
export type TxgState = 'open' | 'quiescing' | 'syncing' | 'synced';

export interface TxgLogTunables {
  /** The open txg closes at most this long after its first transaction joined it. */
  txgTimeoutMs: number;
  /**
   * The open txg closes once the encoded size of its entries, plus the bytes its transactions
   * wrote outside the log (data files, which its sync must make durable), reaches this.
   */
  dirtyBytesMax: number;
  /** A segment file is closed and a new one started once it reaches this size. */
  segmentBytesMax: number;
  /**
   * Segments wholly covered by a checkpoint are deleted, unless retention asks to keep them:
   * they are kept while younger than retainMs or while the retained bytes stay under
   * retainBytes (0 for both: delete at once).
   */
  retainMs: number;
  retainBytes: number;
}

export const defaultTunables: TxgLogTunables = {
  txgTimeoutMs: 1000,
  dirtyBytesMax: 64 * 1024 * 1024,
  segmentBytesMax: 64 * 1024 * 1024,
  retainMs: 0,
  retainBytes: 0,
};

/** One durable txg as read back from a segment. */
export interface TxgRecord {
  txg: number;
  /** Milliseconds since the epoch, from the log's clock, when the txg was closed. */
  timeMs: number;
  entries: unknown[];
  /** Where the record starts and how long it is, for tools that report positions. */
  file: string;
  offset: number;
  bytes: number;
}

export interface TxgLogOptions extends Partial<TxgLogTunables> {
  /** Folder holding the segment files (created by format()). */
  dir: string;
  /** The txg the owner's checkpoint reflects (0 when none): only records after it replay. */
  checkpointTxg: number;
  /** Called for each record after the checkpoint, in txg order, before open() resolves. */
  replay?: (record: TxgRecord) => void | Promise<void>;
  /**
   * Called once a txg's entries are all in and before its record is appended: the owner makes
   * data written outside the log durable here (fdatasync of data files), so that data is never
   * less durable than the txg that records it.
   */
  beforeSync?: (txg: number) => Promise<void>;
  /**
   * Called before segments are deleted, with the last txg they hold: the owner keeps what it
   * needs to rebuild states after that txg without them (a base for replay-to-point). A throw
   * keeps the segments.
   */
  beforeTrim?: (throughTxg: number) => Promise<void>;
  /** Called when a txg is durable, before its commit callbacks, in txg order. */
  onSynced?: (txg: number) => void;
  /** Warnings worth a line in the target's log (a torn tail cut, a segment removed). */
  warn?: (message: string) => void;
  /** Injected for deterministic tests; Date.now by default. */
  clock?: () => number;
}

/** A transaction's place in the open txg, between its start and its stop. */
export interface TxgHold {
  readonly txg: number;
  /**
   * Adds the transaction's entry to its txg and lets the txg close once every hold is released.
   * onCommit runs after the txg is durable, in txg order, and in release order within a txg.
   * dataBytes: what the transaction wrote outside the log, for the txg's beforeSync to make
   * durable; it counts towards dirtyBytesMax as ZFS counts a txg's dirty data, so that a
   * stream of large writes closes a txg per dirtyBytesMax instead of holding a whole
   * txgTimeoutMs of data (and the clients' copies of it, kept for replay until the commit).
   */
  release(entry: unknown, onCommit?: (txg: number) => void, dataBytes?: number): void;
}

export interface TxgLogStats {
  openTxg: number;
  lastSyncedTxg: number;
  checkpointTxg: number;
  /** The replay barrier's txg (0: none), and the txgs it kept from disk. */
  barrierTxg: number;
  txgsDiscarded: number;
  txgsSynced: number;
  /** Sum and maximum of the time from close to durable, in milliseconds. */
  syncTimeTotalMs: number;
  syncTimeMaxMs: number;
  dirtyBytes: number;
  recordsReplayed: number;
  bytesWritten: number;
  segments: number;
}
