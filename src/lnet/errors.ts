// Expected failures of the network layer: each has a stable errno-like code that callers switch
// on (ptlrpc turns ETIMEDOUT into a resend, ECONNRESET into a reconnect, and so on).

export type LNetErrorCode =
  | 'EINVAL'        // a NID, portal or argument that cannot be used
  | 'EHOSTUNREACH'  // no route to the target, or its node refused the connection
  | 'ECONNRESET'    // the connection broke while the message was on it
  | 'ETIMEDOUT'     // connect, handshake, ACK or REPLY did not come in time
  | 'ENOENT'        // the target had no matching MD (known at once only in-process)
  | 'EAGAIN'        // a bounded queue is full; try later
  | 'EADDRINUSE'    // another NI of this process already has that NID and pid
  | 'ESHUTDOWN'     // the NI was stopped
  | 'EPROTO';       // the peer broke the wire protocol

export class LNetError extends Error {
  readonly code: LNetErrorCode;
  constructor(code: LNetErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'LNetError';
    this.code = code;
  }
}
