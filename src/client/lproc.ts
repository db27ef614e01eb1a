// A client mount's figures, read-only, with Lustre's names and layouts (lustre/llite/lproc_llite.c,
// lustre/obdclass/lprocfs_status.c):
//
//   llite.<fsname>-<instance>.stats                 the VFS-level operations of the mount
//   mdc.<fsname>-MDT0000-mdc-<instance>.{stats,import}
//   osc.<fsname>-OSTxxxx-osc-<instance>.{stats,import}
//
// and, of a FUSE mount, its session's (this project's own, no Lustre counterpart):
//
//   llite.<fsname>-<instance>.fuse_stats            requests, errors, timeouts, spins
//   llite.<fsname>-<instance>.fuse_spin_us          (rw) the spin after a reply (session.ts)
//   llite.<fsname>-<instance>.fuse_direct_write     (rw) write-only opens bypass the page cache (llite.ts)
//
// llite.*.stats counts each operation once, where it succeeded, in usecs (Lustre's
// ll_stats_ops_tally after the operation), and read_bytes / write_bytes one sample per read or
// write call, of the bytes it moved. mdc and osc stats are their imports' (import.ts). An OSC
// here has two imports (its OST_REQUEST and OST_IO portals, Lustre's one import of two
// portals): its files show both as one.
import { LprocfsStats, type Import, type ImportState } from '../ptlrpc/index.js';
import type { FuseSession } from './fuse/index.js';
import { checkInteger, ParamError, type ParamFiles, type ParamSource } from './params.js';

/** llite_opcode_table's names this client counts, in the table's order. */
const LLITE_OPS = [
  'open', 'close', 'fsync', 'readdir', 'setattr', 'truncate', 'flock', 'getattr', 'create', 'link', 'unlink', 'symlink',
  'mkdir', 'rmdir', 'mknod', 'rename', 'statfs', 'setxattr', 'getxattr', 'listxattr', 'removexattr',
] as const;
export type LliteOp = (typeof LLITE_OPS)[number];

/** The counters of llite.*.stats. */
export class LliteStats {
  readonly stats = new LprocfsStats();

  constructor() {
    this.stats.define('read_bytes', 'bytes');
    this.stats.define('write_bytes', 'bytes');
    for (const op of LLITE_OPS) this.stats.define(op);
  }

  /** One operation done, begun at startMs (performance.now()). */
  tally(op: LliteOp, startMs: number): void {
    this.stats.add(op, (performance.now() - startMs) * 1000);
  }

  /** Runs one operation and counts it once it succeeded (a failure throws uncounted). */
  async counted<T>(op: LliteOp, fn: () => Promise<T>): Promise<T> {
    const t = performance.now();
    const result = await fn();
    this.tally(op, t);
    return result;
  }

  /** One read or write call and the bytes it moved. */
  bytes(which: 'read_bytes' | 'write_bytes', n: number): void {
    this.stats.add(which, n, 'bytes');
  }
}

/** ptlrpc_import_state_name's words. */
const STATE_NAMES: Record<ImportState, string> = {
  new: 'NEW', connecting: 'CONNECTING', full: 'FULL', disconnected: 'DISCONN', replay: 'REPLAY', recover: 'RECOVER',
  evicted: 'EVICTED', closed: 'CLOSED',
};

/** A device's stats: its imports' together. */
export function importStats(imports: readonly Import[]): LprocfsStats {
  return imports.length === 1 ? imports[0]!.stats : LprocfsStats.merge(imports.map((i) => i.stats));
}

/**
 * The import file as lprocfs_import_seq_show lays it out, with what this import knows (no
 * connect flags, generation or service estimates). Of several imports of one device: the first
 * state that is not FULL (trouble on either shows), counts summed. reconnects, resent and
 * evictions are ours (Lustre keeps them elsewhere, or not at all).
 */
export function formatImport(device: string, imports: readonly Import[]): string {
  const first = imports[0]!;
  const state = imports.find((i) => i.state !== 'full')?.state ?? 'full';
  const sum = (f: (i: Import) => number): number => imports.reduce((n, i) => n + f(i), 0);
  const wait = importStats(imports).get('req_waittime');
  const avg = wait && wait.count > 0 ? Math.floor(wait.sum / wait.count) : 0;
  const committed = imports.reduce((m, i) => (i.lastCommitted > m ? i.lastCommitted : m), 0n);
  return [
    'import:',
    `    name: ${device}`,
    `    target: ${first.targetUuid}`,
    `    state: ${STATE_NAMES[state]}`,
    '    connection:',
    `       failover_nids: [ ${first.targetNid} ]`,
    `       current_connection: ${first.targetNid}`,
    `       connection_attempts: ${Math.max(...imports.map((i) => i.connCnt))}`,
    `       reconnects: ${sum((i) => i.counters.reconnects)}`,
    '    rpcs:',
    `       inflight: ${sum((i) => i.inFlight)}`,
    `       timeouts: ${sum((i) => i.counters.timeouts)}`,
    `       avg_waittime: ${avg} usecs`,
    `       resent: ${sum((i) => i.counters.resent)}`,
    `       evictions: ${sum((i) => i.counters.evictions)}`,
    '    transactions:',
    `       peer_committed: ${committed}`,
  ].join('\n');
}

/** One device's files: its name and imports, found at each read (OSCs come and go). */
export interface ImportDevice {
  type: 'mdc' | 'osc';
  name: string;
  imports: readonly Import[];
}

/** llite.*.stats and the mdc and osc files of a mount, as ClientParams lists them. */
export function mountFiles(llite: () => string, stats: LliteStats, devices: () => ImportDevice[]): ParamFiles {
  /** The device a file name names, and which of its files. */
  const fileOf = (name: string): { device: ImportDevice; file: string } | undefined => {
    const m = /^(mdc|osc)\.([^.]+)\.(stats|import)$/.exec(name);
    const device = m ? devices().find((d) => d.type === m[1] && d.name === m[2]) : undefined;
    return device && { device, file: m![3]! };
  };
  return {
    names: () => [
      `llite.${llite()}.stats`,
      ...devices().flatMap((d) => [`${d.type}.${d.name}.stats`, `${d.type}.${d.name}.import`]),
    ],
    read: (name) => {
      if (name === `llite.${llite()}.stats`) return stats.stats.format();
      const f = fileOf(name);
      if (!f) return undefined;
      return f.file === 'stats' ? importStats(f.device.imports).format() : formatImport(f.device.name, f.device.imports);
    },
    clear: (name) => {
      if (name === `llite.${llite()}.stats`) {
        stats.stats.clear();
        return true;
      }
      const f = fileOf(name);
      if (f?.file !== 'stats') return false;
      for (const i of f.device.imports) i.stats.clear();
      return true;
    },
  };
}

/** The largest fuse_spin_us: beyond a millisecond a spin only burns the CPU. */
const FUSE_SPIN_US_MAX = 1000;

/**
 * A FUSE mount: llite.<instance>.fuse_spin_us (rw: how long the session spins for the next
 * request after a reply, 0 for never), llite.<instance>.fuse_direct_write (rw, 0 or 1: whether
 * files opened write-only bypass the kernel's page cache; for opens from then on) and
 * llite.<instance>.fuse_stats (the session's request counters, read-only).
 */
export function fuseSessionParams(llite: () => string, session: FuseSession, ops: { directWrite: boolean }): { source: ParamSource; files: ParamFiles } {
  const spin = (): string => `llite.${llite()}.fuse_spin_us`;
  const direct = (): string => `llite.${llite()}.fuse_direct_write`;
  const file = (): string => `llite.${llite()}.fuse_stats`;
  return {
    source: {
      list: () => [
        { name: spin(), value: String(Math.round(session.spinMs * 1000)) },
        { name: direct(), value: ops.directWrite ? '1' : '0' },
      ],
      set: (name, value) => {
        if (name === spin()) session.spinMs = checkInteger('fuse_spin_us', Number(value), 0, FUSE_SPIN_US_MAX, `'${value}'`) / 1000;
        else if (name === direct()) ops.directWrite = checkInteger('fuse_direct_write', Number(value), 0, 1, `'${value}'`) === 1;
        else throw new ParamError('EINVAL', `${name} is not a parameter of this mount`);
      },
    },
    files: {
      names: () => [file()],
      read: (name) => {
        if (name !== file()) return undefined;
        const s = session.stats;
        return [
          `requests ${s.requests}`, `errors ${s.errors}`, `timeouts ${s.timeouts}`, `malformed ${s.malformed}`,
          `interrupts ${s.interrupts}`, `spins ${s.spins}`, `spin_hits ${s.spinHits}`, `largest_write_bytes ${s.largestWriteBytes}`,
        ].join('\n');
      },
    },
  };
}
