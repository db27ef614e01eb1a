// The MDT's expected failures: a PtlrpcError carrying the negative errno the client gets as
// pb_status ('ENOENT', 'ENOTEMPTY', ...). OSD errors met inside an operation keep their code.
import { PtlrpcError } from '../../ptlrpc/index.js';
import { MdtErrno, type MdtErrnoName } from './protocol.js';

export function mdtError(code: MdtErrnoName, message: string): PtlrpcError {
  return new PtlrpcError(code, `${code}: ${message}`, -MdtErrno[code]);
}

/** An error from below (OSD, layout, protocol decoding) as the status the client sees. */
export function asMdtError(err: unknown): unknown {
  if (err instanceof PtlrpcError) return err;
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && code in MdtErrno) return mdtError(code as MdtErrnoName, (err as Error).message);
  return err;
}
