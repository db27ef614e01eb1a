// The parameter tree of one node, built afresh from the kernel's mounted targets at each
// request, with Lustre's names (lustre/obdclass/lprocfs_status*.c, ofd/lproc_ofd.c,
// mdt/mdt_lproc.c, osd-zfs/osd_lproc.c, ptlrpc/lproc_ptlrpc.c):
//
//   version, debug (rw: a pino level), health_check, fail_loc, fail_val, fail_err (fail-loc.ts)
//   obdfilter.<OST>.{uuid,stats,num_exports,recovery_status,tot_granted,kbytes*,files*}
//   mdt.<MDT>.{uuid,md_stats,num_exports,recovery_status}
//   mgs.MGS.{uuid,num_exports}
//   mdt.<MDT> and obdfilter.<OST>: {recovery_status,recovery_time_soft,recovery_time_hard,abort_recovery}
//   <obd>.exports.<NID>.{uuid,stats}            the NID's clients and their stats
//   ost.OSS.{ost,ost_io}.{stats,threads_max}    every OST's service of that name, summed
//   mds.MDS.mdt.{stats,threads_max}, mgs.MGS.mgs.{stats,threads_max}
//   osc.<fsname>-OSTxxxx-osc-<id>.{max_dirty_mb,max_rpcs_in_flight} (rw), llite.<fsname>-<id>.
//                     {max_read_ahead_mb,max_read_ahead_per_file_mb} (rw): each client mount's;
//                     and its llite.<fsname>-<id>.stats, mdc.<fsname>-MDT0000-mdc-<id>.{stats,import},
//                     osc.<fsname>-OSTxxxx-osc-<id>.{stats,import}
//   ldlm.namespaces.<mdt-|filter-><target>_UUID.{lock_count,resource_count,lock_timeouts,lock_timeout (rw)}
//   osd-txg.<target>.{kbytestotal,kbytesfree,kbytesavail,filestotal,filesfree,blocksize,fstype,
//                     txg_timeout (rw, seconds), txg_retain_ms, txg_retain_bytes (rw), txg_open, txg_last_synced, txg_checkpoint,
//                     txg_synced, txg_sync_time_total_ms, txg_sync_time_max_ms, txg_dirty_bytes,
//                     txg_replayed, read_cache_enable, writethrough_cache_enable, readcache_max_filesize,
//                     readcache_max_io_mb, writethrough_max_io_mb (rw), cache_bypass, cache_bypass_read_bytes,
//                     cache_bypass_write_bytes (osd-cache.ts)}
//
// The OSD's type is "osd-txg" (fstype "txg"): Lustre names an OSD after its backing store
// (osd-ldiskfs, osd-zfs); ours is the transaction-group log with its LevelDB state, the name
// mkfs.lustre already prints as the mount type and the device's format magic carries.
import type { ClientParams } from '../../client/index.js';
import type { Osd } from '../../osd/index.js';
import { LprocfsStats, SERVICE_THREADS_MAX, type Service, type TargetRecovery } from '../../ptlrpc/index.js';
import type { RunningMdt } from '../../services/mdt/index.js';
import { MGS_TARGET_UUID } from '../../services/mgs/index.js';
import type { RunningOst } from '../../services/ost/index.js';
import type { Target, TargetLdlm } from '../../services/target/index.js';
import { ParamError } from './errors.js';
import { failLocParams } from './fail-loc.js';
import { osdCacheParams } from './osd-cache.js';
import type { KernelView } from './index.js';

export const OSD_TYPE = 'osd-txg';
export const OSD_FSTYPE = 'txg';
/** The block size statfs reports (the OST's obd_statfs uses it too). */
export const BLOCK_SIZE = 4096;
/** txg_timeout bounds, in milliseconds: 1 ms to an hour. */
export const TXG_TIMEOUT_MS_MIN = 1;
export const TXG_TIMEOUT_MS_MAX = 3_600_000;
/** threads_max bounds (the ptlrpc Service's). */
export const THREADS_MAX_MIN = 1;

export interface Param {
  readonly path: readonly string[];
  read(): string | Promise<string>;
  /** Absent: read-only. Throws ParamError EINVAL for a bad value. */
  write?(value: string): void | Promise<void>;
}

/** What a target holds, found once per request. */
export interface TargetParts {
  target: Target;
  ost: RunningOst | undefined;
  mdt: RunningMdt | undefined;
  mgsServices: Service<any>[];
}

export function partsOf(target: Target): TargetParts {
  const ost = target.running.find((r) => r.name === 'ost') as RunningOst | undefined;
  const mdt = target.running.find((r) => r.name === 'mdt') as RunningMdt | undefined;
  const mgs = target.running.find((r) => r.name === 'mgs');
  return { target, ost, mdt, mgsServices: mgs?.services ?? [] };
}

export function buildParams(view: KernelView): Param[] {
  const out: Param[] = [
    { path: ['version'], read: () => view.version },
    {
      path: ['debug'], read: () => view.debug.get(),
      write: (v) => {
        try {
          view.debug.set(v);
        } catch (err) {
          throw new ParamError('EINVAL', `debug: '${v}' is not a debug level (${(err as Error).message})`);
        }
      },
    },
    { path: ['health_check'], read: () => 'healthy' },
    ...failLocParams(),
  ];
  const parts = view.targets().map(partsOf);
  for (const p of parts) {
    if (p.ost) {
      out.push(...obdParams(['obdfilter', p.target.svname], p.target.mountdata.uuid, p.ost.services), ...ofdParams(p.target, p.ost));
      out.push(...recoveryParams(['obdfilter', p.target.svname], p.target.recovery));
    }
    if (p.mdt) {
      out.push(...obdParams(['mdt', p.target.svname], p.target.mountdata.uuid, p.mdt.services));
      out.push(...recoveryParams(['mdt', p.target.svname], p.target.recovery));
      out.push(statsFile(['mdt', p.target.svname, 'md_stats'], [p.mdt.mdStats]));
    }
    if (p.mgsServices.length > 0) out.push(...obdParams(['mgs', 'MGS'], MGS_TARGET_UUID, p.mgsServices));
  }
  const services = (kind: string) => parts.flatMap((p) => p.target.running.flatMap((r) => r.services)).filter((s) => s.name === kind);
  out.push(...serviceParams(['ost', 'OSS', 'ost'], services('ost')));
  out.push(...serviceParams(['ost', 'OSS', 'ost_io'], services('ost_io')));
  out.push(...serviceParams(['mds', 'MDS', 'mdt'], services('mdt')));
  out.push(...serviceParams(['mgs', 'MGS', 'mgs'], services('mgs')));
  for (const p of parts) out.push(...osdParams([OSD_TYPE, p.target.svname], p.target.osd));
  for (const p of parts) for (const ldlm of [p.mdt?.ldlm, p.ost?.ldlm]) if (ldlm) out.push(...namespaceParams(ldlm));
  for (const c of view.clients?.() ?? []) out.push(...clientParams(c.params));
  return out;
}

/**
 * A target's lock namespace (ldlm_resource.c's namespace files): ldlm.namespaces.<ns>.lock_count,
 * resource_count, lock_timeouts (clients evicted for not giving a lock back in time) and
 * lock_timeout (rw, seconds: how long a client has to cancel after a blocking callback; Lustre's
 * ldlm_timeout, here per namespace). Client namespaces (lru_size, ...) come with the client's params.
 */
function namespaceParams(ldlm: TargetLdlm): Param[] {
  const dir = ['ldlm', 'namespaces', ldlm.namespace.name];
  const stats = () => ldlm.namespace.stats();
  return [
    { path: [...dir, 'lock_count'], read: () => String(stats().lock_count) },
    { path: [...dir, 'resource_count'], read: () => String(stats().resource_count) },
    { path: [...dir, 'lock_timeouts'], read: () => String(ldlm.service.counters.evictions) },
    {
      path: [...dir, 'lock_timeout'], read: () => formatSeconds(ldlm.lockTimeoutMs),
      write: (v) => {
        ldlm.lockTimeoutMs = parseTxgTimeout(`${dir.join('.')}.lock_timeout`, v);
      },
    },
  ];
}

/**
 * A client mount's parameters: its tunables osc.<fsname>-OSTxxxx-osc-<instance>.*,
 * llite.<fsname>-<instance>.* (rw), and its files llite.*.stats, mdc.*.{stats,import},
 * osc.*.{stats,import}, read only when asked for (a stats file clears when written).
 */
function clientParams(params: ClientParams): Param[] {
  return params.names().map(({ name, writable }) => {
    const param: Param = { path: name.split('.'), read: () => trimEnd(params.read(name) ?? '') };
    if (!writable) return param;
    if (name.endsWith('.stats')) return { ...param, write: () => void params.clearFile(name) };
    return {
      ...param,
      write: (v: string) => {
        try {
          params.set(name, v);
        } catch (err) {
          throw new ParamError('EINVAL', `${name}: ${(err as Error).message}`);
        }
      },
    };
  });
}

/**
 * A replayable target's recovery: recovery_status, the window's limits in seconds
 * (recovery_time_soft / _hard, writable), and abort_recovery (write 1: lctl abort_recovery).
 */
function recoveryParams(dir: string[], recovery: TargetRecovery): Param[] {
  const seconds = (key: 'softMs' | 'hardMs'): Param => ({
    path: [...dir, key === 'softMs' ? 'recovery_time_soft' : 'recovery_time_hard'],
    read: () => String(Math.round(recovery.window[key] / 1000)),
    write: (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new ParamError('EINVAL', `'${v}' is not whole seconds from 1 to 86400`);
      recovery.setWindow({ [key]: n * 1000 });
    },
  });
  return [
    { path: [...dir, 'recovery_status'], read: () => recovery.formatStatus() },
    seconds('softMs'), seconds('hardMs'),
    {
      path: [...dir, 'abort_recovery'], read: () => (recovery.recovering ? '0' : '1'),
      write: (v) => {
        if (v.trim() !== '1') throw new ParamError('EINVAL', `abort_recovery takes 1, not '${v}'`);
        recovery.abort();
      },
    },
  ];
}

/**
 * A stats file: the counters of one or several (summed) as lprocfs prints them; any value
 * written clears them all (lctl set_param NAME=clear, as Lustre's lprocfs_stats_seq_write).
 */
function statsFile(path: string[], stats: readonly LprocfsStats[]): Param {
  return {
    path,
    read: () => trimEnd((stats.length === 1 ? stats[0]! : LprocfsStats.merge(stats)).format()),
    write: () => { for (const s of stats) s.clear(); },
  };
}

/** What every target device (obd) shows: uuid, exports. */
function obdParams(dir: string[], uuid: string, services: readonly Service<any>[]): Param[] {
  const out: Param[] = [
    { path: [...dir, 'uuid'], read: () => uuid },
    { path: [...dir, 'num_exports'], read: () => String(clientUuids(services).size) },
  ];
  for (const [nid, { stats, uuids }] of exportsByNid(services)) {
    out.push({ path: [...dir, 'exports', nid, 'uuid'], read: () => uuids.join('\n') });
    out.push(statsFile([...dir, 'exports', nid, 'stats'], stats));
  }
  return out;
}

export function clientUuids(services: readonly Service<any>[]): Set<string> {
  const uuids = new Set<string>();
  for (const s of services) for (const e of s.exports.list()) uuids.add(e.clientUuid);
  return uuids;
}

/** The NIDs with exports on any of the services, each with its stats (one per service) and clients. */
export function exportsByNid(services: readonly Service<any>[]): Map<string, { stats: LprocfsStats[]; uuids: string[] }> {
  const out = new Map<string, { stats: LprocfsStats[]; uuids: string[] }>();
  for (const s of services) {
    for (const [nid, e] of s.exports.byNid()) {
      let entry = out.get(nid);
      if (!entry) {
        entry = { stats: [], uuids: [] };
        out.set(nid, entry);
      }
      entry.stats.push(e.stats);
      for (const u of e.uuids) if (!entry.uuids.includes(u)) entry.uuids.push(u);
    }
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function ofdParams(target: Target, ost: RunningOst): Param[] {
  const dir = ['obdfilter', target.svname];
  const statfs = () => target.osd.statfs();
  return [
    statsFile([...dir, 'stats'], [ost.ofdStats]),
    { path: [...dir, 'tot_granted'], read: () => String(ost.grants.total) },
    { path: [...dir, 'kbytestotal'], read: async () => kb((await statfs()).bytesTotal) },
    { path: [...dir, 'kbytesfree'], read: async () => kb((await statfs()).bytesFree) },
    // What clients may still get: free space less the grants given out (ofd's statfs does so).
    { path: [...dir, 'kbytesavail'], read: async () => kb((await ost.grants.avail()).avail) },
    { path: [...dir, 'filestotal'], read: async () => String((await statfs()).objectsTotal) },
    { path: [...dir, 'filesfree'], read: async () => String((await statfs()).objectsFree) },
  ];
}

/** A ptlrpc service's files; several services of one name (two OSTs on a node) show as one. */
function serviceParams(dir: string[], services: Service<any>[]): Param[] {
  if (services.length === 0) return [];
  return [
    statsFile([...dir, 'stats'], services.map((s) => s.stats)),
    {
      path: [...dir, 'threads_max'], read: () => String(services[0]!.threadsMax),
      write: (v) => {
        const n = parseInteger(v);
        if (n === undefined) throw new ParamError('EINVAL', `${dir.join('.')}.threads_max: '${v}' is not a whole number`);
        if (n < THREADS_MAX_MIN || n > SERVICE_THREADS_MAX) {
          throw new ParamError('EINVAL', `${dir.join('.')}.threads_max: ${n} is outside ${THREADS_MAX_MIN}..${SERVICE_THREADS_MAX}`);
        }
        for (const s of services) s.setThreadsMax(n);
      },
    },
  ];
}

function osdParams(dir: string[], osd: Osd): Param[] {
  const statfs = () => osd.statfs();
  const txg = () => osd.stats();
  return [
    { path: [...dir, 'blocksize'], read: () => String(BLOCK_SIZE) },
    { path: [...dir, 'fstype'], read: () => OSD_FSTYPE },
    { path: [...dir, 'kbytestotal'], read: async () => kb((await statfs()).bytesTotal) },
    { path: [...dir, 'kbytesfree'], read: async () => kb((await statfs()).bytesFree) },
    // The OSD reserves nothing for root: what is free is available.
    { path: [...dir, 'kbytesavail'], read: async () => kb((await statfs()).bytesFree) },
    { path: [...dir, 'filestotal'], read: async () => String((await statfs()).objectsTotal) },
    { path: [...dir, 'filesfree'], read: async () => String((await statfs()).objectsFree) },
    {
      path: [...dir, 'txg_timeout'], read: () => formatSeconds(osd.tunables().txgTimeoutMs),
      write: (v) => osd.tune({ txgTimeoutMs: parseTxgTimeout(`${dir.join('.')}.txg_timeout`, v) }),
    },
    // Replay-to-point's window (src/osd/past.ts): log segments kept while younger than this, or
    // within the newest this many bytes; 0 for both keeps only the segment of the checkpoint.
    {
      path: [...dir, 'txg_retain_ms'], read: () => String(osd.tunables().retainMs),
      write: (v) => osd.tune({ retainMs: parseRetain(`${dir.join('.')}.txg_retain_ms`, v) }),
    },
    {
      path: [...dir, 'txg_retain_bytes'], read: () => String(osd.tunables().retainBytes),
      write: (v) => osd.tune({ retainBytes: parseRetain(`${dir.join('.')}.txg_retain_bytes`, v) }),
    },
    { path: [...dir, 'txg_open'], read: () => String(txg().openTxg) },
    { path: [...dir, 'txg_last_synced'], read: () => String(txg().lastSyncedTxg) },
    { path: [...dir, 'txg_checkpoint'], read: () => String(txg().checkpointTxg) },
    { path: [...dir, 'txg_synced'], read: () => String(txg().txgsSynced) },
    { path: [...dir, 'txg_sync_time_total_ms'], read: () => String(Math.round(txg().syncTimeTotalMs)) },
    { path: [...dir, 'txg_sync_time_max_ms'], read: () => String(Math.round(txg().syncTimeMaxMs)) },
    { path: [...dir, 'txg_dirty_bytes'], read: () => String(txg().dirtyBytes) },
    { path: [...dir, 'txg_replayed'], read: () => String(txg().recordsReplayed) },
    ...osdCacheParams(dir, osd),
  ];
}

/** A retention bound: a non-negative integer (milliseconds or bytes). */
function parseRetain(name: string, v: string): number {
  if (!/^\d{1,15}$/.test(v)) throw new ParamError('EINVAL', `${name}: '${v}' is not a non-negative integer`);
  return Number(v);
}

/** Seconds, as ZFS's txg_timeout is given, to the millisecond: "5", "0.25". */
export function parseTxgTimeout(name: string, v: string): number {
  const m = /^(\d{1,7})(?:\.(\d{1,3}))?$/.exec(v);
  if (!m) throw new ParamError('EINVAL', `${name}: '${v}' is not a number of seconds (e.g. 5 or 0.25)`);
  const ms = Number(m[1]) * 1000 + Number((m[2] ?? '').padEnd(3, '0'));
  if (ms < TXG_TIMEOUT_MS_MIN || ms > TXG_TIMEOUT_MS_MAX) {
    throw new ParamError('EINVAL', `${name}: ${v} s is outside 0.001..${TXG_TIMEOUT_MS_MAX / 1000} s`);
  }
  return ms;
}

export function formatSeconds(ms: number): string {
  const whole = Math.floor(ms / 1000);
  const rest = ms % 1000;
  return rest === 0 ? String(whole) : `${whole}.${String(rest).padStart(3, '0').replace(/0+$/, '')}`;
}

function parseInteger(v: string): number | undefined {
  return /^\d{1,9}$/.test(v) ? Number(v) : undefined;
}

const kb = (bytes: number): string => String(Math.floor(bytes / 1024));
const trimEnd = (s: string): string => s.replace(/\n+$/, '');
