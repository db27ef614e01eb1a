// Runs the project's command-line utilities as a user does: a real process per command, from
// the TypeScript sources (node --import=tsx), with its exit code, stdout and stderr.
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export interface ToolResult { code: number; stdout: string; stderr: string }

const BIN = join(import.meta.dirname, '../../src/control/bin');

/** `tool` is the bin's file name without .ts: 'lctl', 'lustre-kernel', 'lustre-mount', ... */
export function runTool(tool: string, args: string[], opts: { env?: Record<string, string>; uid?: number; gid?: number; timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import=tsx', join(BIN, `${tool}.ts`), ...args], {
      env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 120_000,
      ...(opts.uid !== undefined && { uid: opts.uid }), ...(opts.gid !== undefined && { gid: opts.gid }),
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
