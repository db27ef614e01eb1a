// LNet: NIDs, the in-process and TCP LNDs, Lustre's wire format, portals and match bits,
// PUT/GET/REPLY/ACK of raw Buffers. This is the folder's whole public face.
//
//   const ni = await LNetNI.start({ nid: '127.0.0.2@tcp', port: 988 });
//   ni.attach(REQUEST_PORTAL, { matchBits: 0n, ignoreBits: ~0n & 0xffffffffffffffffn },
//             { kind: 'sink', maxLength: 64 * 1024 });
//   ni.events$.subscribe((ev) => ...ev.payload...);          // PUTs that landed in our MDs
//   await ni.put({ nid: '127.0.0.3@tcp', pid: LNET_PID_LUSTRE }, portal, xid, buf, { ack: true });
//   const data = await ni.get(target, BULK_PORTAL, bulkXid, length);
export { LNetError, type LNetErrorCode } from './errors.js';
export {
  parseNid, formatNid, nidToWire, nidFromWire, canonicalNid, LNET_PID_LUSTRE, LNET_DEFAULT_PORT, SOCKLND, LOLND,
  LNET_PID_USERFLAG, isUserspacePid, userspacePid, formatProcessId,
  type Nid, type NidString, type ProcessId, type LndName,
} from './nid.js';
export type { MdSpec, MdHandle } from './match.js';
export { LNetNI, type LNetConfig, type NiLimits, type PutEvent, type PutOptions } from './ni.js';
export type { TcpLimits } from './tcp.js';
export type { LNetStats, NiStats, PeerStats, DropReason, ConnDropReason, MessageCounters } from './stats.js';
// The wire format, for golden tests and for tools that read captures.
export * as wire from './wire.js';
// A DataView kept over the last ArrayBuffer seen (ptlrpc's wire format uses it too).
export { ViewCache } from './wire.js';
