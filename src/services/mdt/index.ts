// The MDT: the metadata target of a file system. startMdt(ctx) opens the namespace on the
// target's OSD (mdd.ts), destroys orphans a crash left, connects an OSP to each OST it knows
// (osp.ts) and starts the ptlrpc service on MDS_REQUEST_PORTAL (handlers.ts, protocol.ts).
//
// The OSTs: from mountdata param 'mdt.osts' = "INDEX=NID,INDEX=NID" (until the MGS config log
// tells the MDT), and addOst(index, nid) at any time. Params also read: 'lov.stripesize',
// 'lov.stripecount', 'lov.stripeoffset' (the file system's default layout), 'mdt.root_squash'
// = 'UID:GID' and 'mdt.nosquash_nids'.
import { fidToString } from '../../osd/index.js';
import { LprocfsStats, Service, serviceFailLoc, targetProfiles, type OsdReplyTransaction } from '../../ptlrpc/index.js';
import { namespaceName, TargetLdlm, type RunningService, type ServiceContext } from '../target/index.js';
import { followOsts } from './config.js';
import { mdtHandlers } from './handlers.js';
import { mdtIntent, mdtOpenIntent, withLdlm } from './ldlm.js';
import { paramsLayout } from './layout.js';
import { DestroyLog } from './llog.js';
import { Lod } from './lod.js';
import { Mdd } from './mdd.js';
import { OpenTable, Opens } from './open.js';
import { Osp, ostUuid } from './osp.js';
import { parseRootSquash } from './perm.js';
import { Reint } from './reint.js';

export { MdsOpcode, ReintOp } from './protocol.js';
export { ROOT_FID } from './mdd.js';
export { chooseOsts, Lod, type OstSource } from './lod.js';
export { Osp, ostSeq, ostUuid } from './osp.js';
export * as layout from './layout.js';

/** Room for a 64 KiB xattr value and its envelope in one request. */
export const MDS_MAXREQSIZE = 128 * 1024;

export interface MdtTunables {
  threads?: number;
  /** OSP tunables (tests make them small). */
  precreateLow?: number;
  precreateHigh?: number;
  statfsIntervalMs?: number;
  /** How long an OSP request (precreate, destroy) may take before it fails and is retried. */
  ospRequestDeadlineMs?: number;
  precreateWaitMs?: number;
  random?: () => number;
  /** Follow the MGS config log for OSTs (default: when the context names an MGS). */
  followMgs?: boolean;
  /** The lock namespace's lock timeout (default LDLM_TIMEOUT_DEFAULT_MS; lctl set_param ldlm.namespaces.*.lock_timeout). */
  lockTimeoutMs?: number;
}

export interface RunningMdt extends RunningService {
  mdd: Mdd;
  lod: Lod;
  llog: DestroyLog;
  opens: Opens;
  osps: Map<number, Osp>;
  /** mdt.*.md_stats. */
  mdStats: LprocfsStats;
  /** The lock namespace 'mdt-<fsname>-MDT0000_UUID'. */
  ldlm: TargetLdlm;
  /** Connects an OSP to OST `index` at `nid` (a new OST in the file system). */
  addOst(index: number, nid: string): Osp;
}

/** Parses 'mdt.osts' = "0=127.0.0.3@tcp,1=127.0.0.4@tcp". */
export function parseOsts(v: string | undefined): Array<{ index: number; nid: string }> {
  if (!v) return [];
  return v.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(\d+)=(.+)$/.exec(s);
    if (!m) throw new Error(`mdt.osts entry ${JSON.stringify(s)} is not INDEX=NID`);
    return { index: Number(m[1]), nid: m[2]! };
  });
}

export async function startMdtWith(ctx: ServiceContext, tun: MdtTunables = {}): Promise<RunningMdt> {
  const { osd, ni, mountdata: md } = ctx;
  const mdd = await Mdd.open({ osd, rootSquash: parseRootSquash(md.params), fsLayout: paramsLayout(md.params) });
  const lod = new Lod({
    osd, objidFid: mdd.objidFid, locks: mdd.locks,
    ...(tun.precreateWaitMs !== undefined && { precreateWaitMs: tun.precreateWaitMs }), ...(tun.random && { random: tun.random }),
  });
  const osps = new Map<number, Osp>();
  const llog = new DestroyLog(osd, mdd.llogFid, {
    destroy: async (index, object) => {
      const osp = osps.get(index);
      if (!osp) throw new Error(`OST index ${index} unknown`);
      return osp.destroy(object);
    },
  });
  const table = new OpenTable();
  const reint = new Reint(mdd, lod, llog, table);
  const opens = new Opens(mdd, reint, table);
  const handles = await opens.load(osd);
  // Handles of clients that recovery will not wait for are closed now (the MDT service's
  // records are keyed by the client's UUID alone).
  let closed = 0;
  if (!osd.readOnly) for (const client of table.clients()) if (!ctx.recovery?.expects(client)) closed += await opens.closeClient(osd, client);
  if (handles > 0) ctx.log('info', `${md.svname}: ${handles} open handle(s) on disk, ${closed} of clients not expected back closed`);
  const orphans = await opens.destroyOrphans(osd);
  if (orphans > 0) ctx.log('info', `${md.svname}: destroyed ${orphans} orphan(s) left in PENDING`);
  const recovered = ctx.recovery?.done ?? Promise.resolve();

  const lastUsed = await lod.lastUsed();
  // After recovery, objects that creates lost in the crash had taken (and replays skipped
  // over) are destroyed through the unlink log, before the OSPs' orphan cleanup runs.
  const cleaned = recovered.then(async () => {
    const lost = lod.lostInRecovery(lastUsed);
    if (lost.length === 0 || osd.readOnly) return;
    const tx = osd.begin();
    await tx.start();
    try {
      await llog.add(tx, lost);
    } finally {
      tx.stop();
    }
    llog.kickAfter(tx.txg);
    ctx.log('info', `${md.svname}: ${lost.length} OST object(s) taken by creates the crash lost go to the unlink log`);
  }).catch((err: unknown) => ctx.log('warn', `${md.svname}: cleaning objects lost in the crash: ${String(err)}`));
  const addOst = (index: number, nid: string): Osp => {
    const existing = osps.get(index);
    if (existing) return existing;
    const osp = new Osp({
      ni, index, nid, targetUuid: ostUuid(md.fsname, index), clientUuid: `${md.svname}-mdtlov_UUID`,
      lastUsedOid: lastUsed.get(index)?.oid ?? 0, log: ctx.log, recovered: cleaned,
      ...(tun.precreateLow !== undefined && { precreateLow: tun.precreateLow }),
      ...(tun.precreateHigh !== undefined && { precreateHigh: tun.precreateHigh }),
      ...(tun.statfsIntervalMs !== undefined && { statfsIntervalMs: tun.statfsIntervalMs }),
      ...(tun.ospRequestDeadlineMs !== undefined && { requestDeadlineMs: tun.ospRequestDeadlineMs }),
    });
    osps.set(index, osp);
    lod.add(osp);
    // Records for this OST may be waiting in the unlink log.
    void osp.started.then(() => llog.kick());
    return osp;
  };
  for (const o of parseOsts(md.params['mdt.osts'])) addOst(o.index, o.nid);
  const follower = ctx.mgsNids.length > 0 && tun.followMgs !== false
    ? followOsts(ni, { mgsNids: ctx.mgsNids, fsname: md.fsname, clientUuid: `${md.svname}-mdtlov_UUID`, addOst, log: ctx.log })
    : undefined;

  const mdStats = new LprocfsStats();
  const parts = { mdd, reint, opens, mdStats };
  const ops = mdtHandlers(parts);
  const service = new Service<OsdReplyTransaction>(ni, {
    ...targetProfiles.mdt, name: 'mdt', targetUuid: md.uuid, ops,
    // The handlers count per-export stats themselves, under md_stats' names.
    replyStore: ctx.replyStore, exportOpcodeStats: false, threads: tun.threads ?? 8, maxRequestBytes: MDS_MAXREQSIZE,
    ...(ctx.recovery && { recovery: ctx.recovery }), failLoc: serviceFailLoc('mdt'),
  });
  // The lock namespace: LDLM_ENQUEUE / LDLM_CANCEL on the MDS portal, the MDT's own locks
  // around each reint, and the open, getattr and lookup intents (ldlm.ts).
  const ldlm: TargetLdlm = new TargetLdlm({
    ni, name: namespaceName('mdt', md.uuid), service, intent: mdtIntent(mdd, () => ldlm), abortingIntent: mdtOpenIntent(parts, () => ldlm), log: ctx.log,
    ...(tun.lockTimeoutMs !== undefined && { lockTimeoutMs: tun.lockTimeoutMs }),
  });
  for (const [opcode, h] of withLdlm(ops, mdd, ldlm)) ops.set(opcode, h);
  const closeClient = (uuid: string): void => {
    void opens.closeClient(osd, uuid).catch((err: unknown) => ctx.log('warn', `closing handles of ${uuid}: ${String(err)}`));
  };
  const evictions = service.evictions$.subscribe((exp) => closeClient(exp.clientUuid));
  // A client recovery evicts before it even connected has no export, but may have handles.
  if (ctx.recovery) evictions.add(ctx.recovery.evictions$.subscribe((key) => closeClient(key)));

  void llog.kick();
  ctx.log('info', `${md.svname}: MDT started, root ${fidToString(mdd.rootFid)}, ${osps.size} OST(s)`);

  return {
    name: 'mdt', services: [service], mdd, lod, llog, opens, osps, mdStats, addOst, ldlm,
    stats: () => ({
      md_stats: Object.fromEntries(mdStats.entries().map(([name, c]) => [name, c.count])), open_files: table.size, last_fid: fidToString(mdd.lastFid), unlink_llog: { ...llog.stats },
      osp: Object.fromEntries([...osps].map(([i, o]) => [i, o.stats()])), ldlm: ldlm.stats(), ...service.counters,
    }),
    async stop() {
      evictions.unsubscribe();
      await follower?.stop();
      ldlm.stop();
      await service.stop();
      // The log stops taking work first; stopping the OSPs then fails what is in flight at once.
      const llogStopped = llog.stop();
      await Promise.all([...osps.values()].map((o) => o.stop()));
      await llogStopped;
    },
  };
}

export const startMdt = (ctx: ServiceContext): Promise<RunningService> => startMdtWith(ctx);
