// Invariant checks: a failed one is a bug in this code, never bad input, and stops the process.
import { strict } from 'node:assert';

export function assert(condition: unknown, invariant: string): asserts condition {
  strict.ok(condition, `ldlm invariant broken: ${invariant}`);
}
