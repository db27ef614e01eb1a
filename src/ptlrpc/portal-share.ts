// The services of one network interface that listen on one request portal: a node hosting
// several OSTs runs one `ost` and one `ost_io` service per OST on the same two portals, as
// Lustre's OSS runs one service for all the node's OSTs. One sink MD on the portal takes every
// request; each is decoded once and handed to the service of its target: a connect by the
// target UUID it names, any other request by the export its handle belongs to.
import { filter, type Subscription } from 'rxjs';
import { decodeConnectRequest } from './connect-wire.js';
import { Errno, MsgType } from './constants.js';
import { ALL_MATCH_BITS, portalEvents, type MdHandle, type Network, type PutEvent } from './transport.js';
import { decodeMessage, type PtlrpcBody } from './wire.js';

/** What the share needs of a service. */
export interface SharedService {
  readonly targetUuid: string;
  readonly connectOpcode: number;
  ownsHandle(handle: bigint): boolean;
  /** A request routed to this service, decoded once. */
  deliver(e: PutEvent, body: PtlrpcBody, buffers: Buffer[]): void;
  /** A frame that could not be routed (malformed, or for no target here). */
  refuse(e: PutEvent, body: PtlrpcBody | undefined, status: number): void;
}

const shares = new WeakMap<Network, Map<number, PortalShare>>();

export class PortalShare {
  readonly #ni: Network;
  readonly #portal: number;
  readonly #md: MdHandle;
  readonly #subscription: Subscription;
  readonly #services: SharedService[] = [];

  private constructor(ni: Network, portal: number, maxRequestBytes: number) {
    this.#ni = ni;
    this.#portal = portal;
    this.#md = ni.attach(portal, { matchBits: 0n, ignoreBits: ALL_MATCH_BITS }, { kind: 'sink', maxLength: maxRequestBytes });
    const mdId = this.#md.id;
    this.#subscription = portalEvents(ni, portal)
      .pipe(filter((e) => e.md.id === mdId))
      .subscribe((e) => this.#route(e));
  }

  /** Joins `service` to the portal's share on `ni`, creating it for the first service. */
  static join(ni: Network, portal: number, maxRequestBytes: number, service: SharedService): PortalShare {
    let byPortal = shares.get(ni);
    if (!byPortal) shares.set(ni, (byPortal = new Map()));
    let share = byPortal.get(portal);
    if (!share) byPortal.set(portal, (share = new PortalShare(ni, portal, maxRequestBytes)));
    if (share.#services.some((s) => s.targetUuid === service.targetUuid)) {
      throw new Error(`a service of ${service.targetUuid} already listens on portal ${portal} of this NI`);
    }
    share.#services.push(service);
    return share;
  }

  /** Removes `service`; the last one out unlinks the MD. */
  leave(service: SharedService): void {
    const i = this.#services.indexOf(service);
    if (i < 0) return;
    this.#services.splice(i, 1);
    if (this.#services.length > 0) return;
    this.#md.unlink();
    this.#subscription.unsubscribe();
    shares.get(this.#ni)?.delete(this.#portal);
  }

  #route(e: PutEvent): void {
    const first = this.#services[0];
    if (!first) return;
    let body: PtlrpcBody;
    let buffers: Buffer[];
    try {
      ({ body, buffers } = decodeMessage(e.payload));
    } catch {
      first.refuse(e, undefined, 0);
      return;
    }
    if (body.type !== MsgType.REQUEST) {
      first.refuse(e, undefined, 0);
      return;
    }
    const service = this.#services.length === 1 ? first : this.#pick(body, buffers);
    if (service) service.deliver(e, body, buffers);
    else first.refuse(e, body, -Errno.ENODEV);
  }

  #pick(body: PtlrpcBody, buffers: Buffer[]): SharedService | undefined {
    if (body.opcode === this.#services[0]!.connectOpcode) {
      let uuid: string;
      try {
        uuid = decodeConnectRequest(buffers).targetUuid;
      } catch {
        return this.#services[0]; // its connect handler answers EPROTO
      }
      return this.#services.find((s) => s.targetUuid === uuid);
    }
    // An unknown handle goes to the first service, which answers ENOTCONN.
    return this.#services.find((s) => s.ownsHandle(body.handle)) ?? this.#services[0];
  }
}
