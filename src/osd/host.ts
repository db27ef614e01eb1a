// What a transaction needs from its OSD (implemented by Osd in osd.ts).

import type { TxgHold } from '../log/index.js';
import type { DataFiles } from './data.js';
import type { Fid } from './fid.js';
import type { LayeredState } from './state.js';
import type { UpdateBody } from './tx.js';
import type { ObjectAttrs, Update } from './types.js';

export interface TxHost {
  readonly state: LayeredState;
  readonly data: DataFiles;
  assertOpen(): void;
  hold(): TxgHold;
  /** A tx joined txg: resolves once every tx of an earlier txg has stopped. */
  joined(txg: number): Promise<void>;
  /** A tx of txg stopped. */
  left(txg: number): void;
  nowSeconds(): number;
  /** The object's attributes now (a synchronous read through the state's layers). */
  attrsNow(fid: Fid): ObjectAttrs | undefined;
  /** Runs fn holding the lock of `key` (an object, or one name of an index). */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** Whether an update holds the lock of `key` (or waits for it). */
  locked(key: string): boolean;
  /**
   * In one synchronous step: builds the update from fid's current attributes (ENOENT if the
   * object vanished, except for a create), numbers it, applies it, returns it.
   */
  applyLive(txg: number, fid: Fid, build: (current: ObjectAttrs) => UpdateBody, create?: boolean): Update;
  /** start(): ENOSPC if the declared needs do not fit; waits while checkpoints lag. */
  admit(bytes: number, objects: number): Promise<void>;
  /** ENOSPC unless `bytes` more fit on the device. */
  checkSpace(bytes: number): Promise<void>;
  /** ENOSPC unless one more object fits. */
  checkObjects(): void;
  /** The next data-file generation (call only inside applyLive's build). */
  nextGen(): number;

}
