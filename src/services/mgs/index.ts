// The MGS: target registration, config logs per file system, persistent parameters, and the
// client side every node uses to reach it (MgsClient).
export * from './protocol.js';
export { MgsClient, MGS_TARGET_UUID, type MgsClientOptions, type LogUpdate } from './mgs-client.js';
export { Mgs, startMgs, MGS_WAITERS_MAX, type MgsStats } from './mgs.js';
export { ConfigLogs, encodeLlogRecord, decodeLlog, formatRecord, LlogError, OBD_CFG_REC, FID_SEQ_LLOG } from './llog.js';
