// What the fsx-style exercisers share (test/client/fsx-fuse.test.ts on one mount,
// test/client/fsx-two-mounts.test.ts across two): the file's bound, the bytes a write puts down,
// the sizes of writes and reads, and the failure that carries the last operations.
import type { Prng } from './prng.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The file never grows past this (fsx's maxfilelen): big enough for holes and multi-MiB writes. */
export const FILE_MAX = 8 * MiB;
/** Operations a failure shows. */
export const LOG_TAIL = 40;

/** Bytes a write puts down: derived from the op number and the file offset, never all zeros. */
export function pattern(op: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  const base = (op * 131) & 0xff;
  for (let i = 0; i < length; i++) b[i] = (base + ((offset + i) % 251) + 1) & 0xff || 0x5a;
  return b;
}

/** A size for a write or a read: mostly small, sometimes hundreds of KiB, now and then a few MiB. */
export function ioSize(r: Prng): number {
  const p = r.next();
  if (p < 0.75) return 1 + r.int(16 * KiB);
  if (p < 0.97) return 1 + r.int(256 * KiB);
  return 1 + r.int(3 * MiB);
}

/** A difference from the model: what differed, with the seed, and the last operations before it. */
export class FsxFailure extends Error {
  constructor(message: string, readonly tail: string[]) {
    super(message);
  }
}
