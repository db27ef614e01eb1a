// The server side of a client's connection to a target: an export, found by the handle
// (cookie) the connect reply gave the client, or by the client's UUID. An export stays alive
// while requests (pings at least) arrive; one silent longer than the eviction timeout is
// evicted, as Lustre's ping evictor does.
//
// Per-export statistics are kept per client NID, as Lustre's nid_stats are (the directory
// exports/NID/ of a target): every export of one NID shares one LprocfsStats, which lives while
// the NID has an export.
import { randomBytes } from 'node:crypto';
import { LprocfsStats } from './stats.js';
import type { ReverseImport } from './reverse-import.js';
import type { ProcessId } from './transport.js';

export class Export {
  readonly clientUuid: string;
  readonly handle: bigint;
  readonly connectedAtMs: number;
  /** The connection count of the client's latest connect; older requests are stale. */
  connCnt: number;
  peer: ProcessId;
  lastSeenMs: number;
  /** Modifying requests being executed, by xid: a resend waits for the original. */
  readonly inflight = new Map<bigint, Promise<void>>();
  /** The stats of the export's NID (exports/NID/stats), shared with its NID's other exports. */
  readonly stats: LprocfsStats;
  /** The NID the export was created for: its stats directory's name. */
  readonly nid: string;
  /** The client's own handle from its connect (Lustre's imp_remote_handle of the reverse import); 0 when unknown. */
  remoteHandle = 0n;
  /** How the server sends requests (lock callbacks) to this client; made by its first user. */
  reverse: ReverseImport | undefined;

  constructor(clientUuid: string, handle: bigint, connCnt: number, peer: ProcessId, nowMs: number, stats = new LprocfsStats()) {
    this.clientUuid = clientUuid;
    this.nid = peer.nid;
    this.stats = stats;
    this.handle = handle;
    this.connCnt = connCnt;
    this.peer = peer;
    this.connectedAtMs = nowMs;
    this.lastSeenMs = nowMs;
  }
}

export class ExportTable {
  readonly #byHandle = new Map<bigint, Export>();
  readonly #byUuid = new Map<string, Export>();
  readonly #byNid = new Map<string, { stats: LprocfsStats; exports: number }>();
  readonly #max: number;

  constructor(maxExports: number) {
    this.#max = maxExports;
  }

  get size(): number {
    return this.#byHandle.size;
  }

  byHandle(handle: bigint): Export | undefined {
    return this.#byHandle.get(handle);
  }

  byUuid(uuid: string): Export | undefined {
    return this.#byUuid.get(uuid);
  }

  /** A new export with a fresh random handle; undefined when the table is full. */
  create(clientUuid: string, connCnt: number, peer: ProcessId, nowMs: number): Export | undefined {
    if (this.#byHandle.size >= this.#max) return undefined;
    let handle = 0n;
    while (handle === 0n || this.#byHandle.has(handle)) handle = randomBytes(8).readBigUInt64LE(0);
    let nid = this.#byNid.get(peer.nid);
    if (!nid) {
      nid = { stats: new LprocfsStats(), exports: 0 };
      this.#byNid.set(peer.nid, nid);
    }
    nid.exports++;
    const exp = new Export(clientUuid, handle, connCnt, peer, nowMs, nid.stats);
    this.#byHandle.set(handle, exp);
    this.#byUuid.set(clientUuid, exp);
    return exp;
  }

  remove(exp: Export): void {
    if (!this.#byHandle.delete(exp.handle)) return;
    if (this.#byUuid.get(exp.clientUuid) === exp) this.#byUuid.delete(exp.clientUuid);
    const nid = this.#byNid.get(exp.nid);
    if (nid && --nid.exports === 0) this.#byNid.delete(exp.nid);
  }

  /** The NIDs with exports, each with its stats and its exports' client UUIDs. */
  byNid(): Map<string, { stats: LprocfsStats; uuids: string[] }> {
    const out = new Map<string, { stats: LprocfsStats; uuids: string[] }>();
    for (const [nid, { stats }] of this.#byNid) out.set(nid, { stats, uuids: [] });
    for (const exp of this.#byHandle.values()) out.get(exp.nid)?.uuids.push(exp.clientUuid);
    return out;
  }

  /** Exports silent since before nowMs - timeoutMs. */
  silent(nowMs: number, timeoutMs: number): Export[] {
    const out: Export[] = [];
    for (const exp of this.#byHandle.values()) if (nowMs - exp.lastSeenMs > timeoutMs) out.push(exp);
    return out;
  }

  list(): Export[] {
    return [...this.#byHandle.values()];
  }
}
