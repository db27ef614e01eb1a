// The file system library's errors: what node:fs gives its users. Every failure of a call is an
// FsError with Node's `code` ('ENOENT'), `errno` (negative, as libuv numbers it), `syscall`
// ('open') and `path` (and `dest` for two-path calls), and Node's message layout
// "ENOENT: no such file or directory, open '/a/b'", followed by what the servers said when that
// helps ("- no b in [0x200000007:0x1:0x0]").
//
// Errors from below (MdcError, PtlrpcError, LovError, the OSC's) carry an errno name in `code`;
// toFsError() keeps it when it is one a user knows, and maps the transport's own (ESHUTDOWN,
// EPROTO) onto what a file system call answers: EIO, or ENOTCONN once the mount is gone.
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const errnos = constants.errno as Record<string, number>;
const descriptions = getSystemErrorMap();

export class FsError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string | undefined;
  readonly dest: string | undefined;

  constructor(code: string, syscall: string, path?: string, dest?: string, detail?: string) {
    const errno = -(errnos[code] ?? errnos.EIO!);
    const what = descriptions.get(errno)?.[1] ?? code.toLowerCase();
    const where = path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`;
    super(`${code}: ${what}, ${syscall}${where}${detail ? ` - ${detail}` : ''}`);
    this.name = 'Error';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
    this.dest = dest;
  }
}

/** Codes of the layers below that a file system call does not answer with as they are. */
const TRANSPORT_CODES: Record<string, string> = {
  ESHUTDOWN: 'EIO', EPROTO: 'EIO', ENOBUFS: 'EIO', EAGAIN: 'EIO', ENODEV: 'EIO', ECONNREFUSED: 'EIO', ECONNRESET: 'EIO',
  EHOSTUNREACH: 'EIO',
};

/** Any error of a call as the FsError of `syscall` on `path`. */
export function toFsError(err: unknown, syscall: string, path?: string, dest?: string): FsError {
  if (err instanceof FsError) {
    if (err.syscall === syscall && err.path === path) return err;
    return new FsError(err.code, syscall, path, dest, detailOf(err));
  }
  const e = err as { code?: unknown; message?: unknown };
  let code = typeof e?.code === 'string' ? e.code : 'EIO';
  code = TRANSPORT_CODES[code] ?? code;
  if (errnos[code] === undefined) code = 'EIO';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  // A server's plain refusal says nothing the code does not ("mds_reint (36) xid ... failed on
  // the server: ENOENT (-2)"); what the layers below say otherwise (a deadline passed, an OST
  // unreachable) is kept.
  const detail = /failed on the server/.test(message) ? undefined : message.replace(/^[A-Z0-9]+: /, '');
  return new FsError(code, syscall, path, dest, detail);
}

function detailOf(err: FsError): string | undefined {
  const i = err.message.indexOf(' - ');
  return i < 0 ? undefined : err.message.slice(i + 3);
}

/** Runs fn; whatever it throws comes out as the FsError of syscall on path. */
export async function fsCall<T>(syscall: string, path: string | undefined, fn: () => Promise<T>, dest?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFsError(err, syscall, path, dest);
  }
}
