// A whole file system for tests that use it as a user does: one lustre.kernel process (started
// with the real utility) on a loopback NID hosting an MGS+MDT and OSTs, and FUSE client mounts
// of it. Everything is stopped and removed at the test's end, also when it fails.
import type { Test } from 'tap';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTarget } from '../../src/services/target/index.js';
import { whyNoFuse } from './fuse.js';
import { freePort } from './net.js';
import { runTool, type ToolResult } from './tools.js';

export interface Cluster {
  root: string;
  rundir: string;
  nid: string;
  port: number;
  fsname: string;
  /** MGSNID:/fsname */
  spec: string;
  /** Runs a utility against this cluster's kernel (LUSTRE_RUNDIR set); fails the test on a non-zero exit unless allowed. */
  tool(name: string, args: string[], opts?: { allowFailure?: boolean }): Promise<ToolResult>;
  /** Mounts a FUSE client at a new mount point and returns its path. */
  mountClient(name?: string): Promise<string>;
  umountClient(mnt: string): Promise<void>;
}

/** Whether FUSE mounts can be made here (root and /dev/fuse). */
export function fuseAvailable(): boolean {
  return whyNoFuse() === null;
}

export async function startCluster(t: Test, opts: { osts?: number; fsname?: string; nid?: string } = {}): Promise<Cluster> {
  const fsname = opts.fsname ?? 'testfs';
  const nid = opts.nid ?? '127.0.0.2@tcp';
  const port = await freePort();
  const root = await mkdtemp(join(tmpdir(), 'cluster-'));
  const rundir = join(root, 'run');
  const mounts: string[] = [];
  const tool = async (name: string, args: string[], o: { allowFailure?: boolean } = {}): Promise<ToolResult> => {
    const r = await runTool(name, args, { env: { LUSTRE_RUNDIR: rundir } });
    if (r.code !== 0 && !o.allowFailure) throw new Error(`${name} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  };
  t.teardown(async () => {
    for (const m of mounts) await runTool('lustre-umount', ['--force', m], { env: { LUSTRE_RUNDIR: rundir } });
    const r = await runTool('lustre-kernel', ['stop'], { env: { LUSTRE_RUNDIR: rundir } });
    if (r.code !== 0) {
      const pid = Number(await readFile(join(rundir, 'kernel.pid'), 'utf8').catch(() => '0'));
      if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await rm(root, { recursive: true, force: true });
  });
  await tool('lustre-kernel', ['start', '--nid', nid, '--port', String(port), '--rundir', rundir]);
  await formatTarget(join(root, 'mdt0'), { fsname, mgs: true, mdt: true, index: 0 });
  await tool('lustre-mount', [join(root, 'mdt0')]);
  for (let i = 0; i < (opts.osts ?? 2); i++) {
    await formatTarget(join(root, `ost${i}`), { fsname, ost: true, index: i, mgsNids: [nid] });
    await tool('lustre-mount', [join(root, `ost${i}`)]);
  }
  const spec = `${nid}:/${fsname}`;
  let n = 0;
  return {
    root, rundir, nid, port, fsname, spec, tool,
    async mountClient(name = `mnt${n++}`) {
      const mnt = join(root, name);
      await mkdir(mnt, { recursive: true });
      await tool('lustre-mount', [spec, mnt]);
      mounts.push(mnt);
      return mnt;
    },
    async umountClient(mnt: string) {
      await tool('lustre-umount', [mnt]);
      mounts.splice(mounts.indexOf(mnt), 1);
    },
  };
}
