// A client mount of one file system: the connections behind the file system object.
//
//   mount('127.0.0.2@tcp:/testfs', { nid: '127.0.0.5@tcp', port })
//
// reads the file system's configuration from the MGS (the MGC), connects to its MDT (the MDC)
// and to each of its OSTs (one OSC each; OSTs added later are connected as the MGC sees them,
// and an OST that cannot be reached is retried in the background), and stripes file data over
// them (the LOV). The device is Lustre's: MGSNID[,NID...][:FAILOVER_MGSNID...]:/fsname.
//
// Every request has a deadline (requestDeadlineMs): a mount that loses its servers answers
// with errors (ETIMEDOUT, EIO), it never waits forever. Tunables live in `params` (params.ts),
// readable and settable while mounted; parameters set with `lctl set_param -P` on the MGS for
// these names are applied as the config log brings them.
import { randomBytes } from 'node:crypto';
import type { Subscription } from 'rxjs';
import { LNetNI } from '../lnet/index.js';
import type { Network } from '../ptlrpc/index.js';
import type { Cred } from '../services/mdt/protocol.js';
import type { FsConfig } from '../services/mgs/index.js';
import { OST_BRW_MAX_BYTES } from '../services/ost/index.js';
import { ByteBudget } from './budget.js';
import { FsError } from './errors.js';
import { FileObject, raid0Of, type FileContext } from './file.js';
import { fileSizeOfStripe, Lov, type Raid0Layout } from './lov.js';
import { Mdc, type EarlyCancelTarget } from './mdc.js';
import { Mgc } from './mgc.js';
import { Osc } from './osc.js';
import { ClientParams, ParamError, type ClientTunables } from './params.js';
import { ClientNamespace, NAMESPACE_PARAMS, objectResId } from './locks.js';
import { LliteStats, mountFiles, type ImportDevice } from './lproc.js';
import { MdCache } from './md-cache.js';
import {
  decodeOstLvb, ELDLM_NO_LOCK_DATA, fidOfResId, InodeBits, LDLM_MAX_HANDLES, LockMode, LockType, OBD_OBJECT_EOF, resIdOfFid,
  type CachedLock, type LockDesc, type OstLvb, type ResId,
} from '../ldlm/index.js';
import { fidToString, parseFid } from '../osd/index.js';
import { statusError } from '../ptlrpc/index.js';
import { devOf, type DataAttrs } from './stats.js';

const MiB = 1024 * 1024;
/**
 * BRW RPC size of the mount's OSCs (Lustre's max_pages_per_rpc, here the OST's largest brw_size,
 * OST_BRW_MAX_BYTES). Each RPC costs the OST a request, a transaction, a reply record and a data
 * file write whatever its size: 4 MiB RPCs took the process serving a FUSE mount and its OSTs
 * 1.32-1.36 ms of main-thread CPU per MiB written, against 1.51-1.69 with 1 MiB (1 GiB writes,
 * alternating, load 9-11); reads 2.2-2.35 against 2.35-2.5 ms per MiB.
 */
const BRW_BYTES = OST_BRW_MAX_BYTES;
/** The OSC imports' own bound; the OSC's settable max_rpcs_in_flight is the one that limits. */
const IMPORT_RPCS_MAX = 256;
const OSC_RETRY_MS = 1000;
/** How long a forced umount waits for a target to answer its disconnect. */
const FORCED_DISCONNECT_MS = 200;
/** OST objects whose file this mount remembers (to find what a lock on an object covers). */
const OBJECT_FIDS_MAX = 65536;
/**
 * How long a lock's cancel waits for the kernel to have dropped the attributes the lock vouched
 * for (an attribute-only invalidation, which blocks on nothing: a bound, not a pace).
 */
const INVALIDATE_WAIT_MS = 5000;
/** Early cancels one reint carries at most (its ldlm_request's handles). */
const EARLY_CANCELS_MAX = LDLM_MAX_HANDLES;

/**
 * What a lock's going makes stale: a file's data (and size), its attributes, or (lookup) the
 * names it was found by.
 */
export type Invalidation =
  | { kind: 'data'; fid: string }
  | { kind: 'attr'; fid: string; lookup: boolean };

const objectKey = (ostIndex: number, r: ResId): string => `${ostIndex}:${r[0].toString(16)}:${r[1].toString(16)}`;

export interface MountOptions extends Partial<ClientTunables> {
  /** The network interface to use (shared with others); otherwise the mount starts its own on `nid`. */
  ni?: Network;
  /** This client's NID when the mount starts its own interface (default 127.0.0.1@tcp). */
  nid?: string;
  /** LNet's TCP port (default 988). */
  port?: number;
  /** The user the mount acts for (default root); fs.as(cred) gives a view for another. */
  cred?: Cred;
  /** Each request's deadline: past it, the call fails (ETIMEDOUT). Default 30 s. */
  requestDeadlineMs?: number;
  /** How long connecting to a target may take. Default 10 s. */
  connectDeadlineMs?: number;
  clientUuid?: string;
  /** Bits cleared from the mode of files and directories created (default 0o022). */
  umask?: number;
  /** Where the mount reports what it does not fail a call for (an OST unreachable, ...). */
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface DeviceSpec {
  mgsNids: string[];
  fsname: string;
  /** A path inside the file system after the fsname ('/' when none): lfs's MGSNID:/fsname/path. */
  path: string;
}

/** 'NID[,NID][:NID]:/fsname[/path]' as mount.lustre (and lfs without a mount) takes it. */
export function parseDevice(device: string): DeviceSpec {
  const m = /^([^/]+):\/([A-Za-z0-9_-]{1,8})(\/.*)?$/.exec(device);
  if (!m) throw new FsError('EINVAL', 'mount', device, undefined, 'the device is MGSNID:/fsname, as 127.0.0.2@tcp:/testfs');
  const mgsNids = m[1]!.split(/[:,]/).filter(Boolean);
  if (mgsNids.length === 0) throw new FsError('EINVAL', 'mount', device, undefined, 'no MGS NID');
  return { mgsNids, fsname: m[2]!, path: m[3]?.replace(/\/+$/, '') || '/' };
}

export class MountCore {
  readonly fsname: string;
  readonly dev: number;
  readonly params: ClientParams;
  readonly lov: Lov;
  readonly oscs = new Map<number, Osc>();
  /** The lock namespace of each OSC (by OST index); the MDC's is mdcNamespace. */
  readonly oscNamespaces = new Map<number, ClientNamespace>();
  #mdcNamespace: ClientNamespace | undefined;
  /** Attributes under the MDC's inodebits locks. */
  readonly mdCache = new MdCache(() => this.#mdcNamespace);
  readonly #objectFids = new Map<string, string>();
  /** The objects of files whose layout this mount read (dataCovered), as many as objectFids. */
  readonly #layouts = new Map<string, ReadonlyArray<{ ostIndex: number; seq: number; oid: number }>>();
  /** What fresh locks said of files' objects (freshDataAttrs), with those locks, least recent first. */
  readonly #dataAttrs = new Map<string, { data: DataAttrs; locks: Array<{ ns: ClientNamespace; lock: CachedLock }>; md: CachedLock }>();
  /** Layouts with objects (layoutOf), least recently used first, as many as objectFids. */
  readonly #raid0 = new Map<string, Raid0Layout>();
  readonly #invalidations: Array<(what: Invalidation) => Promise<void> | void> = [];
  readonly dirty: ByteBudget;
  readonly readAhead: ByteBudget;
  readonly files = new Map<string, FileObject>();
  readonly fileContext: FileContext;
  /** llite.*.stats: every operation of the mount's file system objects and of its FUSE ops. */
  readonly lliteStats = new LliteStats();
  /** 'ffff' and 12 hex digits: the instance in the names of this mount's devices. */
  readonly instance: string;
  rootFid = '';
  #ni: Network | undefined;
  #ownNi: LNetNI | undefined;
  #mgc: Mgc | undefined;
  #mdc: Mdc | undefined;
  #config: FsConfig | undefined;
  #watch: Subscription | undefined;
  readonly #connecting = new Map<number, Promise<void>>();
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  #closed = false;
  #nextFd = 3;
  /** The config log's parameters as last applied (a local set_param stands until the log changes one). */
  readonly #paramsApplied = new Map<string, string>();

  constructor(
    readonly device: DeviceSpec,
    readonly options: MountOptions,
  ) {
    this.fsname = device.fsname;
    this.dev = devOf(device.fsname);
    this.instance = `ffff${randomBytes(6).toString('hex')}`;
    const { ni: _ni, nid: _nid, port: _port, cred: _cred, requestDeadlineMs: _r, connectDeadlineMs: _c, clientUuid: _u, log: _l, umask: _m, ...tunables } = options;
    this.params = new ClientParams(tunables, () => ({
      llite: `${this.fsname}-${this.instance}`,
      oscs: [...(this.#config?.osts.values() ?? [])].map((t) => `${t.svname}-osc-${this.instance}`),
    }));
    this.params.onChange((key, value) => {
      if (key === 'maxRpcsInFlight') for (const osc of this.oscs.values()) osc.maxRpcsInFlight = value;
    });
    this.lov = new Lov((i) => this.oscs.get(i));
    this.dirty = new ByteBudget(() => this.params.values.maxDirtyMb * MiB * Math.max(1, this.oscs.size), () => {
      for (const f of this.files.values()) f.kickAll();
    });
    this.readAhead = new ByteBudget(() => this.params.values.maxReadAheadMb * MiB);
    this.fileContext = {
      lov: this.lov, tunables: () => this.params.values, dirty: this.dirty, brwBytes: BRW_BYTES,
      extentLocks: (ostIndex) => this.oscNamespaces.get(ostIndex),
    };
    this.params.addSource({
      list: () => this.namespaces().flatMap((ns) => NAMESPACE_PARAMS.map((p) => ({ name: `ldlm.namespaces.${ns.name}.${p}`, value: ns.param(p) }))),
      set: (name, value) => {
        const m = /^ldlm\.namespaces\.(.+)\.([a-z_]+)$/.exec(name);
        const ns = m && this.namespaces().find((n) => n.name === m[1]);
        if (!m || !ns) throw new ParamError('ENOENT', `no parameter ${name}`);
        try {
          ns.setParam(m[2]!, value);
        } catch (err) {
          throw new ParamError('EINVAL', `${name}: ${(err as Error).message}`);
        }
      },
    });
    this.params.addFiles(mountFiles(() => `${this.fsname}-${this.instance}`, this.lliteStats, () => this.#importDevices()));
  }

  /** The MDC and the connected OSCs (by OST index), with their device names, for their stats and import files. */
  #importDevices(): ImportDevice[] {
    const out: ImportDevice[] = [];
    const mdt = this.#config?.mdts.get(0);
    if (this.#mdc && mdt) out.push({ type: 'mdc', name: `${mdt.uuid.replace(/_UUID$/, '')}-mdc-${this.instance}`, imports: [this.#mdc.import] });
    for (const i of [...this.oscs.keys()].sort((a, b) => a - b)) {
      const ost = this.#config?.osts.get(i);
      const { ost: imp, io } = this.oscs.get(i)!.imports;
      if (ost) out.push({ type: 'osc', name: `${ost.svname}-osc-${this.instance}`, imports: [imp, io] });
    }
    return out;
  }

  /** The mount's lock namespaces: the MDC's, then the OSCs' by OST index. */
  namespaces(): ClientNamespace[] {
    const out = this.#mdcNamespace ? [this.#mdcNamespace] : [];
    for (const i of [...this.oscNamespaces.keys()].sort((a, b) => a - b)) out.push(this.oscNamespaces.get(i)!);
    return out;
  }

  get mdcNamespace(): ClientNamespace | undefined {
    return this.#mdcNamespace;
  }

  /** Calls fn with what each revoked or lost lock made stale (llite tells the kernel). */
  onInvalidate(fn: (what: Invalidation) => Promise<void> | void): () => void {
    this.#invalidations.push(fn);
    return () => {
      const i = this.#invalidations.indexOf(fn);
      if (i >= 0) this.#invalidations.splice(i, 1);
    };
  }

  /**
   * Tells every listener what a lock's going made stale. Resolves when what they wait for is
   * done (llite: the kernel dropped the attributes; the pages go later), INVALIDATE_WAIT_MS at most.
   */
  invalidate(what: Invalidation): Promise<void> {
    const failed = (err: unknown) => this.#log('warn', `invalidation of ${JSON.stringify(what)} failed: ${(err as Error).message}`);
    const pending: Promise<void>[] = [];
    for (const fn of this.#invalidations) {
      try {
        const done = fn(what);
        if (done) pending.push(done.catch(failed));
      } catch (err) {
        failed(err);
      }
    }
    if (pending.length === 0) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, INVALIDATE_WAIT_MS)));
    return Promise.race([Promise.all(pending).then(() => undefined), bound]).finally(() => clearTimeout(timer));
  }

  /**
   * A regular file's layout as the LOV takes it: from the mount's cache, else asked of the MDT.
   * A layout with objects is kept without a lock: the MDT never changes it (lfs setstripe only
   * gives objects to a file that has none, EEXIST otherwise; a file's FID is never reused), so
   * only a file without objects (undefined) is asked again each time.
   */
  async layoutOf(mdc: Mdc, fid: string): Promise<Raid0Layout | undefined> {
    const known = this.#raid0.get(fid);
    if (known) {
      this.#raid0.delete(fid);
      this.#raid0.set(fid, known);
      return known;
    }
    const stored = await mdc.getLayout(fid);
    const layout = stored && raid0Of(stored);
    this.noteLayout(fid, layout);
    return layout;
  }

  /**
   * A closed file's size, blocks and times from PR locks [0, EOF] enqueued on each object now:
   * the OST puts the object's LVB (ost_lvb), read once the lock is granted, in each reply, so
   * no OST_GETATTR follows (Lustre's glimpse). A granted PR excludes every writer, so the LVB
   * counts all that was written. undefined, to be asked the usual way, when a lock of the
   * file is cached already (its LVB is not kept: an unlocked OST_SETATTR of times may have
   * changed the objects since), an OSC takes no locks, or a reply carries no LVB. With `keep`,
   * the answer is kept for later stats of the file (keptDataAttrs).
   */
  async freshDataAttrs(layout: Raid0Layout, keep?: { fid: string; after?: Promise<unknown> }): Promise<DataAttrs | undefined> {
    const extent = { start: 0n, end: OBD_OBJECT_EOF };
    const stripes = layout.objects.map((o) => ({ o, ns: this.oscNamespaces.get(o.ostIndex) }));
    for (const { o, ns } of stripes) {
      if (!ns?.active || ns.cache.match(objectResId(o), LockType.EXTENT, LockMode.PR, { extent }) !== undefined) return undefined;
    }
    const granted: Array<{ ns: ClientNamespace; cached: CachedLock; lvb: OstLvb | undefined } | undefined> = stripes.map(() => undefined);
    try {
      await Promise.all(stripes.map(async ({ o, ns }, i) => {
        const g = await ns!.lockWithReply(objectResId(o), LockType.EXTENT, LockMode.PR, { extent });
        if (!g) return;
        let lvb: OstLvb | undefined;
        try {
          lvb = g.lock.replyBuffers[0] ? decodeOstLvb(g.lock.replyBuffers[0]) : undefined;
        } catch {
          lvb = undefined; // not understood: asked the usual way
        }
        granted[i] = { ns: ns!, cached: g.cached, lvb };
      }));
    } finally {
      for (const g of granted) if (g) g.ns.release(g.cached, LockMode.PR);
    }
    const t = (s: number, ns: number): number => s + ns / 1e9;
    const out: DataAttrs = { size: 0, blocks: 0, mtime: 0, atime: 0, ctime: 0 };
    for (let i = 0; i < granted.length; i++) {
      const lvb = granted[i]?.lvb;
      if (!lvb) return undefined;
      out.size = Math.max(out.size, fileSizeOfStripe(layout, i, Number(lvb.size)));
      out.blocks += Number(lvb.blocks);
      out.mtime = Math.max(out.mtime, t(lvb.mtime, lvb.mtimeNs));
      out.atime = Math.max(out.atime, t(lvb.atime, lvb.atimeNs));
      out.ctime = Math.max(out.ctime, t(lvb.ctime, lvb.ctimeNs));
    }
    if (keep) {
      // `after`: the request that locks the file's attributes at the MDT, running meanwhile.
      await keep.after?.catch(() => undefined);
      this.#keepDataAttrs(keep.fid, out, granted.map((g) => ({ ns: g!.ns, lock: g!.cached })));
    }
    return out;
  }

  /**
   * Keeps what fresh locks said of a file's objects, to answer later stats while they hold:
   * while this mount's PR locks [0, EOF] hold, no other client writes or truncates the
   * objects; times alone may change without them (an OST_SETATTR takes no lock), but only
   * with a setattr at the MDT, which takes the file's UPDATE bit: so the entry holds while the
   * lock that vouched for the file's attributes when it was kept holds too (none: nothing is kept).
   */
  #keepDataAttrs(fid: string, data: DataAttrs, locks: Array<{ ns: ClientNamespace; lock: CachedLock }>): void {
    const md = this.mdCache.attrLock(fid);
    // Never for a file open here: its writes, under locks of this very mount, change what the
    // objects hold without any lock of the entry going (fileOf drops an entry at each open).
    if (!md || this.files.has(fid)) return;
    this.#dataAttrs.delete(fid);
    if (this.#dataAttrs.size >= OBJECT_FIDS_MAX) this.#dataAttrs.delete(this.#dataAttrs.keys().next().value!);
    this.#dataAttrs.set(fid, { data, locks, md });
  }

  /** Data attributes kept by freshDataAttrs for a file not open here, while their locks hold. */
  keptDataAttrs(fid: string): DataAttrs | undefined {
    const e = this.#dataAttrs.get(fid);
    if (!e) return undefined;
    if (this.files.has(fid) || !this.#mdcNamespace?.holds(e.md) || !e.locks.every((x) => x.ns.holds(x.lock))) {
      this.#dataAttrs.delete(fid);
      return undefined;
    }
    return e.data;
  }

  /**
   * The file `fid` lost a name here and no handle of this mount holds it: its objects may be
   * destroyed (its last name), so this mount's unused extent locks on them go back unasked
   * (ClientNamespace.cancelSoon). For a file with other names left, a lost cache at worst.
   * `destroyed` (the MDT said it was the last name): nothing the locks vouched for can be
   * asked for again, not even by the kernel, which dropped the name itself and holds the file
   * open nowhere (no handle here): the locks go without telling it (two notifications fewer
   * per unlink).
   */
  releaseObjectLocks(fid: string, destroyed = false): void {
    if (this.files.has(fid)) return;
    for (const o of this.#layouts.get(fid) ?? []) this.oscNamespaces.get(o.ostIndex)?.cancelSoon(objectResId(o), !destroyed);
  }

  /** Remembers which file the objects of a layout belong to (a lock on an object then finds its file). */
  noteLayout(fid: string, layout: Raid0Layout | { objects: Array<{ ostIndex: number; seq: number; oid: number }> } | undefined): void {
    if (!layout) return;
    if (this.#layouts.size >= OBJECT_FIDS_MAX && !this.#layouts.has(fid)) this.#layouts.delete(this.#layouts.keys().next().value!);
    this.#layouts.set(fid, layout.objects);
    if ('pattern' in layout && layout.objects.length > 0) {
      this.#raid0.delete(fid);
      if (this.#raid0.size >= OBJECT_FIDS_MAX) this.#raid0.delete(this.#raid0.keys().next().value!);
      this.#raid0.set(fid, layout as Raid0Layout);
    }
    for (const o of layout.objects) {
      const key = objectKey(o.ostIndex, objectResId(o));
      if (this.#objectFids.get(key) === fid) continue;
      if (this.#objectFids.size >= OBJECT_FIDS_MAX) this.#objectFids.delete(this.#objectFids.keys().next().value!);
      this.#objectFids.set(key, fid);
    }
  }

  /**
   * Whether this mount holds, on every object of the file, an extent lock covering all of it
   * (PR or PW): then no other client can change the file's size or data without revoking one
   * of them, which tells the kernel (invalidate). False for a file whose layout is not known here.
   */
  dataCovered(fid: string): boolean {
    const objects = this.files.get(fid)?.layout?.objects ?? this.#layouts.get(fid);
    if (!objects) return false;
    return objects.every((o) => {
      const ns = this.oscNamespaces.get(o.ostIndex);
      return ns?.active === true &&
        ns.cache.match(objectResId(o), LockType.EXTENT, LockMode.PR, { extent: { start: 0n, end: OBD_OBJECT_EOF } }) !== undefined;
    });
  }

  /** An OSC's lock on an object goes: its file's dirty data is written back, cached data dropped, the kernel told. */
  async #revokeData(ostIndex: number, lock: CachedLock, writeBack: boolean): Promise<void> {
    const fid = this.#objectFids.get(objectKey(ostIndex, lock.resId));
    if (fid === undefined) return;
    const file = this.files.get(fid);
    if (file) await file.revoke(writeBack);
    // Before the cancel: once the other client's request is granted, this kernel must not
    // answer a stat or a read past the old end from the attributes the lock vouched for.
    await this.invalidate({ kind: 'data', fid });
  }

  /**
   * A glimpse of an object this mount holds a write lock on: its dirty data is written first,
   * then the OST reads the size itself (answered -ELDLM_NO_LOCK_DATA): what the OST then
   * reports counts every byte written here.
   */
  async #glimpse(ostIndex: number, resId: ResId): Promise<Buffer> {
    const fid = this.#objectFids.get(objectKey(ostIndex, resId));
    const file = fid === undefined ? undefined : this.files.get(fid);
    if (file && file.dirtyBytes > 0) await file.writeBack();
    throw statusError(-ELDLM_NO_LOCK_DATA, `object ${fidToString(fidOfResId(resId))}: its size is on the OST`);
  }

  /**
   * An MDC lock goes: the attributes (UPDATE, PERM) it vouched for are stale, and its names
   * (LOOKUP) when the server wants that bit (a rename or unlink of the name) or the lock goes
   * for another reason (LRU, eviction). A change in a directory (UPDATE wanted) leaves the
   * directory's own name alone: the kernel would unhash it under a process using it as its cwd.
   */
  async #revokeMetadata(lock: CachedLock, wanted?: LockDesc): Promise<void> {
    const bits = lock.policy && 'bits' in lock.policy ? lock.policy.bits : 0;
    const wantedBits = wanted?.policy && 'bits' in wanted.policy ? wanted.policy.bits : undefined;
    const name = (bits & InodeBits.LOOKUP) !== 0 && (wantedBits === undefined || (wantedBits & InodeBits.LOOKUP) !== 0);
    this.mdCache.dropLock(lock);
    await this.invalidate({ kind: 'attr', fid: fidToString(fidOfResId(lock.resId)), lookup: name });
  }

  get clientUuid(): string {
    return this.options.clientUuid!;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get mdc(): Mdc {
    if (!this.#mdc || this.#closed) throw new FsError('ENOTCONN', 'mount', undefined, undefined, `${this.fsname} is not mounted`);
    return this.#mdc;
  }

  get mgc(): Mgc {
    return this.#mgc!;
  }

  get config(): FsConfig | undefined {
    return this.#config;
  }

  nextFd(): number {
    return this.#nextFd++;
  }

  /** The MDC's early lock cancel: this mount's unused locks a reint would call back (mdc.ts). */
  async #earlyCancel(targets: EarlyCancelTarget[]): Promise<bigint[]> {
    const ns = this.#mdcNamespace;
    if (!ns?.active) return [];
    const out: bigint[] = [];
    for (const t of targets) {
      const fid = 'fid' in t ? t.fid : this.mdCache.childOf(t.parent, t.name);
      if (fid === undefined) continue;
      let resId: ResId;
      try {
        resId = resIdOfFid(parseFid(fid));
      } catch {
        continue; // not a FID: the MDT will say so
      }
      out.push(...await ns.earlyCancel(resId, t.bits, EARLY_CANCELS_MAX - out.length));
    }
    return out;
  }

  readonly #memoryShort = (why: string, given: number): void =>
    this.#log('warn', `memory is short (${why}): ${given} unused locks given back`);

  #log(level: 'info' | 'warn', message: string): void {
    this.options.log?.(level, message);
  }

  #deadlines() {
    return { requestDeadlineMs: this.options.requestDeadlineMs ?? 30_000, connectDeadlineMs: this.options.connectDeadlineMs ?? 10_000 };
  }

  async start(): Promise<void> {
    const o = this.options;
    o.clientUuid ??= randomBytes(8).toString('hex');
    try {
      if (o.ni) this.#ni = o.ni;
      else {
        this.#ownNi = await LNetNI.start({ nid: o.nid ?? '127.0.0.1@tcp', ...(o.port !== undefined && { port: o.port }), warn: (m) => this.#log('warn', m) });
        this.#ni = this.#ownNi;
      }
      const d = this.#deadlines();
      this.#mgc = await Mgc.connect(this.#ni, { mgsNids: this.device.mgsNids, clientUuid: o.clientUuid, ...d });
      const config = await this.#mgc.readConfig(this.fsname);
      const mdt = config.mdts.get(0);
      if (!mdt) throw new FsError('ENODEV', 'mount', `${this.device.mgsNids[0]}:/${this.fsname}`, undefined, `the MGS knows no MDT of ${this.fsname}`);
      this.#config = config;
      this.#mdc = await Mdc.connect(this.#ni, { nid: mdt.nids[0]!, targetUuid: mdt.uuid, clientUuid: o.clientUuid, ...d, ...(o.cred && { cred: o.cred }) });
      this.#mdcNamespace = new ClientNamespace(`${mdt.uuid.replace(/_UUID$/, '')}-mdc-${this.instance}`, this.#mdc.import, this.#ni, {
        revoke: async (lock, wanted) => this.#revokeMetadata(lock, wanted),
        lost: (locks) => {
          for (const l of locks) void this.#revokeMetadata(l);
        },
        memoryShort: this.#memoryShort,
      });
      this.#mdc.earlyCancel = (targets) => this.#earlyCancel(targets);
      this.#mdc.parentKeeper = {
        begin: (parent) => this.mdCache.begin(parent),
        // The kernel drops a directory's attributes itself after its own create or unlink there,
        // but a GETATTR answered from the cache while the update ran could still bring the old
        // ones back after that: told now, before the update's reply goes out, it ignores them.
        end: (parent, begun, attr, change) => {
          this.mdCache.end(parent, begun, attr, change);
          void this.invalidate({ kind: 'attr', fid: parent, lookup: false });
        },
      };
      this.rootFid = await this.#mdc.root();
      this.#applyParams(config);
      await Promise.allSettled([...config.osts.keys()].map((i) => this.#connectOst(config, i)));
      this.#watch = this.#mgc.watch(this.fsname).subscribe({
        next: (c) => {
          this.#config = c.config;
          for (const i of c.config.osts.keys()) void this.#connectOst(c.config, i);
          this.#applyParams(c.config);
        },
        error: (err: unknown) => this.#log('warn', `config log watch of ${this.fsname} ended: ${String(err)}`),
      });
    } catch (err) {
      await this.close(true);
      throw err;
    }
  }

  /** Parameters of the config log (set_param -P) that name this client's tunables, each when it changes there. */
  #applyParams(config: FsConfig): void {
    for (const [name, value] of config.params) {
      if (!/^(osc|llite)\./.test(name) || this.#paramsApplied.get(name) === value) continue;
      this.#paramsApplied.set(name, value);
      try {
        this.params.set(name, value);
      } catch (err) {
        if (!(err instanceof ParamError && err.code === 'ENOENT')) this.#log('warn', `parameter ${name}=${value}: ${(err as Error).message}`);
      }
    }
  }

  /** Connects the OSC of OST index i once; a failure is retried later, until umount. */
  #connectOst(config: FsConfig, index: number): Promise<void> {
    const existing = this.#connecting.get(index);
    if (existing) return existing;
    const ost = config.osts.get(index)!;
    const p = Osc.connect(this.#ni!, {
      nid: ost.nids[0]!, targetUuid: ost.uuid, clientUuid: this.clientUuid, brwSize: BRW_BYTES,
      maxRpcsInFlight: this.params.values.maxRpcsInFlight,
      importOptions: { maxRpcsInFlight: IMPORT_RPCS_MAX, ...this.#deadlines() },
    }).then(async (osc) => {
      if (this.#closed) {
        await osc.disconnect();
        return;
      }
      this.oscNamespaces.set(index, new ClientNamespace(`${ost.svname}-osc-${this.instance}`, osc.imports.ost, this.#ni!, {
        revoke: (lock) => this.#revokeData(index, lock, true),
        lost: (locks) => {
          for (const l of locks) void this.#revokeData(index, l, false);
        },
        glimpse: (lock) => this.#glimpse(index, lock.resId),
        memoryShort: this.#memoryShort,
      }));
      this.oscs.set(index, osc);
    }, (err: unknown) => {
      this.#log('warn', `${ost.svname} unreachable (${(err as Error).message}); retrying`);
      this.#connecting.delete(index);
      if (this.#closed) return;
      const timer = setTimeout(() => {
        this.#retryTimers.delete(timer);
        if (!this.#closed && this.#config) void this.#connectOst(this.#config, index);
      }, OSC_RETRY_MS);
      this.#retryTimers.add(timer);
    });
    this.#connecting.set(index, p);
    return p;
  }

  /** The mount's FileObject of an open regular file (made at its first open here). */
  fileOf(fid: string, layout: ReturnType<typeof raid0Of>): FileObject {
    this.noteLayout(fid, layout);
    this.#dataAttrs.delete(fid);
    let f = this.files.get(fid);
    if (!f) {
      f = new FileObject(this.fileContext, fid, layout);
      this.files.set(fid, f);
    } else if (!f.layout && layout) f.layout = layout;
    return f;
  }

  /** Sends the dirty data of every open file. */
  async flushAll(): Promise<void> {
    const results = await Promise.allSettled([...this.files.values()].map((f) => f.flush()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Disconnects everything (dirty data is the caller's to flush first). */
  async close(force = false): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.unsubscribe();
    for (const t of this.#retryTimers) clearTimeout(t);
    // OSCs still connecting are disconnected by their own completion (it sees #closed).
    const quick = <T>(p: Promise<T> | undefined): Promise<unknown> => (p ?? Promise.resolve()).catch(() => undefined);
    // A disconnect waits for the server's answer; a forced umount does not wait for servers
    // that may be gone (what is left fails at once when the interface stops).
    const boundMs = force ? FORCED_DISCONNECT_MS : this.#deadlines().connectDeadlineMs;
    const bounded = (p: Promise<unknown> | undefined): Promise<unknown> => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([quick(p), new Promise((r) => (timer = setTimeout(r, boundMs)))]).finally(() => clearTimeout(timer));
    };
    if (!force) {
      await quick(this.flushAll());
      // Locks given back while the servers listen (each cancel writes back what its lock covers).
      await Promise.all(this.namespaces().map((ns) => bounded(ns.close())));
    } else {
      // Closed without a word to the servers: each import drops its connection first.
      for (const osc of this.oscs.values()) for (const imp of [osc.imports.ost, osc.imports.io]) imp.forceReconnect();
      this.#mdc?.import.forceReconnect();
    }
    for (const ns of this.namespaces()) ns.ldlm.close();
    await Promise.all([...this.oscs.values()].map((o) => bounded(o.disconnect())));
    this.oscs.clear();
    await Promise.all([bounded(this.#mdc?.disconnect()), bounded(this.#mgc?.close({ force }))]);
    await quick(this.#ownNi?.stop());
  }
}
