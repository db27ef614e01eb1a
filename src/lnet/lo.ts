// The in-process LND (Lustre's lolnd, '0@lo'): a message to this process is handed to the
// target NI's receive path without a socket. The payload Buffers are handed over as they are,
// not copied: once put() resolves, the receiver owns them and the sender must not reuse them.
//
// Which NI receives (the sender's NI decides): a message to '0@lo' with the sender's own pid,
// or to the sender's own NID, goes to the sender itself (a node talking to itself, as Lustre
// routes its own NID through lolnd); to '0@lo' with another pid, to the '0@lo' NI of this
// process that has that pid.
import { LNetError } from './errors.js';
import { LNET_MSG_GET, LNET_WIRE_HANDLE_COOKIE_NONE, LNET_MSG_PUT, type LNetHeader } from './wire.js';
import type { LNetNI } from './ni.js';

class LoLnd {
  private readonly byPid = new Map<number, LNetNI>();

  register(ni: LNetNI): void {
    if (this.byPid.has(ni.pid)) {
      throw new LNetError('EADDRINUSE', `0@lo with pid ${ni.pid} is already started in this process; give the second NI another pid`);
    }
    this.byPid.set(ni.pid, ni);
  }

  unregister(ni: LNetNI): void {
    if (this.byPid.get(ni.pid) === ni) this.byPid.delete(ni.pid);
  }

  find(pid: number): LNetNI | undefined { return this.byPid.get(pid); }

  async send(from: LNetNI, target: LNetNI | undefined, h: LNetHeader, payload: Buffer[]): Promise<void> {
    // A microtask boundary, as a network would give: the sender's code after put() runs first.
    await Promise.resolve();
    if (!target || target.isStopped) {
      throw new LNetError('EHOSTUNREACH', `no NI at 0@lo pid ${h.destPid} in this process`);
    }
    const peer = from.peer(target.nid);
    from.countSend(peer, h.payloadLength);
    const delivery = target.receiveHeader(h, from.nid, target.peer(from.nid));
    if (typeof delivery !== 'string') { delivery.complete(payload); return; }
    const awaited = h.type === LNET_MSG_GET || (h.type === LNET_MSG_PUT && h.wmdObject !== LNET_WIRE_HANDLE_COOKIE_NONE);
    if (awaited) {
      from.fail(h.wmdObject, new LNetError('ENOENT',
        `${target.nid} pid ${target.pid} dropped the ${h.type === LNET_MSG_GET ? 'GET' : 'PUT'} on portal ${h.portal} ` +
        `match bits 0x${h.matchBits.toString(16)}: ${delivery}`));
    }
  }
}

/** The one loopback network of this process. */
export const loLnd = new LoLnd();
