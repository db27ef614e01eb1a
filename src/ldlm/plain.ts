// PLAIN locks (ldlm_plain.c): the whole resource, conflict by mode alone.

import { lockModeCompat, type LockMode } from './modes.js';

export function plainConflicts(held: LockMode, requested: LockMode): boolean {
  return !lockModeCompat(held, requested);
}
