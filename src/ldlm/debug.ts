// One line per lock for logs and lock dumps, in the order and words of Lustre's LDLM_DEBUG:
//   ns: filter-lustre-OST0000_UUID lock: 0x2a mode: PW/PR res: [0x100000000:0x5:0x0].0x0
//   type: EXT [0->18446744073709551615] (req 0->4095) flags: 0x20 owner: <uuid> remote: 0x7
import { lockModeName, lockTypeName } from './modes.js';
import { resIdToString } from './resource.js';
import type { Lock, Policy } from './types.js';

function policyText(p: Policy | undefined): string {
  if (p === undefined) return '';
  if ('extent' in p) return `[${p.extent.start}->${p.extent.end}]${p.extent.gid ? ` gid ${p.extent.gid}` : ''}`;
  if ('bits' in p) return `bits 0x${p.bits.toString(16)}${p.tryBits ? `/0x${p.tryBits.toString(16)}` : ''}`;
  return `pid: ${p.flock.pid} [${p.flock.start}->${p.flock.end}] owner 0x${p.flock.owner.toString(16)}`;
}

export function describeLock(lock: Lock, namespace?: string): string {
  const granted = lock.grantedMode !== undefined;
  const req = granted && lock.requestedPolicy !== undefined && 'extent' in lock.requestedPolicy
    ? ` (req ${lock.requestedPolicy.extent.start}->${lock.requestedPolicy.extent.end})` : '';
  return [
    namespace !== undefined ? `ns: ${namespace}` : undefined,
    `lock: 0x${lock.handle.toString(16)}`,
    `mode: ${lockModeName(lock.grantedMode)}/${lockModeName(lock.reqMode)}`,
    `res: ${resIdToString(lock.resId)}`,
    `type: ${lockTypeName(lock.type)} ${policyText(granted ? lock.policy : lock.requestedPolicy)}${req}`,
    `flags: 0x${lock.flags.toString(16)}`,
    `owner: ${lock.owner}`,
    `remote: 0x${lock.remoteHandle.toString(16)}`,
  ].filter((x) => x !== undefined).join(' ');
}
