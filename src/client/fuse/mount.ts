// Mounting and unmounting with the system's own tools, as child processes.
//
// mount(8) is run with the /dev/fuse fd as its fd 3 and `-o fd=3`: the kernel ties the new
// super block to that open file, and the session reads and answers requests on its own copy.
// `-i` keeps mount(8) from calling a /sbin/mount.fuse helper; `--no-canonicalize` keeps it from
// taking a source name that happens to exist as a relative path for that path. umount(8) always runs in a child
// process and is awaited asynchronously: it looks the mount point up, which is a FUSE request
// that only this process can answer, so waiting for it synchronously would deadlock.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';

export interface MountArgs {
  fd: number;
  mountpoint: string;
  fsName: string;
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  maxReadBytes: number;
}

export interface ToolError extends Error { code: string; stderr: string }

function run(cmd: string, args: string[], fd?: number): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
    if (fd !== undefined) stdio.push(fd);
    const child = spawn(cmd, args, { stdio });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

function toolError(what: string, code: string, stderr: string): ToolError {
  return Object.assign(new Error(`${what}: ${stderr.trim() || code}`), { code, stderr });
}

export function mountOptions(a: MountArgs): string {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const o = [`fd=3`, `rootmode=40000`, `user_id=${uid}`, `group_id=${gid}`, `max_read=${a.maxReadBytes}`];
  if (a.allowOther) o.push('allow_other');
  if (a.defaultPermissions) o.push('default_permissions');
  return o.join(',');
}

export async function mountFuse(a: MountArgs): Promise<void> {
  const r = await run('mount', ['-i', '--no-canonicalize', '-t', `fuse.${a.subtype}`, '-o', mountOptions(a), a.fsName, a.mountpoint], a.fd);
  if (r.code !== 0) throw toolError(`mount ${a.mountpoint}`, r.stderr.includes('busy') ? 'EBUSY' : 'EMOUNT', r.stderr);
}

export async function umountFuse(mountpoint: string, lazy: boolean): Promise<void> {
  const r = await run('umount', lazy ? ['-l', mountpoint] : [mountpoint]);
  if (r.code !== 0) throw toolError(`umount ${mountpoint}`, /busy/i.test(r.stderr) ? 'EBUSY' : 'EUMOUNT', r.stderr);
}

/** mountinfo escapes space, tab, newline and backslash in octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountinfoEntry { mountpoint: string; major: number; minor: number; fstype: string; source: string }

export function mountinfo(): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const dash = f.indexOf('-');
    const [major, minor] = (f[2] ?? '0:0').split(':').map(Number);
    out.push({ mountpoint: unescapeMountinfo(f[4] ?? ''), major: major!, minor: minor!, fstype: f[dash + 1] ?? '', source: unescapeMountinfo(f[dash + 2] ?? '') });
  }
  return out;
}

/** The FUSE mount at this path, if there is one (the last one mounted over it). */
export function fuseMountAt(mountpoint: string): MountinfoEntry | undefined {
  return mountinfo().filter((m) => m.mountpoint === mountpoint && m.fstype.startsWith('fuse')).at(-1);
}

const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Aborts a FUSE connection through fusectl: every request waiting fails at once (ENOTCONN for
 * the callers, ENODEV for the readers). Mounts fusectl when it is not mounted. Synchronous,
 * never touches the mount point itself: safe from an exit handler. Returns whether it worked.
 */
export function abortConnection(connectionId: number): boolean {
  try {
    if (existsSync(FUSECTL) && readdirSync(FUSECTL).length === 0) {
      spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore', timeout: 5000 });
    }
    writeFileSync(`${FUSECTL}/${connectionId}/abort`, '1');
    return true;
  } catch {
    return false;
  }
}
