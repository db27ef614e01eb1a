// The parameter tree of a node (lctl list_param / get_param / set_param), its device list
// (lctl dl) and its Prometheus metrics, over what the lustre.kernel daemon hosts: the kernel
// describes itself as a KernelView, and this library reads the mounted targets' figures from it
// at each request. Names and layouts are Lustre's; nodes.ts lists the tree.
//
//   const tree = new ParamTree(kernel);
//   await tree.get('osd-*.*.kbytesfree');        // [{ name: 'osd-txg.fs-OST0000.kbytesfree', value: '...' }]
//   await tree.set('ost.OSS.ost_io.threads_max', '16');
//   process.stdout.write(formatGetParam(values, {}));
import type { ClientParams } from '../../client/index.js';
import type { LNetNI } from '../../lnet/index.js';
import type { Target } from '../../services/target/index.js';

export interface KernelView {
  /** Package version, shown by `lctl get_param version`. */
  readonly version: string;
  /** This node's NID. */
  readonly nid: string;
  readonly startedAtMs: number;
  readonly ni: LNetNI | undefined;
  /** Mounted targets, in mount order. */
  targets(): readonly Target[];
  /** Client mounts of this node: their osc.* and llite.* tunables join the tree. */
  clients?(): readonly { readonly params: ClientParams }[];
  /** The debug log's level: pino level names. set throws for an unknown level. */
  readonly debug: { get(): string; set(level: string): void };
}

export { ParamTree, formatGetParam, type ParamValue, type ListOptions } from './tree.js';
export { ParamError, type ParamErrorCode } from './errors.js';
export { deviceList } from './devices.js';
export { startMetrics } from './metrics.js';
export { OSD_TYPE, OSD_FSTYPE, parseTxgTimeout, formatSeconds } from './nodes.js';
export { compilePattern, expandBraces, splitComponents } from './glob.js';
