// The lustre.kernel of one node: LNet on the node's NID and every target mounted on it, in one
// address space. Control requests (control-server.ts) call into this; it holds no wire format.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { mount as mountClientFs, type FileSystem } from '../../client/index.js';
import { FuseSession } from '../../client/fuse/index.js';
import { Llite } from '../../client/llite.js';
import { fuseSessionParams } from '../../client/lproc.js';
import type { LevelWithSilent } from 'pino';
import { LNetNI, LNET_DEFAULT_PORT, parseNid, userspacePid } from '../../lnet/index.js';
import type { OsdOptions } from '../../osd/index.js';
import { RECOVERY_TIME_HARD_MS } from '../../ptlrpc/index.js';
import { Target } from '../../services/target/index.js';
import { ParamTree, type KernelView } from '../params/index.js';
import { registerMount, unregisterMount } from '../mounts.js';
import { ControlError, type KernelStatus } from '../protocol.js';
import { LOG_LEVELS, openKernelLog, type KernelLog } from './debug-log.js';

export interface KernelOptions {
  nid: string;
  /** LNet's acceptor port on every node (Lustre's accept_port): 988 by default. */
  port?: number;
  rundir: string;
  logFile: string;
  logLevel?: LevelWithSilent;
  /** OSD tunables for every device this kernel mounts (tests shorten the txg timeout). */
  osd?: OsdOptions;
  /**
   * A client kernel: the process of one client mount (lustre.mount MGSNID:/fsname DIR starts
   * it), a user process's LNet (LNET_PID_USERFLAG: no acceptor, it shares the node's NID),
   * no devices.
   */
  client?: boolean;
  /** Called when the last client mount is gone (a client kernel then exits). */
  onLastClientGone?: () => void;
}

/** Mount options a device accepts (`lustre.mount -o ...`), as Lustre spells them. */
export const MOUNT_OPTIONS = ['abort_recov', 'ro', 'recovery_time_soft=SECONDS', 'recovery_time_hard=SECONDS'] as const;

/** The recovery window a device's mount options ask for. */
function recoveryWindowOf(options: string[]): { softMs?: number; hardMs?: number } {
  const out: { softMs?: number; hardMs?: number } = {};
  for (const o of options) {
    const m = /^recovery_time_(soft|hard)=(.*)$/.exec(o);
    if (!m) continue;
    const seconds = Number(m[2]);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) {
      throw new ControlError('EINVAL', `${o}: recovery_time_${m[1]} takes whole seconds from 1 to 86400`);
    }
    out[m[1] === 'soft' ? 'softMs' : 'hardMs'] = seconds * 1000;
  }
  return out;
}

export const KERNEL_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    if (pkg.version) return pkg.version;
  } catch { /* the source tree: one level less */ }
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

interface Mounted {
  device: string;
  target: Target;
  options: string[];
}

/** A client mount hosted by the kernel: the file system library behind a FUSE mount point. */
interface ClientMount {
  spec: string;
  mountpoint: string;
  fs: FileSystem;
  llite: Llite;
  session: FuseSession;
}

/** How long a FUSE mount's request may wait, resends and a server's recovery included. */
const FUSE_REQUEST_DEADLINE_MS = RECOVERY_TIME_HARD_MS + 60_000;

/** A client's largest write and read through FUSE: Lustre's 1 MiB RPCs. */
const CLIENT_IO_BYTES = 1 << 20;

export class Kernel implements KernelView {
  readonly version = KERNEL_VERSION;
  readonly nid: string;
  readonly ni: LNetNI;
  readonly rundir: string;
  readonly startedAtMs = Date.now();
  readonly log: KernelLog;
  readonly params: ParamTree;
  readonly #osd: OsdOptions | undefined;
  readonly #opts: KernelOptions;
  readonly #mounted: Mounted[] = [];
  readonly #clients: ClientMount[] = [];
  /** Client mounts an umount request is unmounting (the session may close before it returns). */
  readonly #unmounting = new Set<ClientMount>();
  /** Devices being mounted or unmounted: one operation per device at a time. */
  readonly #busy = new Set<string>();
  #stopping: Promise<string[]> | undefined;

  private constructor(ni: LNetNI, opts: KernelOptions, log: KernelLog) {
    this.ni = ni;
    this.nid = ni.nid;
    this.rundir = opts.rundir;
    this.log = log;
    this.#osd = opts.osd;
    this.#opts = opts;
    this.params = new ParamTree(this);
  }

  /** Brings LNet up on the NID; the kernel then waits for control requests. */
  static async start(opts: KernelOptions): Promise<Kernel> {
    parseNid(opts.nid);
    const log = openKernelLog(opts.logFile, opts.logLevel ?? 'info');
    let ni: LNetNI;
    try {
      ni = await LNetNI.start({
        nid: opts.nid, port: opts.port ?? LNET_DEFAULT_PORT, warn: (m) => log.logger.warn({ svname: 'lnet' }, m),
        ...(opts.client && { pid: userspacePid() }),
      });
    } catch (err) {
      log.logger.error({ err }, `LNet did not start on ${opts.nid}`);
      await log.close();
      throw err;
    }
    const kernel = new Kernel(ni, opts, log);
    log.logger.info(`lustre.kernel ${KERNEL_VERSION} up${opts.client ? ' (client kernel)' : ''}: LNet ${ni.nid}${opts.client ? ` pid ${ni.pid >>> 0}, no acceptor,` : ''} port ${opts.port ?? LNET_DEFAULT_PORT}, run dir ${opts.rundir}`);
    return kernel;
  }

  get debug(): KernelView['debug'] {
    const logger = this.log.logger;
    return {
      get: () => logger.level,
      set: (level: string) => {
        if (!(LOG_LEVELS as readonly string[]).includes(level)) {
          throw new ControlError('EINVAL', `debug: '${level}' is not a level (one of ${LOG_LEVELS.join(', ')})`);
        }
        logger.level = level;
      },
    };
  }

  targets(): readonly Target[] {
    return this.#mounted.map((m) => m.target);
  }

  clients(): readonly FileSystem[] {
    return this.#clients.map((c) => c.fs);
  }

  /** Opens DEVICE, starts the services its profile lists and registers with the MGS. */
  async mount(device: string, options: string[]): Promise<Target> {
    this.#checkRunning();
    if (this.#opts.client) throw new ControlError('EINVAL', `this is a client kernel (${this.rundir}): it hosts one client mount, no devices; mount ${device} on the node's kernel`);
    const path = resolve(device);
    for (const o of options) {
      const name = o.replace(/=.*$/, '=SECONDS');
      if (!(MOUNT_OPTIONS as readonly string[]).includes(name)) {
        throw new ControlError('EINVAL', `unknown mount option '${o}' (known: ${MOUNT_OPTIONS.join(', ')})`);
      }
    }
    if (this.#mounted.some((m) => m.device === path)) throw new ControlError('EALREADY', `${path} is already mounted on this kernel`);
    if (this.#busy.has(path)) throw new ControlError('EBUSY', `${path} is being mounted or unmounted`);
    this.#busy.add(path);
    try {
      const logger = this.log.logger;
      // ro (a replayed copy as a past file system): the OSD refuses every transaction with
      // EROFS, and the target does not register (its MGS already knows it).
      const ro = options.includes('ro');
      const recoveryWindow = recoveryWindowOf(options);
      const target = await Target.mount(path, this.ni, {
        recoveryWindow, ...(options.includes('abort_recov') && { abortRecovery: true }),
        ...((this.#osd || ro) && { osd: { ...this.#osd, ...(ro && { readOnly: true }) } }),
        ...(ro && { register: false }),
        log: (level, msg) => logger[level]({ svname: path }, msg),
      });
      this.#mounted.push({ device: path, target, options });
      logger.info({ svname: target.svname }, `mounted ${path}: ${target.running.map((r) => r.name).join(', ')}${options.length ? ` (-o ${options.join(',')})` : ''}`);
      return target;
    } finally {
      this.#busy.delete(path);
    }
  }

  /**
   * Mounts the file system SPEC (MGSNID:/fsname) with FUSE at MOUNTPOINT: a client in this
   * kernel, on its NID. Where FUSE is not available it says so; the servers go on serving.
   */
  async mountClient(spec: string, mountpoint: string, options: string[]): Promise<ClientMount> {
    this.#checkRunning();
    const at = resolve(mountpoint);
    if (options.length > 0) throw new ControlError('EINVAL', `unknown client mount option '${options[0]}' (none are known yet)`);
    if (this.#clients.some((c) => c.mountpoint === at)) throw new ControlError('EALREADY', `${at} is already a mount point of this kernel`);
    if (this.#opts.client && (this.#clients.length > 0 || this.#busy.size > 0)) {
      throw new ControlError('EBUSY', `this client kernel (${this.rundir}) already hosts its one client mount`);
    }
    if (this.#busy.has(at)) throw new ControlError('EBUSY', `${at} is being mounted or unmounted`);
    if (!existsSync('/dev/fuse')) {
      throw new ControlError('ENODEV', 'FUSE is not available on this node (no /dev/fuse): the servers keep running; use the client library or lfs with MGSNID:/fsname/path');
    }
    this.#busy.add(at);
    const logger = this.log.logger.child({ svname: `${spec} ${at}` });
    try {
      const fs = await mountClientFs(spec, {
        // An obd_uuid holds 39 characters, and the MGC's watch adds '-watch': fsname, the
        // NID's address in hex, the process id in base 36 and the mount's number fit in 32.
        ni: this.ni, clientUuid: `${spec.replace(/^.*:\//, '')}-${(this.ni.wireNid & 0xffffffffn).toString(16)}-${process.pid.toString(36)}-${this.#clients.length}`,
        log: (level, msg) => logger[level](msg),
        // As Lustre's mounts are hard, an application waits while a server restarts and
        // recovers (up to its hard limit) rather than seeing an error the replay would undo.
        requestDeadlineMs: FUSE_REQUEST_DEADLINE_MS,
      });
      const llite = new Llite(fs);
      let session: FuseSession;
      try {
        session = await FuseSession.mount(at, llite, {
          fsName: spec, subtype: 'lustre', maxWriteBytes: CLIENT_IO_BYTES, maxReadaheadBytes: CLIENT_IO_BYTES,
          attrTimeoutMs: 0, entryTimeoutMs: 0, allowOther: true, defaultPermissions: true, logger,
          // The kernel asks for the size before reading cached pages, unless llite gave the
          // attributes a validity (extent locks cover the whole file): another client's truncate
          // that revokes none of this mount's locks is seen at the next read, as Lustre's
          // glimpse before a read sees it.
          autoInvalData: true,
        });
      } catch (err) {
        await fs.umount({ force: true }).catch(() => undefined);
        throw err;
      }
      llite.attach(session);
      const fuseParams = fuseSessionParams(() => `${fs.core.fsname}-${fs.core.instance}`, session, llite);
      fs.core.params.addSource(fuseParams.source);
      fs.core.params.addFiles(fuseParams.files);
      const client: ClientMount = { spec, mountpoint: at, fs, llite, session };
      this.#clients.push(client);
      registerMount(at, this.rundir);
      // Unmounted from outside (umount MOUNTPOINT): the client goes too.
      void session.closed.then(() => this.#dropClient(client));
      logger.info(`client mounted ${spec} at ${at}`);
      return client;
    } finally {
      this.#busy.delete(at);
    }
  }

  async #dropClient(c: ClientMount): Promise<void> {
    const i = this.#clients.indexOf(c);
    if (i < 0) return;
    this.#clients.splice(i, 1);
    unregisterMount(c.mountpoint);
    await c.llite.releaseAll();
    await c.fs.umount({ force: true }).catch(() => undefined);
    this.log.logger.info({ svname: c.spec }, `client unmounted from ${c.mountpoint}`);
    this.#noteIdle();
  }

  /**
   * Tells that the last client mount is gone; not while stopping (the stop request ends the
   * process once it is answered), nor while an umount request still waits for its answer.
   */
  #noteIdle(): void {
    if (this.#clients.length === 0 && this.#unmounting.size === 0 && !this.#stopping) this.#opts.onLastClientGone?.();
  }

  /** Unmounts a client mount point; forced: detached even while in use, requests in flight fail. */
  async umountClient(c: ClientMount, force: boolean): Promise<void> {
    this.#unmounting.add(c);
    try {
      if (force) c.session.abort();
      try {
        await c.session.unmount({ lazy: force });
      } catch (err) {
        if ((err as { code?: string }).code === 'EBUSY') throw new ControlError('EBUSY', `${c.mountpoint} is busy (a process uses it); close it or use --force`);
        throw err;
      }
      await this.#dropClient(c);
    } finally {
      this.#unmounting.delete(c);
      this.#noteIdle();
    }
  }

  /** The client mount holding an absolute path, and the path inside its file system. */
  clientAt(path: string): { client: ClientMount; path: string } | undefined {
    const p = resolve(path);
    let best: ClientMount | undefined;
    for (const c of this.#clients) {
      if ((p === c.mountpoint || p.startsWith(c.mountpoint + '/')) && (!best || c.mountpoint.length > best.mountpoint.length)) best = c;
    }
    return best && { client: best, path: p.slice(best.mountpoint.length) || '/' };
  }

  /**
   * The client file system behind a path, for utilities that work on files (lfs): a path in a
   * client mount of this kernel, or MGSNID:/fsname/path, which uses a mount of that file
   * system when there is one and otherwise a client of its own, dropped by release().
   */
  async resolveClient(path: string): Promise<{ fs: FileSystem; path: string; release(): Promise<void> }> {
    const none = async (): Promise<void> => {};
    const remote = /^([^/]+@[a-z]+\d*(?:[:,][^/]+)*):\/([A-Za-z0-9_-]{1,8})(\/.*)?$/.exec(path);
    if (remote) {
      const spec = `${remote[1]}:/${remote[2]}`;
      const inner = remote[3] ?? '/';
      const mounted = this.#clients.find((c) => c.spec === spec);
      if (mounted) return { fs: mounted.fs, path: inner, release: none };
      this.#checkRunning();
      const fs = await mountClientFs(spec, { ni: this.ni, clientUuid: `${remote[2]}-lfs-${this.nid}-${process.pid}-${Date.now()}` });
      return { fs, path: inner, release: () => fs.umount() };
    }
    const at = this.clientAt(path);
    if (!at) {
      const mounts = this.#clients.map((c) => c.mountpoint).join(', ') || 'none';
      throw new ControlError('ENOENT', `${path} is not in a Lustre client mount of this node (mounted: ${mounts}); name a file as MGSNID:/fsname/path to reach it without a mount`);
    }
    return { fs: at.client.fs, path: at.path, release: none };
  }

  /**
   * Stops a target's services after its last txg is synced. Forced: every client is evicted
   * at once and nothing waits for them; what was committed is still all on the device.
   */
  async umount(spec: string, force: boolean): Promise<{ svname: string; evicted: number }> {
    const client = this.#clients.find((c) => c.mountpoint === resolve(spec));
    if (client) {
      await this.umountClient(client, force);
      return { svname: client.spec, evicted: 0 };
    }
    const m = this.#find(spec);
    if (this.#busy.has(m.device)) throw new ControlError('EBUSY', `${m.device} is being mounted or unmounted`);
    this.#busy.add(m.device);
    try {
      let evicted = 0;
      if (force) for (const r of m.target.running) for (const s of r.services) evicted += await s.evictAll();
      await m.target.umount({ force });
      this.#mounted.splice(this.#mounted.indexOf(m), 1);
      this.log.logger.info({ svname: m.target.svname }, `unmounted ${m.device}${force ? `, forced: ${evicted} client(s) evicted` : ''}`);
      return { svname: m.target.svname, evicted };
    } finally {
      this.#busy.delete(m.device);
    }
  }

  status(): KernelStatus {
    const now = Date.now();
    return {
      nid: this.nid, pid: process.pid, version: this.version, rundir: this.rundir,
      startedAt: new Date(this.startedAtMs).toISOString(), uptimeSeconds: Math.floor((now - this.startedAtMs) / 1000),
      devices: this.#mounted.map((m) => ({
        device: m.device, svname: m.target.svname, kind: m.target.mountdata.profile,
        services: m.target.running.flatMap((r) => r.services.map((s) => s.name)),
        clients: m.target.running.flatMap((r) => r.services.flatMap((s) => s.exports.list().map((e) => ({
          service: s.name, uuid: e.clientUuid, nid: e.peer.nid,
        })))),
      })),
      clients: this.#clients.map((c) => ({ spec: c.spec, mountpoint: c.mountpoint })),
    };
  }

  /** Unmounts every device (last mounted first), brings LNet down. Idempotent. */
  stop(): Promise<string[]> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<string[]> {
    const done: string[] = [];
    this.log.logger.info('lustre.kernel stopping: unmounting every client and device');
    while (this.#clients.length > 0) {
      const c = this.#clients[this.#clients.length - 1]!;
      await this.umountClient(c, true).catch((err: unknown) => {
        this.log.logger.error({ err }, `umount of ${c.mountpoint} failed`);
        this.#clients.pop();
      });
    }
    while (this.#mounted.length > 0) {
      const m = this.#mounted[this.#mounted.length - 1]!;
      try {
        await m.target.umount();
        done.push(m.target.svname);
        this.log.logger.info({ svname: m.target.svname }, `unmounted ${m.device}`);
      } catch (err) {
        this.log.logger.error({ err, svname: m.target.svname }, `umount of ${m.device} failed`);
      }
      this.#mounted.pop();
    }
    await this.ni.stop();
    this.log.logger.info(`lustre.kernel stopped (${done.length} device(s) unmounted)`);
    await this.log.close();
    return done;
  }

  #checkRunning(): void {
    if (this.#stopping) throw new ControlError('ESHUTDOWN', 'the lustre.kernel is stopping');
  }

  #find(spec: string): Mounted {
    const path = resolve(spec);
    const m = this.#mounted.find((x) => x.device === path || x.target.svname === spec);
    if (!m) {
      const known = [...this.#mounted.map((x) => `${x.device} (${x.target.svname})`), ...this.#clients.map((c) => c.mountpoint)].join(', ') || 'none';
      throw new ControlError('ENOENT', `${spec} is not mounted on this kernel (mounted: ${known})`);
    }
    return m;
  }
}
