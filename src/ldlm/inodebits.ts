// IBITS locks (ldlm_inodebits.c): one lock covers a set of parts of an inode (lookup, update,
// open, layout, perm, xattr, dom). Two locks conflict when their modes are incompatible and
// their bit sets intersect. A request may carry try bits: optional parts granted only if no
// lock of an incompatible mode (granted, or waiting ahead) holds them; they never make the
// request wait.

import { lockModeCompat, LockMode, type LockMode as Mode } from './modes.js';
import type { InodeBitsPolicy } from './types.js';

export function ibitsConflicts(held: { mode: Mode; bits: number; gid?: bigint }, requested: { mode: Mode; bits: number; gid?: bigint }): boolean {
  if ((held.bits & requested.bits) === 0) return false;
  if (held.mode === LockMode.GROUP && requested.mode === LockMode.GROUP) return (held.gid ?? 0n) !== (requested.gid ?? 0n);
  return !lockModeCompat(held.mode, requested.mode);
}

/**
 * The try bits left once those held by `others` (locks of an incompatible mode) are removed,
 * as ldlm_inodebits_compat_queue filters them.
 */
export function filterTryBits(mode: Mode, tryBits: number, others: Iterable<{ mode: Mode; bits: number }>): number {
  let left = tryBits;
  for (const o of others) {
    if (!lockModeCompat(o.mode, mode)) left &= ~o.bits;
  }
  return left;
}

export function ibitsOf(p: InodeBitsPolicy | undefined): number {
  return p?.bits ?? 0;
}
