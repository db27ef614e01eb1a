// FLOCK locks (ldlm_flock.c): POSIX record locks (fcntl F_SETLK/F_SETLKW/F_GETLK) and BSD
// whole-file locks (flock(2)) of applications, kept by the MDT for every client.
//
// A lock owner is a process's open-file table on one client: (export, owner). Its locks on a
// file never conflict with each other; a new lock replaces whatever the owner held on its
// range (a write lock over part of a read lock splits the read lock), and ranges of one mode
// that overlap or touch are merged into one. Unlock is a request of mode NL (F_UNLCK): it
// removes the range from the owner's locks and may split one in two. Between owners, read
// locks (PR) share and a write lock (PW) excludes, on overlapping ranges.
//
// Waiting locks are not served in order: POSIX has no fairness, and Lustre's flock policy
// grants any waiter that no granted lock blocks. A waiter is refused with EDEADLK when the
// owners it waits for wait, through any chain, for its own owner (ldlm_flock_deadlock), on
// this file or any other of the namespace.
//
// BSD flock() is a whole-file lock, [0, EOF], whose owner is the open file description;
// Lustre makes POSIX and BSD locks on one file exclude each other, and so does this.

import { LockMode, lockModeCompat, OBD_OBJECT_EOF, type LockMode as Mode } from './modes.js';
import type { FlockPolicy } from './types.js';

export function flockOverlap(a: { start: bigint; end: bigint }, b: { start: bigint; end: bigint }): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** The key of a lock owner: its export and its flock owner. */
export function flockOwnerKey(exportOwner: string, flock: FlockPolicy): string {
  return `${exportOwner}\u0000${flock.owner.toString(16)}`;
}

export interface FlockHolder { ownerKey: string; mode: Mode; range: { start: bigint; end: bigint } }

export function flockConflicts(held: FlockHolder, requested: FlockHolder): boolean {
  return held.ownerKey !== requested.ownerKey && flockOverlap(held.range, requested.range) && !lockModeCompat(held.mode, requested.mode);
}

/** A range of one owner's lock set; `item` names the lock it came from. */
export interface FlockPiece<T> { start: bigint; end: bigint; mode: Mode; item: T }

/**
 * The owner's lock set after it takes `req` (mode NL: unlocks its range). A piece of an old
 * lock that was split appears twice with the same item; an old lock absorbed by a merge, or
 * wholly replaced, does not appear; the request's piece carries req.item.
 */
export function flockApply<T>(own: readonly FlockPiece<T>[], req: FlockPiece<T>): FlockPiece<T>[] {
  const out: FlockPiece<T>[] = [];
  for (const p of own) {
    if (p.end < req.start || p.start > req.end) {
      out.push(p);
      continue;
    }
    if (p.start < req.start) out.push({ ...p, end: req.start - 1n });
    if (p.end > req.end) out.push({ ...p, start: req.end + 1n });
  }
  if (req.mode === LockMode.NL) return out.sort(byStart);
  let start = req.start;
  let end = req.end;
  const kept: FlockPiece<T>[] = [];
  for (const p of out) {
    const touchesBelow = start > 0n && p.end === start - 1n;
    const touchesAbove = end < OBD_OBJECT_EOF && p.start === end + 1n;
    if (p.mode === req.mode && (touchesBelow || touchesAbove)) {
      if (p.start < start) start = p.start;
      if (p.end > end) end = p.end;
    } else {
      kept.push(p);
    }
  }
  kept.push({ start, end, mode: req.mode, item: req.item });
  return kept.sort(byStart);
}

const byStart = <T>(a: FlockPiece<T>, b: FlockPiece<T>): number => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);

/**
 * Would `ownerKey` waiting for `blockers` close a cycle? `waitsFor(o)` gives the owners that
 * owner `o` waits for now. Searches every chain, not only the first blocker of each waiter.
 */
export function flockDeadlock(ownerKey: string, blockers: Iterable<string>, waitsFor: (owner: string) => Iterable<string>): boolean {
  const seen = new Set<string>();
  const stack = [...blockers];
  while (stack.length > 0) {
    const o = stack.pop()!;
    if (o === ownerKey) return true;
    if (seen.has(o)) continue;
    seen.add(o);
    for (const next of waitsFor(o)) if (!seen.has(next)) stack.push(next);
  }
  return false;
}

/** The policy of a BSD flock() lock: the whole file, owned by the open file description. */
export function bsdFlockPolicy(owner: bigint, pid: number): FlockPolicy {
  return { start: 0n, end: OBD_OBJECT_EOF, owner, pid };
}
