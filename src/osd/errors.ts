// Expected failures of the OSD, as typed errors with a stable `code` (errno names, as Lustre
// returns them to clients). Broken invariants are not OsdErrors: they are assert()s.
import { OutcomeError } from '../log/index.js';

export type OsdErrorCode =
  | 'ENOENT' // no such object, xattr owner or index
  | 'EEXIST' // object, index name or xattr (with the create flag) already exists
  | 'ENOSPC' // no free bytes or objects on the device
  | 'ENODATA' // no such xattr
  | 'ENOTDIR' // an index operation on an object that is not an index
  | 'EISDIR' // a data operation on an index object
  | 'EINVAL' // a malformed argument (bad FID, negative offset, unknown attribute)
  | 'ENOTEMPTY' // destroy of an index that still holds entries
  | 'EFBIG' // an offset or size beyond the largest the device supports
  | 'EROFS'; // a transaction on a device opened read-only

/** Answers that lookups expect (a name not there yet, an xattr not set): thrown without a stack trace. */
const OUTCOMES = new Set<OsdErrorCode>(['ENOENT', 'EEXIST', 'ENODATA']);

export class OsdError extends OutcomeError {
  readonly code: OsdErrorCode;
  constructor(code: OsdErrorCode, message: string) {
    super(`${code}: ${message}`, OUTCOMES.has(code));
    this.name = 'OsdError';
    this.code = code;
  }
}

export type OsdDeviceErrorCode =
  | 'ENODEV' // the path is not an OSD device
  | 'EVERSION' // the device has a format version this code does not know
  | 'EALREADY' // format refused: the folder already holds a device
  | 'EBUSY' // the device is open in another OSD (LevelDB's lock)
  | 'ECLOSED'; // the OSD is closed

/** A device-level refusal (format, open, use after close). */
export class OsdDeviceError extends Error {
  readonly code: OsdDeviceErrorCode;
  readonly path: string;
  constructor(code: OsdDeviceErrorCode, path: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'OsdDeviceError';
    this.code = code;
    this.path = path;
  }
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
