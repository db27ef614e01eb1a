// The node's cancel service (Lustre's ldlm_canceld): Lustre clients send LDLM_CANCEL to
// LDLM_CANCEL_REQUEST_PORTAL (17) rather than to the target's own request portal, so that a
// cancel, which lets waiting locks through, never queues behind the target's other work; the
// answer goes to the client's LDLM_CANCEL_REPLY_PORTAL (18) with the request's xid.
//
// One per network interface serves every lock service of the node: a request is routed by
// its pb_handle, the export cookie the client got at connect, to the lock service whose target
// holds that export. A handle no target knows is answered -ENOTCONN, an opcode other than
// LDLM_CANCEL -EPROTO (LDLM_CONVERT is not served). A message that does not decode as a
// request is dropped. Cancels are cheap and run at once, so there is no queue to bound.
import type { Subscription } from 'rxjs';
import {
  Errno, MsgType, Opcode, Portal, decodeMessage, encodeMessage, makeBody, portalEvents, postMessage,
  type Export, type MdHandle, type Network, type PtlrpcBody, type PutEvent,
} from '../ptlrpc/index.js';

/** The largest cancel request taken: an ldlm_request with LDLM_MAX_HANDLES handles and its headers. */
export const CANCEL_REQUEST_BYTES_MAX = 16 * 1024;
const ALL_MATCH_BITS = 0xffffffffffffffffn;

/** What the cancel portal needs of a lock service. */
export interface CancelTarget {
  exportByHandle(handle: bigint): Export | undefined;
  /** Runs an LDLM_CANCEL of `exp`; returns the status to answer. */
  cancelRequest(exp: Export, buffers: Buffer[]): number;
}

export interface CancelPortalCounters {
  received: number;
  cancels: number;
  notConnected: number;
  malformed: number;
  replyFailed: number;
}

const portals = new WeakMap<Network, CancelPortal>();

export class CancelPortal {
  readonly counters: CancelPortalCounters = { received: 0, cancels: 0, notConnected: 0, malformed: 0, replyFailed: 0 };
  readonly #ni: Network;
  readonly #md: MdHandle;
  readonly #subscription: Subscription;
  readonly #targets: CancelTarget[] = [];

  private constructor(ni: Network) {
    this.#ni = ni;
    this.#md = ni.attach(Portal.LDLM_CANCEL_REQUEST, { matchBits: 0n, ignoreBits: ALL_MATCH_BITS },
      { kind: 'sink', maxLength: CANCEL_REQUEST_BYTES_MAX });
    const mdId = this.#md.id;
    this.#subscription = portalEvents(ni, Portal.LDLM_CANCEL_REQUEST).subscribe((e) => {
      if (e.md.id === mdId) this.#receive(e);
    });
  }

  /** Adds a lock service to the NI's cancel portal (started for the first one). */
  static join(ni: Network, target: CancelTarget): CancelPortal {
    let portal = portals.get(ni);
    if (!portal) portals.set(ni, (portal = new CancelPortal(ni)));
    portal.#targets.push(target);
    return portal;
  }

  /** Removes a lock service; the last one out stops listening. */
  leave(target: CancelTarget): void {
    const i = this.#targets.indexOf(target);
    if (i < 0) return;
    this.#targets.splice(i, 1);
    if (this.#targets.length > 0) return;
    this.#subscription.unsubscribe();
    this.#md.unlink();
    if (portals.get(this.#ni) === this) portals.delete(this.#ni);
  }

  #receive(e: PutEvent): void {
    this.counters.received++;
    let body: PtlrpcBody;
    let buffers: Buffer[];
    try {
      ({ body, buffers } = decodeMessage(e.payload));
    } catch {
      this.counters.malformed++;
      return;
    }
    if (body.type !== MsgType.REQUEST) {
      this.counters.malformed++;
      return;
    }
    if (body.opcode !== Opcode.LDLM_CANCEL) {
      this.#reply(e, body, -Errno.EPROTO);
      return;
    }
    for (const target of this.#targets) {
      const exp = target.exportByHandle(body.handle);
      // A handle serves only the peer that connected with it, as on the target's own portal.
      if (!exp || exp.peer.nid !== e.initiator.nid || exp.peer.pid !== e.initiator.pid) continue;
      this.counters.cancels++;
      this.#reply(e, body, target.cancelRequest(exp, buffers));
      return;
    }
    this.counters.notConnected++;
    this.#reply(e, body, -Errno.ENOTCONN);
  }

  #reply(e: PutEvent, request: PtlrpcBody, status: number): void {
    const body = makeBody({
      handle: request.handle, type: MsgType.REPLY, version: request.version, opcode: request.opcode, status,
      tag: request.tag, connCnt: request.connCnt,
    });
    postMessage(this.#ni, e.initiator, Portal.LDLM_CANCEL_REPLY, e.matchBits, encodeMessage(body, []), () => {
      this.counters.replyFailed++; // the client resends, or cancels again later
    });
  }
}
