// Attributes under inodebits locks (Lustre's mdc_intent_getattr / ll_inode_revalidate): a
// getattr or a lookup is an LDLM_ENQUEUE of PR with an IT_GETATTR or IT_LOOKUP intent, so that
// one round trip brings the attributes and a lock that vouches for them. While the lock stays
// in the MDC's namespace the attributes are served from here (and llite lets the kernel keep
// them); the lock's going (a blocking callback when another client changes the inode, the LRU,
// an eviction) drops them, and the mount tells llite (MountCore.invalidate).
//
// Names are cached under the child's LOOKUP lock, as Lustre's dentries are: the MDT takes the
// child's LOOKUP bit (EX) to unlink or rename it, so the lock's going tells that the name may
// be gone. A lookup that misses asks the MDT (MDS_GETATTR_NAME); a name it finds is then locked
// with an IT_LOOKUP intent by name, which the MDT answers with a lock on the child, looking the
// name up again once that lock is granted (so a rename in between is never cached). A regular
// file's name lock carries UPDATE|PERM too (its attributes come with it); a directory's only
// PERM, so that creates in it (CW UPDATE on it) leave its name alone. Names that do not exist
// are not cached: a lock on the directory for them would be revoked by every create in it.
// A file this mount creates (an open with O_CREAT, sent through the lock namespace) comes with
// its name's lock in the open's reply, so its name and attributes are cached with no lookup.
//
// Attributes are kept per FID with the lock they were read under, names per (parent, name)
// with the child's lock, at most MD_CACHE_MAX of each.
//
// A name that is not there: the lock on a directory's attributes (UPDATE) is called back
// before anyone else adds or removes a name in it, and this mount's own creates and unlinks
// there keep it (ParentKeeper). So while that lock holds, a list of every name of the
// directory stays true if this mount applies its own changes to it, and a lookup of a name not
// in it is answered ENOENT without asking: the lookup before every create (the kernel's before
// each O_CREAT open) stays here. The list comes with an MDT lookup that found nothing while the
// lock was held, when the directory holds at most LISTED_NAMES_MAX names (a new directory,
// filled by this mount: a tar, a cp -r, a loop of creates); a larger one is not listed, and
// not asked again under the same lock. An update that overlapped another of this mount in the
// same directory, or failed, or ran in a directory too large by then, forgets the list.
// A list that answered nothing before it went (a directory other clients change as well, whose
// lock goes at each of their creates), or a directory too large to list, is not asked for
// again for the next 8 lookups there, then 16, ..., up to LISTED_BACKOFF_MAX: the MDT does not
// list a busy shared directory at every create.
import { parseFid } from '../osd/index.js';
import {
  encodeLdlmIntent, InodeBits, IntentOp, LockFlag, LockMode, LockType, resIdEquals, resIdOfFid, type CachedLock, type ClientLock,
} from '../ldlm/index.js';
import { decodeAttr, decodeBody, encodeBody, LOOKUP_NAMES_MAX, mdtErrnoName, type LayoutSpec, type MdtAttr } from '../services/mdt/protocol.js';
import type { ClientNamespace } from './locks.js';
import { MdcError, toMdcError, type Mdc, type NameChange, type OpenResult } from './mdc.js';
import { MAY_EXEC, permits } from './paths.js';

/** Attributes kept at once; the least recently read go first. */
export const MD_CACHE_MAX = 16384;
/** A directory is listed with a lookup that finds nothing when it holds at most this many names (the most the MDT lists). */
export const LISTED_NAMES_MAX = LOOKUP_NAMES_MAX;
/** A listed directory is forgotten beyond this many names... */
export const LISTED_NAMES_KEPT_MAX = 65536;
/** ...and the oldest of this many listed directories when another is listed. */
export const LISTED_DIRS_MAX = 64;
/** Lookups in a directory without asking for its list, after a list that answered nothing: the first wait, and the longest. */
export const LISTED_BACKOFF_MIN = 8;
export const LISTED_BACKOFF_MAX = 4096;
/** ENOENT's errno, for an answer given here as the MDT's would be. */
const ENOENT_STATUS = -2;
/** What a getattr lock covers: the attributes and the permissions. */
const GETATTR_BITS = InodeBits.UPDATE | InodeBits.PERM;
/** What the lock of a regular file's name covers: the name, and the attributes with it. */
const NAME_BITS = InodeBits.LOOKUP | GETATTR_BITS;
/** A directory's name lock: not UPDATE, which every create in it takes. */
const DIR_NAME_BITS = InodeBits.LOOKUP | InodeBits.PERM;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

export interface LockedAttr {
  attr: MdtAttr;
  /** A lock of the MDC's namespace vouches for the attributes. */
  locked: boolean;
  /** (lookup) A lock vouches for the name: it leads to this child until the lock goes. */
  named?: boolean;
}

interface Entry {
  attr: MdtAttr;
  lock: CachedLock;
}

interface Name {
  fid: string;
  /** The child's mode as looked up (its type never changes; its permissions are under PERM, which the lock holds). */
  mode: number;
  lock: CachedLock;
}

export class MdCache {
  readonly counters = { hits: 0, locked: 0, intents: 0, nameHits: 0, absentHits: 0, listings: 0 };
  readonly #entries = new Map<string, Entry>();
  /** Names by `${parent fid}/${name}` (a name never holds a '/'). */
  readonly #names = new Map<string, Name>();
  /** What each lock vouches for: FIDs' attributes and names. */
  readonly #byLock = new Map<CachedLock, { fids: Set<string>; names: Set<string> }>();
  /** This mount's updates in flight that keep its lock on their directory (ParentKeeper), by its FID. */
  readonly #changing = new Map<string, number>();
  /** When such an update of each directory last began or ended (#changes then); the oldest fall out. */
  readonly #changedAt = new Map<string, number>();
  /** Those updates' beginnings and ends, counted. */
  #changes = 0;
  /** The latest #changedAt that fell out: any directory not in it changed no later. */
  #changedFloor = 0;
  /**
   * Every name of a directory (by FID), true while `lock`, the lock its attributes are cached
   * under, holds; `names` undefined: too many to list, not asked again under that lock.
   */
  readonly #listed = new Map<string, { lock: CachedLock; names: Set<string> | undefined; hits: number }>();
  /** Directories not to ask the list of for `left` more lookups, by FID (at most MD_CACHE_MAX). */
  readonly #unlisted = new Map<string, { left: number; backoff: number }>();

  constructor(private readonly namespace: () => ClientNamespace | undefined) {}

  /** Drops what the lock vouched for (its revoke, or its loss). */
  dropLock(lock: CachedLock): void {
    const of = this.#byLock.get(lock);
    if (!of) return;
    this.#byLock.delete(lock);
    for (const fid of of.fids) {
      if (this.#entries.get(fid)?.lock === lock) this.#entries.delete(fid);
      if (this.#listed.get(fid)?.lock === lock) this.#unlist(fid);
    }
    for (const key of of.names) if (this.#names.get(key)?.lock === lock) this.#names.delete(key);
  }

  drop(fid: string): void {
    this.#entries.delete(fid);
  }

  /**
   * An update of this mount in `parent` that keeps its lock there (ParentKeeper) is about to be
   * sent, if the directory's attributes are cached under a lock held (undefined otherwise:
   * nothing to keep). Until it is answered the lock vouches for nothing it changes, and
   * attributes read meanwhile are not cached (their request may have been served before the
   * update or after it).
   */
  begin(parent: string): number | undefined {
    if (this.attrLock(parent) === undefined) return undefined;
    this.#changing.set(parent, (this.#changing.get(parent) ?? 0) + 1);
    return this.#mark(parent);
  }

  /**
   * That update (`begun`: what begin returned) is answered: `attr` are the directory's
   * attributes it left, which the lock vouches for when no other update of this mount there
   * began or ended meanwhile (they are cached: the MDT may have applied others' after it); else,
   * or when not known (undefined), what was cached goes.
   */
  end(parent: string, begun: number, attr: MdtAttr | undefined, change?: NameChange): void {
    const alone = this.#changedAt.get(parent) === begun;
    const left = (this.#changing.get(parent) ?? 1) - 1;
    if (left > 0) this.#changing.set(parent, left);
    else this.#changing.delete(parent);
    this.#mark(parent);
    // The lock begin found the attributes under, if it still holds.
    const lock = attr && alone && left === 0 ? this.attrLock(parent) : undefined;
    const listed = this.#listed.get(parent);
    if (listed?.names) {
      // Updates that overlapped may have been applied in another order than answered.
      if (!change || !alone || listed.lock !== lock) this.#unlist(parent);
      else if (!change.added) listed.names.delete(change.name);
      else if (listed.names.add(change.name).size > LISTED_NAMES_KEPT_MAX) this.#unlist(parent);
    }
    if (lock) this.#put(parent, attr!, lock);
    else this.#entries.delete(parent);
  }

  #mark(fid: string): number {
    this.#changedAt.delete(fid);
    this.#changedAt.set(fid, ++this.#changes);
    if (this.#changedAt.size > MD_CACHE_MAX) {
      const [oldest, at] = this.#changedAt.entries().next().value!;
      this.#changedAt.delete(oldest);
      this.#changedFloor = at;
    }
    return this.#changes;
  }

  /** Whether an update of `fid` that keeps its lock ran, or runs, since #changes was `since`. */
  #changedSince(fid: string, since: number): boolean {
    return this.#changing.has(fid) || (this.#changedAt.get(fid) ?? this.#changedFloor) > since;
  }

  /** The child `name` in `parent` leads to, as last cached (for early cancels: it may be stale). */
  childOf(parent: string, name: string): string | undefined {
    return this.#names.get(`${parent}/${name}`)?.fid;
  }

  #of(lock: CachedLock): { fids: Set<string>; names: Set<string> } {
    let of = this.#byLock.get(lock);
    if (!of) this.#byLock.set(lock, (of = { fids: new Set(), names: new Set() }));
    return of;
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
      // stayed uncontested are what it vouches for: a change would have called it back first,
      // except this mount's own that keep the lock (begin).
      const since = this.#changes;
      const attr = await mdc.getattr(fid);
      if (!ns.holds(held)) return { attr, locked: false };
      return { attr, locked: this.#put(fid, attr, held, since) };
    }
    // An IT_GETATTR intent brings the lock and the attributes in one round trip, but a reply
    // that waits on the MDT for the grant did not end here under a stream of updates of the
    // same inode (creates in a directory). So the intent asks not to wait (BLOCK_NOWAIT): it
    // is granted at once, or refused (EAGAIN) before it called anyone back. The common case is
    // the kernel's GETATTR of a directory right after this mount's own create or unlink in it,
    // whose early cancel gave the directory's lock back: nothing conflicts any more.
    try {
      const r = await this.#intent(ns, mdc, resId, IntentOp.GETATTR, GETATTR_BITS, { fid }, LockFlag.BLOCK_NOWAIT);
      if (r) return { attr: r.attr, locked: r.kept };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
    }
    // Refused: the lock first (it waits its turn), then the attributes.
    let lock: CachedLock | undefined;
    try {
      lock = await ns.lock(resId, LockType.IBITS, LockMode.PR, { bits: GETATTR_BITS });
    } catch (err) {
      throw toMdcError(err);
    }
    if (lock) ns.release(lock, LockMode.PR);
    const since = this.#changes;
    const attr = await mdc.getattr(fid);
    if (!lock || !ns.holds(lock)) return { attr, locked: false };
    this.counters.locked++;
    return { attr, locked: this.#put(fid, attr, lock, since) };
  }

  /**
   * The name a create of this mount just made, locked as a lookup's (an IT_LOOKUP intent by
   * name, which the MDT answers with the lock of the child the name leads to once that lock is
   * granted): the entry and the new file's attributes are then cached under it, so that the
   * kernel may keep both. A lock on the child by FID would not do: a rename or unlink of the
   * name by another client before its grant would go unseen. undefined when locks are not
   * served, or when the name no longer leads to `fid` (another client replaced it meanwhile).
   */
  async lookupCreated(mdc: Mdc, parent: string, name: string, fid: string): Promise<LockedAttr | undefined> {
    const ns = this.namespace();
    if (!ns?.supported) return undefined;
    // The open that created it brought the lock already (open()): nothing to ask.
    const known = this.#cachedName(ns, `${parent}/${name}`);
    const e = known?.fid === fid ? this.#entries.get(fid) : undefined;
    if (e && e.lock === known!.lock) return { attr: e.attr, locked: true, named: true };
    const r = await this.#intent(ns, mdc, resIdOfFid(parseFid(parent)), IntentOp.LOOKUP, NAME_BITS, { parent, name });
    if (!r || r.attr.fid !== fid || (r.attr.mode & S_IFMT) === S_IFDIR) return undefined;
    this.#putName(`${parent}/${name}`, r.attr, r.lock);
    return { attr: r.attr, locked: true, named: true };
  }

  /**
   * open(2) by name, O_CREAT in `flags`: through the MDC's lock namespace (mdc.ts, OpenLock),
   * so that with a file it creates the MDT hands out the lock a lookup of the new name takes
   * (see the top of this file): the name and the file's attributes, read under it, are cached
   * at once, with no lookup of their own (lookupCreated then asks nothing).
   */
  async open(mdc: Mdc, parent: string, name: string, flags: number, mode: number, layout?: Partial<LayoutSpec>): Promise<OpenResult> {
    const ns = this.namespace();
    const r = await mdc.open(parent, name, flags, mode, layout, ns ? { namespace: ns, bits: NAME_BITS } : undefined);
    if (!r.lock || !ns) return r;
    const { lock, ...rest } = r;
    const keep = r.created && (r.attr.mode & S_IFMT) === S_IFREG && resIdEquals(lock.resId, resIdOfFid(parseFid(r.attr.fid)));
    if (keep) {
      // Put while the reference holds the lock: what it vouches for from now on.
      this.#putName(`${parent}/${name}`, r.attr, lock);
      this.#put(r.attr.fid, r.attr, lock);
    }
    ns.release(lock, LockMode.PR);
    if (!keep) void ns.giveBack(lock); // not what was asked for: nothing to keep it for
    return rest;
  }

  /**
   * One name in a directory: from the names cached under their child's LOOKUP lock, else asked
   * of the MDT and then locked (see the top of this file). The attributes are those of the
   * child's lock when one is held.
   */
  async lookup(mdc: Mdc, parent: string, name: string): Promise<LockedAttr> {
    const ns = this.namespace();
    const key = `${parent}/${name}`;
    const known = this.#cachedName(ns, key);
    if (known && ns) {
      const e = this.#entries.get(known.fid);
      if (e && ns.holds(e.lock)) {
        this.counters.hits++;
        return { attr: e.attr, locked: true, named: true };
      }
      // The name holds, the attributes are not vouched for (a directory's, changed since).
      return { attr: await mdc.getattr(known.fid), locked: false, named: true };
    }
    const attr = ns?.supported ? await this.#lookupListing(ns, mdc, parent, name) : await mdc.lookup(parent, name);
    if (!ns?.supported) return { attr, locked: false };
    const dir = (attr.mode & S_IFMT) === S_IFDIR;
    const bits = dir ? DIR_NAME_BITS : NAME_BITS;
    const resId = resIdOfFid(parseFid(attr.fid));
    const held = ns.cache.match(resId, LockType.IBITS, LockMode.PR, { bits }, { ref: true });
    if (held) {
      // Read while the lock is held (the reference keeps it): what it vouches for from now on.
      this.#putName(key, attr, held);
      if (!dir) this.#put(attr.fid, attr, held);
      ns.release(held, LockMode.PR);
      return { attr, locked: !dir || this.#attrLocked(ns, attr.fid), named: true };
    }
    let r: { attr: MdtAttr; lock: CachedLock } | undefined;
    try {
      r = await this.#intent(ns, mdc, resIdOfFid(parseFid(parent)), IntentOp.LOOKUP, bits, { parent, name });
    } catch (err) {
      // Gone or changed since the first look: answer what the MDT says now.
      if ((err as { code?: string }).code === 'ENOENT') throw err;
      return { attr, locked: false };
    }
    if (!r) return { attr, locked: false };
    if (dir || (r.attr.mode & S_IFMT) === S_IFDIR) {
      // A directory's name lock does not vouch for its attributes (nor the lock asked for a
      // directory's name for those of what the name leads to now).
      this.#drop(r.attr.fid, r.lock);
      if (dir && (r.attr.mode & S_IFMT) === S_IFDIR) this.#putName(key, r.attr, r.lock);
      return { attr: r.attr, locked: this.#attrLocked(ns, r.attr.fid), named: dir && (r.attr.mode & S_IFMT) === S_IFDIR };
    }
    this.#putName(key, r.attr, r.lock);
    return { attr: r.attr, locked: true, named: true };
  }

  /**
   * The MDT's lookup of a name not cached: ENOENT from the directory's list when it is listed
   * (and `mdc`'s user may search it), else asked, with the list when the directory's lock holds.
   */
  async #lookupListing(ns: ClientNamespace, mdc: Mdc, parent: string, name: string): Promise<MdtAttr> {
    const lock = this.attrLock(parent);
    const listed = this.#listed.get(parent);
    if (listed && listed.lock !== lock) this.#unlist(parent);
    else if (listed && !this.#changing.has(parent) && name !== '.' && name !== '..') {
      if (listed.names && !listed.names.has(name) && permits(this.#entries.get(parent)!.attr, mdc.cred, MAY_EXEC)) {
        this.counters.absentHits++;
        listed.hits++;
        throw new MdcError('ENOENT', `ENOENT: ${name}`, ENOENT_STATUS);
      }
      return mdc.lookup(parent, name); // listed as there, or too many to list: asked
    }
    if (!lock || this.#changing.has(parent) || name === '.' || name === '..' || this.#waiting(parent)) return mdc.lookup(parent, name);
    const since = this.#changes;
    this.counters.listings++;
    const r = await mdc.lookupOrNames(parent, name, LISTED_NAMES_MAX);
    if ('attr' in r) return r.attr;
    // Listed while the lock held and no update of this mount ran there: every name, until it goes.
    if (ns.holds(lock) && this.attrLock(parent) === lock && !this.#changedSince(parent, since)) {
      if (this.#listed.has(parent)) this.#unlist(parent);
      if (this.#listed.size >= LISTED_DIRS_MAX) this.#unlist(this.#listed.keys().next().value!);
      this.#listed.set(parent, { lock, names: r.names && new Set(r.names), hits: 0 });
    }
    throw new MdcError('ENOENT', `ENOENT: ${name}`, ENOENT_STATUS);
  }

  /** Forgets the list of `dir`; one that answered nothing, or a directory too large, waits before it is asked for again. */
  #unlist(dir: string): void {
    const listed = this.#listed.get(dir);
    if (!listed) return;
    this.#listed.delete(dir);
    if (listed.names && listed.hits > 0) {
      this.#unlisted.delete(dir);
      return;
    }
    const before = this.#unlisted.get(dir)?.backoff ?? 0;
    const backoff = listed.names ? Math.min(LISTED_BACKOFF_MAX, Math.max(LISTED_BACKOFF_MIN, before * 2)) : LISTED_BACKOFF_MAX;
    this.#unlisted.delete(dir);
    if (this.#unlisted.size >= MD_CACHE_MAX) this.#unlisted.delete(this.#unlisted.keys().next().value!);
    this.#unlisted.set(dir, { left: backoff, backoff });
  }

  /** Whether lookups in `dir` go without asking for its list for now (counted down by each). */
  #waiting(dir: string): boolean {
    const u = this.#unlisted.get(dir);
    if (!u || u.left <= 0) return false;
    u.left--;
    return true;
  }

  /** A name cached under a lock still held (counted, and moved to the LRU's young end), or undefined. */
  #cachedName(ns: ClientNamespace | undefined, key: string) {
    const known = this.#names.get(key);
    if (!known || !ns || !ns.holds(known.lock)) return undefined;
    this.counters.nameHits++;
    this.#names.delete(key);
    this.#names.set(key, known);
    return known;
  }

  /**
   * What `name` in `parent` leads to, its FID and mode, for a path walk that goes through it:
   * from the name cache without a request while the child's lock holds (the attributes need
   * not be vouched for), else as lookup().
   */
  async lookupName(mdc: Mdc, parent: string, name: string): Promise<{ fid: string; mode: number }> {
    const known = this.#cachedName(this.namespace(), `${parent}/${name}`);
    if (known) return { fid: known.fid, mode: known.mode };
    const { attr } = await this.lookup(mdc, parent, name);
    return { fid: attr.fid, mode: attr.mode };
  }

  /** The lock the cached attributes of `fid` are vouched for by, while it holds. */
  attrLock(fid: string): CachedLock | undefined {
    const ns = this.namespace();
    const e = this.#entries.get(fid);
    return ns && e && ns.holds(e.lock) ? e.lock : undefined;
  }

  /** Whether attributes of `fid` are cached under a lock still held. */
  #attrLocked(ns: ClientNamespace, fid: string): boolean {
    const e = this.#entries.get(fid);
    return e !== undefined && ns.holds(e.lock);
  }

  /** Forgets attributes of `fid` put under `lock` (one that does not vouch for them). */
  #drop(fid: string, lock: CachedLock): void {
    if (this.#entries.get(fid)?.lock === lock) this.#entries.delete(fid);
  }

  async #intent(
    ns: ClientNamespace, mdc: Mdc, resId: ReturnType<typeof resIdOfFid>, opc: number, bits: number, body: Record<string, unknown>, flags = 0,
  ): Promise<{ attr: MdtAttr; lock: CachedLock; kept: boolean } | undefined> {
    const since = this.#changes;
    let granted: { cached: CachedLock; lock: ClientLock } | undefined;
    try {
      granted = await ns.lockWithReply(resId, LockType.IBITS, LockMode.PR, { bits }, {
        intent: [encodeLdlmIntent(opc), encodeBody({ cred: mdc.cred, ...body })], ...(flags !== 0 && { flags }),
      });
    } catch (err) {
      throw toMdcError(err);
    }
    if (!granted) return undefined;
    this.counters.intents++;
    const { cached, lock } = granted;
    let result: { attr: MdtAttr; lock: CachedLock; kept: boolean } | undefined;
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
      result = { attr, lock: cached, kept: this.#put(attr.fid, attr, cached, since) };
    } catch (err) {
      failure = err;
    }
    ns.release(cached, LockMode.PR);
    if (result) return result;
    // Nothing to keep the lock for (a negative lookup's lock on the directory, a reply not understood).
    void ns.giveBack(cached);
    throw failure;
  }

  /**
   * Caches `attr` under `lock`; not when read by a request that began before `since` and this
   * mount's own update of `fid` ran meanwhile (begin): false then.
   */
  #put(fid: string, attr: MdtAttr, lock: CachedLock, since?: number): boolean {
    if (since !== undefined && this.#changedSince(fid, since)) return false;
    this.#entries.delete(fid);
    if (this.#entries.size >= MD_CACHE_MAX) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(fid, { attr, lock });
    this.#of(lock).fids.add(fid);
    return true;
  }

  #putName(key: string, attr: MdtAttr, lock: CachedLock): void {
    this.#names.delete(key);
    if (this.#names.size >= MD_CACHE_MAX) this.#names.delete(this.#names.keys().next().value!);
    this.#names.set(key, { fid: attr.fid, mode: attr.mode, lock });
    this.#of(lock).names.add(key);
  }

  #touch(fid: string, e: Entry): void {
    this.#entries.delete(fid);
    this.#entries.set(fid, e);
  }
}
