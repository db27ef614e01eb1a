// Where a node's kernel lives: its run dir holds the control socket, the pid file and the log.
// One kernel per node is the common case, so there is one default; several kernels on one
// machine (one per loopback NID) each get their own run dir.
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
