// EXTENT locks (ldlm_extent.c): byte ranges [start, end] of an object, both ends inclusive.
// Two extent locks conflict when their ranges overlap and their modes are incompatible;
// GROUP locks conflict with every non-GROUP lock whatever the range, and with GROUP locks of
// another group id.
//
// Growth. A client asks for the bytes it needs; the server grants as much more as no other
// lock forbids, so that the client's next IO finds the lock in its cache. As
// ldlm_extent_internal_policy_granted / _waiting / _fixup do:
//  - start from [0, EOF];
//  - any granted lock of an incompatible mode pins the start at the requested start, and the
//    first such lock beyond the requested end caps the end just before it;
//  - waiting locks (of an incompatible mode, or any mode of the same client) whose requested
//    ranges do not overlap the request cap growth downwards and upwards; more than 4 of them
//    stop downward growth;
//  - more than 32 conflicting granted locks limit a PW or CW lock to 32 MiB past its start;
//  - a range short of [0, EOF] is then shrunk to page (4096) boundaries, or to the larger
//    power-of-two alignment the request itself has, so that two write locks never share a page.

import { assert } from './assert.js';
import { LockMode, lockModeCompat, OBD_OBJECT_EOF, type LockMode as Mode } from './modes.js';
import type { Extent } from './types.js';

export const LDLM_MAX_GROWN_EXTENT = 32n * 1024n * 1024n - 1n;
const PAGE_SIZE = 4096n;
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

export function extentOverlap(a: Extent, b: Extent): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function extentContains(outer: Extent, inner: Extent): boolean {
  return outer.start <= inner.start && outer.end >= inner.end;
}

export interface ExtentHolder { mode: Mode; extent: Extent }

export function extentConflicts(held: ExtentHolder, requested: ExtentHolder): boolean {
  const heldGroup = held.mode === LockMode.GROUP;
  const reqGroup = requested.mode === LockMode.GROUP;
  if (heldGroup && reqGroup) return (held.extent.gid ?? 0n) !== (requested.extent.gid ?? 0n);
  if (heldGroup !== reqGroup) return !lockModeCompat(held.mode, requested.mode);
  return extentOverlap(held.extent, requested.extent) && !lockModeCompat(held.mode, requested.mode);
}

export interface GrowRequest { mode: Mode; owner: string; requested: Extent }
export interface GrowGranted { mode: Mode; owner: string; extent: Extent }
export interface GrowWaiting { mode: Mode; owner: string; requested: Extent }

/**
 * The extent to grant for `req`, given the granted locks of other clients and every other
 * waiting lock of the resource. Never smaller than the requested extent.
 */
export function growExtent(req: GrowRequest, granted: Iterable<GrowGranted>, waiting: Iterable<GrowWaiting>): Extent {
  const r = req.requested;
  if (r.start === 0n && r.end === OBD_OBJECT_EOF) return { ...r };
  const grown = { start: 0n, end: OBD_OBJECT_EOF };
  let conflicting = 0;
  for (const g of granted) {
    if (g.owner === req.owner || lockModeCompat(g.mode, req.mode)) continue;
    conflicting += 1;
    grown.start = r.start;
    if (g.extent.start > r.end) grown.end = min(grown.end, g.extent.start - 1n);
  }
  fixup(req, grown, conflicting);
  conflicting = 0;
  for (const w of waiting) {
    if (grown.start === r.start && grown.end === r.end) break;
    if (lockModeCompat(w.mode, req.mode) && w.owner !== req.owner) continue;
    conflicting += 1;
    if (conflicting > 4) grown.start = r.start;
    const we = w.requested;
    // Requests that overlap ours will ping-pong whatever we grant: they do not limit growth.
    if (!extentOverlap(we, grown) || extentOverlap(we, r)) continue;
    if (we.start < r.start && grown.start !== r.start) {
      grown.start = we.end >= r.start ? r.start : min(we.end + 1n, r.start);
    }
    if (we.end > r.end) grown.end = max(we.start - 1n, r.end);
  }
  fixup(req, grown, conflicting);
  assert(grown.start <= r.start && grown.end >= r.end, 'a grown extent covers the requested one');
  return { start: grown.start, end: grown.end, ...(r.gid !== undefined ? { gid: r.gid } : {}) };
}

function fixup(req: GrowRequest, grown: { start: bigint; end: bigint }, conflicting: number): void {
  const r = req.requested;
  if (conflicting > 32 && (req.mode === LockMode.PW || req.mode === LockMode.CW)) {
    if (r.end < r.start + LDLM_MAX_GROWN_EXTENT) grown.end = min(r.start + LDLM_MAX_GROWN_EXTENT, grown.end);
  }
  if (grown.start === 0n && grown.end === OBD_OBJECT_EOF) return;
  let mask = PAGE_SIZE;
  const reqAlign = u64(r.end + 1n) | r.start;
  if (reqAlign !== 0n && (reqAlign & (mask - 1n)) === 0n) {
    while ((reqAlign & mask) === 0n) mask <<= 1n;
  }
  mask -= 1n;
  // Only shrink: the requested extent was aligned on these boundaries already, or the mask is
  // the page size and the request is covered by whole pages around it.
  const start = u64((u64(grown.start - 1n) | mask) + 1n);
  const end = u64((u64(grown.end + 1n) & ~mask & OBD_OBJECT_EOF) - 1n);
  grown.start = start <= r.start ? start : r.start;
  grown.end = end >= r.end ? end : r.end;
}
