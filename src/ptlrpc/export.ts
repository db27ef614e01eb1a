// The server side of a client's connection to a target: an export, found by the handle
// (cookie) the connect reply gave the client, or by the client's UUID. An export stays alive
// while requests (pings at least) arrive; one silent longer than the eviction timeout is
// evicted, as Lustre's ping evictor does.
import { randomBytes } from 'node:crypto';
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

  constructor(clientUuid: string, handle: bigint, connCnt: number, peer: ProcessId, nowMs: number) {
    this.clientUuid = clientUuid;
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
    const exp = new Export(clientUuid, handle, connCnt, peer, nowMs);
    this.#byHandle.set(handle, exp);
    this.#byUuid.set(clientUuid, exp);
    return exp;
  }

  remove(exp: Export): void {
    this.#byHandle.delete(exp.handle);
    if (this.#byUuid.get(exp.clientUuid) === exp) this.#byUuid.delete(exp.clientUuid);
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
