// The client's lock callback service (Lustre's ldlm_cbd): one per network interface of a client
// process, listening on LDLM_CB_REQUEST_PORTAL (15) for the requests a server's lock manager
// sends through its reverse import:
//   LDLM_BL_CALLBACK (104)  "a lock you hold blocks another's request: give it back"
//   LDLM_CP_CALLBACK (105)  "the lock you waited for is granted" (with the granted mode/extent)
//   LDLM_GL_CALLBACK (106)  "tell me what you know of the object" (the holder's LVB: its size)
// Each request is [ptlrpc_body][ldlm_request] (a CP may add an LVB buffer); the answer goes to
// the sender's LDLM_CB_REPLY_PORTAL (16) with the request's xid, [ptlrpc_body] and, for a
// glimpse, [ost_lvb].
//
// The lock is found by ldlm_request.lock_handle[0], the client's own cookie for it, among the
// registered owners (each client lock namespace: an MDC's or OSC's, see client.ts). As Lustre's
// ldlm_callback_handler does:
//   - a handle no owner knows is answered -EINVAL ("lock disappeared": the client already
//     cancelled it; the server then drops the lock itself, a normal race);
//   - a blocking callback is answered at once, then handed to its owner (which flushes what
//     the lock covers and cancels it in its own time);
//   - a completion callback is answered after its owner took it;
//   - a glimpse is answered with what its owner returns (an LVB), or the owner's error.
// An unknown opcode is answered -EPROTO; a request that does not decode is answered -EPROTO.
//
// It is its own small receiver, not a ptlrpc Service: a Service serves clients that connected
// (an export per handle), and a server's callbacks come over no connect of their own. Lustre
// finds the client's obd by the request's pb_handle (the handle the client gave at connect);
// here every sender is served and pb_handle is not checked: the lock handle alone routes.
//
// Bounds: CALLBACK_HANDLERS_MAX owner handlers run at once, CALLBACK_QUEUE_MAX more wait;
// beyond that a callback is dropped (and counted): the server's callback times out. A
// blocking handler (a flush, then a cancel) runs outside that pool once its callback is
// answered, as Lustre hands it to its ldlm_bl threads: slow flushes never hold up completions.
// There is at most one per lock the owner holds.
import {
  Errno, MsgType, Opcode, Portal, PtlrpcError, decodeMessage, encodeMessage, makeBody, portalEvents, postMessage,
  type Network, type PtlrpcBody, type PutEvent, type MdHandle,
} from '../ptlrpc/index.js';
import type { Subscription } from 'rxjs';
import { decodeLdlmRequest, type LdlmRequest, type LockDesc } from './wire.js';

/**
 * Lustre's ELDLM_NO_LOCK_DATA (enum ldlm_error, 303): a glimpse's answer when the holder has the
 * lock but nothing to tell (the server then reads the size itself). Sent negated, as errnos are.
 */
export const ELDLM_NO_LOCK_DATA = 303;

/** Owner handlers running at once. */
export const CALLBACK_HANDLERS_MAX = 64;
/** Callbacks waiting for a handler; beyond it they are dropped. */
export const CALLBACK_QUEUE_MAX = 4096;
/** The largest callback request accepted (an ldlm_request with an LVB is well under 1 KiB). */
export const CALLBACK_REQUEST_BYTES_MAX = 16 * 1024;
const ALL_MATCH_BITS = 0xffffffffffffffffn;

/** What a callback tells its owner. */
export interface CallbackInfo {
  /** The client's own cookie of the lock (ldlm_request.lock_handle[0]). */
  handle: bigint;
  /** The server's cookie of the lock (lock_handle[1]), 0 when not sent. */
  remoteHandle: bigint;
  /** BL: the blocking request's lock; CP: the lock as granted; GL: the lock. */
  desc: LockDesc;
  /** ldlm_request.lock_flags (CP: AST_SENT when a blocking callback rides along). */
  flags: number;
  /** A CP's LVB buffer, when the server sent one. */
  lvb?: Buffer;
  /** Who sent it. */
  peer: { nid: string; pid: number };
}

export interface CallbackHandlers {
  blocking(info: CallbackInfo): void | Promise<void>;
  completion(info: CallbackInfo): void | Promise<void>;
  /** The LVB to answer with; throw statusError(...) to answer an errno. */
  glimpse(info: CallbackInfo): Buffer | Promise<Buffer>;
}

/** Which handles an owner answers for: a lookup, or a prefix of the high 16 bits of the cookie. */
export type HandleMatch = ((handle: bigint) => boolean) | { prefix: number };

export interface CallbackCounters {
  received: number;
  blocking: number;
  completion: number;
  glimpse: number;
  unknownLock: number;
  malformed: number;
  dropped: number;
  handlerErrors: number;
  replyFailed: number;
}

interface Owner {
  owns(handle: bigint): boolean;
  handlers: CallbackHandlers;
}

interface Job {
  e: PutEvent;
  body: PtlrpcBody;
  request: LdlmRequest & { lockDesc: LockDesc };
  lvb: Buffer | undefined;
  owner: Owner;
}

const services = new WeakMap<Network, CallbackService>();

export class CallbackService {
  readonly counters: CallbackCounters = {
    received: 0, blocking: 0, completion: 0, glimpse: 0, unknownLock: 0, malformed: 0, dropped: 0, handlerErrors: 0, replyFailed: 0,
  };
  readonly #ni: Network;
  readonly #md: MdHandle;
  readonly #subscription: Subscription;
  readonly #owners: Owner[] = [];
  readonly #queue: Job[] = [];
  #running = 0;
  #stopped = false;

  private constructor(ni: Network) {
    this.#ni = ni;
    this.#md = ni.attach(Portal.LDLM_CB_REQUEST, { matchBits: 0n, ignoreBits: ALL_MATCH_BITS },
      { kind: 'sink', maxLength: CALLBACK_REQUEST_BYTES_MAX });
    const mdId = this.#md.id;
    this.#subscription = portalEvents(ni, Portal.LDLM_CB_REQUEST).subscribe((e) => {
      if (e.md.id === mdId) this.#receive(e);
    });
  }

  /** The network interface's callback service, started on first use (one per NI, as ldlm_cbd per node). */
  static of(ni: Network): CallbackService {
    let service = services.get(ni);
    if (!service || service.#stopped) services.set(ni, (service = new CallbackService(ni)));
    return service;
  }

  get owners(): number {
    return this.#owners.length;
  }

  /** Registers an owner of lock handles; returns its unregister function. */
  register(match: HandleMatch, handlers: CallbackHandlers): () => void {
    const owns = typeof match === 'function' ? match : prefixMatch(match.prefix);
    const owner: Owner = { owns, handlers };
    this.#owners.push(owner);
    return () => {
      const i = this.#owners.indexOf(owner);
      if (i >= 0) this.#owners.splice(i, 1);
    };
  }

  /** Stops listening (the NI's next user starts a new service). Handlers running finish. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#subscription.unsubscribe();
    this.#md.unlink();
    this.#queue.length = 0;
    if (services.get(this.#ni) === this) services.delete(this.#ni);
  }

  #receive(e: PutEvent): void {
    this.counters.received++;
    let body: PtlrpcBody;
    let buffers: Buffer[];
    try {
      ({ body, buffers } = decodeMessage(e.payload));
    } catch {
      this.counters.malformed++;
      return; // no body to answer with: the sender times out
    }
    if (body.type !== MsgType.REQUEST) {
      this.counters.malformed++;
      return;
    }
    const opcode = body.opcode;
    if (opcode !== Opcode.LDLM_BL_CALLBACK && opcode !== Opcode.LDLM_CP_CALLBACK && opcode !== Opcode.LDLM_GL_CALLBACK) {
      this.#reply(e, body, -Errno.EPROTO);
      return;
    }
    let request: LdlmRequest & { lockDesc: LockDesc };
    try {
      const decoded = decodeLdlmRequest(buffers[0]);
      if (!decoded.lockDesc) throw new Error('a callback without a lock desc');
      request = decoded as LdlmRequest & { lockDesc: LockDesc };
    } catch {
      this.counters.malformed++;
      this.#reply(e, body, -Errno.EPROTO);
      return;
    }
    const handle = request.lockHandles[0] ?? 0n;
    const owner = this.#owners.find((o) => o.owns(handle));
    if (!owner) {
      // Lustre: "callback on lock ... - lock disappeared".
      this.counters.unknownLock++;
      this.#reply(e, body, -Errno.EINVAL);
      return;
    }
    if (this.#queue.length >= CALLBACK_QUEUE_MAX) {
      this.counters.dropped++;
      return;
    }
    // A blocking callback is answered on arrival, not when a handler slot frees: the slots may
    // all be taken by glimpses and completions that wait on flushes, and the server evicts a
    // client whose answer takes longer than its lock timeout. Its flush and cancel queue up.
    if (opcode === Opcode.LDLM_BL_CALLBACK) this.#reply(e, body, 0);
    this.#queue.push({ e, body, request, lvb: buffers[1], owner });
    this.#pump();
  }

  #pump(): void {
    while (this.#running < CALLBACK_HANDLERS_MAX && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running++;
      void this.#run(job).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  async #run(job: Job): Promise<void> {
    const { e, body, request, owner } = job;
    const info: CallbackInfo = {
      handle: request.lockHandles[0] ?? 0n, remoteHandle: request.lockHandles[1] ?? 0n, desc: request.lockDesc,
      flags: request.flags, peer: e.initiator, ...(job.lvb && job.lvb.length > 0 ? { lvb: job.lvb } : {}),
    };
    switch (body.opcode) {
      case Opcode.LDLM_BL_CALLBACK:
        // Answered on arrival (#receive): the owner's flush may take long, and the server only
        // needs to know that the request arrived (the cancel tells it the rest).
        this.counters.blocking++;
        void this.#call(() => owner.handlers.blocking(info));
        return;
      case Opcode.LDLM_CP_CALLBACK: {
        this.counters.completion++;
        const status = await this.#call(() => owner.handlers.completion(info));
        this.#reply(e, body, status);
        return;
      }
      default: {
        this.counters.glimpse++;
        let lvb: Buffer | undefined;
        const status = await this.#call(async () => { lvb = await owner.handlers.glimpse(info); });
        this.#reply(e, body, status, status === 0 && lvb ? [lvb] : []);
      }
    }
  }

  /** Runs an owner's handler; resolves with the status to answer (its errno, or -EIO). */
  async #call(fn: () => unknown): Promise<number> {
    try {
      await fn();
      return 0;
    } catch (err) {
      this.counters.handlerErrors++;
      if (err instanceof PtlrpcError && err.status !== undefined && err.status < 0) return err.status;
      return -Errno.EIO;
    }
  }

  #reply(e: PutEvent, request: PtlrpcBody, status: number, buffers: Buffer[] = []): void {
    if (this.#stopped) return;
    const body = makeBody({
      handle: request.handle, type: MsgType.REPLY,
      version: request.version, opcode: request.opcode, status, connCnt: request.connCnt,
    });
    postMessage(this.#ni, e.initiator, Portal.LDLM_CB_REPLY, e.matchBits, encodeMessage(body, buffers), () => {
      // The server's callback times out, as it would for a reply lost on the network.
      this.counters.replyFailed++;
    });
  }
}

function prefixMatch(prefix: number): (handle: bigint) => boolean {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 0xffff) throw new RangeError(`a handle prefix is 16 bits, got ${prefix}`);
  const p = BigInt(prefix);
  return (handle) => handle >> 48n === p;
}

