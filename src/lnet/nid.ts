// NIDs as Lustre writes and sends them.
//
// Text: ADDR@NET, NET being the LND's name followed by the network number when it is not 0:
// '192.168.1.1@tcp', '10.0.0.1@tcp3', and '0@lo' for the loopback network (address 0 only).
//
// Wire (lnet_nid_t, a u64 sent little-endian): bits 63..48 the LND type (SOCKLND = 2,
// LOLND = 9), bits 47..32 the network number, bits 31..0 the address (an IPv4 address as a
// host-order u32, so 127.0.0.2 is 0x7f000002).
import { LNetError } from './errors.js';

export type NidString = string;
export type LndName = 'tcp' | 'lo';

export interface Nid { lnd: LndName; netNum: number; addr: number }

/** lnet_process_id: the NID of a node and the pid of the LNet instance on it. */
export interface ProcessId { nid: NidString; pid: number }

/** The pid kernel Lustre's LNet uses (LNET_PID_LUSTRE). */
export const LNET_PID_LUSTRE = 12345;
/**
 * LNET_PID_USERFLAG: set in the pid of an LNet instance that runs in a user process rather
 * than in a node's kernel (Lustre's liblustre clients: the flag | the process id). Such an
 * instance starts no acceptor and only connects out; a kernel never connects to it, and
 * answers it over the connections it opened. Lustre writes such an id as 'U<pid>-<nid>'.
 */
export const LNET_PID_USERFLAG = 0x80000000;

/** True when `pid` is a user process's (LNET_PID_USERFLAG set). */
export function isUserspacePid(pid: number): boolean {
  return (pid & LNET_PID_USERFLAG) !== 0;
}

/** The pid of a user process's LNet instance: LNET_PID_USERFLAG | its process id. */
export function userspacePid(processId: number = process.pid): number {
  return (LNET_PID_USERFLAG | (processId & 0x7fffffff)) >>> 0;
}

/** An lnet_process_id as Lustre's libcfs_id2str writes it: '12345-127.0.0.2@tcp', 'U4242-127.0.0.2@tcp'. */
export function formatProcessId(id: ProcessId): string {
  return `${isUserspacePid(id.pid) ? 'U' : ''}${(id.pid & 0x7fffffff) >>> 0}-${id.nid}`;
}
/** Lustre's default acceptor port. */
export const LNET_DEFAULT_PORT = 988;

export const SOCKLND = 2;
export const LOLND = 9;
const lndTypes: Record<LndName, number> = { tcp: SOCKLND, lo: LOLND };

const nidText = /^([0-9.]+)@([a-z]+)(\d*)$/;

export function parseNid(text: string): Nid {
  const m = nidText.exec(text);
  const bad = (why: string): never => { throw new LNetError('EINVAL', `bad NID '${text}': ${why}`); };
  if (!m) return bad('expected ADDR@NET such as 127.0.0.2@tcp or 0@lo');
  const [, addrText, lnd, numText] = m as unknown as [string, string, string, string];
  const netNum = numText === '' ? 0 : Number(numText);
  if (netNum > 0xffff) bad('network number over 65535');
  if (lnd === 'lo') {
    if (addrText !== '0' || netNum !== 0) bad('the loopback network has only 0@lo');
    return { lnd: 'lo', netNum: 0, addr: 0 };
  }
  if (lnd !== 'tcp') bad(`unknown network type '${lnd}' (tcp and lo are supported)`);
  const parts = addrText.split('.');
  if (parts.length !== 4) bad('an IPv4 address has four parts');
  let addr = 0;
  for (const p of parts) {
    const v = p === '' || p.length > 3 ? NaN : Number(p);
    if (!(v >= 0 && v <= 255)) bad(`'${p}' is not an address byte`);
    addr = addr * 256 + v;
  }
  return { lnd: 'tcp', netNum, addr };
}

export function formatNid(nid: Nid): NidString {
  const net = nid.netNum === 0 ? nid.lnd : `${nid.lnd}${nid.netNum}`;
  if (nid.lnd === 'lo') return `0@${net}`;
  return `${ipv4Text(nid.addr)}@${net}`;
}

export function ipv4Text(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

export function nidToWire(nid: Nid): bigint {
  const net = (lndTypes[nid.lnd] << 16) | nid.netNum;
  return (BigInt(net) << 32n) | BigInt(nid.addr >>> 0);
}

export function nidFromWire(v: bigint): Nid {
  const type = Number((v >> 48n) & 0xffffn);
  const netNum = Number((v >> 32n) & 0xffffn);
  const addr = Number(v & 0xffffffffn);
  if (v >> 64n !== 0n) throw new LNetError('EINVAL', `NID 0x${v.toString(16)} is over 64 bits`);
  if (type === SOCKLND) return { lnd: 'tcp', netNum, addr };
  if (type === LOLND && addr === 0 && netNum === 0) return { lnd: 'lo', netNum, addr };
  throw new LNetError('EINVAL', `NID 0x${v.toString(16)} is of an unsupported network type ${type}`);
}

/** Canonical text of a NID given as text: '127.0.0.2@tcp0' becomes '127.0.0.2@tcp'. */
export function canonicalNid(text: string): NidString {
  return formatNid(parseNid(text));
}

/** Wire form straight from text (the parse is the validation). */
export function nidTextToWire(text: string): bigint {
  return nidToWire(parseNid(text));
}

/** Text straight from the wire form, for tools and logs; throws EINVAL when not ours. */
export function nidWireToText(v: bigint): NidString {
  return formatNid(nidFromWire(v));
}
