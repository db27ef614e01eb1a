// Lock modes, lock types, inodebits and lock flags of Lustre's lock manager, with Lustre's
// values (include/uapi/linux/lustre/lustre_idl.h, lustre/include/lustre_dlm.h and
// lustre_dlm_flags.h), so that they can go on the wire unchanged.

/** enum ldlm_mode: one bit per mode, so that a set of modes is a mask. */
export const LockMode = {
  EX: 1,
  PW: 2,
  PR: 4,
  CW: 8,
  CR: 16,
  NL: 32,
  GROUP: 64,
  COS: 128,
  TXN: 256,
} as const;
export type LockMode = (typeof LockMode)[keyof typeof LockMode];

/** enum ldlm_type. A resource holds locks of one type only. */
export const LockType = {
  PLAIN: 10,
  EXTENT: 11,
  FLOCK: 12,
  IBITS: 13,
} as const;
export type LockType = (typeof LockType)[keyof typeof LockType];

/** enum mds_ibits_locks: what part of an inode an IBITS lock covers. */
export const InodeBits = {
  NONE: 0,
  LOOKUP: 0x01, // the name (dentry) of the inode in its parent
  UPDATE: 0x02, // size, links, timestamps, directory contents
  OPEN: 0x04, // an open file
  LAYOUT: 0x08, // the file layout (striping)
  PERM: 0x10, // owner, mode, ACL
  XATTR: 0x20, // extended attributes other than permissions
  DOM: 0x40, // data on the MDT
} as const;
/** MDS_INODELOCK_NUMBITS and MDS_INODELOCK_FULL. */
export const INODEBITS_NUMBITS = 7;
export const INODEBITS_FULL = (1 << INODEBITS_NUMBITS) - 1;

/** The largest byte offset: an extent ending here reaches end of file (OBD_OBJECT_EOF). */
export const OBD_OBJECT_EOF = 0xffff_ffff_ffff_ffffn;

/**
 * LDLM_FL_* flags that fit in the 32 bits that go on the wire (ldlm_request.lock_flags,
 * ldlm_reply.lock_flags), plus the local ones this implementation keeps on a lock. The
 * local ones above bit 31 are kept as JavaScript numbers (exact up to 2^53).
 */
export const LockFlag = {
  LOCK_CHANGED: 0x1, // the server granted another mode or extent than asked for
  BLOCK_GRANTED: 0x2, // the lock waits behind a granted lock
  BLOCK_WAIT: 0x8, // the lock waits behind a waiting lock
  AST_SENT: 0x20, // a blocking callback was sent for this lock
  REPLAY: 0x100, // lock replay after a server restart
  INTENT_ONLY: 0x200,
  HAS_INTENT: 0x1000,
  FLOCK_DEADLOCK: 0x8000, // the flock request was refused: it would deadlock
  DISCARD_DATA: 0x10000,
  NO_TIMEOUT: 0x20000,
  BLOCK_NOWAIT: 0x40000, // fail with EAGAIN instead of waiting
  TEST_LOCK: 0x80000, // F_GETLK: tell what conflicts, take nothing
  MATCH_LOCK: 0x100000,
  CANCEL_ON_BLOCK: 0x800000, // the client cancels as soon as it is asked
  DENY_ON_CONTENTION: 0x40000000,
  AST_DISCARD_DATA: 0x80000000,
  // Local flags (never on the wire).
  CBPENDING: 0x4_0000_0000, // a blocking callback arrived; cancel once unused
  CANCEL: 0x10_0000_0000,
  LOCAL_ONLY: 0x20_0000_0000,
  FAILED: 0x40_0000_0000,
  CANCELING: 0x80_0000_0000,
  LOCAL: 0x100_0000_0000,
  LVB_READY: 0x200_0000_0000,
  KMS_IGNORE: 0x400_0000_0000, // the lock no longer vouches for the known minimum size
  BL_AST: 0x4000_0000_0000,
  BL_DONE: 0x8000_0000_0000,
  NO_LRU: 0x1_0000_0000_0000,
} as const;

/** Flags that may appear in a request or a reply on the wire (the low 32 bits). */
export const WIRE_FLAGS_MASK = 0xffffffff;

// JavaScript's bitwise operators work on 32 bits: `flags | LockFlag.CBPENDING` silently loses
// bit 34, and `flags & 0xffffffff` turns bit 31 into a sign. Flags are therefore combined
// with these helpers, which treat a flags value as two 32-bit halves of one 53-bit integer.
const HALF = 0x1_0000_0000;
const hi = (v: number): number => Math.floor(v / HALF) >>> 0;
const lo = (v: number): number => v >>> 0;
const join = (h: number, l: number): number => (h >>> 0) * HALF + (l >>> 0);

/** Does `flags` have any of the bits of the masks? */
export function hasFlag(flags: number, ...masks: number[]): boolean {
  return masks.some((m) => (hi(flags) & hi(m)) !== 0 || (lo(flags) & lo(m)) !== 0);
}

/** `flags` with every bit of the masks set. */
export function withFlags(flags: number, ...masks: number[]): number {
  return masks.reduce((f, m) => join(hi(f) | hi(m), lo(f) | lo(m)), flags);
}

/** `flags` with every bit of the masks cleared. */
export function withoutFlags(flags: number, ...masks: number[]): number {
  return masks.reduce((f, m) => join(hi(f) & ~hi(m), lo(f) & ~lo(m)), flags);
}

/** The low 32 bits, unsigned: what ldlm_flags_to_wire puts in lock_flags. */
export function wireFlags(flags: number): number {
  return lo(flags);
}

const ALL_MODES: readonly LockMode[] = Object.values(LockMode);
const ALL_TYPES: readonly LockType[] = Object.values(LockType);

export function isLockMode(v: unknown): v is LockMode {
  return typeof v === 'number' && (ALL_MODES as readonly number[]).includes(v);
}

export function isLockType(v: unknown): v is LockType {
  return typeof v === 'number' && (ALL_TYPES as readonly number[]).includes(v);
}

const { EX, PW, PR, CW, CR, NL, GROUP, COS, TXN } = LockMode;
// lck_compat_array: for an existing mode, the mask of the new modes compatible with it.
const COMPAT_EX = NL;
const COMPAT_PW = COMPAT_EX | CR;
const COMPAT_PR = COMPAT_PW | PR | TXN;
const COMPAT_CW = COMPAT_PW | CW;
const COMPAT_CR = COMPAT_CW | PR | PW | TXN;
const COMPAT_NL = COMPAT_CR | EX | GROUP | COS;
const COMPAT_GROUP = NL | GROUP;
const COMPAT_COS = NL | COS;
const COMPAT_TXN = COMPAT_PR;

const COMPAT = new Map<number, number>([
  [EX, COMPAT_EX], [PW, COMPAT_PW], [PR, COMPAT_PR], [CW, COMPAT_CW], [CR, COMPAT_CR],
  [NL, COMPAT_NL], [GROUP, COMPAT_GROUP], [COS, COMPAT_COS], [TXN, COMPAT_TXN],
]);

/**
 * lockmode_compat(): may a lock of mode `requested` be granted beside one of mode `existing`?
 * The matrix is symmetric. GROUP locks are compatible with each other here; whether their
 * group ids match is the extent policy's business.
 */
export function lockModeCompat(existing: LockMode, requested: LockMode): boolean {
  return ((COMPAT.get(existing) ?? 0) & requested) !== 0;
}

const MODE_NAMES = new Map<number, string>(Object.entries(LockMode).map(([k, v]) => [v, k]));
const TYPE_NAMES = new Map<number, string>([[10, 'PLN'], [11, 'EXT'], [12, 'FLK'], [13, 'IBT']]);

/** ldlm_lockname[]: 'EX', 'PW', ...; '--' for no mode. */
export function lockModeName(mode: number | undefined): string {
  return (mode !== undefined && MODE_NAMES.get(mode)) || '--';
}

/** ldlm_typename[]: 'PLN', 'EXT', 'FLK', 'IBT'. */
export function lockTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? '???';
}

/**
 * Does a granted lock of mode `held` serve a need of mode `needed` on the client? As
 * ldlm_lock_match's mode mask: a writer's lock serves readers (PW covers PR), EX serves all.
 */
export function lockModeCovers(held: LockMode, needed: LockMode): boolean {
  if (held === needed) return true;
  switch (held) {
    case EX: return needed === PW || needed === PR || needed === CW || needed === CR;
    case PW: return needed === PR || needed === CR;
    case PR: return needed === CR;
    case CW: return needed === CR;
    default: return false;
  }
}
