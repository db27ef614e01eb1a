// The utilities' side of the control protocol (spec in protocol.ts): one connection to the
// kernel of a run dir, requests matched to replies by id.
import { createConnection, type Socket } from 'node:net';
import {
  CONTROL_MAGIC, CONTROL_VERSION, ControlError, MAX_CONTROL_LINE_BYTES,
  type ControlOp, type ControlOps, type ControlProgress, type ControlReply,
} from './protocol.js';
import { rundirPaths } from './rundir.js';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: ((p: ControlProgress) => void) | undefined;
}

export class ControlClient {
  readonly rundir: string;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #buffered = '';
  #closed: Error | undefined;

  private constructor(rundir: string, socket: Socket) {
    this.rundir = rundir;
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#receive(chunk));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new ControlError('ECONNRESET', `the lustre.kernel of ${rundir} closed the control connection`)));
  }

  /** Connects to the kernel of `rundir`; says plainly when none runs there. */
  static connect(rundir: string): Promise<ControlClient> {
    const { socket: path } = rundirPaths(rundir);
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new ControlClient(rundir, socket)));
      socket.once('error', (err: NodeJS.ErrnoException) => reject(noKernelError(rundir, err)));
    });
  }

  request<Op extends ControlOp>(
    op: Op, args: ControlOps[Op]['args'], onProgress?: (p: ControlProgress) => void,
  ): Promise<ControlOps[Op]['result']> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    const line = JSON.stringify({ magic: CONTROL_MAGIC, version: CONTROL_VERSION, id, op, args }) + '\n';
    if (Buffer.byteLength(line) > MAX_CONTROL_LINE_BYTES) {
      return Promise.reject(new ControlError('E2BIG', `${op}: the request is larger than ${MAX_CONTROL_LINE_BYTES} bytes`));
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
      this.#socket.write(line);
    });
  }

  close(): void {
    this.#socket.end();
  }

  #receive(chunk: string): void {
    this.#buffered += chunk;
    for (let nl = this.#buffered.indexOf('\n'); nl >= 0; nl = this.#buffered.indexOf('\n')) {
      const line = this.#buffered.slice(0, nl);
      this.#buffered = this.#buffered.slice(nl + 1);
      this.#deliver(line);
    }
    if (this.#buffered.length > MAX_CONTROL_LINE_BYTES) {
      this.#fail(new ControlError('EPROTO', 'the kernel sent a reply line larger than the protocol allows'));
      this.#socket.destroy();
    }
  }

  #deliver(line: string): void {
    let reply: ControlReply;
    try {
      reply = JSON.parse(line) as ControlReply;
    } catch {
      this.#fail(new ControlError('EPROTO', `the kernel sent a reply that is not JSON: ${line.slice(0, 80)}`));
      return;
    }
    if (reply.id === 0 && 'ok' in reply && !reply.ok) {
      this.#fail(new ControlError(reply.error.code, reply.error.message));
      return;
    }
    const p = this.#pending.get(reply.id);
    if (!p) return;
    if ('progress' in reply) {
      p.onProgress?.(reply.progress);
      return;
    }
    this.#pending.delete(reply.id);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(new ControlError(reply.error.code, reply.error.message));
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }
}

function noKernelError(rundir: string, err: NodeJS.ErrnoException): Error {
  const hint = `start one with: lustre.kernel start --nid ADDR@tcp --rundir ${rundir}  (or set LUSTRE_RUNDIR to the run dir of a running one)`;
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new ControlError('ENOTCONN', `no lustre.kernel is running on ${rundir}; ${hint}`);
  }
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new ControlError('EACCES', `permission denied on ${rundirPaths(rundir).socket}: only the user who started the lustre.kernel (root on a server) may control it`);
  }
  return new ControlError(err.code ?? 'EIO', `cannot reach the lustre.kernel of ${rundir}: ${err.message}`);
}

/** One request on a fresh connection: what most utilities do. */
export async function callKernel<Op extends ControlOp>(
  rundir: string, op: Op, args: ControlOps[Op]['args'], onProgress?: (p: ControlProgress) => void,
): Promise<ControlOps[Op]['result']> {
  const client = await ControlClient.connect(rundir);
  try {
    return await client.request(op, args, onProgress);
  } finally {
    client.close();
  }
}
