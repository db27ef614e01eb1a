// The control protocol: how utilities (lctl, lustre.mount, lustre.umount, lustre.kernel) talk
// to the lustre.kernel daemon of their node.
//
// Transport: a unix stream socket, RUNDIR/control.sock, mode 0600 inside a run dir of mode
// 0700, so only the daemon's owner (root on a server) can connect: the kernel's file
// permission check is the access control.
//
// Framing: each message is one line of UTF-8 JSON ended by "\n", at most MAX_CONTROL_LINE_BYTES
// bytes including the newline. Requests on one connection are answered in any order, matched
// by id.
//
//   request   {"magic":"lustre.control","version":1,"id":N,"op":"mount","args":{...}}
//   progress  {"id":N,"progress":{"phase":"...","done":N,"total":N}}     zero or more
//   reply     {"id":N,"ok":true,"result":...}
//           | {"id":N,"ok":false,"error":{"code":"ENOENT","message":"..."}}
//
// id is a positive integer chosen by the utility. A request with another magic or version
// is answered EPROTO naming both versions; the connection stays open. A line that is not a
// JSON object, or longer than the bound, is answered EPROTO with id 0 and the connection is
// closed: the daemon never guesses where the next message starts.
import type { LfsRequest, LfsResult } from './lfs/index.js';

export const CONTROL_MAGIC = 'lustre.control';
export const CONTROL_VERSION = 1;
export const MAX_CONTROL_LINE_BYTES = 1 << 20;
export const CONTROL_SOCKET = 'control.sock';
export const PID_FILE = 'kernel.pid';
export const LOG_FILE = 'kernel.log';

/** The operations a kernel answers, with their arguments. */
export interface ControlOps {
  ping: { args: Record<string, never>; result: { version: string; nid: string; pid: number } };
  status: { args: Record<string, never>; result: KernelStatus };
  mount: { args: { device: string; options: string[] }; result: { svname: string; services: string[] } };
  mount_client: { args: { spec: string; mountpoint: string; options: string[] }; result: { spec: string; mountpoint: string } };
  umount: { args: { target: string; force: boolean }; result: { svname: string; evicted: number } };
  dl: { args: Record<string, never>; result: string };
  get_param: { args: { patterns: string[]; recursive?: boolean }; result: Array<{ name: string; value: string }> };
  set_param: { args: { settings: Array<{ pattern: string; value: string }> }; result: Array<{ name: string; value: string }> };
  list_param: { args: { patterns: string[]; recursive?: boolean }; result: string[] };
  dk: { args: { clear: boolean }; result: string };
  /** lfs's subcommands, run by the kernel on its client mounts (src/control/lfs). */
  lfs: { args: { request: LfsRequest }; result: LfsResult };
  stop: { args: Record<string, never>; result: { unmounted: string[] } };
  /**
   * lctl replay_barrier TARGET (Lustre's test-framework replay_barrier: sync, notransno,
   * read-only): the target's txgs after the returned one are never written nor acknowledged.
   */
  replay_barrier: { args: { target: string }; result: { svname: string; txg: number } };
}
export type ControlOp = keyof ControlOps;
export const CONTROL_OPS: readonly ControlOp[] = [
  'ping', 'status', 'mount', 'mount_client', 'umount', 'dl', 'get_param', 'set_param', 'list_param', 'dk', 'lfs', 'stop', 'replay_barrier',
];

export interface ControlRequest<Op extends ControlOp = ControlOp> {
  magic: typeof CONTROL_MAGIC;
  version: number;
  id: number;
  op: Op;
  args: ControlOps[Op]['args'];
}

export interface ControlProgress {
  phase: string;
  done: number;
  total: number;
}

export type ControlReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string } }
  | { id: number; progress: ControlProgress };

export interface KernelStatus {
  nid: string;
  pid: number;
  version: string;
  rundir: string;
  startedAt: string;
  uptimeSeconds: number;
  devices: Array<{
    device: string; svname: string; kind: string[]; services: string[];
    clients: Array<{ service: string; uuid: string; nid: string }>;
  }>;
  /** Client mounts this kernel hosts (FUSE). */
  clients: Array<{ spec: string; mountpoint: string }>;
}

/** An expected failure of a control request: a stable code and a message naming the problem. */
export class ControlError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/**
 * Checks one decoded request line at the edge: everything behind this trusts the shape.
 * Throws ControlError EPROTO naming what is wrong.
 */
export function checkRequest(value: unknown): ControlRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ControlError('EPROTO', 'a control request is a JSON object');
  }
  const r = value as Record<string, unknown>;
  if (r.magic !== CONTROL_MAGIC) {
    throw new ControlError('EPROTO', `not a lustre control request (magic ${JSON.stringify(r.magic)}, expected "${CONTROL_MAGIC}")`);
  }
  if (r.version !== CONTROL_VERSION) {
    throw new ControlError('EPROTO', `control protocol version ${JSON.stringify(r.version)} is not this kernel's (${CONTROL_VERSION}): use the utilities of the same release as the running lustre.kernel`);
  }
  if (!Number.isSafeInteger(r.id) || (r.id as number) <= 0) throw new ControlError('EPROTO', 'a control request needs a positive integer id');
  if (typeof r.op !== 'string' || !(CONTROL_OPS as readonly string[]).includes(r.op)) {
    throw new ControlError('EOPNOTSUPP', `unknown control operation ${JSON.stringify(r.op)} (known: ${CONTROL_OPS.join(', ')})`);
  }
  const args = r.args ?? {};
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new ControlError('EPROTO', `${r.op}: args must be an object`);
  checkArgs(r.op as ControlOp, args as Record<string, unknown>);
  return { magic: CONTROL_MAGIC, version: CONTROL_VERSION, id: r.id as number, op: r.op as ControlOp, args: args as never };
}

function checkArgs(op: ControlOp, a: Record<string, unknown>): void {
  const str = (k: string): void => {
    if (typeof a[k] !== 'string' || (a[k] as string).length === 0) throw new ControlError('EINVAL', `${op}: ${k} must be a non-empty string`);
  };
  const strings = (k: string): void => {
    if (!Array.isArray(a[k]) || !(a[k] as unknown[]).every((s) => typeof s === 'string')) throw new ControlError('EINVAL', `${op}: ${k} must be a list of strings`);
  };
  const bool = (k: string): void => {
    if (typeof a[k] !== 'boolean') throw new ControlError('EINVAL', `${op}: ${k} must be true or false`);
  };
  switch (op) {
    case 'mount': str('device'); strings('options'); break;
    case 'mount_client': str('spec'); str('mountpoint'); strings('options'); break;
    case 'umount': str('target'); bool('force'); break;
    case 'replay_barrier': str('target'); break;
    case 'get_param': case 'list_param':
      strings('patterns');
      if (a.recursive !== undefined) bool('recursive');
      break;
    case 'set_param': {
      const s = a.settings;
      if (!Array.isArray(s) || !s.every((x) => typeof x?.pattern === 'string' && typeof x?.value === 'string')) {
        throw new ControlError('EINVAL', 'set_param: settings must be a list of {pattern, value} strings');
      }
      break;
    }
    case 'dk': bool('clear'); break;
    case 'lfs':
      if (typeof a.request !== 'object' || a.request === null) throw new ControlError('EINVAL', 'lfs: request must be an object');
      break;
    default: break;
  }
}
