// The edge of the lock manager: requests from a client are checked here, once, into values
// the namespace trusts. Bad input is an LdlmError('EINVAL'), never an assert.

import { LdlmError } from './errors.js';
import { isLockMode, isLockType, LockMode, LockType, OBD_OBJECT_EOF } from './modes.js';
import type { LockRequest, Policy } from './types.js';

const U64_MAX = OBD_OBJECT_EOF;
const isU64 = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v <= U64_MAX;
const fail = (message: string): never => {
  throw new LdlmError('EINVAL', message);
};

export function checkRequest(req: LockRequest): LockRequest {
  if (!Array.isArray(req.resId) || req.resId.length !== 4 || !req.resId.every(isU64)) fail('resource name must be 4 u64 words');
  if (!isLockType(req.type)) fail(`unknown lock type ${String(req.type)}`);
  if (!isLockMode(req.mode)) fail(`unknown lock mode ${String(req.mode)}`);
  if (typeof req.owner !== 'string' || req.owner.length === 0) fail('a lock needs an owner (the export uuid)');
  if (!isU64(req.remoteHandle)) fail('remote handle must be a u64');
  if (req.flags !== undefined && !(Number.isSafeInteger(req.flags) && req.flags >= 0)) fail('flags must be a non-negative integer');
  if (req.spares !== undefined && (typeof req.spares !== 'string' || req.spares.length === 0)) fail('spares must name a client (its uuid)');
  const policy = checkPolicy(req.type, req.mode, req.policy);
  return { ...req, ...(policy !== undefined ? { policy } : {}) };
}

function checkPolicy(type: LockType, mode: LockMode, p: Policy | undefined): Policy | undefined {
  switch (type) {
    case LockType.PLAIN:
      return undefined;
    case LockType.EXTENT: {
      if (p === undefined) return { extent: { start: 0n, end: U64_MAX } };
      if (!('extent' in p)) return fail('an EXTENT lock needs an extent policy');
      const { start, end, gid } = p.extent;
      if (!isU64(start) || !isU64(end) || start > end) fail(`bad extent [${String(start)}, ${String(end)}]`);
      if (gid !== undefined && !isU64(gid)) fail('bad group id');
      return { extent: { start, end, ...(gid !== undefined ? { gid } : {}) } };
    }
    case LockType.IBITS: {
      if (p === undefined || !('bits' in p)) return fail('an IBITS lock needs inode bits');
      const { bits, tryBits, gid } = p;
      const okBits = (b: unknown) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 0xffffffff;
      if (!okBits(bits) || (tryBits !== undefined && !okBits(tryBits))) fail('bad inode bits');
      if ((bits | (tryBits ?? 0)) === 0) fail('an IBITS lock needs at least one bit');
      if (gid !== undefined && !isU64(gid)) fail('bad group id');
      return { bits, tryBits: ((tryBits ?? 0) & ~bits) >>> 0, ...(gid !== undefined ? { gid } : {}) };
    }
    case LockType.FLOCK: {
      if (p === undefined || !('flock' in p)) return fail('a FLOCK lock needs a flock policy');
      const { start, end, owner, pid } = p.flock;
      if (!isU64(start) || !isU64(end) || start > end) fail(`bad flock range [${String(start)}, ${String(end)}]`);
      if (!isU64(owner)) fail('bad flock owner');
      if (!Number.isInteger(pid) || pid < 0 || pid > 0xffffffff) fail('bad flock pid');
      if (mode !== LockMode.PR && mode !== LockMode.PW && mode !== LockMode.NL) fail('a flock is PR (read), PW (write) or NL (unlock)');
      return { flock: { start, end, owner, pid } };
    }
    default:
      return fail(`unknown lock type ${String(type)}`);
  }
}
