// The fail points of ptlrpc, backed by the process's fail_loc (src/log/fail-loc.ts): what a
// Service and an Import ask before they lose a request or a reply, pause, fail a request,
// stop the process between an update and its reply, or lose or stop in a bulk.
//
// As Lustre's target code does (tgt_request_handle, target_send_reply_msg), a request or reply
// drop checks its point with CFS_FAIL_CHECK_ORSET(id, CFS_FAIL_ONCE): whatever mode fail_loc
// was armed with, a drop point fails once and sets CFS_FAILED (`fail_loc=0x122` loses one MDS
// reply, like `0x80000122`); arm it again to lose another. fail_val, when not 0, names the one
// opcode whose requests may be dropped. Pings and connects are never dropped by the ALL_*
// points (so a pinger does not use up a once), and the opcode-specific point is checked
// before the ALL_* one (Lustre checks only the handler's own reply point for a REINT).
import { CFS_FAIL_ONCE, FAIL, failLoc, type FailLoc } from '../log/index.js';
import { Opcode } from './constants.js';
import type { ImportFailLoc } from './import.js';
import type { IncomingRequest, ServiceFailLoc } from './service.js';

export type FailPointKind = 'mdt' | 'ost' | 'mgs';

interface KindIds {
  allRequest: number;
  allReply: number;
  /** Per-opcode request and reply points (Lustre's handler th_fail_id / tsi_reply_fail_id). */
  request: ReadonlyMap<number, number>;
  reply: ReadonlyMap<number, number>;
}

const IDS: Record<FailPointKind, KindIds> = {
  mdt: {
    allRequest: FAIL.OBD_FAIL_MDS_ALL_REQUEST_NET!, allReply: FAIL.OBD_FAIL_MDS_ALL_REPLY_NET!,
    request: new Map([[Opcode.MDS_REINT, FAIL.OBD_FAIL_MDS_REINT_NET!]]),
    reply: new Map([[Opcode.MDS_REINT, FAIL.OBD_FAIL_MDS_REINT_NET_REP!]]),
  },
  ost: {
    allRequest: FAIL.OBD_FAIL_OST_ALL_REQUEST_NET!, allReply: FAIL.OBD_FAIL_OST_ALL_REPLY_NET!,
    request: new Map([[Opcode.OST_READ, FAIL.OBD_FAIL_OST_BRW_NET!], [Opcode.OST_WRITE, FAIL.OBD_FAIL_OST_BRW_NET!]]),
    reply: new Map(),
  },
  mgs: {
    allRequest: FAIL.OBD_FAIL_MGS_ALL_REQUEST_NET!, allReply: FAIL.OBD_FAIL_MGS_ALL_REPLY_NET!,
    request: new Map(), reply: new Map(),
  },
};

/** Requests no ALL_* point touches: the pinger's and the connection's own. */
const EXEMPT = new Set<number>([
  Opcode.OBD_PING, Opcode.MDS_CONNECT, Opcode.OST_CONNECT, Opcode.MGS_CONNECT,
  Opcode.MDS_DISCONNECT, Opcode.OST_DISCONNECT, Opcode.MGS_DISCONNECT,
]);

/** What each fail point did, for tests and stats. */
export interface FailPointCounters {
  requestsDropped: number;
  repliesDropped: number;
  requestsPaused: number;
  requestsFailed: number;
  bulksDropped: number;
}

/**
 * ServiceFailLoc plus the points Service does not call yet. Where each belongs in service.ts:
 *  - pauseRequest: in #run (or #execute / #executeOnce) before op.handle, for every opcode
 *    but OBD_PING: `const p = fp.pauseRequest(request); if (p) await p;`
 *  - requestError: right after it: `const e = fp.requestError(request); if (e) { this.#reply(request, e, 0n, []); return; }`
 *    (for a modifying request, before #executeOnce: nothing executes, nothing is recorded).
 *  - beforeReply: in #executeInTransaction after `await this.#store.finish(tx, ...)` and before
 *    `this.#reply(...)`: the update and its reply record are in a txg, the client has no reply.
 *  - bulk: in BulkContext.bulkGet / bulkPut before ni.get / ni.put:
 *    `const drop = fp.bulk(request, 'get'); if (drop && (drop === true || await drop)) throw new BulkFailure(...)`
 *  - afterBulk: in BulkContext.bulkGet after ni.get resolved, before returning the buffers
 *    (the data arrived, nothing applied yet).
 */
export interface ServiceFailPoints extends ServiceFailLoc {
  readonly counters: FailPointCounters;
  dropRequest(request: IncomingRequest): boolean;
  dropReply(request: IncomingRequest): boolean;
  /** OBD_FAIL_PTLRPC_PAUSE_REQ: a promise that resolves after fail_val ms, or false at once. */
  pauseRequest(request: IncomingRequest): Promise<boolean> | false;
  /** OBD_FAIL_SRV_REQUEST_ERR: the status to answer with (-fail_err, -EIO when 0), or 0. */
  requestError(request: IncomingRequest): number;
  /** OBD_FAIL_SRV_REPLY_CRASH: stops the process after the update, before its reply. */
  beforeReply(request: IncomingRequest): void;
  /**
   * OBD_FAIL_PTLRPC_BULK_GET_NET / _PUT_NET: true when the bulk must not start (the client
   * times out and resends); OBD_FAIL_OST_BRW_PAUSE_BULK: a promise that resolves (false) after
   * the pause. false at once when nothing is armed.
   */
  bulk(request: IncomingRequest, kind: 'get' | 'put'): Promise<boolean> | boolean;
  /** OBD_FAIL_SRV_BULK_CRASH: stops the process with the bulk's data in hand, nothing applied. */
  afterBulk(request: IncomingRequest): void;
}

/** The fail points of a target's service of that kind, over `registry` (the process's). */
export function serviceFailLoc(kind: FailPointKind, registry: FailLoc = failLoc): ServiceFailPoints {
  const ids = IDS[kind];
  const counters: FailPointCounters = { requestsDropped: 0, repliesDropped: 0, requestsPaused: 0, requestsFailed: 0, bulksDropped: 0 };
  const forOpcode = (opcode: number): boolean => registry.value === 0 || registry.value === opcode;
  const once = (id: number | undefined): boolean => id !== undefined && registry.checkOrset(id, CFS_FAIL_ONCE);
  return {
    counters,
    dropRequest(request) {
      if (!registry.active || !forOpcode(request.opcode)) return false;
      const hit = once(ids.request.get(request.opcode)) || (!EXEMPT.has(request.opcode) && once(ids.allRequest));
      if (hit) counters.requestsDropped++;
      return hit;
    },
    dropReply(request) {
      if (!registry.active) return false;
      const hit = once(ids.reply.get(request.opcode)) || (!EXEMPT.has(request.opcode) && once(ids.allReply));
      if (hit) counters.repliesDropped++;
      return hit;
    },
    pauseRequest(request) {
      if (!registry.active || EXEMPT.has(request.opcode)) return false;
      // Sleeps fail_val ms, or until fail_loc changes (lctl set_param fail_loc=0 wakes it).
      return registry.timeout(FAIL.OBD_FAIL_PTLRPC_PAUSE_REQ!).then((hit) => {
        if (hit) counters.requestsPaused++;
        return hit;
      });
    },
    requestError(request) {
      if (!registry.active || EXEMPT.has(request.opcode) || !forOpcode(request.opcode)) return 0;
      if (!registry.check(FAIL.OBD_FAIL_SRV_REQUEST_ERR!)) return 0;
      counters.requestsFailed++;
      return -registry.errno();
    },
    beforeReply() {
      if (registry.active) registry.crash(FAIL.OBD_FAIL_SRV_REPLY_CRASH!);
    },
    bulk(_request, kind) {
      if (!registry.active) return false;
      if (registry.check(kind === 'get' ? FAIL.OBD_FAIL_PTLRPC_BULK_GET_NET! : FAIL.OBD_FAIL_PTLRPC_BULK_PUT_NET!)) {
        counters.bulksDropped++;
        return true;
      }
      return registry.timeout(FAIL.OBD_FAIL_OST_BRW_PAUSE_BULK!).then(() => false);
    },
    afterBulk() {
      if (registry.active) registry.crash(FAIL.OBD_FAIL_SRV_BULK_CRASH!);
    },
  };
}

export interface ImportFailPoints extends ImportFailLoc {
  readonly counters: { repliesDropped: number };
  dropReply(xid: bigint, opcode: number): boolean;
}

/**
 * The fail points of a client's import: OBD_FAIL_IMP_REPLY_DROP loses a reply on arrival
 * (fail_val, when not 0, names the opcode), with fail_loc's own mode (once, skip, random...).
 */
export function importFailLoc(registry: FailLoc = failLoc): ImportFailPoints {
  const counters = { repliesDropped: 0 };
  return {
    counters,
    dropReply(_xid, opcode) {
      if (!registry.active || (registry.value !== 0 && registry.value !== opcode)) return false;
      const hit = registry.check(FAIL.OBD_FAIL_IMP_REPLY_DROP!);
      if (hit) counters.repliesDropped++;
      return hit;
    },
  };
}
