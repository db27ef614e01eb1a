// The kernel's side of the control protocol (spec in ../protocol.ts): a unix socket in the run
// dir, each line checked at the edge and dispatched to the Kernel or its parameter tree.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { checkLfsRequest, serveLfs } from '../lfs/index.js';
import { deviceList } from '../params/index.js';
import {
  checkRequest, ControlError, MAX_CONTROL_LINE_BYTES,
  type ControlOps, type ControlReply, type ControlRequest,
} from '../protocol.js';
import { rundirPaths } from '../rundir.js';
import type { Kernel } from './kernel.js';

/** Control connections served at once; one more is refused with a reason. */
export const MAX_CONTROL_CONNECTIONS = 64;

export class ControlServer {
  readonly #kernel: Kernel;
  readonly #server: Server;
  readonly #path: string;
  readonly #sockets = new Set<Socket>();
  /** Resolves when a `stop` request has been answered: the daemon then exits. */
  readonly stopped: Promise<void>;
  #stoppedResolve!: () => void;

  private constructor(kernel: Kernel, path: string) {
    this.#kernel = kernel;
    this.#path = path;
    this.stopped = new Promise((resolve) => (this.#stoppedResolve = resolve));
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Listens on RUNDIR/control.sock with mode 0600; the run dir is made 0700. */
  static async listen(kernel: Kernel): Promise<ControlServer> {
    const { rundir, socket } = rundirPaths(kernel.rundir);
    mkdirSync(rundir, { recursive: true, mode: 0o700 });
    chmodSync(rundir, 0o700);
    rmSync(socket, { force: true }); // a kernel killed with SIGKILL leaves its socket behind
    const server = new ControlServer(kernel, socket);
    // The socket is created 0600 from the start: no moment where another user could connect.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.#server.once('error', reject);
        server.#server.listen(socket, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    chmodSync(socket, 0o600);
    return server;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.end();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.#path, { force: true });
  }

  #accept(socket: Socket): void {
    if (this.#sockets.size >= MAX_CONTROL_CONNECTIONS) {
      socket.end(line({ id: 0, ok: false, error: { code: 'EMFILE', message: `the kernel serves ${MAX_CONTROL_CONNECTIONS} control connections at most; retry` } }));
      return;
    }
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    let buffered = '';
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!this.#receive(socket, text)) return;
      }
      if (Buffer.byteLength(buffered) >= MAX_CONTROL_LINE_BYTES) this.#refuse(socket, `a control request line is longer than ${MAX_CONTROL_LINE_BYTES} bytes`);
    });
  }

  /** Decodes one line; false when the connection was closed for it. */
  #receive(socket: Socket, text: string): boolean {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#refuse(socket, `a control request line is not JSON: ${JSON.stringify(text.slice(0, 60))}`);
      return false;
    }
    let request: ControlRequest;
    try {
      request = checkRequest(value);
    } catch (err) {
      const id = Number.isSafeInteger((value as { id?: unknown })?.id) ? (value as { id: number }).id : 0;
      if (id <= 0) {
        this.#refuse(socket, (err as Error).message);
        return false;
      }
      send(socket, { id, ok: false, error: errorOf(err) });
      return true;
    }
    void this.#serve(socket, request);
    return true;
  }

  #refuse(socket: Socket, message: string): void {
    this.#kernel.log.logger.warn(`control: ${message}; connection closed`);
    socket.end(line({ id: 0, ok: false, error: { code: 'EPROTO', message } }));
    socket.destroy();
  }

  async #serve(socket: Socket, request: ControlRequest): Promise<void> {
    let reply: ControlReply;
    try {
      reply = { id: request.id, ok: true, result: await this.#dispatch(request) };
    } catch (err) {
      const error = errorOf(err);
      if (!(err instanceof ControlError) && !isErrno(err)) this.#kernel.log.logger.error({ err }, `control ${request.op} failed`);
      reply = { id: request.id, ok: false, error };
    }
    send(socket, reply);
    if (request.op === 'stop' && reply.ok) {
      await new Promise<void>((resolve) => socket.end(resolve));
      this.#stoppedResolve();
    }
  }

  async #dispatch(r: ControlRequest): Promise<unknown> {
    const k = this.#kernel;
    switch (r.op) {
      case 'ping': return { version: k.version, nid: k.nid, pid: process.pid };
      case 'status': return k.status();
      case 'mount': {
        const { device, options } = r.args as ControlOps['mount']['args'];
        const target = await k.mount(device, options);
        return { svname: target.svname, services: target.running.map((x) => x.name) };
      }
      case 'mount_client': {
        const { spec, mountpoint, options } = r.args as ControlOps['mount_client']['args'];
        const c = await k.mountClient(spec, mountpoint, options);
        return { spec: c.spec, mountpoint: c.mountpoint };
      }
      case 'umount': {
        const { target, force } = r.args as ControlOps['umount']['args'];
        return k.umount(target, force);
      }
      case 'dl': return deviceList(k);
      case 'get_param': {
        const out = [];
        const { patterns, recursive } = r.args as ControlOps['get_param']['args'];
        for (const p of patterns) out.push(...(await k.params.get(p, { recursive: recursive ?? false })));
        return out;
      }
      case 'list_param': {
        const out = [];
        const { patterns, recursive } = r.args as ControlOps['list_param']['args'];
        for (const p of patterns) out.push(...(await k.params.list(p, { recursive: recursive ?? false })));
        return out;
      }
      case 'set_param': {
        const out = [];
        for (const s of (r.args as ControlOps['set_param']['args']).settings) out.push(...(await k.params.set(s.pattern, s.value)));
        return out;
      }
      case 'lfs': return serveLfs(checkLfsRequest((r.args as ControlOps['lfs']['args']).request), (p) => k.resolveClient(p));
      case 'dk': return k.log.ring.dump((r.args as ControlOps['dk']['args']).clear);
      case 'stop': return { unmounted: await k.stop() };
      case 'replay_barrier': {
        const { target } = r.args as ControlOps['replay_barrier']['args'];
        const t = k.targets().find((x) => x.svname === target || x.device === resolve(target));
        if (!t) throw new ControlError('ENOENT', `${target} is not a target mounted on this kernel (lctl dl lists them)`);
        const txg = await t.osd.replayBarrier();
        k.log.logger.warn({ svname: t.svname }, `REPLAY BARRIER on ${t.svname} at txg ${txg}: later updates are not durable until it is mounted again`);
        return { svname: t.svname, txg };
      }
    }
  }
}

function line(reply: ControlReply): string {
  return JSON.stringify(reply) + '\n';
}

function send(socket: Socket, reply: ControlReply): void {
  if (!socket.destroyed) socket.write(line(reply));
}

function isErrno(err: unknown): boolean {
  return typeof (err as { code?: unknown })?.code === 'string' && /^E[A-Z0-9]+$/.test((err as { code: string }).code);
}

function errorOf(err: unknown): { code: string; message: string } {
  if (isErrno(err)) return { code: (err as { code: string }).code, message: (err as Error).message };
  return { code: 'EIO', message: `internal error: ${(err as Error)?.message ?? String(err)} (see lctl dk)` };
}
