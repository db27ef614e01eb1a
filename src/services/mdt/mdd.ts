// The MDT's metadata device (Lustre's MDD): the namespace kept on the OSD. What it keeps there:
//   the root index (ROOT_INDEX_FID) anchors 'ROOT' (the namespace root, Lustre's FID
//   [0x200000007:0x1:0x0]), 'PENDING' (orphans: unlinked files still open, by FID), 'mdt_seq'
//   (the FID sequence's last oid, xattr 'mdt.last_fid'), 'lov_objid' (the last OST object used
//   per OST), 'unlink_llog' (OST objects to destroy, see llog.ts) and 'open_handles' (the open
//   handles of connected clients, so that they survive a restart: see open.ts).
//   A directory is an OSD 'dir' index of name -> { fid, type }, with xattr 'mdt.parent' (its
//   parent's FID, for '..' and rename loop checks); a symlink's target is its data; a device
//   node's rdev is xattr 'mdt.rdev'; a regular file's striping is xattr 'lustre.lov' (layout.ts).
// FIDs come from sequences of LUSTRE_SEQ_MAX_WIDTH oids starting at 0x200000400; the last one
// given is written in the transaction that uses it, so no FID is given twice, even after a crash.
import assert from 'node:assert/strict';
import {
  fid, fidEquals, fidKey, fidToString, parseFid, ROOT_INDEX_FID,
  type Fid, type ObjectAttrs, type ObjectType, type Osd, type Tx,
} from '../../osd/index.js';
import { localObject } from '../target/local-files.js';
import { mdtError } from './errors.js';
import { decodeDefaultLayout, decodeFileLayout, LOV_XATTR, type FileLayout } from './layout.js';
import { LockMap } from './locks.js';
import { checkPermission, MAY_EXEC, MAY_READ, permits, type RootSquash } from './perm.js';
import { typeBits, type Cred, type LayoutSpec, type MdtAttr } from './protocol.js';

export const FID_SEQ_ROOT = 0x200000007;
export const ROOT_FID: Fid = fid(FID_SEQ_ROOT, 1);
export const FID_SEQ_NORMAL = 0x200000400;
/** oids per sequence (LUSTRE_SEQ_MAX_WIDTH). */
export const SEQ_WIDTH = 0x20000;
export const NAME_MAX = 255;
/** Hard links per inode (ldiskfs's EXT4_LINK_MAX). */
export const LINK_MAX = 65000;
export const PARENT_XATTR = 'mdt.parent';
export const RDEV_XATTR = 'mdt.rdev';
const LAST_FID_XATTR = 'mdt.last_fid';
/**
 * FIDs reserved by one write of mdt.last_fid, which holds the end of the reserved range, not
 * the last FID given: one update per FID_RESERVE creates instead of one per create. A restart
 * goes on after the range (what it skips is never given), as a Lustre client's unused FIDs of a
 * sequence are at reconnect.
 */
export const FID_RESERVE = 1024;

/** Whether a comes after b in FID order (seq, then oid). */
const fidAfter = (a: Fid, b: Fid): boolean => a.seq > b.seq || (a.seq === b.seq && a.oid > b.oid);
const INTERNAL_PREFIX = 'mdt.';

export function isInternalXattr(name: string): boolean {
  return name.startsWith(INTERNAL_PREFIX);
}

export interface MddConfig {
  osd: Osd;
  rootSquash?: RootSquash | undefined;
  /** The file system's default striping (mountdata params), under any set on the root. */
  fsLayout?: LayoutSpec | undefined;
  clock?: () => number;
}

export class Mdd {
  readonly osd: Osd;
  readonly locks = new LockMap();
  readonly rootSquash: RootSquash | undefined;
  readonly fsLayout: LayoutSpec | undefined;
  pendingFid!: Fid;
  seqFid!: Fid;
  objidFid!: Fid;
  llogFid!: Fid;
  openFid!: Fid;
  readonly #clock: () => number;
  #lastFid: Fid = fid(FID_SEQ_NORMAL, 0);
  /** The end of the reserved range, as mdt.last_fid holds it (no FID given is after it). */
  #reserved: Fid = fid(FID_SEQ_NORMAL, 0);

  private constructor(cfg: MddConfig) {
    this.osd = cfg.osd;
    this.rootSquash = cfg.rootSquash;
    this.fsLayout = cfg.fsLayout;
    this.#clock = cfg.clock ?? Date.now;
  }

  /** Opens (creating on first use) the namespace and the MDT's local objects. */
  static async open(cfg: MddConfig): Promise<Mdd> {
    const mdd = new Mdd(cfg);
    const osd = cfg.osd;
    if (!(await osd.indexLookup(ROOT_INDEX_FID, 'ROOT'))) {
      const tx = osd.begin().declareCreate(ROOT_FID).declareIndexInsert(ROOT_INDEX_FID);
      await tx.start();
      try {
        await tx.create(ROOT_FID, { type: 'dir', mode: 0o755 });
        await tx.xattrSet(ROOT_FID, PARENT_XATTR, Buffer.from(fidToString(ROOT_FID)));
        await tx.indexInsert(ROOT_INDEX_FID, 'ROOT', { fid: ROOT_FID, type: 'dir' });
      } finally {
        tx.stop();
      }
      await osd.sync();
    }
    mdd.pendingFid = await localObject(osd, 'PENDING', 'idx');
    mdd.seqFid = await localObject(osd, 'mdt_seq', 'reg', { mode: 0o600 });
    mdd.objidFid = await localObject(osd, 'lov_objid', 'reg', { mode: 0o600 });
    mdd.llogFid = await localObject(osd, 'unlink_llog', 'idx');
    mdd.openFid = await localObject(osd, 'open_handles', 'idx');
    const lastFid = await osd.xattrFind(mdd.seqFid, LAST_FID_XATTR);
    if (lastFid) mdd.#lastFid = mdd.#reserved = parseFid(lastFid.toString());
    return mdd;
  }

  get rootFid(): Fid {
    return ROOT_FID;
  }

  get lastFid(): Fid {
    return this.#lastFid;
  }

  now(): number {
    return this.#clock() / 1000;
  }

  /**
   * A FID never given before. When it lies past the reserved range, tx records the next range
   * (FID_RESERVE): every transaction that gives a FID of that range is in the same txg as that
   * record or a later one (the transactions updating at any moment all belong to one txg, see
   * Tx.start), so a crash that keeps a create keeps the record of its range.
   */
  async allocFid(tx: Tx, replayed?: Fid): Promise<Fid> {
    // A replayed create gets the FID it had before the restart; later FIDs follow it.
    if (replayed) {
      if (fidAfter(replayed, this.#lastFid)) this.#lastFid = replayed;
      if (fidAfter(replayed, this.#reserved)) await this.#reserve(tx, replayed);
      return replayed;
    }
    const last = this.#lastFid;
    const next = last.oid + 1 >= SEQ_WIDTH ? fid(last.seq + 1, 1) : fid(last.seq, last.oid + 1);
    this.#lastFid = next;
    if (fidAfter(next, this.#reserved)) await this.#reserve(tx, fid(next.seq, Math.min(SEQ_WIDTH - 1, next.oid + FID_RESERVE - 1)));
    return next;
  }

  /** Records end as the reserved range's end (set before the write: the next caller sees it at once). */
  async #reserve(tx: Tx, end: Fid): Promise<void> {
    this.#reserved = end;
    await tx.xattrSet(this.seqFid, LAST_FID_XATTR, Buffer.from(fidToString(end)));
  }

  /** Whether this MDT serves the FID (its sequences and the root). */
  ownsFid(f: Fid): boolean {
    return fidEquals(f, ROOT_FID) || (f.seq >= FID_SEQ_NORMAL && f.seq <= this.#lastFid.seq);
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The object's attributes, ENOENT if there is none (or it is not in the namespace). */
  async attrs(f: Fid): Promise<ObjectAttrs> {
    if (!this.ownsFid(f)) throw mdtError('ENOENT', `no object ${fidToString(f)}`);
    try {
      return await this.osd.getAttrs(f);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw mdtError('ENOENT', `no object ${fidToString(f)}`);
      throw err;
    }
  }

  async dirAttrs(f: Fid): Promise<ObjectAttrs> {
    const a = await this.attrs(f);
    if (a.type !== 'dir') throw mdtError('ENOTDIR', `${fidToString(f)} is not a directory`);
    return a;
  }

  async toWire(f: Fid, a: ObjectAttrs): Promise<MdtAttr> {
    let rdev = 0;
    if (a.type === 'chr' || a.type === 'blk') rdev = (await this.xattr(f, RDEV_XATTR))?.readUInt32LE(0) ?? 0;
    return {
      fid: fidToString(f), mode: typeBits(a.type) | a.mode, uid: a.uid, gid: a.gid, size: a.size, blocks: a.blocks,
      atime: a.atime, mtime: a.mtime, ctime: a.ctime, nlink: a.nlink, rdev,
    };
  }

  async getattr(f: Fid): Promise<MdtAttr> {
    return this.toWire(f, await this.attrs(f));
  }

  xattr(f: Fid, name: string): Promise<Buffer | undefined> {
    return this.osd.xattrFind(f, name);
  }

  async parentOf(dir: Fid): Promise<Fid> {
    const p = await this.xattr(dir, PARENT_XATTR);
    assert(p, `directory ${fidToString(dir)} without a parent`);
    return parseFid(p.toString());
  }

  /** The entry `name` of directory `parent` ('.' and '..' included), or undefined. */
  async entry(parent: Fid, name: string): Promise<{ fid: Fid; type: ObjectType } | undefined> {
    if (name === '.') return { fid: parent, type: 'dir' };
    if (name === '..') return { fid: await this.parentOf(parent), type: 'dir' };
    return this.osd.indexLookup(parent, name);
  }

  /** lookup(2) of one component: exec permission on the directory, then the entry's attributes. */
  async lookup(cred: Cred, parent: Fid, name: string): Promise<MdtAttr> {
    const r = await this.lookupOrNames(cred, parent, name, -1);
    if ('attr' in r) return r.attr;
    throw mdtError('ENOENT', `no ${name} in ${fidToString(parent)}`);
  }

  /**
   * lookup(), except that a name not in the directory is answered with the directory's names
   * when it holds at most `max` of them and `cred` may read it, else with none, where lookup
   * says ENOENT. Knowing every name of a directory whose lock it holds, a client can tell that
   * a name is not there without asking (md-cache.ts).
   */
  async lookupOrNames(cred: Cred, parent: Fid, name: string, max: number): Promise<{ attr: MdtAttr } | { names?: string[] }> {
    checkName(name, true);
    const p = await this.dirAttrs(parent);
    checkPermission(p, cred, MAY_EXEC, `search ${fidToString(parent)}`);
    const e = await this.entry(parent, name);
    if (e) return { attr: await this.getattr(e.fid) };
    if (max < 0 || !permits(p, cred, MAY_READ)) return {};
    const { entries } = await this.osd.indexList(parent, { limit: max + 1 });
    return entries.length <= max ? { names: entries.map((x) => x.name) } : {};
  }

  async readlink(f: Fid): Promise<string> {
    const a = await this.attrs(f);
    if (a.type !== 'lnk') throw mdtError('EINVAL', `${fidToString(f)} is not a symlink`);
    return (await this.osd.read(f, 0, a.size)).toString();
  }

  async fileLayout(f: Fid): Promise<FileLayout | undefined> {
    const v = await this.xattr(f, LOV_XATTR);
    return v && decodeFileLayout(v);
  }

  async defaultLayout(dir: Fid): Promise<LayoutSpec | undefined> {
    const v = await this.xattr(dir, LOV_XATTR);
    return v && decodeDefaultLayout(v);
  }

  /** Whether `ancestor` is `dir` or above it (walks '..' up to the root). */
  async isAncestor(ancestor: Fid, dir: Fid): Promise<boolean> {
    let cur = dir;
    for (let depth = 0; depth < 4096; depth++) {
      if (fidEquals(cur, ancestor)) return true;
      if (fidEquals(cur, ROOT_FID)) return false;
      cur = await this.parentOf(cur);
    }
    throw mdtError('ELOOP', 'directory tree deeper than 4096');
  }

  async isEmptyDir(dir: Fid): Promise<boolean> {
    return (await this.osd.indexList(dir, { limit: 1 })).entries.length === 0;
  }

  fidKeyOf(f: Fid): string {
    return fidKey(f);
  }
}

/** A name of one path component: EINVAL for '/', NUL or empty, ENAMETOOLONG past 255 bytes. */
export function checkName(name: string, dotsAllowed = false): void {
  if (name.length === 0) throw mdtError('ENOENT', 'empty name');
  if (name.includes('/') || name.includes('\0')) throw mdtError('EINVAL', `name ${JSON.stringify(name)} holds '/' or NUL`);
  if (Buffer.byteLength(name) > NAME_MAX) throw mdtError('ENAMETOOLONG', `name of ${Buffer.byteLength(name)} bytes (at most ${NAME_MAX})`);
  if (!dotsAllowed && (name === '.' || name === '..')) throw mdtError('EEXIST', `${name} exists in every directory`);
}
