// Where a node's kernel lives: its run dir holds the control socket, the pid file and the log.
// One kernel per node is the common case, so there is one default; several kernels on one
// machine (one per loopback NID) each get their own run dir.
//
// A client mount runs in a client kernel of its own (a lustre.kernel process that hosts only
// that mount, so that it outlives a crash of the node's kernel), with its run dir under the
// node's: RUNDIR/clients/<short hash of the mount point>/. The node's kernel records the LNet
// settings its client kernels take (its NID and acceptor port) in RUNDIR/lnet.json.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CONTROL_SOCKET, LOG_FILE, PID_FILE } from './protocol.js';

export const RUNDIR_ENV = 'LUSTRE_RUNDIR';

/** --rundir, else $LUSTRE_RUNDIR, else /run/lustre for root and a per-user folder otherwise. */
export function resolveRundir(option?: string): string {
  const chosen = option ?? process.env[RUNDIR_ENV];
  if (chosen) return resolve(chosen);
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/lustre' : join(tmpdir(), `lustre-${uid}`);
}

export interface RundirPaths {
  rundir: string;
  socket: string;
  pidFile: string;
  logFile: string;
}

export function rundirPaths(rundir: string): RundirPaths {
  return { rundir, socket: join(rundir, CONTROL_SOCKET), pidFile: join(rundir, PID_FILE), logFile: join(rundir, LOG_FILE) };
}

/** The folder of a node's client kernels, inside its run dir. */
export const CLIENTS_DIR = 'clients';
/** The node kernel's LNet settings, for its client kernels. */
export const LNET_FILE = 'lnet.json';

/** The run dir of the client kernel that hosts the client mount at `mountpoint` (absolute). */
export function clientRundir(nodeRundir: string, mountpoint: string): string {
  const hash = createHash('sha1').update(resolve(mountpoint)).digest('hex').slice(0, 12);
  return join(nodeRundir, CLIENTS_DIR, hash);
}

/** True for a client kernel's run dir (RUNDIR/clients/X). */
export function isClientRundir(rundir: string): boolean {
  return basename(dirname(resolve(rundir))) === CLIENTS_DIR;
}

/** The run dirs of a node's client kernels, live or not. */
export function clientRundirs(nodeRundir: string): string[] {
  const dir = join(nodeRundir, CLIENTS_DIR);
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

export interface LNetSettings { nid: string; port: number }

/** The LNet settings a node's kernel recorded, or undefined (none, or unreadable). */
export function readLNetSettings(nodeRundir: string): LNetSettings | undefined {
  try {
    const v = JSON.parse(readFileSync(join(nodeRundir, LNET_FILE), 'utf8')) as Partial<LNetSettings>;
    if (typeof v.nid === 'string' && Number.isSafeInteger(v.port)) return { nid: v.nid, port: v.port! };
  } catch { /* none */ }
  return undefined;
}

/**
 * Whether process `pid` still runs. A killed daemon stays a zombie until whoever adopted it
 * reaps it (a container's init may take its time): it holds nothing any more, so it counts as gone.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (!existsSync('/proc/self/stat')) return true; // no /proc: kill(0) is all there is
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // gone meanwhile
  }
  return stat[stat.lastIndexOf(')') + 2] !== 'Z';
}
