// Counters kept by an NI and its LNDs, named after Lustre's (lnet_counters: send_count,
// recv_count, drop_count and their lengths; per-peer credits and their low-water mark as
// /sys/kernel/debug/lnet/peers shows them).

/** Why a message was dropped (counted per reason). */
export type DropReason =
  | 'noMatch'            // a PUT or GET that no MD took (Lustre drops it; the sender learns nothing)
  | 'tooLong'            // matched, but longer than the MD
  | 'notForMe'           // destination NID is not this NI's
  | 'unexpectedReply'    // a REPLY for no GET of ours (or it timed out already)
  | 'unexpectedAck'      // an ACK for no PUT of ours
  | 'replyTooLong'       // a REPLY longer than the GET asked for
  | 'badNid'             // a source NID this NI cannot read
  | 'stopping';          // arrived while the NI was stopping

/** Why a connection was dropped (counted per reason). */
export type ConnDropReason =
  | 'badMagic' | 'badVersion' | 'badAcceptorVersion' | 'wrongNid' | 'badHello' | 'badConnType'
  | 'connRace' | 'badKsockType' | 'badMsgType' | 'oversized' | 'payloadOnGetOrAck' | 'badZcAck'
  | 'handshakeTimeout' | 'stalled' | 'sendStalled' | 'flood' | 'tooManyConnections'
  | 'peerRestarted' | 'socketError' | 'connectFailed' | 'closedByPeer' | 'stopping';

export type Counts<K extends string> = Partial<Record<K, number>>;

export function bump<K extends string>(c: Counts<K>, k: K, by = 1): void {
  c[k] = (c[k] ?? 0) + by;
}

export interface MessageCounters {
  sendCount: number;
  sendLength: number;
  recvCount: number;
  recvLength: number;
  dropCount: number;
  dropLength: number;
}

export function newMessageCounters(): MessageCounters {
  return { sendCount: 0, sendLength: 0, recvCount: 0, recvLength: 0, dropCount: 0, dropLength: 0 };
}

export interface PeerStats extends MessageCounters {
  nid: string;
  /** Connections established with this peer now. */
  connections: number;
  /** Connections established with it so far (ours and theirs). */
  connects: number;
  /** Send credits: free now, at most, and the lowest seen. */
  credits: number;
  maxCredits: number;
  minCredits: number;
  /** Messages waiting for a credit or a connection. */
  queued: number;
  keepalivesSent: number;
  drops: Counts<DropReason>;
  connDrops: Counts<ConnDropReason>;
}

export interface NiStats extends MessageCounters {
  nid: string;
  mdsAttached: number;
  acksPending: number;
  repliesPending: number;
  connections: number;
  /** Bytes of frames being received now, reserved against rxBytesMax. */
  rxBytesReserved: number;
  drops: Counts<DropReason>;
  connDrops: Counts<ConnDropReason>;
}

export interface LNetStats { ni: NiStats; peers: PeerStats[] }
