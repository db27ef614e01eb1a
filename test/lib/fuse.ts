// Whether this machine lets a test mount FUSE file systems itself.
import { accessSync, constants as fsc } from 'node:fs';

/** Why FUSE mounts cannot be made here (no usable /dev/fuse, not root: mount -o fd=3), or null when they can. */
export function whyNoFuse(): string | null {
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    return '/dev/fuse is missing or not usable here';
  }
  if (process.getuid?.() !== 0) return 'mounting with mount -o fd=3 needs root';
  return null;
}
