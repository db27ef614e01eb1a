// What ptlrpc uses of an LNet network interface: the part of src/lnet's LNetNI contract it
// calls, written structurally so that ptlrpc states exactly what it relies on (and tests may
// hand it any NI that has it). The values it exchanges are LNet's own types.
import { filter, type Observable } from 'rxjs';
import type { MdHandle, MdSpec, NidString, ProcessId, PutEvent, PutOptions } from '../lnet/index.js';

export type { MdHandle, MdSpec, NidString, ProcessId, PutEvent };

export interface Network {
  readonly nid: NidString;
  readonly events$: Observable<PutEvent>;
  /** The events of one portal (LNetNI.portalEvents); events$ filtered stands in for it when absent. */
  portalEvents?(portal: number): Observable<PutEvent>;
  attach(portal: number, match: { matchBits: bigint; ignoreBits?: bigint }, md: MdSpec): MdHandle;
  put(target: ProcessId, portal: number, matchBits: bigint, payload: Buffer | Buffer[], opts?: PutOptions): Promise<void>;
  /** A PUT without ACK and without a promise (LNetNI.post); put() stands in for it when absent. */
  post?(target: ProcessId, portal: number, matchBits: bigint, payload: Buffer | Buffer[], onError?: (err: Error) => void): void;
  get(target: ProcessId, portal: number, matchBits: bigint, length: number): Promise<Buffer[]>;
}

/** The events of one portal of `ni`. */
export function portalEvents(ni: Network, portal: number): Observable<PutEvent> {
  return ni.portalEvents ? ni.portalEvents(portal) : ni.events$.pipe(filter((e) => e.portal === portal));
}

/** Sends a request or a reply: a PUT nobody awaits; onError learns (later) that it was not sent. */
export function postMessage(ni: Network, target: ProcessId, portal: number, matchBits: bigint, message: Buffer, onError: (err: Error) => void): void {
  if (ni.post) ni.post(target, portal, matchBits, message, onError);
  else ni.put(target, portal, matchBits, message).catch(onError);
}

export const ALL_MATCH_BITS = 0xffffffffffffffffn;
