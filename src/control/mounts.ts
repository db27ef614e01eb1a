// Which kernel serves a client mount point: a utility given only a path (lfs getstripe
// /mnt/lustre/f) finds the run dir of the lustre.kernel hosting that mount here. Each kernel
// records its client mounts as small files in one folder per user, removed at unmount; an
// entry whose kernel is gone (killed) is ignored. A client mount made with lustre.mount runs in
// a client kernel of its own, so its entry names that kernel's run dir (RUNDIR/clients/X) and
// pid: lustre.umount, lfs and lctl find it here.
//
//   <registry>/<sha1 of the mount point>.json   {"mountpoint": "/mnt/lustre", "rundir": "/run/lustre", "pid": 1234}
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { alive } from './rundir.js';

export function registryDir(): string {
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/lustre-mounts' : join(tmpdir(), `lustre-mounts-${uid}`);
}

const entryOf = (mountpoint: string): string =>
  join(registryDir(), `${createHash('sha1').update(mountpoint).digest('hex')}.json`);

export function registerMount(mountpoint: string, rundir: string): void {
  mkdirSync(registryDir(), { recursive: true, mode: 0o755 });
  writeFileSync(entryOf(mountpoint), JSON.stringify({ mountpoint, rundir, pid: process.pid }) + '\n');
}

export function unregisterMount(mountpoint: string): void {
  rmSync(entryOf(mountpoint), { force: true });
}

export interface MountEntry { mountpoint: string; rundir: string; pid: number }

/** The registry's entries whose kernel is alive. */
function liveEntries(): MountEntry[] {
  let names: string[];
  try {
    names = readdirSync(registryDir());
  } catch {
    return [];
  }
  const out: MountEntry[] = [];
  for (const name of names) {
    let e: { mountpoint?: unknown; rundir?: unknown; pid?: unknown };
    try {
      e = JSON.parse(readFileSync(join(registryDir(), name), 'utf8')) as typeof e;
    } catch {
      continue;
    }
    if (typeof e.mountpoint !== 'string' || typeof e.rundir !== 'string' || typeof e.pid !== 'number' || !alive(e.pid)) continue;
    out.push({ mountpoint: e.mountpoint, rundir: e.rundir, pid: e.pid });
  }
  return out;
}

/** The live client mount holding `path` (the innermost one), if any. */
export function mountOfPath(path: string): MountEntry | undefined {
  const p = resolve(path);
  let best: MountEntry | undefined;
  for (const e of liveEntries()) {
    const m = e.mountpoint;
    if ((p === m || p.startsWith(m.endsWith('/') ? m : m + '/')) && (!best || m.length > best.mountpoint.length)) best = e;
  }
  return best;
}

/** The run dir of the live kernel whose client mount holds `path`, if any. */
export function rundirOfPath(path: string): string | undefined {
  return mountOfPath(path)?.rundir;
}
