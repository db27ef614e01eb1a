// open(2) flags as node:fs takes them: a number (Linux's values, fs.constants) or one of Node's
// strings ('r', 'r+', 'w', 'wx', 'w+', 'wx+', 'a', 'ax', 'a+', 'ax+', with 's' variants).
import { OpenFlag } from '../services/mdt/protocol.js';
import { FsError } from './errors.js';

const O_SYNC = 0o4010000;

const STRING_FLAGS: Record<string, number> = {
  r: OpenFlag.RDONLY,
  rs: OpenFlag.RDONLY | O_SYNC,
  sr: OpenFlag.RDONLY | O_SYNC,
  'r+': OpenFlag.RDWR,
  'rs+': OpenFlag.RDWR | O_SYNC,
  'sr+': OpenFlag.RDWR | O_SYNC,
  w: OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.WRONLY,
  wx: OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL,
  xw: OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL,
  'w+': OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.RDWR,
  'wx+': OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.RDWR | OpenFlag.EXCL,
  'xw+': OpenFlag.TRUNC | OpenFlag.CREAT | OpenFlag.RDWR | OpenFlag.EXCL,
  a: OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.WRONLY,
  ax: OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL,
  xa: OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.WRONLY | OpenFlag.EXCL,
  as: OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.WRONLY | O_SYNC,
  sa: OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.WRONLY | O_SYNC,
  'a+': OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.RDWR,
  'ax+': OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.RDWR | OpenFlag.EXCL,
  'xa+': OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.RDWR | OpenFlag.EXCL,
  'as+': OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.RDWR | O_SYNC,
  'sa+': OpenFlag.APPEND | OpenFlag.CREAT | OpenFlag.RDWR | O_SYNC,
};

export { O_SYNC, OpenFlag };

export function parseFlags(flags: string | number | undefined, syscall: string, path: string): number {
  if (flags === undefined) return OpenFlag.RDONLY;
  if (typeof flags === 'number') {
    if (!Number.isSafeInteger(flags) || flags < 0) throw new FsError('EINVAL', syscall, path, undefined, `flags ${flags}`);
    return flags;
  }
  const v = STRING_FLAGS[flags];
  if (v === undefined) throw new FsError('EINVAL', syscall, path, undefined, `unknown file open flag ${JSON.stringify(flags)}`);
  return v;
}

export const canRead = (flags: number): boolean => (flags & OpenFlag.ACCMODE) !== OpenFlag.WRONLY;
export const canWrite = (flags: number): boolean => (flags & OpenFlag.ACCMODE) !== OpenFlag.RDONLY;
