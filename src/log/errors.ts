// Expected failures of the log, each with a stable code a caller can act on.

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
