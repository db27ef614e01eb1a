// What ptlrpc uses of an LNet network interface: the part of src/lnet's LNetNI contract it
// calls, written structurally so that ptlrpc states exactly what it relies on (and tests may
// hand it any NI that has it). The values it exchanges are LNet's own types.
import type { Observable } from 'rxjs';
import type { MdHandle, MdSpec, NidString, ProcessId, PutEvent, PutOptions } from '../lnet/index.js';

export type { MdHandle, MdSpec, NidString, ProcessId, PutEvent };

export interface Network {
  readonly nid: NidString;
  readonly events$: Observable<PutEvent>;
  attach(portal: number, match: { matchBits: bigint; ignoreBits?: bigint }, md: MdSpec): MdHandle;
  put(target: ProcessId, portal: number, matchBits: bigint, payload: Buffer | Buffer[], opts?: PutOptions): Promise<void>;
  get(target: ProcessId, portal: number, matchBits: bigint, length: number): Promise<Buffer[]>;
}

export const ALL_MATCH_BITS = 0xffffffffffffffffn;
