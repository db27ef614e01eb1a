// The OST's lock manager (Lustre's OFD: ofd_dlm.c, ofd_lvb.c): the namespace
// 'filter-<fsname>-OST0000_UUID' on the "ost" service (OST_REQUEST_PORTAL), where clients take
// extent locks on objects (resource = the object's FID, as fid_build_reg_res_name), the OST's
// own locks for the updates that invalidate what clients cache, and the LVB.
//
//   OST_PUNCH    a local PW extent lock [start, EOF] (a truncate) or [start, end) (a hole):
//                clients' locks there are revoked (their cached pages beyond go) first
//   OST_DESTROY  a local PW lock [0, EOF] on the object
// Both are taken before the request's transaction (OpHandler.prepare) and given back once it
// ended; a buffer after the body may name the client's own locks to cancel first (early lock
// cancel, TargetLdlm.earlyCancel).
//
// LVB (ost_lvb: size, blocks, times; ofd_lvbo_fill): every enqueue reply carries the object's
// LVB after the ldlm_reply, read once the lock is granted (the enqueue waits for it, so that a
// holder's flush is in it). OST_GETATTR glimpses (LDLM_GL_CALLBACK) the holder of the
// furthest-reaching PW/EX lock other than the asker, which may cache dirty data the OST has not
// seen: its answer updates what the OST reports (size, blocks and times only grow, as
// ofd_lvbo_update takes a glimpse's answer).
import {
  decodeOstLvb, encodeOstLvb, LockMode, LockType, OBD_OBJECT_EOF, resIdOfFid,
  type IntentResult, type Lock, type LdlmRequest, type OstLvb, type ResId,
} from '../../ldlm/index.js';
import { Opcode, type IncomingRequest, type OpHandler, type OsdReplyTransaction } from '../../ptlrpc/index.js';
import type { LocalLockSpec, TargetLdlm } from '../target/index.js';
import { objectFid, type OstObjects } from './objects.js';
import { checkObjectId, checkPunch, decodeBody, encodeBody, type ObdAttrs, type OstObjectId } from './protocol.js';

type Handler = OpHandler<OsdReplyTransaction>;

/** The lock resource of an OST object. */
export function objectResId(id: OstObjectId): ResId {
  return resIdOfFid(objectFid(id));
}

const pw = (id: OstObjectId, start: bigint, end: bigint): LocalLockSpec => ({
  resId: objectResId(id), type: LockType.EXTENT, mode: LockMode.PW, policy: { extent: { start, end } },
});

const seconds = (t: number): { s: number; ns: number } => {
  const s = Math.floor(t);
  return { s, ns: Math.min(999_999_999, Math.max(0, Math.round((t - s) * 1e9))) };
};

/** ofd_lvbo_fill: the LVB of an object from its attributes. */
export function lvbOf(a: ObdAttrs): OstLvb {
  const m = seconds(a.mtime);
  const at = seconds(a.atime);
  const c = seconds(a.ctime);
  return {
    size: BigInt(a.size), blocks: BigInt(a.blocks), mtime: m.s, atime: at.s, ctime: c.s, mtimeNs: m.ns, atimeNs: at.ns, ctimeNs: c.ns,
  };
}

/** The attributes with what a glimpse learned: size, blocks and times only grow. */
export function mergeGlimpse(a: ObdAttrs, lvb: OstLvb): ObdAttrs {
  const t = (s: number, ns: number) => s + ns / 1e9;
  return {
    ...a,
    size: Math.max(a.size, Number(lvb.size)), blocks: Math.max(a.blocks, Number(lvb.blocks)),
    mtime: Math.max(a.mtime, t(lvb.mtime, lvb.mtimeNs)), atime: Math.max(a.atime, t(lvb.atime, lvb.atimeNs)),
    ctime: Math.max(a.ctime, t(lvb.ctime, lvb.ctimeNs)),
  };
}

/** The local lock of an OST_PUNCH or OST_DESTROY (a malformed request takes none: its handler refuses it). */
export function ostLocks(opcode: number, request: IncomingRequest): LocalLockSpec[] {
  try {
    if (opcode === Opcode.OST_PUNCH) {
      const p = checkPunch(decodeBody(request.buffers, 'OST_PUNCH'));
      const start = BigInt(p.start);
      const end = p.end === null ? OBD_OBJECT_EOF : BigInt(p.end) - 1n;
      return end < start ? [] : [pw(p, start, end)];
    }
    if (opcode === Opcode.OST_DESTROY) return [pw(checkObjectId(decodeBody(request.buffers, 'OST_DESTROY')), 0n, OBD_OBJECT_EOF)];
  } catch {
    // The handler answers EPROTO.
  }
  return [];
}

async function prepare(ldlm: TargetLdlm, opcode: number, request: IncomingRequest): Promise<(() => void) | undefined> {
  ldlm.earlyCancel(request);
  const specs = ostLocks(opcode, request);
  return specs.length === 0 ? undefined : ldlm.lock(specs);
}

/**
 * OST_GETATTR answered with what the PW holder knows (a glimpse), OST_PUNCH and OST_DESTROY
 * taking their locks first.
 */
export function withLdlm(ops: Map<number, Handler>, objects: OstObjects, ldlm: TargetLdlm): Map<number, Handler> {
  const out = new Map(ops);
  for (const opcode of [Opcode.OST_PUNCH, Opcode.OST_DESTROY]) {
    const h = ops.get(opcode);
    if (h) out.set(opcode, { ...h, prepare: (request) => prepare(ldlm, opcode, request) });
  }
  const getattr = ops.get(Opcode.OST_GETATTR);
  if (getattr) {
    out.set(Opcode.OST_GETATTR, {
      ...getattr,
      async handle(request, ctx) {
        const result = await getattr.handle(request, ctx);
        if ((result.status ?? 0) !== 0) return result;
        const id = checkObjectId(decodeBody(request.buffers, 'OST_GETATTR'));
        const lvb = await ldlm.service.glimpse(objectResId(id), request.export.clientUuid);
        if (!lvb) return result;
        let learned: OstLvb;
        try {
          learned = decodeOstLvb(lvb);
        } catch {
          return result; // a holder that answers nonsense teaches nothing
        }
        return { buffers: [encodeBody({ attrs: mergeGlimpse(await objects.attrs(id), learned) })] };
      },
    });
  }
  return out;
}

/** Every enqueue's reply gets the object's LVB, read once the lock is granted. */
export function ostIntent(objects: OstObjects, ldlm: () => TargetLdlm): (request: IncomingRequest, lock: Lock, dlm: LdlmRequest) => Promise<IntentResult> {
  return async (_request, lock) => {
    if (lock.type !== LockType.EXTENT) return {};
    await ldlm().waitGranted(lock);
    const r = lock.resId;
    const id = { seq: Number(r[0]), oid: Number(r[1] & 0xffff_ffffn) };
    return { buffers: [encodeOstLvb(lvbOf(await objects.attrs(id)))] };
  };
}
