// The MDC: a client's import to one MDT, one call per metadata operation. Requests act for a
// user (uid, gid, groups: `cred`, root by default; asUser() gives a view for another user on
// the same import). Failures are MdcErrors whose `code` is the errno name the MDT answered
// ('ENOENT', 'ENOTEMPTY', ...) or the RPC layer's ('ETIMEDOUT', 'ESHUTDOWN', ...).
import {
  decodeLdlmReply, Disposition, ELDLM_LOCK_ABORTED, encodeLdlmIntent, encodeLdlmRequest, InodeBits, IntentOp, LockFlag, LockMode, LockType, resIdOfFid,
  type CachedLock, type ResId,
} from '../ldlm/index.js';
import { OutcomeError } from '../log/index.js';
import { fidToString, parseFid, type Fid } from '../osd/index.js';
import { Import, LNET_PID_LUSTRE, Opcode, PtlrpcError, targetProfiles, type ImportConfig, type Network, type Reply } from '../ptlrpc/index.js';
import {
  decodeDefaultLayout, decodeFileLayout, encodeDefaultLayout, LOV_XATTR, type FileLayout,
} from '../services/mdt/layout.js';
import type { ClientNamespace } from './locks.js';
import {
  decodeAttr, decodeBody, decodeDirEntries, decodeStatfs, encodeBody, MdsOpcode, mdtErrnoName, OpenFlag, ReintOp, XattrFlag,
  type Cred, type DirEntry, type LayoutSpec, type MdtAttr, type MdtStatfs, type SetattrFields, type UnlinkReply,
} from '../services/mdt/protocol.js';

export { OpenFlag, XattrFlag, type Cred, type DirEntry, type LayoutSpec, type MdtAttr, type MdtStatfs, type SetattrFields };
export type { FileLayout };

export class MdcError extends OutcomeError {
  readonly code: string;
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number) {
    // The MDT's answer (ENOENT of a lookup before every create): no stack trace, as PtlrpcError's.
    super(message, status !== undefined);
    this.name = 'MdcError';
    this.code = code;
    this.status = status;
  }
}

export interface MdcOptions extends Partial<Omit<ImportConfig, 'target' | 'targetUuid' | 'clientUuid'>> {
  /** The MDT's NID. */
  nid: string;
  /** 'testfs-MDT0000_UUID'. */
  targetUuid: string;
  clientUuid: string;
  cred?: Cred;
}

export interface OpenResult {
  attr: MdtAttr;
  handle: string;
  created: boolean;
  layout: FileLayout | undefined;
  /**
   * The lock the MDT handed out on the file it created (OpenLock asked for it), referenced in
   * PR for the caller, who releases it; `attr` was read under it.
   */
  lock?: CachedLock;
}

/**
 * An open that asks, through the MDC's lock namespace, for a PR lock of `bits` on the file its
 * O_CREAT creates (the MDT grants it when it can at once, never on a replay).
 */
export interface OpenLock {
  namespace: ClientNamespace;
  bits: number;
}

export interface DirPage {
  entries: DirEntry[];
  /** Pass to the next readdir; null at the end. */
  cookie: string | null;
  end: boolean;
}

/** The dispositions of an open intent the MDT did. */
const OPEN_DONE = Disposition.IT_EXECD | Disposition.OPEN_OPEN;

/** Linux's XATTR_SIZE_MAX. */
export const XATTR_SIZE_MAX = 65536;
const ROOT_CRED: Cred = { uid: 0, gid: 0, groups: [] };
const PAGE_BYTES = 64 * 1024;

type FidArg = Fid | string;
const text = (f: FidArg): string => (typeof f === 'string' ? f : fidToString(f));

/**
 * The locks of its own that a reint's update would call back from this client: an object's
 * (by FID), or the child a name in a directory leads to, with the inodebits that conflict.
 */
export type EarlyCancelTarget = ({ fid: string } | { parent: string; name: string }) & { bits: number };
/** Gives back (locally) this client's unused locks on the targets; resolves with their server handles. */
export type EarlyCancelHook = (targets: EarlyCancelTarget[]) => Promise<bigint[]>;

const { UPDATE, LOOKUP, PERM, XATTR, LAYOUT } = InodeBits;

/**
 * Lustre's early lock cancel (mdc_resource_get_unused): the locks the MDT takes for a reint
 * (see the table at the top of src/services/mdt/ldlm.ts) that this client's cached locks
 * would conflict with, so that they ride on the request instead of costing a callback.
 */
function earlyCancelTargets(op: number, b: Record<string, unknown>): EarlyCancelTarget[] {
  const s = (k: string): string => String(b[k]);
  switch (op) {
    case ReintOp.CREATE: return [{ fid: s('parent'), bits: UPDATE }];
    case ReintOp.LINK: return [{ fid: s('parent'), bits: UPDATE }, { fid: s('fid'), bits: UPDATE }];
    case ReintOp.UNLINK: return [{ fid: s('parent'), bits: UPDATE }, { parent: s('parent'), name: s('name'), bits: LOOKUP | UPDATE }];
    case ReintOp.RENAME: return [
      { fid: s('parent'), bits: UPDATE }, { fid: s('newParent'), bits: UPDATE },
      { parent: s('parent'), name: s('name'), bits: LOOKUP }, { parent: s('newParent'), name: s('newName'), bits: LOOKUP | UPDATE },
    ];
    case ReintOp.SETATTR: {
      const a = (b.attrs ?? {}) as Record<string, unknown>;
      return [{ fid: s('fid'), bits: UPDATE | (a.mode !== undefined || a.uid !== undefined || a.gid !== undefined ? PERM : 0) }];
    }
    case ReintOp.SETXATTR: return [{ fid: s('fid'), bits: UPDATE | XATTR }];
    case ReintOp.OPEN: {
      // O_CREAT may add a name to the parent; O_TRUNC changes the file's size and layout.
      const flags = Number(b.flags);
      const byName = b.fid === undefined;
      return [
        ...(byName && flags & OpenFlag.CREAT ? [{ fid: s('parent'), bits: UPDATE }] : []),
        ...(flags & OpenFlag.TRUNC ? [byName ? { parent: s('parent'), name: s('name'), bits: LAYOUT | UPDATE } : { fid: s('fid'), bits: LAYOUT | UPDATE }] : []),
      ];
    }
    default: return [];
  }
}

/**
 * Asked whether this client's update in a directory (a create, unlink, rmdir, or open that may
 * create) should keep its lock there (keepParentLock): `begin` before it is sent, undefined when
 * there is nothing to keep (the update then gives back what it finds, as an early cancel); if
 * kept, `end` once it is answered, with the directory's attributes as the update left them
 * (undefined when the update failed or the reply did not say: then they are not known).
 */
export interface ParentKeeper {
  /** What `end` is given back, or undefined: not kept. */
  begin(parent: string): number | undefined;
  /**
   * The update is answered: `attr`, the directory's attributes it left, and `change`, the name
   * it made (added) or removed there; both undefined when it failed.
   */
  end(parent: string, begun: number, attr: MdtAttr | undefined, change: NameChange | undefined): void;
}

/** A name an update made in its directory, or removed from it. */
export interface NameChange {
  name: string;
  added: boolean;
}

/** What the views of one import for several users share. */
interface MdcShared {
  /** Finds the locks an update carries as early cancels. */
  hook?: EarlyCancelHook;
  /** Updates keep this client's lock on their parent directory, told to it (keepParentLock). */
  keeper?: ParentKeeper;
  /** The MDT serves no open intent (EOPNOTSUPP once): opens go as MDS_REINT. */
  openByReint?: boolean;
}

/** The cookie of an open intent's lock, which the MDT never hands out (ELDLM_LOCK_ABORTED). */
let openCookie = 0n;

export class Mdc {
  readonly import: Import;
  readonly cred: Cred;
  readonly #shared: MdcShared;

  private constructor(imp: Import, cred: Cred, shared: MdcShared = {}) {
    this.import = imp;
    this.cred = cred;
    this.#shared = shared;
  }

  /** Reints carry this client's locks they would call back (early lock cancel), found by `hook`. */
  set earlyCancel(hook: EarlyCancelHook | undefined) {
    this.#shared.hook = hook;
  }

  /**
   * Creates, unlinks and opens that may create keep this client's lock on their parent
   * directory (no early cancel of it, no callback): `keeper` is told of each, and of the
   * directory's attributes its reply brings.
   */
  set parentKeeper(keeper: ParentKeeper | undefined) {
    this.#shared.keeper = keeper;
  }

  /** Runs an update in `body.parent` that keeps the parent's lock, when a keeper is set. */
  async #keepingParent<T extends { m: Record<string, unknown> }>(body: Record<string, unknown>, added: boolean, run: () => Promise<T>): Promise<T> {
    const keeper = this.#shared.keeper;
    if (!keeper || typeof body.parent !== 'string' || typeof body.name !== 'string') return run();
    const { parent, name } = body;
    const begun = keeper.begin(parent);
    if (begun === undefined) return run();
    body.keepParentLock = true;
    let r: T;
    try {
      r = await run();
    } catch (err) {
      keeper.end(parent, begun, undefined, undefined);
      throw err;
    }
    let attr: MdtAttr | undefined;
    try {
      attr = r.m.parentAttr === undefined ? undefined : decodeAttr(r.m.parentAttr);
    } catch {
      attr = undefined; // not known: the keeper forgets what it had
    }
    keeper.end(parent, begun, attr?.fid === parent ? attr : undefined, { name, added });
    return r;
  }

  static async connect(ni: Network, o: MdcOptions): Promise<Mdc> {
    const { nid, cred, ...rest } = o;
    try {
      const imp = await Import.connect(ni, { ...targetProfiles.mdt, maxReplyBytes: 128 * 1024, ...rest, target: { nid, pid: LNET_PID_LUSTRE } });
      return new Mdc(imp, cred ?? ROOT_CRED);
    } catch (err) {
      throw toMdcError(err);
    }
  }

  /** The same import, acting for another user. */
  asUser(cred: Cred): Mdc {
    return new Mdc(this.import, { uid: cred.uid, gid: cred.gid, groups: cred.groups ?? [] }, this.#shared);
  }

  async disconnect(): Promise<void> {
    await this.import.disconnect();
  }

  async #call(opcode: number, body: Record<string, unknown>, opts: { modifying?: boolean; bulkRead?: number } = {}, more: Buffer[] = []): Promise<{ m: Record<string, unknown>; reply: Reply }> {
    let reply: Reply;
    try {
      reply = await this.import.request(opcode, [encodeBody({ cred: this.cred, ...body }), ...more], opts);
    } catch (err) {
      throw toMdcError(err);
    }
    try {
      return { m: decodeBody(reply.buffers), reply };
    } catch (err) {
      throw new MdcError('EPROTO', (err as Error).message);
    }
  }

  async #reint(op: number, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (op === ReintOp.CREATE || op === ReintOp.UNLINK) {
      return (await this.#keepingParent(body, op === ReintOp.CREATE, async () => ({ m: await this.#reintNow(op, body) }))).m;
    }
    return this.#reintNow(op, body);
  }

  async #reintNow(op: number, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const handles = await this.#earlyCancels(op, body);
    // The MDT reads the cancels from the buffer after the body (TargetLdlm.earlyCancel).
    const cancels = handles.length > 0 ? [encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: handles })] : [];
    return (await this.#call(MdsOpcode.REINT, { op, ...body }, { modifying: true }, cancels)).m;
  }

  async #earlyCancels(op: number, body: Record<string, unknown>): Promise<bigint[]> {
    if (!this.#shared.hook) return [];
    let targets = earlyCancelTargets(op, body);
    // The parent's lock stays: the MDT's lock on the parent spares it.
    if (body.keepParentLock === true) targets = targets.filter((t) => !('fid' in t && t.fid === body.parent && t.bits === UPDATE));
    return this.#shared.hook(targets);
  }

  /** MDS_GET_ROOT: the root directory's FID. */
  async root(): Promise<string> {
    return String((await this.#call(MdsOpcode.GET_ROOT, {})).m.fid);
  }

  /** MDS_GETATTR. */
  async getattr(f: FidArg): Promise<MdtAttr> {
    return decodeAttr((await this.#call(MdsOpcode.GETATTR, { fid: text(f) })).m.attr);
  }

  /** MDS_GETATTR_NAME: one component of a path. */
  async lookup(parent: FidArg, name: string): Promise<MdtAttr> {
    return decodeAttr((await this.#call(MdsOpcode.GETATTR_NAME, { parent: text(parent), name })).m.attr);
  }

  /**
   * lookup(), except that a name not there is answered with every name of the directory when it
   * holds at most `max` (and this user may read it), or with none, instead of ENOENT.
   */
  async lookupOrNames(parent: FidArg, name: string, max: number): Promise<{ attr: MdtAttr } | { names?: string[] }> {
    const { m } = await this.#call(MdsOpcode.GETATTR_NAME, { parent: text(parent), name, absentNames: max });
    try {
      if (m.absent !== true) return { attr: decodeAttr(m.attr) };
      if (m.names === undefined) return {};
      if (!Array.isArray(m.names) || m.names.length > max || !m.names.every((n) => typeof n === 'string')) throw new Error(`names of ${text(parent)} are not ${max} strings at most`);
      return { names: m.names as string[] };
    } catch (err) {
      throw new MdcError('EPROTO', (err as Error).message);
    }
  }

  async readlink(f: FidArg): Promise<string> {
    return String((await this.#call(MdsOpcode.GETATTR, { fid: text(f), readlink: true })).m.target);
  }

  /** MDS_REINT CREATE of a regular file (mknod S_IFREG); striped with `layout` or the defaults. */
  async create(parent: FidArg, name: string, mode: number, layout?: Partial<LayoutSpec>): Promise<MdtAttr> {
    return this.#create(parent, name, 0o100000 | (mode & 0o7777), layout && { target: undefined, layout: fullSpec(layout) });
  }

  async mkdir(parent: FidArg, name: string, mode: number, defaultLayout?: Partial<LayoutSpec>): Promise<MdtAttr> {
    return this.#create(parent, name, 0o040000 | (mode & 0o7777), defaultLayout && { layout: fullSpec(defaultLayout) });
  }

  /** mknod: `mode` with its file type bits (S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, S_IFREG). */
  async mknod(parent: FidArg, name: string, mode: number, rdev = 0): Promise<MdtAttr> {
    return this.#create(parent, name, mode, { rdev });
  }

  async symlink(parent: FidArg, name: string, target: string): Promise<MdtAttr> {
    return this.#create(parent, name, 0o120777, { target });
  }

  async #create(parent: FidArg, name: string, mode: number, extra: Record<string, unknown> = {}): Promise<MdtAttr> {
    const body: Record<string, unknown> = { parent: text(parent), name, mode };
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) body[k] = v;
    return decodeAttr((await this.#reint(ReintOp.CREATE, body)).attr);
  }

  async link(f: FidArg, parent: FidArg, name: string): Promise<MdtAttr> {
    return decodeAttr((await this.#reint(ReintOp.LINK, { fid: text(f), parent: text(parent), name })).attr);
  }

  /**
   * unlink(2); `orphan`: the file is still open somewhere and lives on until its last close;
   * `destroyed`: that was its last name, and it is gone.
   */
  async unlink(parent: FidArg, name: string): Promise<UnlinkReply> {
    const m = await this.#reint(ReintOp.UNLINK, { parent: text(parent), name, rmdir: false });
    return { orphan: m.orphan === true, destroyed: m.destroyed === true };
  }

  async rmdir(parent: FidArg, name: string): Promise<void> {
    await this.#reint(ReintOp.UNLINK, { parent: text(parent), name, rmdir: true });
  }

  async rename(parent: FidArg, name: string, newParent: FidArg, newName: string): Promise<void> {
    await this.#reint(ReintOp.RENAME, { parent: text(parent), name, newParent: text(newParent), newName });
  }

  /** chmod, chown, utimes (size is the OSTs': truncate through the OSCs). */
  async setattr(f: FidArg, attrs: SetattrFields): Promise<MdtAttr> {
    return decodeAttr((await this.#reint(ReintOp.SETATTR, { fid: text(f), attrs })).attr);
  }

  async setxattr(f: FidArg, name: string, value: Uint8Array, flags = 0): Promise<void> {
    if (value.byteLength > XATTR_SIZE_MAX) throw new MdcError('E2BIG', `E2BIG: xattr value of ${value.byteLength} bytes (at most ${XATTR_SIZE_MAX})`);
    await this.#reint(ReintOp.SETXATTR, { fid: text(f), name, value, flags });
  }

  async removexattr(f: FidArg, name: string): Promise<void> {
    await this.#reint(ReintOp.SETXATTR, { fid: text(f), name, value: null, flags: 0 });
  }

  async getxattr(f: FidArg, name: string): Promise<Buffer> {
    const v = (await this.#call(MdsOpcode.GETXATTR, { fid: text(f), name })).m.value;
    if (!(v instanceof Uint8Array)) throw new MdcError('EPROTO', 'getxattr reply without a value');
    return Buffer.from(v);
  }

  async listxattr(f: FidArg): Promise<string[]> {
    const names = (await this.#call(MdsOpcode.GETXATTR, { fid: text(f), name: null })).m.names;
    if (!Array.isArray(names)) throw new MdcError('EPROTO', 'listxattr reply without names');
    return names.map(String);
  }

  /** MDS_READPAGE: one page of entries after `cookie` (null: from the start, '.' and '..' first). */
  async readdir(dir: FidArg, cookie: string | null = null, bytes = PAGE_BYTES): Promise<DirPage> {
    const { m, reply } = await this.#call(MdsOpcode.READPAGE, { fid: text(dir), cookie, bytes }, { bulkRead: bytes });
    let entries: DirEntry[];
    try {
      entries = decodeDirEntries(reply.bulk ?? []);
    } catch (err) {
      throw new MdcError('EPROTO', (err as Error).message);
    }
    if (entries.length !== m.count) throw new MdcError('EPROTO', `readpage said ${String(m.count)} entries, the page holds ${entries.length}`);
    return { entries, cookie: typeof m.cookie === 'string' ? m.cookie : null, end: m.end === true };
  }

  /** Every entry, page by page. */
  async readdirAll(dir: FidArg, bytes = PAGE_BYTES): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    let cookie: string | null = null;
    for (;;) {
      const page: DirPage = await this.readdir(dir, cookie, bytes);
      out.push(...page.entries);
      if (page.end) return out;
      cookie = page.cookie ?? '';
    }
  }

  async statfs(): Promise<MdtStatfs> {
    return decodeStatfs((await this.#call(MdsOpcode.STATFS, {})).m.statfs);
  }

  /** open(2) by name in a directory (O_CREAT creates a regular file striped as `layout` or the defaults). */
  async open(parent: FidArg, name: string, flags: number, mode = 0o644, layout?: Partial<LayoutSpec>, lock?: OpenLock): Promise<OpenResult> {
    return this.#open({ parent: text(parent), name, flags, mode, ...(layout && { layout: fullSpec(layout) }) }, lock);
  }

  /** open by FID (a file found already, or an unlinked one still known). */
  async openFid(f: FidArg, flags: number): Promise<OpenResult> {
    return this.#open({ fid: text(f), flags, mode: 0 });
  }

  async #open(body: Record<string, unknown>, want?: OpenLock): Promise<OpenResult> {
    const creates = body.fid === undefined && (Number(body.flags) & OpenFlag.CREAT) !== 0;
    const { m, lock } = await (creates ? this.#keepingParent(body, true, () => this.#openNow(body, want)) : this.#openNow(body, want));
    let layout: FileLayout | undefined;
    let attr: MdtAttr;
    try {
      layout = m.layout instanceof Uint8Array ? decodeFileLayout(m.layout) : undefined;
      attr = decodeAttr(m.attr);
    } catch (err) {
      if (lock) want!.namespace.release(lock, LockMode.PR);
      throw new MdcError('EPROTO', (err as Error).message);
    }
    return { attr, handle: String(m.handle), created: m.created === true, layout, ...(lock && { lock }) };
  }

  /** The open's request, by intent or by reint: its reply's body, and the lock an intent brought. */
  async #openNow(body: Record<string, unknown>, want?: OpenLock): Promise<{ m: Record<string, unknown>; lock: CachedLock | undefined }> {
    let m: Record<string, unknown> | undefined;
    let lock: CachedLock | undefined;
    if (!this.#shared.openByReint) {
      try {
        // Through the lock namespace only once it took locks of this MDT (an MDT that refused a
        // first enqueue would leave the namespace without locks for good).
        if (want?.namespace.active && (Number(body.flags) & OpenFlag.CREAT)) ({ m, lock } = await this.#openLocking(body, want));
        else m = await this.#openIntent(body);
      } catch (err) {
        if ((err as MdcError).code !== 'EOPNOTSUPP') throw err;
        this.#shared.openByReint = true; // an MDT that serves no open intent
      }
    }
    m ??= await this.#reint(ReintOp.OPEN, body);
    return { m, lock };
  }

  /**
   * An open as Lustre's clients send it: an LDLM_ENQUEUE with an IT_OPEN (| IT_CREAT) intent on
   * the parent (by name) or the file (by FID), its early cancels in the ldlm_request's slots
   * after the lock's own. The MDT opens in the enqueue's transaction and hands out no lock
   * (ELDLM_LOCK_ABORTED); the reply's second buffer is the open's body, which a replay carries.
   */
  async #openIntent(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const { resId, intent, buffers } = this.#openParts(body);
    const cancels = await this.#earlyCancels(ReintOp.OPEN, body);
    const creat = (Number(body.flags) & OpenFlag.CREAT) !== 0;
    const dlm = encodeLdlmRequest({
      flags: LockFlag.HAS_INTENT,
      lockDesc: { resId, type: LockType.IBITS, reqMode: creat ? LockMode.CW : LockMode.CR, grantedMode: 0, policy: { bits: LOOKUP } },
      lockHandles: [++openCookie, ...cancels],
    });
    let reply: Reply;
    try {
      reply = await this.import.request(Opcode.LDLM_ENQUEUE, [dlm, intent, ...buffers], { modifying: true, replayReply: 1 });
    } catch (err) {
      throw toMdcError(err);
    }
    if (reply.status !== ELDLM_LOCK_ABORTED) {
      throw new MdcError('EPROTO', `an open intent answered with status ${reply.status}, not ELDLM_LOCK_ABORTED`);
    }
    try {
      return openReplyBody(decodeLdlmReply(reply.buffers[0]).policyRes1, reply.buffers.slice(1));
    } catch (err) {
      throw new MdcError('EPROTO', `the open intent's reply: ${(err as Error).message}`);
    }
  }

  /**
   * The open intent sent through the lock namespace, as Lustre's mdc_enqueue sends it, asking
   * for PR on `want.bits`: the MDT answers ELDLM_LOCK_ABORTED as ever, or, for a file it
   * created, with a lock on that file (the ldlm_reply names the file's resource, as a lookup's
   * replacement does), which the namespace then caches as any other lock.
   */
  async #openLocking(body: Record<string, unknown>, want: OpenLock): Promise<{ m: Record<string, unknown>; lock: CachedLock | undefined }> {
    const { resId, intent, buffers } = this.#openParts(body);
    const cancels = await this.#earlyCancels(ReintOp.OPEN, body);
    let r;
    try {
      r = await want.namespace.intentWithReply(resId, LockType.IBITS, LockMode.PR, { bits: want.bits }, {
        intent: [intent, ...buffers], remoteCancels: cancels, update: { replayReply: 1 },
      });
    } catch (err) {
      throw toMdcError(err);
    }
    if (!r) throw new MdcError('ESHUTDOWN', 'the MDC\'s lock namespace closed during the open');
    const lock = r.cached;
    try {
      return { m: openReplyBody(r.lock.policyRes1, r.lock.replyBuffers), lock };
    } catch (err) {
      if (lock) {
        want.namespace.release(lock, LockMode.PR);
        void want.namespace.giveBack(lock);
      }
      throw new MdcError('EPROTO', `the open intent's reply: ${(err as Error).message}`);
    }
  }

  /** What an open intent carries: the lock's resource (the parent by name, else the file), its ldlm_intent and the open's body. */
  #openParts(body: Record<string, unknown>): { resId: ResId; intent: Buffer; buffers: Buffer[] } {
    const creat = (Number(body.flags) & OpenFlag.CREAT) !== 0;
    return {
      resId: resIdOfFid(parseFid(String(body.fid ?? body.parent))),
      intent: encodeLdlmIntent(IntentOp.OPEN | (creat ? IntentOp.CREAT : 0)),
      buffers: [encodeBody({ cred: this.cred, op: ReintOp.OPEN, ...body })],
    };
  }

  /** MDS_CLOSE: the last close of an unlinked file destroys it. */
  async close(handle: string): Promise<void> {
    await this.#call(MdsOpcode.CLOSE, { handle }, { modifying: true });
  }

  /** A file's layout (its objects), or undefined for a file without one. */
  async getLayout(f: FidArg): Promise<FileLayout | undefined> {
    try {
      return decodeFileLayout(await this.getxattr(f, LOV_XATTR));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODATA') return undefined;
      throw err;
    }
  }

  /** A directory's default layout (lfs getstripe -d), or undefined. */
  async getDirStripe(dir: FidArg): Promise<LayoutSpec | undefined> {
    try {
      return decodeDefaultLayout(await this.getxattr(dir, LOV_XATTR));
    } catch (err) {
      if ((err as { code?: string }).code === 'ENODATA') return undefined;
      throw err;
    }
  }

  /** lfs setstripe on a directory (its default) or on a file without objects yet. */
  async setStripe(f: FidArg, spec: Partial<LayoutSpec>): Promise<void> {
    await this.setxattr(f, LOV_XATTR, encodeDefaultLayout({ seq: 0, oid: 0, ver: 0 }, fullSpec(spec)));
  }

  async removeDirStripe(dir: FidArg): Promise<void> {
    await this.removexattr(dir, LOV_XATTR);
  }
}

/** The open's body in an open intent's reply, once its dispositions say the open was done. */
function openReplyBody(policyRes1: bigint, buffers: Buffer[]): Record<string, unknown> {
  if ((policyRes1 & BigInt(OPEN_DONE)) !== BigInt(OPEN_DONE)) throw new Error(`dispositions 0x${policyRes1.toString(16)} say the open was not done`);
  return decodeBody(buffers);
}

function fullSpec(s: Partial<LayoutSpec>): LayoutSpec {
  return { stripeCount: s.stripeCount ?? 0, stripeSize: s.stripeSize ?? 0, stripeOffset: s.stripeOffset ?? -1 };
}

export function toMdcError(err: unknown): Error {
  if (err instanceof PtlrpcError) {
    const code = (err.status !== undefined && mdtErrnoName(err.status)) || err.code;
    return new MdcError(code, `${code}: ${err.message}`, err.status);
  }
  return err as Error;
}
