// Expected failures of the log, each with a stable code a caller can act on; and the base of
// every layer's errors that are outcomes rather than failures.

/**
 * An Error made without a stack trace when it is an outcome a caller expects (ENOENT of a
 * lookup before a create, a server's status, an errno answered to the kernel): where this
 * side's code stood tells nothing there, and capturing a trace took microseconds on the hot
 * paths (1.5% of a loop of FUSE creates; 11 us of a GETXATTR answered by the client).
 */
export class OutcomeError extends Error {
  constructor(message: string, outcome: boolean) {
    const limit = Error.stackTraceLimit;
    if (outcome) Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

/** Runs fn with no stack trace captured for the errors it throws and catches (a poll's EAGAINs). */
export function withoutStackTraces<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export class LogError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'LogError';
    this.code = code;
  }
}

/** A record or segment that does not check, with where it is. */
export class LogCorruptError extends LogError {
  readonly file: string;
  readonly offset: number;
  constructor(reason: string, file: string, offset: number, code = 'ECORRUPT') {
    super(`${file} at offset ${offset}: ${reason}`, code);
    this.name = 'LogCorruptError';
    this.file = file;
    this.offset = offset;
  }
}
