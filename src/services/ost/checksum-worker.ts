// The checksum worker: one piscina task checksums bytes the pool copied into a
// SharedArrayBuffer, so that no megabyte is cloned between threads (see checksum.ts).
import { checksumBytes, type ChecksumTask } from './checksum-algorithms.js';

export default function checksumTask(task: ChecksumTask): number {
  return checksumBytes(task.type, new Uint8Array(task.sab, 0, task.length));
}
