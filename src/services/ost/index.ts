// The OST (object storage target; Lustre's OFD): objects in sequences on the OSD, bulk reads
// and writes with checksums verified in a worker pool, space grants, precreate for the MDT.
// Two ptlrpc services, as Lustre has: "ost" on OST_REQUEST_PORTAL (create, destroy, getattr,
// setattr, statfs, set_info, sync) and "ost_io" on OST_IO_PORTAL (read, write, punch, sync).
// The wire protocol is protocol.ts; the OSC and the MDT's OSP import it from there.
//
//   const running = await startOst(ctx);   // ctx from Target.mount (services/target)
import { LprocfsStats, Service, serviceFailLoc } from '../../ptlrpc/index.js';
import { targetProfiles, type OsdReplyTransaction } from '../../ptlrpc/index.js';
import { namespaceName, TargetLdlm, type RunningService, type ServiceContext, type ServiceModule } from '../target/index.js';
import { ChecksumPool } from './checksum.js';
import { GrantBook } from './grants.js';
import { ioOps, metadataOps, type OstCounters, type OstDeps, type OstFailLoc } from './handlers.js';
import { OstObjects } from './objects.js';
import { ostIntent, withLdlm } from './ldlm.js';
import { OST_IO_SLOTS, OST_MAX_PRECREATE } from './protocol.js';

export * from './protocol.js';
export { ChecksumPool, adler32, checksumBytes, type ChecksumStats } from './checksum.js';
export type { OstFailLoc, OstCounters } from './handlers.js';
export { objectResId, lvbOf, mergeGlimpse } from './ldlm.js';

export interface OstOptions {
  /** Handlers at once on the "ost" service. */
  threads?: number;
  /** Handlers at once on the "ost_io" service (BRW). */
  ioThreads?: number;
  failLoc?: OstFailLoc;
  /** Objects one OST_CREATE may create (default OST_MAX_PRECREATE). */
  maxPrecreate?: number;
  /** Exports silent longer than this are evicted (and their grant returned). */
  evictionTimeoutMs?: number;
  /** The lock namespace's lock timeout (default LDLM_TIMEOUT_DEFAULT_MS). */
  lockTimeoutMs?: number;
}

export interface RunningOst extends RunningService {
  readonly objects: OstObjects;
  readonly grants: GrantBook;
  readonly counters: OstCounters;
  /** obdfilter.*.stats: per-op latencies and read_bytes / write_bytes. */
  readonly ofdStats: LprocfsStats;
  readonly failLoc: OstFailLoc;
  /** The lock namespace 'filter-<fsname>-OST0000_UUID'. */
  readonly ldlm: TargetLdlm;
}

/** Starts the OST of ctx's device; see startOst for the framework's entry. */
export async function createOst(ctx: ServiceContext, opts: OstOptions = {}): Promise<RunningOst> {
  const { osd, ni, mountdata, replyStore } = ctx;
  const targetUuid = `${mountdata.svname}_UUID`;
  const objects = await OstObjects.open(osd);
  const services: Service<OsdReplyTransaction>[] = [];
  const grants = new GrantBook(osd, (uuid) => services.some((s) => s.exports.byUuid(uuid) !== undefined));
  const counters: OstCounters = { cksumErrors: 0, enospc: 0, precreated: 0, destroyed: 0, bytesWritten: 0, bytesRead: 0 };
  const failLoc: OstFailLoc = opts.failLoc ?? {};
  const pool = ChecksumPool.acquire();
  const ofdStats = new LprocfsStats();
  const deps: OstDeps = {
    osd, objects, grants, pool, counters, stats: ofdStats, failLoc, maxPrecreate: opts.maxPrecreate ?? OST_MAX_PRECREATE,
  };
  // The handlers count per-export stats themselves, under obdfilter's names.
  const common = {
    targetUuid, replyStore, exportOpcodeStats: false, ...(ctx.recovery && { recovery: ctx.recovery }), failLoc: serviceFailLoc('ost'),
    ...(opts.evictionTimeoutMs ? { evictionTimeoutMs: opts.evictionTimeoutMs } : {}),
  };
  const ops = metadataOps(deps);
  const io = ioOps(deps);
  services.push(new Service<OsdReplyTransaction>(ni, {
    ...targetProfiles.ost, ...common, name: 'ost', ops, threads: opts.threads ?? 8,
  }));
  services.push(new Service<OsdReplyTransaction>(ni, {
    // One client's two imports (ost, ost_io) keep their slots apart in the target's last_rcvd.
    ...targetProfiles.ostIo, ...common, name: 'ost_io', slotPrefix: 'io:', ops: io, threads: opts.ioThreads ?? 8,
    maxModRpcs: OST_IO_SLOTS,
    maxRequestBytes: 64 * 1024,
  }));
  // The lock namespace on the "ost" service (ldlm.ts); an eviction drops both of a client's exports.
  const ldlm: TargetLdlm = new TargetLdlm({
    ni, name: namespaceName('filter', targetUuid), service: services[0]!, services, intent: ostIntent(objects, () => ldlm), log: ctx.log,
    ...(opts.lockTimeoutMs !== undefined && { lockTimeoutMs: opts.lockTimeoutMs }),
  });
  for (const [opcode, h] of [...withLdlm(ops, objects, ldlm), ...ldlm.handlers<OsdReplyTransaction>()]) ops.set(opcode, h);
  for (const [opcode, h] of withLdlm(io, objects, ldlm)) io.set(opcode, h);
  ctx.log('info', `${mountdata.svname}: ost and ost_io started on ${ni.nid}, ${objects.sequences().length} object sequences`);
  let stopped = false;
  return {
    name: 'ost', services, objects, grants, counters, ofdStats, failLoc, ldlm,
    stats: () => ({
      ...counters, grants: grants.stats(), checksum: { ...pool.stats }, sequences: objects.sequences(),
      exports: services[0]!.exports.size, ldlm: ldlm.stats(),
    }),
    async stop(_opts: { force: boolean }) {
      if (stopped) return;
      stopped = true;
      ldlm.stop();
      await Promise.all(services.map((s) => s.stop()));
      await ChecksumPool.release(pool);
    },
  };
}

export const startOst: ServiceModule = (ctx) => createOst(ctx);
