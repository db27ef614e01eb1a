// A mounted target: the OSD of one device, its last_rcvd (the OsdReplyStore), and the service
// modules its mountdata's profile lists, started in order. An MDT or OST registers with the MGS
// before its service starts, as Lustre's server_start_targets does: the first registration of a
// virgin target gets its index confirmed (or assigned) and the MGS writes its config records;
// the mountdata is then rewritten without the virgin flag.
//
// Recovery: the clients last_rcvd recorded (connected when the target stopped, cleanly or
// not) are expected back; the target's TargetRecovery (src/ptlrpc/recovery.ts) holds its
// services in recovery until they have replayed or the window closed. The MGS is not
// replayable (as in Lustre): its clients' records are dropped at mount. It keeps them in a
// last_rcvd of its own ('mgs_last_rcvd'), so that its transnos never mix with the MDT's: a
// registration with the MGS at mount (before the MDT's recovery) must not take a transno
// that a client of the MDT still has to replay (as separate obd devices have in Lustre). abort_recov drops
// every record: nobody is recovered, every client that comes back learns it was evicted.
import type { LNetNI } from '../../lnet/index.js';
import { Osd, type OsdOptions } from '../../osd/index.js';
import {
  OsdReplyStore, RECOVERY_TIME_HARD_MS, RECOVERY_TIME_SOFT_MS, TargetRecovery, type RecoveryWindow, type Service,
} from '../../ptlrpc/index.js';
import { MgsClient } from '../mgs/mgs-client.js';
import { LAST_RCVD_FID, localObject } from './local-files.js';
import { readMountdata, targetName, TargetError, writeMountdata, type Mountdata, type TargetKind } from './mountdata.js';

/** The slot prefix of the MGS's records in a device's reply store (not replayable). */
export const MGS_SLOT_PREFIX = 'mgs:';

export interface ServiceContext {
  osd: Osd; ni: LNetNI; mountdata: Mountdata; replyStore: OsdReplyStore;
  /** The target's recovery: replayable services (MDT, OST) take part in it. */
  recovery?: TargetRecovery;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Where to find the MGS (for an MDT's view of the OSTs: it asks the MGS / its config log). */
  mgsNids: string[];
}

export interface RunningService {
  name: string;
  services: Service<any>[];
  stats(): Record<string, unknown>;
  stop(opts: { force: boolean }): Promise<void>;
}

export type ServiceModule = (ctx: ServiceContext) => Promise<RunningService>;

/**
 * Where each kind's module lives. Loaded by a specifier the compiler does not resolve, so a
 * build without one of them still compiles; mounting a target of that kind then fails ENOSYS.
 */
const MODULES: Record<TargetKind, { path: string; name: string }> = {
  mgs: { path: '../mgs/index.js', name: 'startMgs' },
  mdt: { path: '../mdt/index.js', name: 'startMdt' },
  ost: { path: '../ost/index.js', name: 'startOst' },
};

async function loadModule(kind: TargetKind): Promise<ServiceModule> {
  const { path, name } = MODULES[kind];
  let mod: Record<string, unknown>;
  try {
    mod = (await import(new URL(path, import.meta.url).href)) as Record<string, unknown>;
  } catch (err) {
    throw new TargetError('ENOSYS', `no ${kind} service in this build (${path}: ${(err as Error).message})`);
  }
  const start = mod[name];
  if (typeof start !== 'function') throw new TargetError('ENOSYS', `${path} exports no ${name}`);
  return start as ServiceModule;
}

export interface MountOptions {
  osd?: OsdOptions;
  log?: ServiceContext['log'];
  /** Modules to use instead of the built-in ones (tests, or a build that adds one). */
  modules?: Partial<Record<TargetKind, ServiceModule>>;
  /** Register MDTs and OSTs with the MGS before starting them (default true). */
  register?: boolean;
  /** The MGS connection's limits for the registration. */
  mgsConnectDeadlineMs?: number;
  /** Skip recovery: every client recorded is evicted (lustre.mount -o abort_recov). */
  abortRecovery?: boolean;
  /** The recovery window (recovery_time_soft / recovery_time_hard). */
  recoveryWindow?: Partial<RecoveryWindow>;
}

export class Target {
  readonly device: string;
  readonly ni: LNetNI;
  readonly osd: Osd;
  readonly replyStore: OsdReplyStore;
  readonly recovery: TargetRecovery;
  /** The MGS's own last_rcvd, when the device has an MGS. */
  mgsReplyStore: OsdReplyStore | undefined;
  readonly running: RunningService[] = [];
  #mountdata: Mountdata;
  #unmounted = false;

  private constructor(device: string, ni: LNetNI, osd: Osd, replyStore: OsdReplyStore, md: Mountdata, recovery: TargetRecovery) {
    this.device = device;
    this.ni = ni;
    this.osd = osd;
    this.replyStore = replyStore;
    this.recovery = recovery;
    this.#mountdata = md;
  }

  get mountdata(): Mountdata {
    return this.#mountdata;
  }

  get svname(): string {
    return this.#mountdata.svname;
  }

  /** Opens DEVICE and starts its profile's services on `ni`. A failure leaves nothing running. */
  static async mount(device: string, ni: LNetNI, opts: MountOptions = {}): Promise<Target> {
    const md = await readMountdata(device);
    let osd: Osd;
    try {
      osd = await Osd.open(device, opts.osd);
    } catch (err) {
      if ((err as { code?: string }).code === 'EBUSY') throw new TargetError('EBUSY', `${device} is already mounted`);
      throw err;
    }
    let target: Target | undefined;
    try {
      const lastRcvd = await localObject(osd, 'last_rcvd', 'reg', { fid: LAST_RCVD_FID, mode: 0o600 });
      const replyStore = await OsdReplyStore.open(osd, lastRcvd);
      const expected: string[] = [];
      // A read-only copy (a past view) changes nothing and recovers nobody.
      if (!opts.osd?.readOnly) {
        for (const key of replyStore.clients()) {
          if (key.startsWith(MGS_SLOT_PREFIX) || opts.abortRecovery) await replyStore.forget(key);
          else expected.push(key);
        }
      }
      const window = { softMs: RECOVERY_TIME_SOFT_MS, hardMs: RECOVERY_TIME_HARD_MS, ...opts.recoveryWindow };
      const recovery = new TargetRecovery(expected, replyStore.lastTransno(), window);
      target = new Target(device, ni, osd, replyStore, md, recovery);
      // (A read-only copy creates nothing: its MGS answers reads only, from the main store.)
      if (md.profile.includes('mgs') && !opts.osd?.readOnly) {
        const mgsRcvd = await localObject(osd, 'mgs_last_rcvd', 'reg', { mode: 0o600 });
        target.mgsReplyStore = await OsdReplyStore.open(osd, mgsRcvd);
        for (const key of target.mgsReplyStore.clients()) await target.mgsReplyStore.forget(key);
      }
      if (expected.length > 0) {
        const log = opts.log ?? defaultLog(md.svname);
        log('info', `${md.svname}: in recovery: ${expected.length} client(s) expected within ${Math.round(window.softMs / 1000)} s (hard limit ${Math.round(window.hardMs / 1000)} s)`);
        recovery.evictions$.subscribe((key) => log('warn', `${md.svname}: recovery evicted ${key}`));
        void recovery.done.then(() => log('info', `${md.svname}: recovery over: ${recovery.formatStatus().replace(/\n/g, ', ')}`));
      }
      for (const kind of md.profile) await target.#start(kind, opts);
      return target;
    } catch (err) {
      target?.recovery.close();
      if (target) await target.#stopAll(true).catch(() => {});
      await osd.close().catch(() => {});
      throw err;
    }
  }

  /** Stops the services (last started first), syncs and closes the OSD. */
  async umount(opts: { force?: boolean } = {}): Promise<void> {
    if (this.#unmounted) return;
    this.#unmounted = true;
    this.recovery.close();
    try {
      await this.#stopAll(opts.force ?? false);
    } finally {
      await this.osd.sync();
      await this.osd.close();
    }
  }

  /** Each running module's figures, by module name. */
  stats(): Record<string, Record<string, unknown>> {
    return Object.fromEntries(this.running.map((r) => [r.name, r.stats()]));
  }

  async #stopAll(force: boolean): Promise<void> {
    while (this.running.length > 0) await this.running.pop()!.stop({ force });
  }

  #mgsNids(): string[] {
    // A combined MGS+MDT device finds its MGS on its own NI.
    return this.#mountdata.mgsNids.length > 0 ? this.#mountdata.mgsNids : this.#mountdata.mgs ? [this.ni.nid] : [];
  }

  async #start(kind: TargetKind, opts: MountOptions): Promise<void> {
    if (kind !== 'mgs' && opts.register !== false) await this.#register(kind, opts);
    const start = opts.modules?.[kind] ?? (await loadModule(kind));
    const log = opts.log ?? defaultLog(this.#mountdata.svname);
    const ctx: ServiceContext = {
      osd: this.osd, ni: this.ni, mountdata: this.#mountdata, replyStore: (kind === 'mgs' && this.mgsReplyStore) || this.replyStore,
      recovery: this.recovery, log, mgsNids: this.#mgsNids(),
    };
    const running = await start(ctx);
    for (const service of running.services) service.notices$.subscribe((message) => log('warn', `${this.#mountdata.svname}: ${message}`));
    this.running.push(running);
  }

  async #register(kind: 'mdt' | 'ost', opts: MountOptions): Promise<void> {
    const md = this.#mountdata;
    const mgsNids = this.#mgsNids();
    if (mgsNids.length === 0) throw new TargetError('EINVAL', `${md.svname} names no MGS (mkfs.lustre --mgsnode=NID)`);
    const client = await MgsClient.connect(this.ni, {
      mgsNids, clientUuid: `${md.svname}-mgc_${this.ni.nid}`, connectDeadlineMs: opts.mgsConnectDeadlineMs ?? 30_000,
    });
    try {
      const reply = await client.register({
        fsname: md.fsname, svname: md.svname, kind, index: md.index, uuid: md.uuid, nids: [this.ni.nid],
        virgin: md.virgin, params: md.params, deviceUuid: this.osd.info.uuid,
      });
      if (md.virgin || reply.index !== md.index) {
        const svname = targetName(md.fsname, kind, reply.index);
        const next: Mountdata = { ...md, index: reply.index, svname, virgin: false, uuid: md.index < 0 ? `${svname}_UUID` : md.uuid };
        await writeMountdata(this.device, next);
        this.#mountdata = next;
      }
    } finally {
      await client.close();
    }
  }
}

function defaultLog(svname: string): ServiceContext['log'] {
  return (level, msg) => {
    if (level !== 'info') process.stderr.write(`${svname}: ${level}: ${msg}\n`);
  };
}
