// The portals, opcodes and versions each kind of target uses, as Lustre pairs them:
// a client of an OST sends to OST_REQUEST_PORTAL and listens on OSC_REPLY_PORTAL, and so on.
import { Opcode, Portal, TargetVersion } from './constants.js';

export interface TargetProfile {
  requestPortal: number;
  replyPortal: number;
  bulkPortal: number;
  connectOpcode: number;
  disconnectOpcode: number;
  targetVersion: number;
}

export const targetProfiles = {
  ost: {
    requestPortal: Portal.OST_REQUEST, replyPortal: Portal.OSC_REPLY, bulkPortal: Portal.OST_BULK,
    connectOpcode: Opcode.OST_CONNECT, disconnectOpcode: Opcode.OST_DISCONNECT, targetVersion: TargetVersion.OST,
  },
  /** The OST's IO service: bulk reads and writes have their own portal and threads. */
  ostIo: {
    requestPortal: Portal.OST_IO, replyPortal: Portal.OSC_REPLY, bulkPortal: Portal.OST_BULK,
    connectOpcode: Opcode.OST_CONNECT, disconnectOpcode: Opcode.OST_DISCONNECT, targetVersion: TargetVersion.OST,
  },
  mdt: {
    requestPortal: Portal.MDS_REQUEST, replyPortal: Portal.MDC_REPLY, bulkPortal: Portal.MDS_BULK,
    connectOpcode: Opcode.MDS_CONNECT, disconnectOpcode: Opcode.MDS_DISCONNECT, targetVersion: TargetVersion.MDS,
  },
  mgs: {
    requestPortal: Portal.MGS_REQUEST, replyPortal: Portal.MGC_REPLY, bulkPortal: Portal.MGS_BULK,
    connectOpcode: Opcode.MGS_CONNECT, disconnectOpcode: Opcode.MGS_DISCONNECT, targetVersion: TargetVersion.MGS,
  },
} as const satisfies Record<string, TargetProfile>;
