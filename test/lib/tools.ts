// Runs the project's command-line utilities as a user does: a real process per command, with its
// exit code, stdout and stderr. They run from the build (dist/, what `npm test` makes first and a
// user runs) when it is at least as new as every source file, else from the TypeScript sources
// (node --import=tsx): the same code either way, but a process from dist starts in a third of
// the time, and the suite starts hundreds (every kernel a tool starts inherits how it was run).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Test } from 'tap';

export interface ToolResult { code: number; stdout: string; stderr: string }

const ROOT = join(import.meta.dirname, '../..');

/** Whether dist/ holds a build of every file under src/ made after its last change. */
function buildIsFresh(): boolean {
  const check = (dir: string): boolean => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!check(path)) return false;
      } else if (entry.name.endsWith('.ts')) {
        const built = join(ROOT, 'dist', relative(ROOT, path)).replace(/\.ts$/, '.js');
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) return false;
      }
    }
    return true;
  };
  return process.env.LUSTRE_TEST_FROM_SOURCE !== '1' && check(join(ROOT, 'src'));
}

let fresh: boolean | undefined;

/** The command line that runs a bin: `tool` is its file name without extension ('lctl', 'lustre-kernel', ...). */
export function toolCommand(tool: string): string[] {
  fresh ??= buildIsFresh();
  return fresh
    ? [join(ROOT, 'dist/src/control/bin', `${tool}.js`)]
    : ['--import=tsx', join(ROOT, 'src/control/bin', `${tool}.ts`)];
}

export function runTool(tool: string, args: string[], opts: { env?: Record<string, string>; uid?: number; gid?: number; timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...toolCommand(tool), ...args], {
      env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 120_000,
      ...(opts.uid !== undefined && { uid: opts.uid }), ...(opts.gid !== undefined && { gid: opts.gid }),
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run dirs of lustre.kernel processes under a new temporary folder, cleaned up at the test's end. */
export interface KernelDirs {
  root: string;
  /** Kernel k's run dir: ROOT/k<k>. */
  rd(k: number): string;
  /** The pid kernel k wrote in its run dir. */
  pidOf(k: number): number;
  /** Run at teardown, last pushed first, before the kernels are killed. */
  closers: Array<() => Promise<unknown>>;
}

/**
 * A folder for the kernels `kernels` (their run dirs, their devices). At teardown: the closers,
 * then a SIGKILL to each of those kernels still running, then the folder goes.
 */
export async function kernelDirs(t: Test, prefix: string, kernels: readonly number[]): Promise<KernelDirs> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const rd = (k: number): string => join(root, `k${k}`);
  const pidOf = (k: number): number => Number(readFileSync(join(rd(k), 'kernel.pid'), 'utf8'));
  const closers: Array<() => Promise<unknown>> = [];
  t.teardown(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    for (const k of kernels) {
      try { process.kill(pidOf(k), 'SIGKILL'); } catch { /* gone */ }
    }
    await rm(root, { recursive: true, force: true });
  });
  return { root, rd, pidOf, closers };
}
