// Starting and stopping a node's kernel process: the pid file, the single-kernel-per-run-dir
// rule, signals, and the background start that returns once the kernel answers. The same
// daemon runs as a client kernel (one client mount in a process of its own, under the node's
// run dir; see rundir.ts): it exits by itself once its mount is gone.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { alive } from '../rundir.js';
import type { LevelWithSilent } from 'pino';
import { ControlClient } from '../control-client.js';
import { startMetrics } from '../params/index.js';
import { ControlError } from '../protocol.js';
import { clientRundirs, LNET_FILE, rundirPaths } from '../rundir.js';
import { ControlServer } from './control-server.js';
import { Kernel } from './kernel.js';
import { join } from 'node:path';
import { LNET_DEFAULT_PORT } from '../../lnet/index.js';

export interface DaemonOptions {
  nid: string;
  port?: number;
  rundir: string;
  logLevel?: LevelWithSilent;
  metrics?: { host: string; port: number };
  /** A client kernel: hosts one client mount, no devices, no LNet acceptor; exits when its mount is gone. */
  client?: boolean;
}

/** How long a background start waits for the kernel to answer, and a stop for it to exit. */
export const START_WAIT_MS = 60_000;
export const STOP_WAIT_MS = 120_000;
/** How long stop waits for an exited kernel to be reaped by whoever adopted it. */
const REAP_WAIT_MS = 5000;

/**
 * V8 flags the kernel's process starts with (unless the node running this utility was given the
 * flag already): a larger young generation, so that the short-lived objects of each request die
 * in fewer scavenges. Measured with a FUSE mount in the kernel process: creates and unlinks
 * 5-8% faster than with node's default, in alternating runs (32 MiB semi-spaces; 64 did no
 * better). `npm start` (lustre.start, whose process hosts its kernel) passes it too; a kernel run
 * by hand with --foreground gets it only by `node --max-semi-space-size=32`.
 */
export const KERNEL_NODE_FLAGS = ['--max-semi-space-size=32'];

/** process.execArgv plus the KERNEL_NODE_FLAGS it does not set already. */
export function kernelExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const name = (f: string): string => f.split('=')[0]!;
  return [...execArgv, ...KERNEL_NODE_FLAGS.filter((f) => !execArgv.some((a) => name(a) === name(f)))];
}

/** The pid of a live process holding `rundir`, if any (a stale pid file is removed). */
export function holder(rundir: string): number | undefined {
  const { pidFile } = rundirPaths(rundir);
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) return pid;
  rmSync(pidFile, { force: true });
  return undefined;
}

/** Refuses when a kernel already holds the run dir, naming it. */
export async function refuseIfRunning(rundir: string): Promise<void> {
  const pid = holder(rundir);
  if (pid === undefined) return;
  try {
    const c = await ControlClient.connect(rundir);
    const info = await c.request('ping', {}).finally(() => c.close());
    throw new ControlError('EALREADY', `a lustre.kernel already runs on ${rundir} (pid ${info.pid}, nid ${info.nid}); stop it first with: lustre.kernel stop --rundir ${rundir}`);
  } catch (err) {
    if (err instanceof ControlError && err.code === 'EALREADY') throw err;
    throw new ControlError('EALREADY', `process ${pid} holds ${rundir} (its kernel.pid) but does not answer control requests; if it is not a lustre.kernel, remove ${rundirPaths(rundir).pidFile}`);
  }
}

/** Runs the kernel in this process until a stop request or SIGTERM/SIGINT. */
export async function runForeground(opts: DaemonOptions, ready?: (k: Kernel) => void): Promise<void> {
  const paths = rundirPaths(opts.rundir);
  mkdirSync(opts.rundir, { recursive: true, mode: 0o700 });
  await refuseIfRunning(opts.rundir);
  let fd: number;
  try {
    fd = openSync(paths.pidFile, 'wx', 0o644);
  } catch {
    throw new ControlError('EALREADY', `another lustre.kernel is starting on ${opts.rundir}`);
  }
  writeFileSync(fd, `${process.pid}\n`);
  closeSync(fd);
  // Whatever ends this process (an error while stopping, an uncaught one elsewhere), the pid
  // file it wrote goes with it; one a successor wrote stays.
  process.once('exit', () => {
    try {
      if (Number(readFileSync(paths.pidFile, 'utf8').trim()) === process.pid) rmSync(paths.pidFile, { force: true });
    } catch { /* already gone */ }
  });
  let kernel: Kernel | undefined;
  let server: ControlServer | undefined;
  let metrics: { close(): Promise<void> } | undefined;
  let idleResolve!: () => void;
  const idle = new Promise<void>((resolve) => (idleResolve = resolve));
  try {
    kernel = await Kernel.start({
      ...opts, logFile: paths.logFile,
      // After the reply to the umount that made it idle has been written.
      ...(opts.client && { onLastClientGone: () => setImmediate(idleResolve) }),
    });
    // Where the node's client kernels learn its LNet settings (lustre.mount MGSNID:/fsname DIR).
    if (!opts.client) writeFileSync(join(opts.rundir, LNET_FILE), JSON.stringify({ nid: kernel.nid, port: opts.port ?? LNET_DEFAULT_PORT }) + '\n');
    server = await ControlServer.listen(kernel);
    if (opts.metrics) {
      metrics = await startMetrics(kernel, opts.metrics);
      kernel.log.logger.info(`metrics for Prometheus on http://${opts.metrics.host}:${opts.metrics.port}/metrics`);
    }
  } catch (err) {
    await server?.close();
    await kernel?.stop();
    rmSync(paths.pidFile, { force: true });
    throw err;
  }
  const k = kernel;
  const signalled = new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      process.once(sig, () => {
        k.log.logger.info(`${sig}: stopping`);
        resolve();
      });
    }
  });
  ready?.(k);
  const lastMountGone = idle.then(() => k.log.logger.info('the last client mount is gone: this client kernel stops'));
  await Promise.race([server.stopped, signalled, lastMountGone]);
  try {
    await k.stop();
    await metrics?.close();
    await server.close();
  } catch (err) {
    k.log.logger.error(`stopping: ${(err as Error).message}`);
    throw err;
  } finally {
    // However the stop went, this process is about to exit: the run dir is free again.
    rmSync(paths.pidFile, { force: true });
  }
}

/**
 * Starts `argv` (this utility with --foreground) detached, its output appended to
 * RUNDIR/kernel.out, and returns once the kernel answers a ping; if the process exits
 * first, its last words are the error.
 */
export async function startBackground(rundir: string, script: string, argv: string[]): Promise<{ pid: number; nid: string }> {
  mkdirSync(rundir, { recursive: true, mode: 0o700 });
  await refuseIfRunning(rundir);
  const outFile = `${rundir}/kernel.out`;
  const out = openSync(outFile, 'a', 0o600);
  const child = spawn(process.execPath, [...kernelExecArgv(), script, ...argv], {
    detached: true, stdio: ['ignore', out, out],
  });
  closeSync(out);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.unref();
  const deadline = Date.now() + START_WAIT_MS;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      const words = readFileSync(outFile, 'utf8').trim().split('\n').slice(-3).join('\n');
      throw new ControlError('ECHILD', `the lustre.kernel exited (code ${exited}) before answering: ${words}`);
    }
    try {
      const c = await ControlClient.connect(rundir);
      const info = await c.request('ping', {}).finally(() => c.close());
      if (info.pid === child.pid) return { pid: info.pid, nid: info.nid };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new ControlError('ETIMEDOUT', `the lustre.kernel did not answer within ${START_WAIT_MS / 1000} s; see ${outFile} and ${rundirPaths(rundir).logFile}`);
}

/** Asks the kernel of `rundir` to stop and waits until its process has exited. */
export async function stopKernel(rundir: string): Promise<{ pid: number; unmounted: string[] }> {
  const c = await ControlClient.connect(rundir);
  let pid: number;
  let unmounted: string[];
  try {
    pid = (await c.request('ping', {})).pid;
    unmounted = (await c.request('stop', {})).unmounted;
  } finally {
    c.close();
  }
  const deadline = Date.now() + STOP_WAIT_MS;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new ControlError('ETIMEDOUT', `the lustre.kernel (pid ${pid}) unmounted its devices but did not exit within ${STOP_WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // It has exited. Whoever adopted it (init) reaps it in its own time: wait a little for that,
  // so that once stop returns the pid is gone for kill -0 and ps too, not left a zombie.
  const reap = Date.now() + REAP_WAIT_MS;
  while (exists(pid) && Date.now() < reap) await new Promise((r) => setTimeout(r, 50));
  return { pid, unmounted };
}

/** Whether any process, a zombie included, has `pid`. */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits until process `pid` has exited; false when it still runs after `limitMs`. */
export async function waitForExit(pid: number, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * Stops the client kernels of a node (RUNDIR/clients/*): each unmounts its client mount,
 * forced (requests in flight fail), and exits. Returns the run dirs stopped; one that does not
 * answer is killed with SIGTERM.
 */
export async function stopClientKernels(nodeRundir: string): Promise<string[]> {
  const stopped: string[] = [];
  for (const rundir of clientRundirs(nodeRundir)) {
    const pid = holder(rundir);
    if (pid === undefined) continue;
    try {
      await stopKernel(rundir);
    } catch {
      process.kill(pid, 'SIGTERM');
      await waitForExit(pid, STOP_WAIT_MS);
    }
    stopped.push(rundir);
  }
  return stopped;
}
