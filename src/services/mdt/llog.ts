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

export class DestroyLog {
  readonly stats: DestroyLogStats = { recorded: 0, destroyed: 0, failures: 0 };
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
      await tx.indexInsert(this.index, recordName(o), { fid: o.fid, type: 'reg' });
      this.stats.recorded++;
    }
  }

  /** Processes the log once txg is durable. */
  kickAfter(txg: number): void {
    void this.osd.waitSynced(txg).then(() => this.kick(), () => {});
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
    let cookie: string | null = null;
    let failed = false;
    do {
      const page = await this.osd.indexList(this.index, { cookie, limit: 256 });
      cookie = page.cookie;
      const done: string[] = [];
      await Promise.all(page.entries.map(async (e) => {
        if (this.#inflight.has(e.name)) return;
        this.#inflight.add(e.name);
        let waiting = false;
        try {
          const answered = await this.destroyer.destroy(parseInt(e.name.slice(0, 8), 16), e.fid);
          this.stats.destroyed++;
          if (!answered) done.push(e.name);
          else {
            // Its removal waits for the OST's commit, without holding up the other records.
            // The record stays in #inflight until it is removed (#removeLater): a pass of the
            // log meanwhile would otherwise find it and destroy the object a second time.
            waiting = true;
            answered.committed.then(() => this.#removeLater(e.name), () => {
              this.#inflight.delete(e.name);
              this.stats.failures++;
              this.#retryLater();
            });
          }
        } catch {
          this.stats.failures++;
          failed = true;
        } finally {
          if (!waiting) this.#inflight.delete(e.name);
        }
      }));
      if (done.length > 0 && !this.#stopped) await this.#remove(done);
    } while (cookie && !this.#stopped);
    if (failed) this.#retryLater();
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
