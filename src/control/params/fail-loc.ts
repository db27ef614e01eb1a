// The top-level fault injection parameters, as libcfs shows them: fail_loc, fail_val and
// fail_err (lctl set_param fail_loc=0x80000122 fail_val=0; lctl get_param fail_loc). They are
// the process's registry (src/log/fail-loc.ts): one per lustre.kernel, as one per node in Lustre.
// fail_loc reads as Lustre prints it (decimal, CFS_FAILED included) and takes a number or a
// point's name with modes (OBD_FAIL_MDS_ALL_REPLY_NET|ONCE); `lctl fail_loc --list` names them.
import { failLoc, parseFailLoc, type FailLoc } from '../../log/index.js';
import { ParamError } from './errors.js';
import type { Param } from './nodes.js';

const U32_MAX = 0xffffffff;

function parseUnsigned(name: string, v: string): number {
  const n = Number(v.trim());
  // fail_val is an int in Lustre: -1 (any value, for CFS_FAIL_CHECK_VALUE) is 0xffffffff.
  if (n === -1 && name === 'fail_val') return U32_MAX;
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(v.trim()) || !Number.isSafeInteger(n) || n > U32_MAX) {
    throw new ParamError('EINVAL', `${name}: '${v}' is not an unsigned 32-bit integer`);
  }
  return n;
}

export function failLocParams(registry: FailLoc = failLoc): Param[] {
  return [
    {
      path: ['fail_loc'], read: () => String(registry.loc),
      write: (v) => {
        const loc = parseFailLoc(v);
        if (loc === undefined) throw new ParamError('EINVAL', `fail_loc: '${v}' is neither a number nor a fail point (lctl fail_loc --list)`);
        registry.set(loc);
      },
    },
    { path: ['fail_val'], read: () => String(registry.value), write: (v) => { registry.value = parseUnsigned('fail_val', v); } },
    {
      path: ['fail_err'], read: () => String(registry.err),
      write: (v) => {
        const n = Math.abs(Number(v.trim()));
        if (!Number.isSafeInteger(n) || n > 0xffff || v.trim() === '') throw new ParamError('EINVAL', `fail_err: '${v}' is not an errno number`);
        registry.err = n;
      },
    },
  ];
}
