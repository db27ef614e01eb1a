// Space grants (Lustre's tgt_grant): bytes of free space promised to one client, so that it
// can write without asking whether there is room. A client holds grant; a write it counts
// against its grant (fromGrant) consumes that much here too; each reply may grant more. The
// space not granted ("avail") is what writes without grant and new grants share, so a client
// that holds grant is not starved by others filling the device. The OSD's own space check
// stays the last word: a write it refuses gets ENOSPC and nothing of it is written.
//
// The book lives in memory: after a restart every client holds grant the OST does not know;
// its writes then count as writes without grant (checked against free space), which is safe.
// A client's grant is returned to the pool when its exports are gone (disconnect, eviction).
import type { Osd } from '../../osd/index.js';

/** A reply grants at most this fraction of the space left (Lustre grants a fraction too). */
const GRANT_FRACTION = 8;
/** Grants are whole pages. */
const GRANT_UNIT = 4096;

export interface GrantStats {
  clients: number;
  granted: number;
  consumed: number;
  refusedBytes: number;
}

export class GrantBook {
  readonly #osd: Osd;
  readonly #alive: (clientUuid: string) => boolean;
  readonly #granted = new Map<string, number>();
  #total = 0;
  #consumed = 0;
  #refused = 0;

  constructor(osd: Osd, alive: (clientUuid: string) => boolean) {
    this.#osd = osd;
    this.#alive = alive;
  }

  get total(): number {
    return this.#total;
  }

  held(clientUuid: string): number {
    return this.#granted.get(clientUuid) ?? 0;
  }

  stats(): GrantStats {
    return { clients: this.#granted.size, granted: this.#total, consumed: this.#consumed, refusedBytes: this.#refused };
  }

  /** Takes `bytes` of the client's grant; false (nothing taken) if it holds less. */
  consume(clientUuid: string, bytes: number): boolean {
    const held = this.held(clientUuid);
    if (held < bytes) return false;
    this.#set(clientUuid, held - bytes);
    this.#consumed += bytes;
    return true;
  }

  /** Gives back what consume() took, for a write that failed. */
  restore(clientUuid: string, bytes: number): void {
    this.#set(clientUuid, this.held(clientUuid) + bytes);
    this.#consumed -= bytes;
  }

  /** Whether a write without grant that may add `bytes` fits beside the other clients' grants. */
  async fits(clientUuid: string, bytes: number): Promise<boolean> {
    if (bytes === 0) return true;
    const { bytesFree } = await this.#osd.statfs();
    const ok = bytes <= bytesFree - (this.#total - this.held(clientUuid));
    if (!ok) this.#refused += bytes;
    return ok;
  }

  /** Grants up to `want` more bytes; returns what was granted. */
  async grant(clientUuid: string, want: number): Promise<number> {
    this.#reap();
    if (want <= 0) return 0;
    const left = Math.max(0, (await this.#osd.statfs()).bytesFree - this.#total);
    const give = Math.floor(Math.min(want, left / GRANT_FRACTION) / GRANT_UNIT) * GRANT_UNIT;
    if (give > 0) this.#set(clientUuid, this.held(clientUuid) + give);
    return give;
  }

  /** The client gives back grant it will not use (at most what it holds here). */
  release(clientUuid: string, bytes: number): void {
    this.#set(clientUuid, Math.max(0, this.held(clientUuid) - bytes));
  }

  /** Bytes of free space not promised to anyone. */
  async avail(): Promise<{ bytesFree: number; avail: number }> {
    const { bytesFree } = await this.#osd.statfs();
    return { bytesFree, avail: Math.max(0, bytesFree - this.#total) };
  }

  #set(clientUuid: string, bytes: number): void {
    this.#total += bytes - this.held(clientUuid);
    if (bytes > 0) this.#granted.set(clientUuid, bytes);
    else this.#granted.delete(clientUuid);
  }

  /** Clients with no export left give their grant back to the pool. */
  #reap(): void {
    for (const uuid of [...this.#granted.keys()]) if (!this.#alive(uuid)) this.#set(uuid, 0);
  }
}
