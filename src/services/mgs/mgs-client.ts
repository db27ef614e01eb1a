// The MGS's client side, as every Lustre node has it (the MGC obd): connects to the MGS over
// ptlrpc, registers targets, reads config logs and follows them. Servers use it directly (a
// target registers at mount, an MDT reads its own log to find the OSTs); src/client/mgc.ts
// builds the client's MGC on it.
import { Observable } from 'rxjs';
import { LNET_PID_LUSTRE } from '../../lnet/index.js';
import { Import, Opcode, PtlrpcError, targetProfiles, type ImportConfig, type Network } from '../../ptlrpc/index.js';
import {
  decodeMgs, encodeMgs, MGS_LIMITS, type ConfigReadReply, type ConfigRecord, type RegistrationReply, type SetInfoMode,
  type SetInfoReply, type TargetRegistration,
} from './protocol.js';

/** The MGS's target name, as MGCs connect to it. */
export const MGS_TARGET_UUID = 'MGS';
/** Errnos the MGS replies with that ptlrpc's table does not name. */
const EADDRINUSE = 98;
/** Sends of one request after evictions (an MGS restarting again and again fails it). */
const EVICTED_RETRIES = 3;

export interface MgsClientOptions {
  /** Where the MGS may be, tried in order (failover NIDs). */
  mgsNids: string[];
  /** This node's uuid as the MGS's export knows it. */
  clientUuid: string;
  connectDeadlineMs?: number;
  requestDeadlineMs?: number;
  /** How long the MGS may hold one CONFIG_READ of a watch (the long poll). */
  pollWaitMs?: number;
  pingIntervalMs?: number;
}

export interface LogUpdate {
  log: string;
  records: ConfigRecord[];
  lastIndex: number;
}

export class MgsClient {
  readonly #ni: Network;
  readonly #opts: Required<MgsClientOptions>;
  readonly #import: Import;
  #watchImport: Promise<Import> | undefined;
  readonly #nid: string;
  #closed = false;

  private constructor(ni: Network, opts: Required<MgsClientOptions>, imp: Import, nid: string) {
    this.#ni = ni;
    this.#nid = nid;
    this.#opts = opts;
    this.#import = imp;
  }

  /** Connects to the first MGS NID that answers; fails with the last NID's error. */
  static async connect(ni: Network, options: MgsClientOptions): Promise<MgsClient> {
    const opts: Required<MgsClientOptions> = {
      connectDeadlineMs: 30_000, requestDeadlineMs: 60_000, pollWaitMs: 5_000, pingIntervalMs: 5_000, ...options,
    };
    if (opts.mgsNids.length === 0) throw new PtlrpcError('EINVAL', 'no MGS NID given (mkfs.lustre --mgsnode=NID)');
    const { imp, nid } = await connectAny(ni, opts, opts.clientUuid, {});
    return new MgsClient(ni, opts, imp, nid);
  }

  /** The MGS NID this client is connected to. */
  get nid(): string {
    return this.#nid;
  }

  /** MGS_TARGET_REG: the MGS confirms (or assigns) the index and writes the target's records. */
  async register(reg: TargetRegistration): Promise<RegistrationReply> {
    const reply = await this.#call(Opcode.MGS_TARGET_REG, reg, true, `registration of ${reg.svname}`);
    const r = reply as Partial<RegistrationReply> | undefined;
    if (!r || typeof r.svname !== 'string' || typeof r.index !== 'number') throw new PtlrpcError('EPROTO', 'malformed MGS_TARGET_REG reply');
    return { svname: r.svname, index: r.index };
  }

  /** MGS_SET_INFO: set_param -P (the params log) or conf_param (the file system's logs). */
  async setParams(mode: SetInfoMode, params: Array<[string, string]>): Promise<SetInfoReply> {
    const reply = (await this.#call(Opcode.MGS_SET_INFO, { mode, params }, true, mode)) as SetInfoReply | undefined;
    if (!reply || typeof reply.logs !== 'object') throw new PtlrpcError('EPROTO', 'malformed MGS_SET_INFO reply');
    return reply;
  }

  /** MGS_CONFIG_READ of one log from its start (or after `after`), every record. */
  async readLog(log: string, after = 0): Promise<ConfigRecord[]> {
    const records: ConfigRecord[] = [];
    for (;;) {
      const reply = await this.#read(this.#import, [[log, after]], 0);
      const part = reply.logs[0]?.records ?? [];
      records.push(...part);
      if (part.length === 0) return records;
      after = part[part.length - 1]!.index;
    }
  }

  /**
   * The records of `logs` as they are appended: first everything after `after` (0: the
   * whole log), then each change, through long polls on an import of their own (a poll held
   * by the MGS must not count as a lost request on the import that registers).
   */
  watch(logs: string[], after: Record<string, number> = {}): Observable<LogUpdate> {
    return new Observable<LogUpdate>((subscriber) => {
      let stopped = false;
      const positions = new Map(logs.map((l) => [l, after[l] ?? 0]));
      const loop = async (): Promise<void> => {
        const imp = await this.#watcher();
        while (!stopped && !this.#closed) {
          let reply: ConfigReadReply;
          try {
            reply = await this.#read(imp, [...positions], this.#opts.pollWaitMs);
          } catch (err) {
            if (stopped || this.#closed) return;
            const code = (err as { code?: string }).code;
            if (code !== 'ETIMEDOUT' && code !== 'ENOTCONN' && code !== 'EIO' && code !== 'EAGAIN') throw err;
            // The MGS is busy or unreachable for now: pause, then poll again.
            await new Promise((r) => setTimeout(r, Math.min(1_000, this.#opts.pollWaitMs)));
            continue;
          }
          for (const l of reply.logs) {
            if (l.records.length === 0 || stopped) continue;
            positions.set(l.name, l.records[l.records.length - 1]!.index);
            subscriber.next({ log: l.name, records: l.records, lastIndex: l.lastIndex });
          }
        }
      };
      loop().then(() => subscriber.complete(), (err) => { if (!stopped && !this.#closed) subscriber.error(err); else subscriber.complete(); });
      return () => { stopped = true; };
    });
  }

  /** Disconnects; with force, without waiting for the MGS to answer (it may be gone). */
  async close(opts: { force?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const watch = this.#watchImport;
    const disconnect = (imp: Import): Promise<void> => {
      if (opts.force) imp.forceReconnect();
      return imp.disconnect();
    };
    await disconnect(this.#import);
    if (watch) await watch.then(disconnect, () => {});
  }

  #watcher(): Promise<Import> {
    // The poll is held up to pollWaitMs: the attempt timeout must exceed it by a margin.
    const waitMs = this.#opts.pollWaitMs;
    this.#watchImport ??= connectAny(this.#ni, this.#opts, `${this.#opts.clientUuid}-watch`, {
      at: { minMs: waitMs + 1_000, maxMs: 4 * waitMs + 4_000 }, pingIntervalMs: 0,
    }).then((r) => r.imp);
    return this.#watchImport;
  }

  async #read(imp: Import, logs: Array<[string, number]>, waitMs: number): Promise<ConfigReadReply> {
    const reply = (await this.#callOn(imp, Opcode.MGS_CONFIG_READ, { logs, waitMs, maxBytes: MGS_LIMITS.readBytesMax }, false,
      `reading config logs ${logs.map((l) => l[0]).join(', ')}`)) as ConfigReadReply | undefined;
    if (!reply || !Array.isArray(reply.logs)) throw new PtlrpcError('EPROTO', 'malformed MGS_CONFIG_READ reply');
    return reply;
  }

  #call(opcode: number, body: unknown, modifying: boolean, what: string): Promise<unknown> {
    return this.#callOn(this.#import, opcode, body, modifying, what);
  }

  /**
   * The MGS keeps no recovery window (Lustre's MGS is not replayable either): after it
   * restarts, an import that reconnects is evicted and a request in flight fails EIO, "may not
   * have been executed". Every MGS request is idempotent (a registration repeated by the same
   * device changes nothing; a param appended twice sets the same value), so it is sent again.
   */
  async #callOn(imp: Import, opcode: number, body: unknown, modifying: boolean, what: string): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await imp.request(opcode, [encodeMgs(body)], { modifying });
        return decodeMgs(reply.buffers[0]);
      } catch (err) {
        if (err instanceof PtlrpcError && err.status === -EADDRINUSE) {
          throw new PtlrpcError('EADDRINUSE', `${what} refused by the MGS: the index is in use by another target (EADDRINUSE)`, err.status);
        }
        const evicted = err instanceof PtlrpcError && err.code === 'EIO' && err.status === undefined;
        if (!evicted || attempt >= EVICTED_RETRIES || this.#closed) throw err;
      }
    }
  }
}

async function connectAny(ni: Network, opts: Required<MgsClientOptions>, clientUuid: string,
  extra: Partial<ImportConfig>): Promise<{ imp: Import; nid: string }> {
  let last: unknown;
  for (const nid of opts.mgsNids) {
    try {
      const imp = await Import.connect(ni, {
        ...targetProfiles.mgs, target: { nid, pid: LNET_PID_LUSTRE }, targetUuid: MGS_TARGET_UUID, clientUuid,
        connectDeadlineMs: opts.connectDeadlineMs, requestDeadlineMs: opts.requestDeadlineMs,
        pingIntervalMs: opts.pingIntervalMs, ...extra,
      });
      return { imp, nid };
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
