// Expected failures of the RPC layer, each with a stable `code` (an errno name, as Lustre's
// callers see them) and a message a user can act on. Broken invariants use assert instead.
import { OutcomeError } from '../log/index.js';
import { errnoName } from './constants.js';

export class PtlrpcError extends OutcomeError {
  /** Stable code: 'EPROTO', 'ETIMEDOUT', 'ENOTCONN', 'ESHUTDOWN', 'EIO', 'ENOBUFS', or a remote errno name. */
  readonly code: string;
  /** The negative errno a server replied with, when the error came from one. */
  readonly status: number | undefined;

  constructor(code: string, message: string, status?: number) {
    // A server's status is an outcome (ENOENT of a lookup, ELDLM_LOCK_ABORTED of an open): no stack trace.
    super(message, status !== undefined);
    this.name = 'PtlrpcError';
    this.code = code;
    this.status = status;
  }
}

/** A malformed message: always the caller's bytes, never our invariant. */
export function protocolError(message: string): PtlrpcError {
  return new PtlrpcError('EPROTO', message);
}

/** A server's negative pb_status as a typed error ('ENOENT', ...). */
export function remoteError(status: number, what: string): PtlrpcError {
  const name = errnoName(status);
  return new PtlrpcError(name, `${what} failed on the server: ${name} (${status})`, status);
}

/**
 * A handler's way to answer with an errno: throw statusError(-Errno.ENOENT, 'no such object').
 * The service replies with that status instead of -EIO.
 */
export function statusError(status: number, message: string): PtlrpcError {
  if (status >= 0) throw new RangeError(`status must be a negative errno, got ${status}`);
  return new PtlrpcError(errnoName(status), message, status);
}
