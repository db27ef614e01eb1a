// The shapes shared by the server namespace, the client lock cache and the wire codec.

import type { LockMode, LockType } from './modes.js';
import type { ResId } from './resource.js';

/** ldlm_extent: bytes [start, end], both inclusive; end = OBD_OBJECT_EOF reaches end of file. */
export interface Extent { start: bigint; end: bigint; gid?: bigint }
/** ldlm_inodebits: the bits a lock must have, the ones it would like if free, a GROUP lock's group id. */
export interface InodeBitsPolicy { bits: number; tryBits?: number; gid?: bigint }
/** ldlm_flock: a POSIX (or BSD) record lock of one lock owner (a process's file table). */
export interface FlockPolicy { start: bigint; end: bigint; owner: bigint; pid: number }

/** ldlm_policy_data: what part of the resource a lock covers, by lock type. */
export type Policy = { extent: Extent } | InodeBitsPolicy | { flock: FlockPolicy };

export interface LockRequest {
  resId: ResId;
  type: LockType;
  mode: LockMode;
  policy?: Policy;
  /** The export (client uuid) the lock belongs to. */
  owner: string;
  /** The client's cookie for its copy of the lock (l_remote_handle). */
  remoteHandle: bigint;
  /** LockFlag bits the client asked with (BLOCK_NOWAIT, TEST_LOCK, ...). */
  flags?: number;
  /**
   * (A target's own lock) The client whose granted or waiting locks this one does not conflict
   * with: its update is that client's, which learns what it changed from the reply (see
   * src/services/mdt/ldlm.ts, keepParentLock). Its locks are not called back.
   */
  spares?: string;
}

export interface Lock {
  /** The server's cookie: unique in the namespace, never 0. */
  readonly handle: bigint;
  readonly resId: ResId;
  readonly type: LockType;
  reqMode: LockMode;
  /** Set once granted. */
  grantedMode?: LockMode;
  /** The policy as granted (an extent may have grown), or as requested while waiting. */
  policy?: Policy;
  /** The policy as the client asked for it (l_req_extent). */
  requestedPolicy?: Policy;
  readonly owner: string;
  readonly remoteHandle: bigint;
  /** LockRequest.spares. */
  readonly spares?: string;
  flags: number;
  grantedAt?: number;
  enqueuedAt?: number;
  /** When the blocking callback went out (AST_SENT); the lock timeout counts from here. */
  blockingSentAt?: number;
  /** The handle of the lock whose request made this one get a blocking callback. */
  blockingHandle?: bigint;
}

export function isExtentPolicy(p: Policy | undefined): p is { extent: Extent } {
  return p !== undefined && 'extent' in p;
}
export function isInodeBitsPolicy(p: Policy | undefined): p is InodeBitsPolicy {
  return p !== undefined && 'bits' in p;
}
export function isFlockPolicy(p: Policy | undefined): p is { flock: FlockPolicy } {
  return p !== undefined && 'flock' in p;
}

/** The mode a lock holds now: granted, else requested. */
export function lockMode(lock: Lock): LockMode {
  return lock.grantedMode ?? lock.reqMode;
}
