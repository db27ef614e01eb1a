// Lustre's lock manager structures on the wire, byte-exact (include/uapi/linux/lustre/
// lustre_idl.h; sizes and offsets pinned by lustre/ptlrpc/wiretest.c). Every integer is
// little-endian; every structure is 8-byte aligned and has no implicit padding.
//
//   lustre_handle          8   cookie u64
//   ldlm_res_id           32   name[4] u64
//   ldlm_extent           24   start u64 @0, end u64 @8, gid u64 @16
//   ldlm_inodebits        32   bits u64 @0, try_bits u64 @8, li_gid u64 @16,
//                              li_padding u32 @24, li_initiator_id u32 @28 (written 0: one MDT)
//   ldlm_flock_wire       32   lfw_start u64 @0, lfw_end u64 @8, lfw_owner u64 @16,
//                              lfw_padding u32 @24, lfw_pid u32 @28
//   ldlm_wire_policy_data 32   union of the three above, read by the resource's type
//                              (PLAIN: all zero); unused bytes are zero
//   ldlm_resource_desc    40   lr_type u32 @0, lr_pad u32 @4, lr_name ldlm_res_id @8
//   ldlm_lock_desc        80   l_resource @0, l_req_mode u32 @40, l_granted_mode u32 @44,
//                              l_policy_data @48
//   ldlm_request          88+  lock_flags u32 @0, lock_count u32 @4, lock_desc @8,
//                              lock_handle[] @88: at least LDLM_LOCKREQ_HANDLES (2) slots
//                              are sent (ldlm_request_bufsize), more when a request packs
//                              more cancels; lock_count says how many slots are meaningful
//   ldlm_reply           112   lock_flags u32 @0, lock_padding u32 @4, lock_desc @8,
//                              lock_handle @88, lock_policy_res1 u64 @96,
//                              lock_policy_res2 u64 @104
//   ldlm_intent            8   opc u64 (IT_* bits), the buffer after ldlm_request in an
//                              enqueue with LDLM_FL_HAS_INTENT
//   ost_lvb               56   lvb_size u64 @0, lvb_mtime s64 @8, lvb_atime s64 @16,
//                              lvb_ctime s64 @24, lvb_blocks u64 @32, lvb_mtime_ns u32 @40,
//                              lvb_atime_ns u32 @44, lvb_ctime_ns u32 @48, lvb_padding u32 @52
//                              (ost_lvb_v1, the first 40 bytes, is still accepted on decode)
//
// Valid: buffer at least the structure's size (extra bytes are ignored, as Lustre's
// swabbers do); a lock_desc that is not all zero has a known lr_type, a known l_req_mode and
// an l_granted_mode that is 0 or a known mode; an extent or flock range has start <= end. A lock_desc of all zero bytes
// (a cancel request) decodes as no desc. Anything else is LdlmError('EPROTO').

import { LdlmError } from './errors.js';
import { isLockMode, isLockType, LockType, type LockMode } from './modes.js';
import type { ResId } from './resource.js';
import type { Policy } from './types.js';

export const LUSTRE_HANDLE_SIZE = 8;
export const LDLM_RES_ID_SIZE = 32;
export const LDLM_EXTENT_SIZE = 24;
export const LDLM_INODEBITS_SIZE = 32;
export const LDLM_FLOCK_WIRE_SIZE = 32;
export const LDLM_POLICY_DATA_SIZE = 32;
export const LDLM_RESOURCE_DESC_SIZE = 40;
export const LDLM_LOCK_DESC_SIZE = 80;
export const LDLM_REQUEST_SIZE = 88;
export const LDLM_LOCKREQ_HANDLES = 2;
export const LDLM_REPLY_SIZE = 112;
export const LDLM_INTENT_SIZE = 8;
export const OST_LVB_SIZE = 56;
export const OST_LVB_V1_SIZE = 40;
/** The most handles one ldlm_request carries (a cancel RPC packs up to a page of them). */
export const LDLM_MAX_HANDLES = 512;

/**
 * Lustre's ELDLM_LOCK_ABORTED (enum ldlm_error, 301): the pb_status of an enqueue whose intent
 * was done and no lock handed out (the MDT's open).
 */
export const ELDLM_LOCK_ABORTED = 301;

/** ldlm_lock_desc. grantedMode is 0 while the lock is not granted. */
export interface LockDesc {
  resId: ResId;
  type: LockType;
  reqMode: LockMode;
  grantedMode: LockMode | 0;
  policy?: Policy;
}

/**
 * ldlm_request as decoded. lockDesc is undefined when the desc is all zero bytes (an
 * LDLM_CANCEL); lockHandles holds every slot sent, lockCount how many of them mean something.
 */
export interface LdlmRequest {
  flags: number;
  lockCount: number;
  lockDesc: LockDesc | undefined;
  lockHandles: bigint[];
}

/** ldlm_request to encode; lockCount defaults to the handles up to the last non-zero one. */
export type LdlmRequestInit = Omit<LdlmRequest, 'lockCount'> & { lockCount?: number };

export interface LdlmReply {
  flags: number;
  lockDesc: LockDesc;
  lockHandle: bigint;
  policyRes1: bigint;
  policyRes2: bigint;
}

/** ost_lvb: what an OST knows of an object's size and times (seconds and nanoseconds). */
export interface OstLvb {
  size: bigint;
  mtime: number;
  atime: number;
  ctime: number;
  blocks: bigint;
  mtimeNs: number;
  atimeNs: number;
  ctimeNs: number;
}

const proto = (message: string): never => {
  throw new LdlmError('EPROTO', message);
};
const need = (buf: Buffer, size: number, what: string): void => {
  if (buf.length < size) proto(`${what}: ${buf.length} bytes, needs ${size}`);
};
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const checkU64 = (v: bigint, what: string): bigint => {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new LdlmError('EINVAL', `${what} is not a u64: ${String(v)}`);
  return v;
};

// ---- ldlm_res_id, policy, lock_desc ----

export function writeResId(buf: Buffer, off: number, r: ResId): void {
  for (let i = 0; i < 4; i++) buf.writeBigUInt64LE(checkU64(r[i]!, 'resource name'), off + 8 * i);
}

export function readResId(buf: Buffer, off: number): ResId {
  return [buf.readBigUInt64LE(off), buf.readBigUInt64LE(off + 8), buf.readBigUInt64LE(off + 16), buf.readBigUInt64LE(off + 24)];
}

/** Writes ldlm_wire_policy_data (32 bytes, zeroed first) for a lock of `type`. */
export function writePolicy(buf: Buffer, off: number, type: LockType, p: Policy | undefined): void {
  buf.fill(0, off, off + LDLM_POLICY_DATA_SIZE);
  if (p === undefined) return;
  if ('extent' in p) {
    buf.writeBigUInt64LE(checkU64(p.extent.start, 'extent start'), off);
    buf.writeBigUInt64LE(checkU64(p.extent.end, 'extent end'), off + 8);
    buf.writeBigUInt64LE(checkU64(p.extent.gid ?? 0n, 'extent gid'), off + 16);
  } else if ('bits' in p) {
    buf.writeBigUInt64LE(BigInt(p.bits >>> 0), off);
    buf.writeBigUInt64LE(BigInt((p.tryBits ?? 0) >>> 0), off + 8);
    buf.writeBigUInt64LE(checkU64(p.gid ?? 0n, 'inodebits gid'), off + 16);
  } else {
    buf.writeBigUInt64LE(checkU64(p.flock.start, 'flock start'), off);
    buf.writeBigUInt64LE(checkU64(p.flock.end, 'flock end'), off + 8);
    buf.writeBigUInt64LE(checkU64(p.flock.owner, 'flock owner'), off + 16);
    buf.writeUInt32LE(p.flock.pid >>> 0, off + 28);
  }
  if (type === LockType.PLAIN) buf.fill(0, off, off + LDLM_POLICY_DATA_SIZE);
}

export function readPolicy(buf: Buffer, off: number, type: LockType): Policy | undefined {
  switch (type) {
    case LockType.EXTENT: {
      const start = buf.readBigUInt64LE(off);
      const end = buf.readBigUInt64LE(off + 8);
      if (start > end) proto(`extent [${start}, ${end}] ends before it starts`);
      return { extent: { start, end, gid: buf.readBigUInt64LE(off + 16) } };
    }
    case LockType.IBITS: {
      const bits = buf.readBigUInt64LE(off);
      const tryBits = buf.readBigUInt64LE(off + 8);
      if (bits > 0xffff_ffffn || tryBits > 0xffff_ffffn) proto('inode bits beyond the 32 this implementation knows');
      const gid = buf.readBigUInt64LE(off + 16);
      return { bits: Number(bits), tryBits: Number(tryBits), ...(gid !== 0n ? { gid } : {}) };
    }
    case LockType.FLOCK: {
      const start = buf.readBigUInt64LE(off);
      const end = buf.readBigUInt64LE(off + 8);
      if (start > end) proto(`flock range [${start}, ${end}] ends before it starts`);
      return { flock: { start, end, owner: buf.readBigUInt64LE(off + 16), pid: buf.readUInt32LE(off + 28) } };
    }
    default:
      return undefined;
  }
}

export function writeLockDesc(buf: Buffer, off: number, d: LockDesc | undefined): void {
  buf.fill(0, off, off + LDLM_LOCK_DESC_SIZE);
  if (d === undefined) return;
  if (!isLockType(d.type)) throw new LdlmError('EINVAL', `unknown lock type ${String(d.type)}`);
  if (!isLockMode(d.reqMode)) throw new LdlmError('EINVAL', `unknown lock mode ${String(d.reqMode)}`);
  if (d.grantedMode !== 0 && !isLockMode(d.grantedMode)) throw new LdlmError('EINVAL', `unknown lock mode ${String(d.grantedMode)}`);
  buf.writeUInt32LE(d.type, off);
  writeResId(buf, off + 8, d.resId);
  buf.writeUInt32LE(d.reqMode, off + 40);
  buf.writeUInt32LE(d.grantedMode, off + 44);
  writePolicy(buf, off + 48, d.type, d.policy);
}

/** Reads ldlm_lock_desc; all zero bytes read as undefined (no desc). */
export function readLockDesc(buf: Buffer, off: number): LockDesc | undefined {
  const type = buf.readUInt32LE(off);
  if (type === 0 && buf.subarray(off, off + LDLM_LOCK_DESC_SIZE).every((b) => b === 0)) return undefined;
  if (!isLockType(type)) return proto(`unknown lock type ${type}`);
  const reqMode = buf.readUInt32LE(off + 40);
  const grantedMode = buf.readUInt32LE(off + 44);
  if (!isLockMode(reqMode)) return proto(`unknown requested lock mode ${reqMode}`);
  if (grantedMode !== 0 && !isLockMode(grantedMode)) return proto(`unknown granted lock mode ${grantedMode}`);
  const policy = readPolicy(buf, off + 48, type);
  return {
    resId: readResId(buf, off + 8), type, reqMode, grantedMode: grantedMode as LockMode | 0,
    ...(policy !== undefined ? { policy } : {}),
  };
}

// ---- ldlm_request, ldlm_reply ----

export function encodeLdlmRequest(r: LdlmRequestInit): Buffer {
  if (r.lockHandles.length > LDLM_MAX_HANDLES) throw new LdlmError('EINVAL', `${r.lockHandles.length} handles, at most ${LDLM_MAX_HANDLES}`);
  const slots = Math.max(r.lockHandles.length, LDLM_LOCKREQ_HANDLES);
  const buf = Buffer.alloc(LDLM_REQUEST_SIZE + slots * LUSTRE_HANDLE_SIZE);
  let count = r.lockCount;
  if (count === undefined) {
    count = r.lockHandles.length;
    while (count > 0 && r.lockHandles[count - 1] === 0n) count--;
  }
  buf.writeUInt32LE(r.flags >>> 0, 0);
  buf.writeUInt32LE(count, 4);
  writeLockDesc(buf, 8, r.lockDesc);
  r.lockHandles.forEach((h, i) => buf.writeBigUInt64LE(checkU64(h, 'lock handle'), LDLM_REQUEST_SIZE + i * LUSTRE_HANDLE_SIZE));
  return buf;
}

export function decodeLdlmRequest(buf: Buffer | undefined): LdlmRequest {
  if (buf === undefined) return proto('no ldlm_request buffer');
  need(buf, LDLM_REQUEST_SIZE, 'ldlm_request');
  const slots = Math.min(Math.floor((buf.length - LDLM_REQUEST_SIZE) / LUSTRE_HANDLE_SIZE), LDLM_MAX_HANDLES);
  const lockCount = buf.readUInt32LE(4);
  if (lockCount > slots) proto(`ldlm_request: lock_count ${lockCount} but room for ${slots} handles`);
  const lockHandles: bigint[] = [];
  for (let i = 0; i < slots; i++) lockHandles.push(buf.readBigUInt64LE(LDLM_REQUEST_SIZE + i * LUSTRE_HANDLE_SIZE));
  return { flags: buf.readUInt32LE(0), lockCount, lockDesc: readLockDesc(buf, 8), lockHandles };
}

export function encodeLdlmReply(r: LdlmReply): Buffer {
  const buf = Buffer.alloc(LDLM_REPLY_SIZE);
  buf.writeUInt32LE(r.flags >>> 0, 0);
  writeLockDesc(buf, 8, r.lockDesc);
  buf.writeBigUInt64LE(checkU64(r.lockHandle, 'lock handle'), 88);
  buf.writeBigUInt64LE(checkU64(r.policyRes1, 'policy result'), 96);
  buf.writeBigUInt64LE(checkU64(r.policyRes2, 'policy result'), 104);
  return buf;
}

export function decodeLdlmReply(buf: Buffer | undefined): LdlmReply {
  if (buf === undefined) return proto('no ldlm_reply buffer');
  need(buf, LDLM_REPLY_SIZE, 'ldlm_reply');
  const lockDesc = readLockDesc(buf, 8);
  if (lockDesc === undefined) return proto('ldlm_reply without a lock desc');
  return {
    flags: buf.readUInt32LE(0), lockDesc, lockHandle: buf.readBigUInt64LE(88),
    policyRes1: buf.readBigUInt64LE(96), policyRes2: buf.readBigUInt64LE(104),
  };
}

// ---- ldlm_intent ----

/** enum ldlm_intent_flags: what an enqueue with an intent asks the MDT (or OST) to do. */
export const IntentOp = {
  OPEN: 0x1,
  CREAT: 0x2,
  READDIR: 0x4, // never on the wire
  GETATTR: 0x8,
  LOOKUP: 0x10,
  GETXATTR: 0x80,
  LAYOUT: 0x400,
  QUOTA_DQACQ: 0x800,
  QUOTA_CONN: 0x1000,
  GLIMPSE: 0x4000,
  BRW: 0x8000,
} as const;

/** Lustre's intent dispositions (lock_policy_res1 of an enqueue's reply: what the intent did). */
export const Disposition = {
  IT_EXECD: 0x1,
  LOOKUP_EXECD: 0x2,
  LOOKUP_NEG: 0x4,
  LOOKUP_POS: 0x8,
  OPEN_CREATE: 0x10,
  OPEN_OPEN: 0x20,
} as const;

export function encodeLdlmIntent(opc: number): Buffer {
  const buf = Buffer.alloc(LDLM_INTENT_SIZE);
  if (!Number.isSafeInteger(opc) || opc < 0) throw new LdlmError('EINVAL', `bad intent ${opc}`);
  buf.writeBigUInt64LE(BigInt(opc), 0);
  return buf;
}

export function decodeLdlmIntent(buf: Buffer | undefined): number {
  if (buf === undefined) return proto('no ldlm_intent buffer');
  need(buf, LDLM_INTENT_SIZE, 'ldlm_intent');
  const opc = buf.readBigUInt64LE(0);
  if (opc > BigInt(Number.MAX_SAFE_INTEGER)) proto(`intent ${opc} out of range`);
  return Number(opc);
}

// ---- ost_lvb ----

export function encodeOstLvb(l: OstLvb): Buffer {
  const buf = Buffer.alloc(OST_LVB_SIZE);
  buf.writeBigUInt64LE(checkU64(l.size, 'lvb size'), 0);
  buf.writeBigInt64LE(BigInt(l.mtime), 8);
  buf.writeBigInt64LE(BigInt(l.atime), 16);
  buf.writeBigInt64LE(BigInt(l.ctime), 24);
  buf.writeBigUInt64LE(checkU64(l.blocks, 'lvb blocks'), 32);
  buf.writeUInt32LE(l.mtimeNs >>> 0, 40);
  buf.writeUInt32LE(l.atimeNs >>> 0, 44);
  buf.writeUInt32LE(l.ctimeNs >>> 0, 48);
  return buf;
}

/** Reads an ost_lvb, or the 40-byte ost_lvb_v1 of older peers (no nanoseconds). */
export function decodeOstLvb(buf: Buffer): OstLvb {
  need(buf, OST_LVB_V1_SIZE, 'ost_lvb');
  const time = (off: number): number => {
    const t = buf.readBigInt64LE(off);
    if (t > BigInt(Number.MAX_SAFE_INTEGER) || t < BigInt(Number.MIN_SAFE_INTEGER)) proto(`ost_lvb time ${t} out of range`);
    return Number(t);
  };
  const v2 = buf.length >= OST_LVB_SIZE;
  return {
    size: buf.readBigUInt64LE(0), mtime: time(8), atime: time(16), ctime: time(24), blocks: buf.readBigUInt64LE(32),
    mtimeNs: v2 ? buf.readUInt32LE(40) : 0, atimeNs: v2 ? buf.readUInt32LE(44) : 0, ctimeNs: v2 ? buf.readUInt32LE(48) : 0,
  };
}
