// The MGS: registers targets, keeps each file system's config logs, persistent parameters,
// and answers (long-polled) reads of those logs. Modifying requests (registration, params)
// run one at a time, each in the OSD transaction of its reply record: the records, the
// target's registry entry and the reply are durable together.
//
// Registry: each registered target is an xattr "mgs.target.<svname>" of the CONFIGS index,
// CBOR { fsname, svname, kind, index, uuid, nids, deviceUuid }.
import { decode, encode } from 'cbor-x';
import {
  Errno, Opcode, Service, serviceFailLoc, statusError, targetProfiles, type IncomingRequest, type OpHandler, type OsdReplyTransaction,
} from '../../ptlrpc/index.js';
import type { Fid } from '../../osd/index.js';
import { MGS_CONFIGS_FID, localObject } from '../target/local-files.js';
import { checkFsname, INDEX_MAX, MGS_SLOT_PREFIX, targetName, type RunningService, type ServiceContext } from '../target/index.js';
import { ConfigLogs, type NewRecord } from './llog.js';
import { MGS_TARGET_UUID } from './mgs-client.js';
import {
  clientLogName, decodeMgs, encodeMgs, Lcfg, MGS_LIMITS, PARAMS_LOG, type ConfigReadReply, type ConfigReadRequest,
  type RegistrationReply, type SetInfoReply, type SetInfoRequest, type TargetRegistration,
} from './protocol.js';

const EADDRINUSE = 98;
const REGISTRY_PREFIX = 'mgs.target.';
/** Long polls held at once; beyond it a read is answered EAGAIN and the client waits a little. */
export const MGS_WAITERS_MAX = 256;

interface TargetEntry {
  fsname: string; svname: string; kind: 'mdt' | 'ost'; index: number; uuid: string; nids: string[]; deviceUuid: string;
}

export interface MgsStats {
  [key: string]: unknown;
  filesystems: number;
  targets: number;
  logs: number;
  registrations: number;
  paramsSet: number;
  reads: number;
  waiting: number;
}

export class Mgs {
  readonly service: Service<OsdReplyTransaction>;
  readonly logs: ConfigLogs;
  readonly #ctx: ServiceContext;
  readonly #dir: Fid;
  readonly #targets = new Map<string, TargetEntry>();
  readonly #waiters = new Set<() => void>();
  #chain: Promise<unknown> = Promise.resolve();
  #stopped = false;
  readonly counters = { registrations: 0, paramsSet: 0, reads: 0 };

  private constructor(ctx: ServiceContext, dir: Fid, logs: ConfigLogs, targets: TargetEntry[]) {
    this.#ctx = ctx;
    this.#dir = dir;
    this.logs = logs;
    for (const t of targets) this.#targets.set(t.svname, t);
    const ops = new Map<number, OpHandler<OsdReplyTransaction>>([
      [Opcode.MGS_TARGET_REG, { modifying: true, handle: (req, c) => this.#serial(() => this.#register(req, c.tx!)) }],
      [Opcode.MGS_SET_INFO, { modifying: true, handle: (req, c) => this.#serial(() => this.#setInfo(req, c.tx!)) }],
      [Opcode.MGS_CONFIG_READ, { handle: (req) => this.#read(req) }],
    ]);
    this.service = new Service<OsdReplyTransaction>(ctx.ni, {
      ...targetProfiles.mgs, name: 'mgs', targetUuid: MGS_TARGET_UUID, ops, replyStore: ctx.replyStore, slotPrefix: MGS_SLOT_PREFIX, failLoc: serviceFailLoc('mgs'),
      // Long polls hold a thread each: room for them beside the short requests.
      threads: MGS_WAITERS_MAX + 8,
    });
  }

  static async start(ctx: ServiceContext): Promise<Mgs> {
    const dir = await localObject(ctx.osd, 'CONFIGS', 'idx', { fid: MGS_CONFIGS_FID });
    const logs = await ConfigLogs.open(ctx.osd, dir);
    const targets: TargetEntry[] = [];
    for (const name of await ctx.osd.xattrList(dir)) {
      if (!name.startsWith(REGISTRY_PREFIX)) continue;
      targets.push(decode(await ctx.osd.xattrGet(dir, name)) as TargetEntry);
    }
    const mgs = new Mgs(ctx, dir, logs, targets);
    ctx.log('info', `MGS started: ${targets.length} targets, ${logs.names().length} logs`);
    return mgs;
  }

  /** Targets registered, by svname. */
  targets(fsname?: string): TargetEntry[] {
    return [...this.#targets.values()].filter((t) => fsname === undefined || t.fsname === fsname);
  }

  stats(): MgsStats {
    const fs = new Set([...this.#targets.values()].map((t) => t.fsname));
    return {
      filesystems: fs.size, targets: this.#targets.size, logs: this.logs.names().length, ...this.counters, waiting: this.#waiters.size,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const wake of [...this.#waiters]) wake();
    await this.service.stop();
    await this.#chain.catch(() => {});
  }

  /** Runs modifying operations one at a time (they touch the same log objects). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.catch(() => {}).then(fn);
    this.#chain = run;
    return run;
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  // ---- MGS_TARGET_REG ----

  async #register(req: IncomingRequest, tx: OsdReplyTransaction): Promise<{ buffers: Buffer[] }> {
    const reg = checkRegistration(decodeMgs(req.buffers[0]));
    const index = reg.index >= 0 ? reg.index : this.#freeIndex(reg.fsname, reg.kind);
    const svname = targetName(reg.fsname, reg.kind, index);
    if (reg.index >= 0 && reg.svname !== svname) throw statusError(-Errno.EINVAL, `svname ${reg.svname} does not match index ${index}`);
    const uuid = reg.index >= 0 ? reg.uuid : `${svname}_UUID`;
    const existing = this.#targets.get(svname);
    const reply = (): { buffers: Buffer[] } => ({ buffers: [encodeMgs({ svname, index } satisfies RegistrationReply)] });
    if (existing) {
      if (existing.deviceUuid === reg.deviceUuid) return reply();
      if (reg.virgin || existing.uuid !== uuid) {
        this.#ctx.log('warn', `refused ${svname} from ${req.peer.nid}: index ${index} is registered to ${existing.uuid} (another device)`);
        throw statusError(-EADDRINUSE, `${svname}: the index is in use by another target`);
      }
    }
    const entry: TargetEntry = { fsname: reg.fsname, svname, kind: reg.kind, index, uuid, nids: reg.nids, deviceUuid: reg.deviceUuid };
    if (!existing) await this.#writeTargetRecords(tx.osdTx, entry, reg.params);
    await tx.osdTx.xattrSet(this.#dir, `${REGISTRY_PREFIX}${svname}`, encode(entry));
    tx.osdTx.annotate({ op: 'mgs_target_reg', svname });
    this.#targets.set(svname, entry);
    this.counters.registrations++;
    this.#ctx.log('info', `registered ${svname} (${uuid}) at ${reg.nids.join(',')}`);
    this.#wake();
    return reply();
  }

  #freeIndex(fsname: string, kind: 'mdt' | 'ost'): number {
    const used = new Set(this.targets(fsname).filter((t) => t.kind === kind).map((t) => t.index));
    for (let i = 0; i <= INDEX_MAX; i++) if (!used.has(i)) return i;
    throw statusError(-Errno.ENOSPC, `${fsname} has no free ${kind} index`);
  }

  async #writeTargetRecords(tx: OsdReplyTransaction['osdTx'], t: TargetEntry, params: Record<string, string>): Promise<void> {
    const fs = t.fsname;
    const clientLog = clientLogName(fs);
    const prelude: NewRecord[] = this.logs.has(clientLog) ? [] : [
      { command: Lcfg.ATTACH, name: `${fs}-clilov`, args: ['lov', `${fs}-clilov_UUID`] },
      { command: Lcfg.ATTACH, name: `${fs}-clilmv`, args: ['lmv', `${fs}-clilmv_UUID`] },
    ];
    const own: NewRecord[] = [
      marker(t.svname, 'start', `add ${t.kind}`),
      { command: Lcfg.ATTACH, name: t.svname, args: [t.kind === 'ost' ? 'obdfilter' : 'mdt', t.uuid] },
      { command: Lcfg.SETUP, name: t.svname, args: [t.uuid, t.nids[0] ?? ''] },
      ...Object.entries(params).map(([k, v]) => ({ command: Lcfg.PARAM, name: t.svname, args: [`${k}=${v}`] })),
    ];
    if (t.kind === 'mdt') {
      own.push({ command: Lcfg.ATTACH, name: `${t.svname}-mdtlov`, args: ['lov', `${t.svname}-mdtlov_UUID`] });
      // The OSTs registered before this MDT: it reaches them through its OSPs.
      for (const ost of this.targets(fs).filter((x) => x.kind === 'ost').sort((a, b) => a.index - b.index)) own.push(...ospRecords(ost, t.svname));
    }
    own.push(marker(t.svname, 'end', `add ${t.kind}`));
    await this.logs.append(tx, t.svname, own);
    await this.logs.append(tx, clientLog, [...prelude, ...clientRecords(t)]);
    if (t.kind === 'ost') {
      for (const mdt of this.targets(fs).filter((x) => x.kind === 'mdt')) {
        await this.logs.append(tx, mdt.svname, [marker(t.svname, 'start', 'add osp'), ...ospRecords(t, mdt.svname), marker(t.svname, 'end', 'add osp')]);
      }
    }
  }

  // ---- MGS_SET_INFO: set_param -P and conf_param ----

  async #setInfo(req: IncomingRequest, tx: OsdReplyTransaction): Promise<{ buffers: Buffer[] }> {
    const r = checkSetInfo(decodeMgs(req.buffers[0]));
    const appends = new Map<string, NewRecord[]>();
    const add = (log: string, rec: NewRecord): void => { appends.set(log, [...(appends.get(log) ?? []), rec]); };
    for (const [key, value] of r.params) {
      if (r.mode === 'set_param') {
        add(PARAMS_LOG, { command: Lcfg.SET_PARAM, name: '', args: [`${key}=${value}`] });
        continue;
      }
      // conf_param DEVICE.PARAM=VALUE: DEVICE is a file system or one of its targets.
      const dot = key.indexOf('.');
      const device = key.slice(0, dot);
      const rest = key.slice(dot + 1);
      const fsname = device.replace(/-(MDT|OST)[0-9a-f]{4}$/, '');
      if (this.targets(fsname).length === 0) throw statusError(-Errno.ENOENT, `conf_param ${key}: no file system '${fsname}' is registered`);
      if (device !== fsname && !this.#targets.has(device)) throw statusError(-Errno.ENOENT, `conf_param ${key}: no target ${device}`);
      const rec = { command: Lcfg.PARAM, name: device, args: [`${rest}=${value}`] };
      add(clientLogName(fsname), rec);
      if (device !== fsname) add(device, rec);
    }
    const logs: Record<string, number> = {};
    for (const [log, records] of appends) logs[log] = await this.logs.append(tx.osdTx, log, records);
    tx.osdTx.annotate({ op: `mgs_${r.mode}`, params: r.params.map(([k]) => k).join(',') });
    this.counters.paramsSet += r.params.length;
    this.#wake();
    return { buffers: [encodeMgs({ logs } satisfies SetInfoReply)] };
  }

  // ---- MGS_CONFIG_READ: a long poll ----

  async #read(req: IncomingRequest): Promise<{ buffers: Buffer[] }> {
    const r = checkConfigRead(decodeMgs(req.buffers[0]));
    this.counters.reads++;
    const collect = (): ConfigReadReply => {
      let budget = Math.min(r.maxBytes, MGS_LIMITS.readBytesMax);
      return {
        logs: r.logs.map(([name, after]) => {
          const { records, bytes } = this.logs.read(name, after, budget);
          budget = Math.max(1, budget - bytes);
          return { name, records, lastIndex: this.logs.lastIndex(name) };
        }),
      };
    };
    let reply = collect();
    const empty = (x: ConfigReadReply): boolean => x.logs.every((l) => l.records.length === 0);
    if (empty(reply) && r.waitMs > 0 && !this.#stopped) {
      if (this.#waiters.size >= MGS_WAITERS_MAX) throw statusError(-Errno.EAGAIN, `${MGS_WAITERS_MAX} config reads wait already`);
      const deadline = Date.now() + Math.min(r.waitMs, MGS_LIMITS.waitMsMax);
      while (empty(reply) && !this.#stopped && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, deadline - Date.now());
          function done(): void { clearTimeout(timer); waiters.delete(done); resolve(); }
          const waiters = this.#waiters;
          waiters.add(done);
        });
        reply = collect();
      }
    }
    return { buffers: [encodeMgs(reply)] };
  }
}

function marker(svname: string, flag: 'start' | 'end', comment: string): NewRecord {
  return { command: Lcfg.MARKER, name: svname, args: [flag, comment] };
}

/** What a client needs to reach a target: its NIDs, its osc/mdc device, its place in lov/lmv. */
function clientRecords(t: TargetEntry): NewRecord[] {
  const kind = t.kind === 'ost' ? 'osc' : 'mdc';
  const dev = `${t.svname}-${kind}`;
  const parent = t.kind === 'ost' ? `${t.fsname}-clilov` : `${t.fsname}-clilmv`;
  return [
    marker(t.svname, 'start', `add ${kind}`),
    ...t.nids.map((nid) => ({ command: Lcfg.ADD_UUID, name: '', args: [nid, nid] })),
    { command: Lcfg.ATTACH, name: dev, args: [kind, `${parent}_UUID`] },
    { command: Lcfg.SETUP, name: dev, args: [t.uuid, t.nids[0] ?? ''] },
    ...t.nids.slice(1).map((nid) => ({ command: Lcfg.ADD_CONN, name: dev, args: [t.uuid, nid] })),
    { command: t.kind === 'ost' ? Lcfg.LOV_ADD_OBD : Lcfg.ADD_MDC, name: parent, args: [t.uuid, String(t.index), '1'] },
    marker(t.svname, 'end', `add ${kind}`),
  ];
}

/** An MDT's OSP device for one OST, in the MDT's own log. */
function ospRecords(ost: TargetEntry, mdt: string): NewRecord[] {
  const dev = `${ost.svname}-osc-${mdt.slice(mdt.lastIndexOf('-') + 1)}`;
  return [
    ...ost.nids.map((nid) => ({ command: Lcfg.ADD_UUID, name: '', args: [nid, nid] })),
    { command: Lcfg.ATTACH, name: dev, args: ['osp', `${mdt}-mdtlov_UUID`] },
    { command: Lcfg.SETUP, name: dev, args: [ost.uuid, ost.nids[0] ?? ''] },
    ...ost.nids.slice(1).map((nid) => ({ command: Lcfg.ADD_CONN, name: dev, args: [ost.uuid, nid] })),
    { command: Lcfg.LOV_ADD_OBD, name: `${mdt}-mdtlov`, args: [ost.uuid, String(ost.index), '1'] },
  ];
}

// ---- the edge: request bodies checked once ----

const invalid = (what: string): never => { throw statusError(-Errno.EINVAL, what); };
const isName = (s: unknown): s is string => typeof s === 'string' && s.length > 0 && Buffer.byteLength(s) <= MGS_LIMITS.nameBytesMax;
const NID = /^[0-9A-Za-z.:@_-]+$/;
const PARAM_KEY = /^[A-Za-z0-9_*.\-[\]]+$/;

function checkRegistration(raw: unknown): TargetRegistration {
  const r = (raw ?? {}) as Partial<TargetRegistration>;
  if (typeof r.fsname !== 'string') invalid('registration without fsname');
  try {
    checkFsname(r.fsname!);
  } catch (err) {
    invalid((err as Error).message);
  }
  if (r.kind !== 'mdt' && r.kind !== 'ost') invalid(`registration of unknown kind ${String(r.kind)}`);
  if (typeof r.index !== 'number' || !Number.isInteger(r.index) || r.index < -1 || r.index >= INDEX_MAX) invalid(`bad index ${String(r.index)}`);
  if (!isName(r.svname) || !isName(r.uuid) || !isName(r.deviceUuid)) invalid('registration without svname, uuid or deviceUuid');
  if (!Array.isArray(r.nids) || r.nids.length === 0 || r.nids.length > MGS_LIMITS.nidsMax || !r.nids.every((n) => typeof n === 'string' && NID.test(n))) {
    invalid('registration needs 1 to 16 NIDs');
  }
  if (typeof r.virgin !== 'boolean') invalid('registration without virgin flag');
  const params = r.params ?? {};
  if (typeof params !== 'object' || Object.keys(params).length > MGS_LIMITS.paramsMax ||
      !Object.entries(params).every(([k, v]) => PARAM_KEY.test(k) && typeof v === 'string' && !v.includes('\n'))) invalid('bad params');
  return r as TargetRegistration;
}

function checkSetInfo(raw: unknown): SetInfoRequest {
  const r = (raw ?? {}) as Partial<SetInfoRequest>;
  if (r.mode !== 'set_param' && r.mode !== 'conf_param') invalid(`unknown set_info mode ${String(r.mode)}`);
  if (!Array.isArray(r.params) || r.params.length === 0 || r.params.length > MGS_LIMITS.paramsMax) invalid('set_info needs 1 to 64 params');
  for (const p of r.params!) {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string') invalid('a param is [key, value]');
    const [key, value] = p as [string, string];
    if (!PARAM_KEY.test(key) || key.length > MGS_LIMITS.nameBytesMax) invalid(`bad parameter name '${key}'`);
    if (r.mode === 'conf_param' && key.indexOf('.') <= 0) invalid(`conf_param needs DEVICE.PARAM, not '${key}'`);
    if (value.includes('\n') || value.length > MGS_LIMITS.nameBytesMax) invalid(`bad value for ${key}`);
  }
  return r as SetInfoRequest;
}

function checkConfigRead(raw: unknown): ConfigReadRequest {
  const r = (raw ?? {}) as Partial<ConfigReadRequest>;
  if (!Array.isArray(r.logs) || r.logs.length === 0 || r.logs.length > MGS_LIMITS.logsPerReadMax) invalid('config read needs 1 to 16 logs');
  for (const l of r.logs!) {
    if (!Array.isArray(l) || !isName(l[0]) || typeof l[1] !== 'number' || !Number.isInteger(l[1]) || l[1] < 0) invalid('a log to read is [name, afterIndex]');
  }
  const waitMs = typeof r.waitMs === 'number' && r.waitMs > 0 ? r.waitMs : 0;
  const maxBytes = typeof r.maxBytes === 'number' && r.maxBytes > 0 ? r.maxBytes : MGS_LIMITS.readBytesMax;
  return { logs: r.logs!, waitMs, maxBytes };
}

/** The MGS service module: lustre.mount starts it for a device whose profile lists 'mgs'. */
export async function startMgs(ctx: ServiceContext): Promise<RunningService & { mgs: Mgs }> {
  const mgs = await Mgs.start(ctx);
  return {
    name: 'mgs',
    mgs,
    services: [mgs.service],
    stats: () => mgs.stats(),
    stop: () => mgs.stop(),
  };
}
