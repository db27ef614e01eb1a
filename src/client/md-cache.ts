// Attributes under inodebits locks (Lustre's mdc_intent_getattr / ll_inode_revalidate): a
// getattr or a lookup is an LDLM_ENQUEUE of PR with an IT_GETATTR or IT_LOOKUP intent, so that
// one round trip brings the attributes and a lock that vouches for them. While the lock stays
// in the MDC's namespace the attributes are served from here (and llite lets the kernel keep
// them); the lock's going (a blocking callback when another client changes the inode, the LRU,
// an eviction) drops them, and the mount tells llite (MountCore.invalidate).
//
// Names are not cached (a lookup goes to the MDT each time; the kernel gets no entry validity):
// an IT_LOOKUP lock on the directory for names that do not exist would be revoked by every
// create in it. What a lookup finds refreshes the attributes of a child whose lock is held.
//
// Attributes are kept per FID with the lock they were read under, at most MD_CACHE_MAX of them.
import { parseFid } from '../osd/index.js';
import {
  encodeLdlmIntent, hasFlag, InodeBits, IntentOp, LockFlag, LockMode, LockType, resIdOfFid, type CachedLock, type ClientLock,
} from '../ldlm/index.js';
import { decodeAttr, decodeBody, encodeBody, mdtErrnoName, type MdtAttr } from '../services/mdt/protocol.js';
import type { ClientNamespace } from './locks.js';
import { MdcError, toMdcError, type Mdc } from './mdc.js';

/** Attributes kept at once; the least recently read go first. */
export const MD_CACHE_MAX = 16384;
/** What a getattr lock covers: the attributes and the permissions. */
const GETATTR_BITS = InodeBits.UPDATE | InodeBits.PERM;

export interface LockedAttr {
  attr: MdtAttr;
  /** A lock of the MDC's namespace vouches for the attributes (and with lookup: the name). */
  locked: boolean;
}

interface Entry {
  attr: MdtAttr;
  lock: CachedLock;
}

export class MdCache {
  readonly counters = { hits: 0, locked: 0, intents: 0 };
  readonly #entries = new Map<string, Entry>();

  constructor(private readonly namespace: () => ClientNamespace | undefined) {}

  /** Drops what the lock vouched for (its revoke, or its loss). */
  dropLock(lock: CachedLock): void {
    for (const [fid, e] of this.#entries) if (e.lock === lock) this.#entries.delete(fid);
  }

  drop(fid: string): void {
    this.#entries.delete(fid);
  }

  /** The attributes of `fid`: from the cache under a held lock, else with an IT_GETATTR enqueue. */
  async getattr(mdc: Mdc, fid: string): Promise<LockedAttr> {
    const ns = this.namespace();
    if (!ns?.supported) return { attr: await mdc.getattr(fid), locked: false };
    const resId = resIdOfFid(parseFid(fid));
    const held = ns.cache.match(resId, LockType.IBITS, LockMode.PR, { bits: GETATTR_BITS }, { ref: true });
    if (held) {
      ns.release(held, LockMode.PR);
      const e = this.#entries.get(fid);
      if (e && e.lock === held) {
        this.counters.hits++;
        this.#touch(fid, e);
        return { attr: e.attr, locked: true };
      }
      // No reference is held across a request: the MDT may need the lock back to serve it
      // (its threads busy with updates that wait for it). Attributes read while the lock
      // stayed uncontested are what it vouches for: a change would have called it back first.
      const attr = await mdc.getattr(fid);
      if (ns.cache.lookup(held.handle) !== held || hasFlag(held.flags, LockFlag.CBPENDING, LockFlag.CANCELING)) return { attr, locked: false };
      this.#put(fid, attr, held);
      return { attr, locked: true };
    }
    // The lock first, then the attributes: an IT_GETATTR intent would bring both in one round
    // trip, but its reply waits on the MDT for the grant, and under a stream of updates of the
    // same inode (creates in a directory) that wait did not end here.
    let lock: CachedLock | undefined;
    try {
      lock = await ns.lock(resId, LockType.IBITS, LockMode.PR, { bits: GETATTR_BITS });
    } catch (err) {
      throw toMdcError(err);
    }
    if (lock) ns.release(lock, LockMode.PR);
    const attr = await mdc.getattr(fid);
    if (!lock || ns.cache.lookup(lock.handle) !== lock || hasFlag(lock.flags, LockFlag.CBPENDING, LockFlag.CANCELING)) return { attr, locked: false };
    this.counters.locked++;
    this.#put(fid, attr, lock);
    return { attr, locked: true };
  }

  /** IT_GETATTR: the attributes and the lock in one round trip (not used: see getattr). */
  async getattrIntent(mdc: Mdc, fid: string): Promise<LockedAttr | undefined> {
    const ns = this.namespace();
    if (!ns?.supported) return undefined;
    return this.#intent(ns, mdc, resIdOfFid(parseFid(fid)), IntentOp.GETATTR, GETATTR_BITS, { fid });
  }

  /**
   * One name in a directory: asked of the MDT each time (MDS_GETATTR_NAME), so names are never
   * cached here; the attributes are those of the child's lock when one is held. (An IT_LOOKUP
   * enqueue would take a lock on the directory for every name that does not exist, which every
   * create in that directory then revokes.)
   */
  async lookup(mdc: Mdc, parent: string, name: string): Promise<LockedAttr> {
    const attr = await mdc.lookup(parent, name);
    const ns = this.namespace();
    const held = ns?.supported ? ns.cache.match(resIdOfFid(parseFid(attr.fid)), LockType.IBITS, LockMode.PR, { bits: GETATTR_BITS }, { ref: true }) : undefined;
    if (!held) return { attr, locked: false };
    // Read while the lock is held (the reference keeps it): what it vouches for from now on.
    this.#put(attr.fid, attr, held);
    ns!.release(held, LockMode.PR);
    return { attr, locked: true };
  }

  async #intent(
    ns: ClientNamespace, mdc: Mdc, resId: ReturnType<typeof resIdOfFid>, opc: number, bits: number, body: Record<string, unknown>,
  ): Promise<LockedAttr | undefined> {
    let granted: { cached: CachedLock; lock: ClientLock } | undefined;
    try {
      granted = await ns.lockWithReply(resId, LockType.IBITS, LockMode.PR, { bits }, {
        intent: [encodeLdlmIntent(opc), encodeBody({ cred: mdc.cred, ...body })],
      });
    } catch (err) {
      throw toMdcError(err);
    }
    if (!granted) return undefined;
    this.counters.intents++;
    const { cached, lock } = granted;
    let result: LockedAttr | undefined;
    let failure: unknown;
    try {
      const status = Number(BigInt.asIntN(32, lock.policyRes2));
      if (status < 0) {
        const code = mdtErrnoName(status) || 'EIO';
        throw new MdcError(code, `${code}: ${'name' in body ? String(body.name) : String(body.fid)}`, status);
      }
      let attr: MdtAttr;
      try {
        attr = decodeAttr(decodeBody(lock.replyBuffers).attr);
      } catch (err) {
        throw new MdcError('EPROTO', (err as Error).message);
      }
      this.#put(attr.fid, attr, cached);
      result = { attr, locked: true };
    } catch (err) {
      failure = err;
    }
    ns.release(cached, LockMode.PR);
    if (result) return result;
    // Nothing to keep the lock for (a negative lookup's lock on the directory, a reply not understood).
    void ns.giveBack(cached);
    throw failure;
  }

  #put(fid: string, attr: MdtAttr, lock: CachedLock): void {
    this.#entries.delete(fid);
    if (this.#entries.size >= MD_CACHE_MAX) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(fid, { attr, lock });
  }

  #touch(fid: string, e: Entry): void {
    this.#entries.delete(fid);
    this.#entries.set(fid, e);
  }
}
