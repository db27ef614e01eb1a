// A child process a test talks to line by line: it prints what it reached ("locked", "trying")
// and waits on its stdin for the test to let it go on. For lock holders and waiters on FUSE
// mounts, where the test needs to know that a process holds a lock, or waits for one, right now.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { until } from './net.js';

export interface LineChild {
  readonly pid: number;
  /** Every line it printed on stdout so far. */
  readonly lines: readonly string[];
  /** Its exit code once it has ended (null while it runs, or when a signal ended it). */
  readonly code: number | null;
  readonly exited: boolean;
  /** Resolves with the first line matching `re` (printed already or to come); rejects when it exits first or after limitMs. */
  line(re: RegExp, limitMs?: number): Promise<string>;
  /** Writes a line to its stdin. */
  send(text: string): void;
  /** Resolves with its exit code once it has ended. */
  wait(limitMs?: number): Promise<number | null>;
  /** What it printed on stderr, for messages. */
  stderr(): string;
}

/**
 * Starts `command args` with pipes; it is killed (SIGKILL, by its own pid) at the test's end if
 * it still runs. `limitMs` bounds each wait of line() and wait().
 */
export function startLineChild(t: Test, command: string, args: string[], opts: { env?: Record<string, string> } = {}): LineChild {
  const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  let code: number | null = null;
  let exited = false;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (err.length < 1 << 16) err += chunk;
  });
  child.on('exit', (c) => {
    code = c;
    exited = true;
  });
  child.stdin!.on('error', () => undefined);
  t.teardown(() => {
    if (!exited && child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  });
  const describe = (): string => `${command} ${args.join(' ')} (printed ${JSON.stringify(lines)}, stderr ${JSON.stringify(err.trim())})`;
  return {
    pid: child.pid ?? -1,
    lines,
    get code() { return code; },
    get exited() { return exited; },
    async line(re, limitMs = 20_000) {
      let found: string | undefined;
      await until(`a line ${re} from ${describe()}`, () => {
        found = lines.find((l) => re.test(l));
        if (found === undefined && exited && partial === '') throw new Error(`exited (${code}) before a line ${re}: ${describe()}`);
        return found !== undefined;
      }, limitMs);
      return found!;
    },
    send(text) {
      child.stdin!.write(`${text}\n`);
    },
    async wait(limitMs = 20_000) {
      await until(`the end of ${describe()}`, () => exited, limitMs);
      return code;
    },
    stderr: () => err,
  };
}
