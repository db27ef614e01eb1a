// The MGS: target registration, config logs per file system, persistent parameters, and the
// client side every node uses to reach it (MgsClient).
export * from './protocol.js';
export { MgsClient, MGS_TARGET_UUID, type MgsClientOptions, type LogUpdate } from './mgs-client.js';
