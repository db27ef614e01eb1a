// The unlink log (Lustre's llog of MDS_UNLINK records, kept by the OSP): OST objects of removed
// files, to be destroyed on their OSTs. A record is written in the transaction that removes the
// file, so the two are durable together; it is processed once that transaction's txg is on disk
// (never for an unlink a crash may still undo); it is removed when the OST committed the
// destroy. After a crash the records left are processed again at start: an object is destroyed
// at most once more, and a destroy of an object already gone is done (ENOENT), so none is left
// behind and none is destroyed twice in effect (object ids are never reused on an OST).
//
// Records: entries of the 'unlink_llog' index, name "<OST index, 8 hex digits>:<object FID key>",
// value { fid: the object's FID, type: 'reg' }.
//
// Passes: the whole log is read at start, when an OST connects and after a failure. The records
// an unlink adds are also remembered here with their txg, and once that txg is durable they alone
// are processed: reading the whole log after every txg (as a pass does) read every record still
// waiting for its OST's commit, hundreds of them while files are unlinked by the hundred per
// second, only to skip them. A pass reads the log as the OSD has it, records of txgs still open
// or syncing included: it leaves those to the processing after their txg (a remembered record
// says its txg; one not remembered, beyond FRESH_RECORDS_MAX, waits for a pass once the last
// such txg is durable).
import { fidKey, type Fid, type Osd, type Tx } from '../../osd/index.js';
import type { StripeObject } from './layout.js';

export interface ObjectDestroyer {
  /**
   * Destroys the object on OST `ostIndex`; rejects when the OST cannot be reached (retried
   * later). It may resolve with `committed`, settled when the OST has the destroy on disk:
   * the record is removed only then (a rejection leaves it to be processed again).
   */
  destroy(ostIndex: number, object: Fid): Promise<void | { committed: Promise<void> }>;
}

export interface DestroyLogStats {
  recorded: number;
  destroyed: number;
  failures: number;
}

/** Records remembered for processing after their txg (beyond it, the next pass reads the whole log). */
export const FRESH_RECORDS_MAX = 65536;

interface FreshRecord {
  /** The txg of the transaction that added the record: processed once it is durable. */
  txg: number;
  ostIndex: number;
  fid: Fid;
}

export class DestroyLog {
  readonly stats: DestroyLogStats = { recorded: 0, destroyed: 0, failures: 0 };
  /** Records added since the log was last read whole, by name (see the top of the file). */
  readonly #fresh = new Map<string, FreshRecord>();
  /** The last txg that added a record not remembered (FRESH_RECORDS_MAX); 0: none since the last pass took them. */
  #untrackedTxg = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #inflight = new Set<string>();
  readonly #committedNames: string[] = [];
  #removing: Promise<void> | undefined;

  constructor(
    private readonly osd: Osd,
    private readonly index: Fid,
    private readonly destroyer: ObjectDestroyer,
    private readonly retryMs = 1000,
  ) {}

  /** Records the objects in tx (the removing transaction). */
  async add(tx: Tx, objects: readonly StripeObject[]): Promise<void> {
    for (const o of objects) {
      const name = recordName(o);
      await tx.indexInsert(this.index, name, { fid: o.fid, type: 'reg' });
      this.stats.recorded++;
      if (this.#fresh.size < FRESH_RECORDS_MAX) this.#fresh.set(name, { txg: tx.txg, ostIndex: o.ostIndex, fid: o.fid });
      else this.#untrackedTxg = Math.max(this.#untrackedTxg, tx.txg);
    }
  }

  /**
   * Processes the records added up to txg once it is durable (the whole log if some were not
   * remembered). The txg commits on its own schedule, as Lustre's OSP sync thread waits for
   * commits: forcing it would cost one txg (one fdatasync) per unlink.
   */
  kickAfter(txg: number): void {
    void this.osd.waitSynced(txg, false).then(() => {
      this.#processFresh();
      if (this.#untrackedTxg !== 0 && this.#untrackedTxg <= this.osd.lastSyncedTxg) void this.kick();
    }, () => {});
  }

  /** The remembered records whose txg is durable, each destroyed on its own. */
  #processFresh(): void {
    if (this.#stopped) return;
    const synced = this.osd.lastSyncedTxg;
    const due: Array<[string, FreshRecord]> = [];
    for (const [name, r] of this.#fresh) if (r.txg <= synced) due.push([name, r]);
    for (const [name, r] of due) {
      this.#fresh.delete(name);
      void this.#destroy(name, r.ostIndex, r.fid).then((done) => {
        if (done) this.#removeLater(name);
      }, () => this.#retryLater());
    }
  }

  /** Processes the log now (records already durable). */
  kick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#process().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        void this.kick();
      }
    });
    return this.#running;
  }

  /** Records not yet acknowledged by their OST. */
  async pending(): Promise<number> {
    let n = 0;
    let cookie: string | null = null;
    do {
      const page = await this.osd.indexList(this.index, { cookie, limit: 1024 });
      n += page.entries.length;
      cookie = page.cookie;
    } while (cookie);
    return n;
  }

  async #process(): Promise<void> {
    const synced = this.osd.lastSyncedTxg;
    // Records not remembered are all durable when the last txg that added one is; else they
    // wait, with any other record this pass cannot place, for the pass after that txg.
    const unplacedDurable = this.#untrackedTxg <= synced;
    if (unplacedDurable) this.#untrackedTxg = 0;
    let cookie: string | null = null;
    let failed = false;
    do {
      const page = await this.osd.indexList(this.index, { cookie, limit: 256 });
      cookie = page.cookie;
      const done: string[] = [];
      await Promise.all(page.entries.map(async (e) => {
        const fresh = this.#fresh.get(e.name);
        if (fresh ? fresh.txg > synced : !unplacedDurable) return; // a crash may still undo its unlink
        this.#fresh.delete(e.name);
        try {
          if (await this.#destroy(e.name, parseInt(e.name.slice(0, 8), 16), e.fid)) done.push(e.name);
        } catch {
          failed = true;
        }
      }));
      if (done.length > 0 && !this.#stopped) {
        await this.#remove(done).finally(() => {
          for (const n of done) this.#inflight.delete(n);
        });
      }
    } while (cookie && !this.#stopped);
    if (failed) this.#retryLater();
  }

  /**
   * Destroys the object of one record, unless a destroy of it is under way already. Resolves
   * true when the record is to be removed now (it stays in #inflight until the caller did),
   * false when it is not (under way, or its removal waits for the OST's commit); rejects when
   * the destroy failed (the record stays for a later pass).
   */
  async #destroy(name: string, ostIndex: number, fid: Fid): Promise<boolean> {
    if (this.#inflight.has(name)) return false;
    this.#inflight.add(name);
    let answered: void | { committed: Promise<void> };
    try {
      answered = await this.destroyer.destroy(ostIndex, fid);
    } catch (err) {
      this.#inflight.delete(name);
      this.stats.failures++;
      throw err;
    }
    this.stats.destroyed++;
    if (!answered) return true;
    // Its removal waits for the OST's commit, without holding up the other records. The
    // record stays in #inflight until it is removed (#removeLater): a pass of the log
    // meanwhile would otherwise find it and destroy the object a second time.
    answered.committed.then(() => this.#removeLater(name), () => {
      this.#inflight.delete(name);
      this.stats.failures++;
      this.#retryLater();
    });
    return false;
  }

  #retryLater(): void {
    if (this.#stopped) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.kick(), this.retryMs);
    this.#retry.unref();
  }

  /** Records whose destroys the OSTs committed, removed together shortly after (then out of #inflight). */
  #removeLater(name: string): void {
    if (this.#stopped) {
      this.#inflight.delete(name);
      return;
    }
    this.#committedNames.push(name);
    if (this.#removing) return;
    this.#removing = Promise.resolve().then(async () => {
      while (this.#committedNames.length > 0 && !this.#stopped) {
        const names = this.#committedNames.splice(0, 1024);
        await this.#remove(names).catch(() => {
          this.stats.failures++;
          this.#retryLater();
        }).finally(() => {
          for (const n of names) this.#inflight.delete(n);
        });
      }
      for (const n of this.#committedNames.splice(0)) this.#inflight.delete(n);
    }).finally(() => (this.#removing = undefined));
  }

  async #remove(names: string[]): Promise<void> {
    const tx = this.osd.begin();
    for (let i = 0; i < names.length; i++) tx.declareIndexDelete(this.index);
    await tx.start();
    try {
      for (const name of names) await tx.indexDelete(this.index, name);
    } finally {
      tx.stop();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#running;
    await this.#removing;
  }
}

export function recordName(o: StripeObject): string {
  return `${o.ostIndex.toString(16).padStart(8, '0')}:${fidKey(o.fid)}`;
}
