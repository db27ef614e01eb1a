// The reverse import of an export: how a server sends requests to one of its clients. Lustre
// gives every export one (exp_imp_reverse) and sends lock callbacks through it: blocking
// (LDLM_BL_CALLBACK), completion (LDLM_CP_CALLBACK) and glimpse (LDLM_GL_CALLBACK) requests
// go to the client's LDLM_CB_REQUEST_PORTAL (15); the client's answer comes back to the
// server's LDLM_CB_REPLY_PORTAL (16) with the request's xid as match bits.
//
// The request is an ordinary lustre_msg_v2 (see wire.ts) with a fresh xid of the server's
// network interface (unique beside the xids of its own imports), pb_handle the client's own
// connect handle when known (Lustre's imp_remote_handle of the reverse import), and
// pb_version LUSTRE_DLM_VERSION. The peer is the export's (its NID and LNet pid): a client
// kernel's pid carries LNET_PID_USERFLAG, and LNet reaches it over the connection it opened.
//
// Unlike a client's import there is no resend and no reconnect: a callback that gets no answer
// within its timeout fails with ETIMEDOUT, and what follows is the caller's (the lock manager
// evicts the client, as Lustre's ldlm_handle_ast_error does). Lustre resends an AST only
// across a reconnect of the client; that is left out.
//
// Bounds: at most REVERSE_RPCS_IN_FLIGHT_MAX requests on the wire per export, at most
// REVERSE_QUEUE_MAX more waiting (beyond it request() fails with ENOBUFS); the timeout counts
// from the call, so time spent waiting for a slot is part of it.
import type { Subscription } from 'rxjs';
import { MsgType, PTLRPC_MSG_VERSION, Portal, TargetVersion, opcodeName } from './constants.js';
import { PtlrpcError, remoteError } from './errors.js';
import type { Export } from './export.js';
import type { Reply } from './import.js';
import { nextXid } from './import-parts.js';
import { portalEvents, postMessage, type MdHandle, type Network, type PutEvent } from './transport.js';
import { decodeMessage, encodeMessage, makeBody } from './wire.js';

/**
 * Lustre's ldlm_timeout (LDLM_TIMEOUT_DEFAULT, 20 s): how long a lock callback waits for the
 * client's answer (ldlm_get_rq_timeout takes min(ldlm_timeout, obd_timeout / 3) = 20 s).
 */
export const LDLM_TIMEOUT_MS = 20_000;
/** Callbacks on the wire to one client at once; more wait for a slot. */
export const REVERSE_RPCS_IN_FLIGHT_MAX = 8;
/** Callbacks waiting for a slot, per client; beyond it request() fails with ENOBUFS. */
export const REVERSE_QUEUE_MAX = 1024;
/** The largest reply a client may send to a callback (a glimpse's LVB is 56 bytes). */
export const REVERSE_REPLY_BYTES_MAX = 16 * 1024;

export interface ReverseRequestOptions {
  /** How long to wait for the reply, from the call: LDLM_TIMEOUT_MS by default. */
  timeoutMs?: number;
  /**
   * Sent at once, not behind the callbacks in flight (a blocking callback, which the client
   * answers on arrival: its timer runs from the call, and slow glimpses must not eat it).
   */
  urgent?: boolean;
}

export interface ReverseImportConfig {
  timeoutMs?: number;
  rpcsInFlightMax?: number;
  queueMax?: number;
}

export interface ReverseCounters {
  sent: number;
  replies: number;
  timeouts: number;
  sendFailures: number;
  malformedReplies: number;
}

interface Pending {
  xid: bigint;
  opcode: number;
  buffers: Buffer[];
  deadline: number;
  timeoutMs: number;
  md: MdHandle | undefined;
  timer: NodeJS.Timeout | undefined;
  resolve(reply: Reply): void;
  reject(err: Error): void;
}

/** One subscription per network interface routes the replies of every reverse import by xid. */
class ReplyRouter {
  static readonly #routers = new WeakMap<Network, ReplyRouter>();
  readonly #waiting = new Map<bigint, (e: PutEvent) => void>();
  #subscription: Subscription | undefined;

  static of(ni: Network): ReplyRouter {
    let router = ReplyRouter.#routers.get(ni);
    if (!router) ReplyRouter.#routers.set(ni, (router = new ReplyRouter(ni)));
    return router;
  }

  private constructor(private readonly ni: Network) {}

  expect(xid: bigint, onReply: (e: PutEvent) => void): void {
    this.#subscription ??= portalEvents(this.ni, Portal.LDLM_CB_REPLY).subscribe((e) => this.#waiting.get(e.matchBits)?.(e));
    this.#waiting.set(xid, onReply);
  }

  forget(xid: bigint): void {
    this.#waiting.delete(xid);
    if (this.#waiting.size === 0 && this.#subscription) {
      this.#subscription.unsubscribe();
      this.#subscription = undefined;
    }
  }
}

export class ReverseImport {
  readonly counters: ReverseCounters = { sent: 0, replies: 0, timeouts: 0, sendFailures: 0, malformedReplies: 0 };
  readonly #ni: Network;
  readonly #export: Export;
  readonly #router: ReplyRouter;
  readonly #timeoutMs: number;
  readonly #inFlightMax: number;
  readonly #queueMax: number;
  readonly #sent = new Map<bigint, Pending>();
  readonly #waiting: Pending[] = [];
  #closed: PtlrpcError | undefined;

  constructor(ni: Network, exp: Export, config: ReverseImportConfig = {}) {
    this.#ni = ni;
    this.#export = exp;
    this.#router = ReplyRouter.of(ni);
    this.#timeoutMs = config.timeoutMs ?? LDLM_TIMEOUT_MS;
    this.#inFlightMax = config.rpcsInFlightMax ?? REVERSE_RPCS_IN_FLIGHT_MAX;
    this.#queueMax = config.queueMax ?? REVERSE_QUEUE_MAX;
  }

  /** The export (client) this import reaches. */
  get export(): Export {
    return this.#export;
  }

  get inFlight(): number {
    return this.#sent.size;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** Sends one request to the client; resolves with its reply, or fails with a PtlrpcError. */
  request(opcode: number, buffers: Buffer[] = [], options: ReverseRequestOptions = {}): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#waiting.length >= this.#queueMax) {
      return Promise.reject(new PtlrpcError('ENOBUFS',
        `${this.#waiting.length} callbacks already wait for ${this.#who()} (the most allowed: ${this.#queueMax})`));
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<Reply>((resolve, reject) => {
      const req: Pending = {
        xid: 0n, opcode, buffers, timeoutMs, deadline: performance.now() + timeoutMs, md: undefined, timer: undefined,
        resolve, reject,
      };
      req.timer = setTimeout(() => this.#expire(req), timeoutMs);
      if (options.urgent) {
        this.#send(req);
        return;
      }
      this.#waiting.push(req);
      this.#pump();
    });
  }

  /** Fails every request in flight or waiting with ESHUTDOWN; later requests fail at once. */
  close(reason = 'the export is gone'): void {
    if (this.#closed) return;
    this.#closed = new PtlrpcError('ESHUTDOWN', `reverse import to ${this.#who()} is closed: ${reason}`);
    for (const req of [...this.#sent.values(), ...this.#waiting]) this.#finish(req, this.#closed);
  }

  #pump(): void {
    while (this.#waiting.length > 0 && this.#sent.size < this.#inFlightMax) {
      const req = this.#waiting.shift()!;
      this.#send(req);
    }
  }

  #send(req: Pending): void {
    const ni = this.#ni;
    const exp = this.#export;
    req.xid = nextXid(ni);
    this.#sent.set(req.xid, req);
    req.md = ni.attach(Portal.LDLM_CB_REPLY, { matchBits: req.xid }, { kind: 'sink', maxLength: REVERSE_REPLY_BYTES_MAX, once: true });
    this.#router.expect(req.xid, (e) => this.#onReply(req, e));
    const body = makeBody({
      handle: exp.remoteHandle, type: MsgType.REQUEST, version: TargetVersion.DLM | PTLRPC_MSG_VERSION,
      opcode: req.opcode, connCnt: exp.connCnt, timeout: Math.max(1, Math.ceil(req.timeoutMs / 1000)),
    });
    const message = encodeMessage(body, req.buffers, { repsize: REVERSE_REPLY_BYTES_MAX });
    this.counters.sent++;
    postMessage(ni, exp.peer, Portal.LDLM_CB_REQUEST, req.xid, message, (err: Error & { code?: string }) => {
      if (this.#sent.get(req.xid) !== req) return;
      this.counters.sendFailures++;
      const code = err.code ?? 'EIO';
      this.#finish(req, new PtlrpcError(code,
        `${opcodeName(req.opcode)} to ${this.#who()} could not be sent: ${err.message}`));
    });
  }

  #onReply(req: Pending, e: PutEvent): void {
    if (this.#sent.get(req.xid) !== req || req.md?.id !== e.md.id) return;
    req.md = undefined; // a 'once' MD: it is gone now
    let reply: Reply;
    try {
      const { body, buffers } = decodeMessage(e.payload);
      if (body.type === MsgType.REQUEST || body.opcode !== req.opcode) throw new Error('not a reply to this request');
      reply = { xid: req.xid, status: body.status, transno: body.transno, lastCommitted: body.lastCommitted, body, buffers };
    } catch (err) {
      this.counters.malformedReplies++;
      this.#finish(req, new PtlrpcError('EPROTO',
        `${opcodeName(req.opcode)} to ${this.#who()}: malformed reply (${(err as Error).message})`));
      return;
    }
    this.counters.replies++;
    if (reply.status < 0) this.#finish(req, remoteError(reply.status, `${opcodeName(req.opcode)} to ${this.#who()}`));
    else this.#finish(req, undefined, reply);
  }

  #expire(req: Pending): void {
    req.timer = undefined;
    this.counters.timeouts++;
    const where = req.xid === 0n ? 'waiting for a slot' : `xid ${req.xid}`;
    this.#finish(req, new PtlrpcError('ETIMEDOUT',
      `${opcodeName(req.opcode)} to ${this.#who()} got no reply within ${req.timeoutMs} ms (${where})`));
  }

  /** Settles a request once: unlinks its reply MD, frees its slot, lets the next one go. */
  #finish(req: Pending, err: Error | undefined, reply?: Reply): void {
    if (req.timer) clearTimeout(req.timer);
    req.timer = undefined;
    const i = this.#waiting.indexOf(req);
    if (i >= 0) this.#waiting.splice(i, 1);
    if (req.xid !== 0n && this.#sent.get(req.xid) === req) {
      this.#sent.delete(req.xid);
      this.#router.forget(req.xid);
      req.md?.unlink();
      req.md = undefined;
    }
    if (err) req.reject(err);
    else req.resolve(reply!);
    if (!this.#closed) this.#pump();
  }

  #who(): string {
    const exp = this.#export;
    return `client ${exp.clientUuid || '(unknown)'} at ${exp.peer.nid}`;
  }
}
