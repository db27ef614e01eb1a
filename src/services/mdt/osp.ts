// The OSP: the MDT's proxy of one OST (Lustre's osp device). A ptlrpc import to the OST, over
// the OST's own protocol (src/services/ost/protocol.ts):
//   - at connect, OST_CREATE with delorphan and the last object the MDT used on that OST (from
//     'lov_objid'): the OST destroys every object above it (precreated but never used, or used by
//     a create a crash undid) and restarts its precreation from there;
//   - precreate: keeps between precreateLow and precreateHigh objects created ahead, with
//     OST_CREATE asking for lastCreated + batch, so that creates rarely wait for the OST;
//   - statfs: OST_STATFS every statfsIntervalMs, for the allocator's free-space weights;
//   - destroy: OST_DESTROY for the unlink log (ENOENT counts as done).
// Objects of MDT0 on OST n live in the IDIF-style sequence 0x100000000 + n * 0x10000, so that
// each OST's objects have FIDs unique in the file system.
import { fid, type Fid } from '../../osd/index.js';
import { Import, LNET_PID_LUSTRE, Opcode, PtlrpcError, targetProfiles, type Network } from '../../ptlrpc/index.js';
import { decodeBody, encodeBody, FID_SEQ_OST_MDT0, OST_MAX_PRECREATE, replyNumber } from '../ost/protocol.js';
import type { OstSource } from './lod.js';

export function ostSeq(index: number): number {
  return FID_SEQ_OST_MDT0 + index * 0x10000;
}

export function ostUuid(fsname: string, index: number): string {
  return `${fsname}-OST${index.toString(16).padStart(4, '0')}_UUID`;
}

export interface OspConfig {
  ni: Network;
  index: number;
  nid: string;
  targetUuid: string;
  clientUuid: string;
  /** The last object the MDT used on this OST (0 if none). */
  lastUsedOid: number;
  /** Resolves when the orphan cleanup may run (the MDT's recovery is over). */
  recovered?: Promise<void>;
  precreateLow?: number;
  precreateHigh?: number;
  statfsIntervalMs?: number;
  connectRetryMs?: number;
  requestDeadlineMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export class Osp implements OstSource {
  readonly index: number;
  readonly seq: number;
  #imp: Import | undefined;
  #next: number;
  #lastCreated = 0;
  #ready = false;
  #stopped = false;
  /** Destroys the OST answered and has not committed yet (#committed). */
  #uncommitted: CommitWaiter[] = [];
  #commitTimer: NodeJS.Timeout | undefined;
  #watching = false;
  #precreating: Promise<void> | undefined;
  #bytesFree = 0;
  #bytesTotal = 0;
  #statfsTimer: NodeJS.Timeout | undefined;
  #waiters: (() => void)[] = [];
  #starting: Promise<void>;
  readonly counters = { precreates: 0, created: 0, destroys: 0, statfs: 0, errors: 0 };
  readonly #c: Required<Omit<OspConfig, 'log'>> & Pick<OspConfig, 'log'>;

  constructor(cfg: OspConfig) {
    this.#c = {
      precreateLow: 32, precreateHigh: 256, statfsIntervalMs: 1000, connectRetryMs: 500, requestDeadlineMs: 30_000,
      recovered: Promise.resolve(), ...cfg,
    };
    this.index = cfg.index;
    this.seq = ostSeq(cfg.index);
    this.#next = cfg.lastUsedOid + 1;
    this.#starting = this.#start();
  }

  /** Resolves when the OSP connected and cleaned orphans (for tests and stats). */
  get started(): Promise<void> {
    return this.#starting;
  }

  async #start(): Promise<void> {
    while (!this.#stopped) {
      try {
        this.#imp ??= await Import.connect(this.#c.ni, {
          target: { nid: this.#c.nid, pid: LNET_PID_LUSTRE }, targetUuid: this.#c.targetUuid, clientUuid: this.#c.clientUuid,
          ...targetProfiles.ost, requestDeadlineMs: this.#c.requestDeadlineMs, connectDeadlineMs: 5000,
        });
        // Evicted by the OST (a restart that did not expect us): precreates it had not committed
        // are gone while their objects may be handed out already; create them again at once.
        if (!this.#watching) {
          this.#watching = true;
          this.#imp.state$.subscribe((state) => {
            if (state === 'evicted') void this.#recreate();
          });
        }
        await this.#c.recovered;
        if (this.#stopped) break;
        // delorphan: the OST destroys what lies above the last object used.
        this.#lastCreated = await this.#create(this.#next - 1, true);
        break;
      } catch (err) {
        this.counters.errors++;
        this.#c.log?.('warn', `osp ${this.#c.targetUuid}: ${(err as Error).message}; retrying`);
        await sleep(this.#c.connectRetryMs);
      }
    }
    if (this.#stopped) return;
    this.#ready = true;
    await this.#statfs().catch(() => {});
    this.#statfsTimer = setInterval(() => void this.#statfs().catch(() => {}), this.#c.statfsIntervalMs);
    this.#statfsTimer.unref();
    this.#maybePrecreate();
  }

  async #recreate(): Promise<void> {
    while (!this.#stopped && this.#ready) {
      try {
        await this.#create(this.#lastCreated, false);
        this.#c.log?.('warn', `osp ${this.#c.targetUuid}: evicted by the OST: objects up to ${this.#lastCreated} created again`);
        return;
      } catch {
        await sleep(this.#c.connectRetryMs);
      }
    }
  }

  async #create(lastId: number, delorphan: boolean): Promise<number> {
    const reply = await this.#imp!.request(Opcode.OST_CREATE, [encodeBody({ seq: this.seq, lastId, ...(delorphan && { delorphan }) })], { modifying: true });
    this.counters.precreates++;
    return replyNumber(decodeBody(reply.buffers, 'OST_CREATE reply'), 'lastId');
  }

  async #statfs(): Promise<void> {
    if (!this.#imp || this.#stopped) return;
    const reply = await this.#imp.request(Opcode.OST_STATFS, [encodeBody({})]);
    const s = decodeBody(reply.buffers, 'OST_STATFS reply').statfs as Record<string, number> | undefined;
    if (!s || typeof s.bavail !== 'number' || typeof s.bsize !== 'number') throw new PtlrpcError('EPROTO', 'malformed OST_STATFS reply');
    this.#bytesFree = s.bavail * s.bsize;
    this.#bytesTotal = s.blocks * s.bsize;
    this.counters.statfs++;
  }

  #maybePrecreate(): void {
    if (!this.#ready || this.#stopped || this.#precreating) return;
    if (this.available() >= this.#c.precreateLow) return;
    this.#precreating = (async () => {
      try {
        while (!this.#stopped && this.available() < this.#c.precreateHigh) {
          const want = Math.min(this.#lastCreated + this.#c.precreateHigh - this.available(), this.#lastCreated + OST_MAX_PRECREATE);
          const got = await this.#create(want, false);
          if (got <= this.#lastCreated) break; // the OST is full: no progress
          this.counters.created += got - this.#lastCreated;
          this.#lastCreated = got;
          this.#wake();
        }
      } catch (err) {
        this.counters.errors++;
        this.#c.log?.('warn', `osp ${this.#c.targetUuid}: precreate failed: ${(err as Error).message}`);
        await sleep(this.#c.connectRetryMs);
      } finally {
        this.#precreating = undefined;
      }
      if (this.available() < this.#c.precreateLow) this.#maybePrecreate();
    })();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  usable(): boolean {
    return this.#ready && !this.#stopped && this.available() > 0;
  }

  bytesFree(): number {
    return this.#bytesFree;
  }

  bytesTotal(): number {
    return this.#bytesTotal;
  }

  available(): number {
    return this.#ready ? Math.max(0, this.#lastCreated - this.#next + 1) : 0;
  }

  take(): Fid {
    // Invariant: the allocator takes only what available() counts.
    if (this.available() <= 0) throw new Error(`osp ${this.#c.targetUuid}: take() with nothing precreated`);
    const oid = this.#next++;
    this.#maybePrecreate();
    return fid(this.seq, oid);
  }

  adopt(object: Fid): void {
    if (object.seq === this.seq && object.oid >= this.#next) this.#next = object.oid + 1;
  }

  waitAvailable(timeoutMs: number): Promise<void> {
    if (this.available() > 0) return Promise.resolve();
    this.#maybePrecreate();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        reject(new PtlrpcError('ENOSPC', `osp ${this.#c.targetUuid}: no object precreated in ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push(done);
    });
  }

  /**
   * Destroys an object. Resolves when the OST answered, with `committed`, which resolves once
   * the OST has the destroy on disk: as Lustre's osp_sync, the unlink log drops its record only
   * then, since a destroy the OST answered and lost in a crash would otherwise never be done
   * again (its object an orphan). Meanwhile the import keeps the destroy to replay; an eviction
   * (the replay lost) rejects `committed`, and the record is processed again.
   */
  async destroy(object: Fid): Promise<{ committed: Promise<void> }> {
    const imp = this.#imp;
    if (!this.#ready || !imp) throw new PtlrpcError('ENOTCONN', `osp ${this.#c.targetUuid} not connected`);
    const evictions = imp.counters.evictions;
    let transno = 0n;
    try {
      transno = (await imp.request(Opcode.OST_DESTROY, [encodeBody({ seq: object.seq, oid: object.oid })], { modifying: true })).transno;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    this.counters.destroys++;
    return { committed: this.#committed(imp, transno, evictions) };
  }

  /**
   * Resolves once the OST committed transno. The destroys waiting are looked at together, every
   * COMMIT_POLL_MS by one timer (an unlink burst leaves a thousand of them waiting at once).
   */
  #committed(imp: Import, transno: bigint, evictions: number): Promise<void> {
    const w = { imp, transno, evictions, resolve: (): void => {}, reject: (_err: Error): void => {} };
    const p = new Promise<void>((resolve, reject) => Object.assign(w, { resolve, reject }));
    if (this.#settle(w)) {
      this.#uncommitted.push(w);
      this.#commitTimer ??= setInterval(() => {
        this.#uncommitted = this.#uncommitted.filter((x) => this.#settle(x));
        if (this.#uncommitted.length === 0) {
          clearInterval(this.#commitTimer);
          this.#commitTimer = undefined;
        }
      }, COMMIT_POLL_MS).unref();
    }
    return p;
  }

  /** Settles a waiting destroy if it can be; true while it still waits. */
  #settle(w: CommitWaiter): boolean {
    // An eviction first: a restarted OST that forgot us may have committed past our transno
    // with other work while our destroy was lost in its crash.
    if (w.imp.counters.evictions !== w.evictions) w.reject(new PtlrpcError('EIO', `evicted by ${this.#c.targetUuid} before it committed a destroy`));
    else if (w.imp.lastCommitted >= w.transno) w.resolve();
    else if (this.#stopped || w.imp.state === 'closed') w.reject(new PtlrpcError('ESHUTDOWN', `osp ${this.#c.targetUuid} stopped before the OST committed a destroy`));
    else return true;
    return false;
  }

  stats(): Record<string, unknown> {
    return {
      uuid: this.#c.targetUuid, ready: this.#ready, next: this.#next, lastCreated: this.#lastCreated, available: this.available(),
      bytesFree: this.#bytesFree, bytesTotal: this.#bytesTotal, ...this.counters,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#statfsTimer);
    clearInterval(this.#commitTimer);
    for (const w of this.#uncommitted.splice(0)) this.#settle(w);
    this.#wake();
    await this.#starting;
    await this.#precreating?.catch(() => {});
    await this.#imp?.disconnect();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

interface CommitWaiter {
  imp: Import;
  transno: bigint;
  evictions: number;
  resolve(): void;
  reject(err: Error): void;
}
/** How often the destroys waiting are looked at for the OST's commit (replies and pings bring last_committed). */
const COMMIT_POLL_MS = 100;
