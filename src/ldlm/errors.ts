// Expected failures of the lock manager, typed with a stable `code` (an errno name, as Lustre
// returns them). Broken invariants are assert()s, never LdlmErrors.

export type LdlmErrorCode =
  | 'EINVAL' // a malformed request: unknown mode or type, bad extent, wrong policy for the type
  | 'EPROTO' // bytes that do not decode as the structure they claim to be
  | 'ENOMEM' // a namespace is at its lock limit
  | 'EAGAIN' // BLOCK_NOWAIT and the lock would wait
  | 'EDEADLK'; // the flock request would deadlock

export class LdlmError extends Error {
  readonly code: LdlmErrorCode;
  constructor(code: LdlmErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'LdlmError';
    this.code = code;
  }
}
