// The MGC: a node's connection to the MGS. It registers targets, reads a file system's client
// config log and follows it, so that an OST added while clients are connected shows up in
// config$ without a remount. Built on the services' MgsClient (the same code a server's MGC
// runs), plus the client's view of the log (the MDTs, OSTs and parameters it names).
import { Observable, filter, firstValueFrom } from 'rxjs';
import type { Network } from '../ptlrpc/index.js';
import {
  applyConfigRecords, clientLogName, emptyFsConfig, MgsClient, PARAMS_LOG, type ConfigRecord, type FsConfig, type LogUpdate,
  type MgsClientOptions, type RegistrationReply, type SetInfoMode, type SetInfoReply, type TargetRegistration,
} from '../services/mgs/index.js';

export interface MgcOptions extends MgsClientOptions {}

/** One change the MGC saw: the records appended to a log, and the view after them. */
export interface ConfigChange {
  log: string;
  records: ConfigRecord[];
  config: FsConfig;
}

export class Mgc {
  readonly client: MgsClient;

  private constructor(client: MgsClient) {
    this.client = client;
  }

  static async connect(ni: Network, opts: MgcOptions): Promise<Mgc> {
    return new Mgc(await MgsClient.connect(ni, opts));
  }

  register(reg: TargetRegistration): Promise<RegistrationReply> {
    return this.client.register(reg);
  }

  /** set_param -P (mode 'set_param') or conf_param: a param record the MGS appends. */
  setParams(mode: SetInfoMode, params: Array<[string, string]>): Promise<SetInfoReply> {
    return this.client.setParams(mode, params);
  }

  readLog(log: string, after = 0): Promise<ConfigRecord[]> {
    return this.client.readLog(log, after);
  }

  /** The view of a file system's config (its client log plus the params log), read once. */
  async readConfig(fsname: string): Promise<FsConfig> {
    const view = applyConfigRecords(emptyFsConfig(), await this.readLog(clientLogName(fsname)));
    const params = applyConfigRecords(emptyFsConfig(), await this.readLog(PARAMS_LOG));
    for (const [k, v] of params.params) view.params.set(k, v);
    return view;
  }

  /**
   * Follows fsname's client log and the params log: emits a ConfigChange for each batch of
   * records appended (the whole logs first), with the view as it stands after them.
   */
  watch(fsname: string): Observable<ConfigChange> {
    const clientLog = clientLogName(fsname);
    return new Observable<ConfigChange>((subscriber) => {
      // Views per subscription: each one starts from the logs' first records.
      const client = emptyFsConfig();
      const params = emptyFsConfig();
      const sub = this.client.watch([clientLog, PARAMS_LOG]).subscribe({
        next: (u: LogUpdate) => {
          applyConfigRecords(u.log === clientLog ? client : params, u.records);
          subscriber.next({ log: u.log, records: u.records, config: merged(client, params) });
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => sub.unsubscribe();
    });
  }

  /** Resolves with the view once `predicate` holds for it (following the logs until then). */
  async waitFor(fsname: string, predicate: (config: FsConfig) => boolean): Promise<FsConfig> {
    const change = await firstValueFrom(this.watch(fsname).pipe(filter((c) => predicate(c.config))));
    return change.config;
  }

  /** Disconnects; with force, without waiting for the MGS to answer. */
  async close(opts: { force?: boolean } = {}): Promise<void> {
    await this.client.close(opts);
  }
}

/** The client log's view with the params log's parameters over it. */
function merged(client: FsConfig, params: FsConfig): FsConfig {
  const view: FsConfig = {
    mdts: new Map(client.mdts), osts: new Map(client.osts), params: new Map(client.params),
    uuidNids: client.uuidNids, lastIndex: client.lastIndex,
  };
  for (const [k, v] of params.params) view.params.set(k, v);
  return view;
}
