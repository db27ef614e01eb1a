// ptlrpc: Lustre's RPC layer over LNet. Requests and replies in Lustre's own layout
// (lustre_msg_v2 + ptlrpc_body_v3), services that dispatch by opcode with bounded concurrency,
// imports (client side) and exports (server side), resend with the same xid, reply
// reconstruction from a per-client slot record written with the update, pings and eviction,
// adaptive timeouts. It never knows what an opcode means: its owners register handlers.
export {
  Portal, Opcode, MsgType, MsgFlag, ConnectFlag, TargetVersion, Errno, PTLRPC_MSG_VERSION,
  LUSTRE_MSG_MAGIC_V2, LNET_PID_LUSTRE, opcodeName, errnoName,
} from './constants.js';
export { PtlrpcError, statusError } from './errors.js';
export {
  encodeMessage, decodeMessage, makeBody, messageBytes, round8, MAX_BUFCOUNT,
  PTLRPC_BODY_V3_BYTES, PTLRPC_BODY_V2_BYTES, type PtlrpcBody, type LustreMessage,
} from './wire.js';
export {
  encodeConnectRequest, decodeConnectRequest, encodeConnectData, decodeConnectData, encodeUuid, decodeUuid,
  CONNECT_DATA_BYTES, UUID_BYTES, LUSTRE_VERSION_CODE, type ConnectData, type ConnectRequest,
} from './connect-wire.js';
export { AdaptiveTimeout, est2timeout, defaultAtConfig, type AdaptiveTimeoutConfig } from './at.js';
export { LprocfsStats } from './stats.js';
export { Export, ExportTable } from './export.js';
export {
  MemoryReplyStore, type ReplyStore, type ReplyRecord, type ReplyTransaction, type MemoryReplyStoreOptions,
} from './reply-store.js';
export {
  Service, SERVICE_THREADS_MAX, type ServiceConfig, type OpHandler, type IncomingRequest, type RequestContext, type HandlerReply,
  type ServiceFailLoc, type ServiceCounters,
} from './service.js';
export {
  Import, type ImportConfig, type ImportState, type RequestOptions, type Reply, type ImportFailLoc, type ImportCounters, type ReplaySend, type ReplayStep,
} from './import.js';
export { ReplayList, type ReplayEntry } from './import-parts.js';
export {
  ReverseImport, LDLM_TIMEOUT_MS, REVERSE_RPCS_IN_FLIGHT_MAX, REVERSE_QUEUE_MAX, REVERSE_REPLY_BYTES_MAX,
  type ReverseImportConfig, type ReverseRequestOptions, type ReverseCounters,
} from './reverse-import.js';
export type { Network, ProcessId, PutEvent, MdHandle, MdSpec } from './transport.js';
export { portalEvents, postMessage } from './transport.js';
export { targetProfiles, type TargetProfile } from './profiles.js';
export { OsdReplyStore, MAX_RECORDED_REPLY_BYTES, type OsdReplyTransaction } from './osd-reply-store.js';
export {
  TargetRecovery, RECOVERY_TIME_SOFT_MS, RECOVERY_TIME_HARD_MS, type RecoveryWindow, type RecoveryStatus, type RecoveryFigures,
} from './recovery.js';
export { serviceFailLoc, importFailLoc, type ServiceFailPoints, type ImportFailPoints, type FailPointKind } from './fail-points.js';
