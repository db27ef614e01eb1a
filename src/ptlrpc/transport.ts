// What ptlrpc uses of an LNet network interface: the part of src/lnet's LNetNI contract it
// calls, written structurally so that ptlrpc states exactly what it relies on.
import type { Observable } from 'rxjs';

export type NidString = string;

export interface ProcessId {
  nid: NidString;
  pid: number;
}

export type MdSpec =
  | { kind: 'sink'; maxLength: number; once?: boolean }
  | { kind: 'source'; buffers: Buffer[]; once?: boolean };

export interface MdHandle {
  readonly id: bigint;
  unlink(): void;
}

export interface PutEvent {
  type: 'put';
  md: MdHandle;
  portal: number;
  matchBits: bigint;
  hdrData: bigint;
  initiator: ProcessId;
  target: ProcessId;
  offset: number;
  payload: Buffer[];
  payloadLength: number;
}

export interface Network {
  readonly nid: NidString;
  readonly events$: Observable<PutEvent>;
  attach(portal: number, match: { matchBits: bigint; ignoreBits?: bigint }, md: MdSpec): MdHandle;
  put(
    target: ProcessId,
    portal: number,
    matchBits: bigint,
    payload: Buffer | Buffer[],
    opts?: { hdrData?: bigint; ack?: boolean; offset?: number },
  ): Promise<void>;
  get(target: ProcessId, portal: number, matchBits: bigint, length: number): Promise<Buffer[]>;
}

export const ALL_MATCH_BITS = 0xffffffffffffffffn;
