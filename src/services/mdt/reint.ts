// The MDT's updates (Lustre's mdt_reint_* over mdd): create, link, unlink, rename, setattr,
// setxattr. Each runs in the request's OSD transaction and holds the object locks of what it
// reads and changes (locks.ts). The OSD has no rollback, so each checks everything first and
// only then updates: a refused request changes nothing.
import { fidEquals, fidToString, type Fid, type ObjectAttrs, type ObjectType, type SettableAttrs, type Tx } from '../../osd/index.js';
import { mdtError } from './errors.js';
import {
  checkSpec, decodeDefaultLayout, decodeFileLayout, encodeDefaultLayout, encodeFileLayout, LayoutError, LOV_XATTR, resolveSpec,
} from './layout.js';
import type { DestroyLog } from './llog.js';
import type { Lod } from './lod.js';
import { withLocks, type LockSet } from './locks.js';
import { checkName, isInternalXattr, LINK_MAX, PARENT_XATTR, RDEV_XATTR, ROOT_FID, type Mdd } from './mdd.js';
import type { OpenTable } from './open.js';
import {
  checkPermission, checkSticky, inGroup, isOwnerOrRoot, MAY_EXEC, MAY_WRITE, permits, S_ISGID, suidGidKilled,
} from './perm.js';
import { typeOfMode, XattrFlag, type Cred, type LayoutSpec, type MdtAttr, type SetattrFields, type UnlinkReply } from './protocol.js';

/** Lustre's PATH_MAX for a symlink's target. */
export const SYMLINK_MAX = 4095;
export const XATTR_SIZE_MAX = 65536;

export interface CreateArgs {
  parent: Fid;
  name: string;
  mode: number;
  rdev?: number | undefined;
  target?: string | undefined;
  layout?: LayoutSpec | undefined;
  /** A replay (recovery): the FID and the layout (lustre.lov bytes) the create had before. */
  replay?: { fid: Fid; layout?: Buffer | undefined } | undefined;
}

export class Reint {
  constructor(
    readonly mdd: Mdd,
    readonly lod: Lod,
    readonly llog: DestroyLog,
    readonly opens: OpenTable,
  ) {}

  // ---- create ------------------------------------------------------------------------------

  /** Creates; the reply carries the layout too, which a replay brings back. */
  async create(tx: Tx, cred: Cred, a: CreateArgs): Promise<{ attr: MdtAttr; layout?: Buffer }> {
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(a.parent);
      const { fid, layout } = await this.createLocked(tx, cred, a);
      return { attr: await this.mdd.getattr(fid), ...(layout && { layout }) };
    });
  }

  /** Create with the parent locked (open O_CREAT shares it). */
  async createLocked(tx: Tx, cred: Cred, a: CreateArgs): Promise<{ fid: Fid; type: ObjectType; layout?: Buffer }> {
    const mdd = this.mdd;
    checkName(a.name);
    const type = (a.mode & 0o170000) === 0 ? 'reg' : typeOfMode(a.mode);
    if (!type) throw mdtError('EINVAL', `mode 0${a.mode.toString(8)} names no file type`);
    const p = await this.#liveDir(a.parent);
    checkPermission(p, cred, MAY_WRITE | MAY_EXEC, `create in ${fidToString(a.parent)}`);
    if (await mdd.entry(a.parent, a.name)) throw mdtError('EEXIST', `${a.name} exists`);
    if (type === 'dir' && p.nlink >= LINK_MAX) throw mdtError('EMLINK', `${fidToString(a.parent)} has ${LINK_MAX} links`);
    if (type === 'lnk') {
      if (!a.target) throw mdtError('ENOENT', 'a symlink needs a target');
      if (Buffer.byteLength(a.target) > SYMLINK_MAX) throw mdtError('ENAMETOOLONG', `symlink target over ${SYMLINK_MAX} bytes`);
    }
    if (a.layout) this.#checkSpec(a.layout);
    let spec: LayoutSpec | undefined;
    let dirDefault: LayoutSpec | undefined;
    if (type === 'reg') {
      spec = resolveSpec(a.layout, await mdd.defaultLayout(a.parent), await mdd.defaultLayout(ROOT_FID), mdd.fsLayout);
    } else if (type === 'dir') {
      dirDefault = a.layout ?? (fidEquals(a.parent, ROOT_FID) ? undefined : await mdd.defaultLayout(a.parent));
    }
    // Ownership: the creator, the group of a setgid directory (whose subdirectories stay setgid).
    let mode = a.mode & 0o7777;
    const setgidDir = (p.mode & S_ISGID) !== 0;
    const gid = setgidDir ? p.gid : cred.gid;
    if (setgidDir && type === 'dir') mode |= S_ISGID;
    else if ((mode & S_ISGID) && cred.uid !== 0 && !inGroup(cred, gid)) mode &= ~S_ISGID;
    // Checks done: the updates.
    const fid = await mdd.allocFid(tx, a.replay?.fid);
    const now = mdd.now();
    let lov: Buffer | undefined;
    await tx.create(fid, { type, mode, uid: cred.uid, gid, atime: now, mtime: now, ctime: now, size: 0 });
    if (type === 'dir') {
      await tx.xattrSet(fid, PARENT_XATTR, Buffer.from(fidToString(a.parent)));
      if (dirDefault) await tx.xattrSet(fid, LOV_XATTR, encodeDefaultLayout(fid, dirDefault));
    } else if (type === 'lnk') {
      await tx.write(fid, 0, Buffer.from(a.target!));
    } else if (type === 'chr' || type === 'blk') {
      const rdev = Buffer.alloc(4);
      rdev.writeUInt32LE(a.rdev ?? 0);
      await tx.xattrSet(fid, RDEV_XATTR, rdev);
    } else if (type === 'reg') {
      if (a.replay) {
        // The objects it had: the client may have written to them already.
        if (a.replay.layout) {
          await this.lod.adopt(tx, decodeFileLayout(a.replay.layout));
          lov = a.replay.layout;
        }
      } else {
        const layout = await this.lod.allocate(tx, fid, spec!);
        if (layout) lov = encodeFileLayout(layout);
      }
      if (lov) await tx.xattrSet(fid, LOV_XATTR, lov);
    }
    await tx.indexInsert(a.parent, a.name, { fid, type });
    await tx.attrSet(a.parent, { mtime: now, ctime: now, ...(type === 'dir' && { nlink: p.nlink + 1 }) });
    return { fid, type, ...(lov && { layout: lov }) };
  }

  #checkSpec(s: LayoutSpec): void {
    try {
      checkSpec(s);
    } catch (err) {
      if (err instanceof LayoutError) throw mdtError('EINVAL', err.message);
      throw err;
    }
  }

  /** A directory that still is in the namespace (not an orphan): ENOENT, ENOTDIR. */
  async #liveDir(f: Fid): Promise<ObjectAttrs> {
    const p = await this.mdd.dirAttrs(f);
    if (p.nlink === 0) throw mdtError('ENOENT', `directory ${fidToString(f)} was removed`);
    return p;
  }

  // ---- link --------------------------------------------------------------------------------

  async link(tx: Tx, cred: Cred, target: Fid, parent: Fid, name: string): Promise<MdtAttr> {
    checkName(name);
    if (!this.mdd.ownsFid(target) || !this.mdd.ownsFid(parent)) throw mdtError('EXDEV', 'link across MDTs');
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(parent);
      await locks.lock(target);
      const p = await this.#liveDir(parent);
      const a = await this.mdd.attrs(target);
      if (a.type === 'dir') throw mdtError('EPERM', 'hard link to a directory');
      checkPermission(p, cred, MAY_WRITE | MAY_EXEC, `link in ${fidToString(parent)}`);
      if (a.nlink === 0) throw mdtError('ENOENT', `${fidToString(target)} was unlinked`);
      if (await this.mdd.entry(parent, name)) throw mdtError('EEXIST', `${name} exists`);
      if (a.nlink >= LINK_MAX) throw mdtError('EMLINK', `${fidToString(target)} has ${LINK_MAX} links`);
      const now = this.mdd.now();
      await tx.indexInsert(parent, name, { fid: target, type: a.type });
      await tx.attrSet(target, { nlink: a.nlink + 1, ctime: now });
      await tx.attrSet(parent, { mtime: now, ctime: now });
      return this.mdd.getattr(target);
    });
  }

  // ---- unlink, rmdir -----------------------------------------------------------------------

  async unlink(tx: Tx, cred: Cred, parent: Fid, name: string, rmdir: boolean): Promise<UnlinkReply> {
    checkName(name, true);
    if (name === '.' || name === '..') {
      if (!rmdir) throw mdtError('EISDIR', `cannot unlink ${name}`);
      throw mdtError(name === '.' ? 'EINVAL' : 'ENOTEMPTY', `cannot rmdir ${name}`);
    }
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(parent);
      const p = await this.mdd.dirAttrs(parent);
      checkPermission(p, cred, MAY_WRITE | MAY_EXEC, `unlink in ${fidToString(parent)}`);
      const e = await this.mdd.entry(parent, name);
      if (!e) throw mdtError('ENOENT', `no ${name} in ${fidToString(parent)}`);
      await locks.lock(e.fid);
      const c = await this.mdd.attrs(e.fid);
      if (rmdir && c.type !== 'dir') throw mdtError('ENOTDIR', `${name} is not a directory`);
      if (!rmdir && c.type === 'dir') throw mdtError('EISDIR', `${name} is a directory`);
      checkSticky(p, c, cred, `remove ${name}`);
      if (c.type === 'dir' && !(await this.mdd.isEmptyDir(e.fid))) throw mdtError('ENOTEMPTY', `${name} is not empty`);
      const now = this.mdd.now();
      await tx.indexDelete(parent, name);
      await tx.attrSet(parent, { mtime: now, ctime: now, ...(c.type === 'dir' && { nlink: p.nlink - 1 }) });
      const dropped = await this.dropLink(tx, e.fid, c, now);
      this.kickIfDestroyed(tx, dropped);
      return { orphan: dropped === 'orphan', destroyed: dropped === 'destroyed' };
    });
  }

  /**
   * One name of the object is gone (its lock held): nlink drops; at the last one the object
   * becomes an orphan if open, else is destroyed with its OST objects logged for destruction.
   */
  async dropLink(tx: Tx, f: Fid, a: ObjectAttrs, now: number): Promise<'linked' | 'orphan' | 'destroyed'> {
    const nlink = a.type === 'dir' ? 0 : a.nlink - 1;
    if (nlink > 0) {
      await tx.attrSet(f, { nlink, ctime: now });
      return 'linked';
    }
    if (this.opens.isOpen(f)) {
      await tx.attrSet(f, { nlink: 0, ctime: now });
      await tx.indexInsert(this.mdd.pendingFid, this.mdd.fidKeyOf(f), { fid: f, type: a.type });
      return 'orphan';
    }
    await this.destroyObject(tx, f);
    return 'destroyed';
  }

  /** Destroys a namespace object, logging its OST objects for destruction in the same tx. */
  async destroyObject(tx: Tx, f: Fid): Promise<void> {
    const layout = await this.mdd.fileLayout(f).catch(() => undefined);
    if (layout && layout.objects.length > 0) await this.llog.add(tx, layout.objects);
    await tx.destroy(f);
  }

  kickIfDestroyed(tx: Tx, result: 'linked' | 'orphan' | 'destroyed' | undefined): void {
    if (result === 'destroyed') this.llog.kickAfter(tx.txg);
  }

  // ---- rename ------------------------------------------------------------------------------

  async rename(tx: Tx, cred: Cred, parent: Fid, name: string, newParent: Fid, newName: string): Promise<void> {
    checkName(name, true);
    checkName(newName, true);
    for (const n of [name, newName]) if (n === '.' || n === '..') throw mdtError('EINVAL', `cannot rename ${n}`);
    if (!this.mdd.ownsFid(parent) || !this.mdd.ownsFid(newParent)) throw mdtError('EXDEV', 'rename across MDTs');
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lockKey('mdt:rename');
      await locks.lock(parent, newParent);
      await this.#renameLocked(tx, cred, locks, parent, name, newParent, newName);
    });
  }

  async #renameLocked(tx: Tx, cred: Cred, locks: LockSet, parent: Fid, name: string, newParent: Fid, newName: string): Promise<void> {
    const mdd = this.mdd;
    const sp = await mdd.dirAttrs(parent);
    const tp = fidEquals(parent, newParent) ? sp : await this.#liveDir(newParent);
    checkPermission(sp, cred, MAY_WRITE | MAY_EXEC, `rename from ${fidToString(parent)}`);
    checkPermission(tp, cred, MAY_WRITE | MAY_EXEC, `rename into ${fidToString(newParent)}`);
    const se = await mdd.entry(parent, name);
    if (!se) throw mdtError('ENOENT', `no ${name} in ${fidToString(parent)}`);
    const te = await mdd.entry(newParent, newName);
    await locks.lock(se.fid, ...(te ? [te.fid] : []));
    const s = await mdd.attrs(se.fid);
    const t = te ? await mdd.attrs(te.fid) : undefined;
    if (te && fidEquals(se.fid, te.fid)) return; // two names of one file: nothing to do (POSIX)
    checkSticky(sp, s, cred, `rename ${name}`);
    if (t) checkSticky(tp, t, cred, `replace ${newName}`);
    const moveDir = s.type === 'dir' && !fidEquals(parent, newParent);
    if (s.type === 'dir') {
      if (t && t.type !== 'dir') throw mdtError('ENOTDIR', `${newName} is not a directory`);
      if (t && !(await mdd.isEmptyDir(te!.fid))) throw mdtError('ENOTEMPTY', `${newName} is not empty`);
      if (await mdd.isAncestor(se.fid, newParent)) throw mdtError('EINVAL', `cannot move ${name} into itself`);
      if (moveDir) checkPermission(s, cred, MAY_WRITE, `move directory ${name}`);
      if (moveDir && !t && tp.nlink >= LINK_MAX) throw mdtError('EMLINK', `${fidToString(newParent)} has ${LINK_MAX} links`);
    } else if (t && t.type === 'dir') {
      throw mdtError('EISDIR', `${newName} is a directory`);
    }
    // Checks done: the updates.
    const now = mdd.now();
    let dropped: 'linked' | 'orphan' | 'destroyed' | undefined;
    if (te) {
      await tx.indexDelete(newParent, newName);
      dropped = await this.dropLink(tx, te.fid, t!, now);
    }
    await tx.indexDelete(parent, name);
    await tx.indexInsert(newParent, newName, { fid: se.fid, type: s.type });
    await tx.attrSet(se.fid, { ctime: now });
    // Directory link counts: '..' of a moved directory leaves sp for tp; a replaced directory leaves tp.
    const spDelta = moveDir ? -1 : 0;
    const tpDelta = (moveDir ? 1 : 0) - (t?.type === 'dir' ? 1 : 0);
    if (moveDir) await tx.xattrSet(se.fid, PARENT_XATTR, Buffer.from(fidToString(newParent)));
    if (fidEquals(parent, newParent)) {
      await tx.attrSet(parent, { mtime: now, ctime: now, nlink: sp.nlink + spDelta + tpDelta });
    } else {
      await tx.attrSet(parent, { mtime: now, ctime: now, nlink: sp.nlink + spDelta });
      await tx.attrSet(newParent, { mtime: now, ctime: now, nlink: tp.nlink + tpDelta });
    }
    this.kickIfDestroyed(tx, dropped);
  }

  // ---- setattr -----------------------------------------------------------------------------

  async setattr(tx: Tx, cred: Cred, f: Fid, s: SetattrFields): Promise<MdtAttr> {
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(f);
      const a = await this.mdd.attrs(f);
      const out: SettableAttrs = {};
      const now = this.mdd.now();
      const owner = isOwnerOrRoot(a, cred);
      if (s.uid !== undefined && s.uid !== a.uid) {
        if (cred.uid !== 0) throw mdtError('EPERM', 'only root changes a file\'s owner');
        out.uid = s.uid;
      }
      if (s.gid !== undefined && s.gid !== a.gid) {
        if (cred.uid !== 0 && !(cred.uid === a.uid && inGroup(cred, s.gid))) throw mdtError('EPERM', `cannot give the file to group ${s.gid}`);
        out.gid = s.gid;
      }
      let mode = a.mode;
      // Only someone who may write the file writes it: the kill asks no ownership, but that.
      if (s.killSuidGid && !owner && !permits(a, cred, MAY_WRITE)) throw mdtError('EACCES', 'killSuidGid needs write permission');
      if (s.mode !== undefined) {
        if (!owner) throw mdtError('EPERM', 'only the owner changes a file\'s mode');
        mode = s.mode & 0o7777;
        if (cred.uid !== 0 && !inGroup(cred, out.gid ?? a.gid)) mode &= ~S_ISGID;
      }
      if ((s.killSuidGid || out.uid !== undefined || out.gid !== undefined) && a.type !== 'dir') {
        // chown, and a write by someone without CAP_FSETID, clear them.
        mode &= ~suidGidKilled(mode);
      }
      if (mode !== a.mode) out.mode = mode;
      if (s.timesNow) {
        if (!owner && !permits(a, cred, MAY_WRITE)) throw mdtError('EACCES', 'utimes(NULL) needs write permission');
        out.atime = now;
        out.mtime = now;
      }
      for (const k of ['atime', 'mtime'] as const) {
        if (s[k] === undefined) continue;
        if (!owner) throw mdtError('EPERM', 'only the owner sets explicit times');
        out[k] = s[k];
      }
      out.ctime = s.ctime !== undefined && cred.uid === 0 ? s.ctime : now;
      await tx.attrSet(f, out);
      return this.mdd.getattr(f);
    });
  }

  // ---- setxattr ----------------------------------------------------------------------------

  async setxattr(tx: Tx, cred: Cred, f: Fid, name: string, value: Uint8Array | null, flags: number): Promise<void> {
    if (name.length === 0 || Buffer.byteLength(name) > 255) throw mdtError('ERANGE', 'xattr name of 1 to 255 bytes');
    if (value && value.byteLength > XATTR_SIZE_MAX) throw mdtError('E2BIG', `xattr value over ${XATTR_SIZE_MAX} bytes`);
    return withLocks(this.mdd.locks, async (locks) => {
      await locks.lock(f);
      const a = await this.mdd.attrs(f);
      if (name === LOV_XATTR) return this.#setLayout(tx, cred, f, a, value);
      if (isInternalXattr(name)) throw mdtError('EOPNOTSUPP', `xattr namespace of ${name}`);
      if (name.startsWith('trusted.')) {
        if (cred.uid !== 0) throw mdtError('EPERM', 'trusted xattrs are root\'s');
      } else if (name.startsWith('user.')) {
        if (a.type !== 'reg' && a.type !== 'dir') throw mdtError('EPERM', 'user xattrs on regular files and directories only');
        if (a.type === 'dir' && (a.mode & 0o1000) && !isOwnerOrRoot(a, cred)) throw mdtError('EPERM', 'sticky directory');
        checkPermission(a, cred, MAY_WRITE, `set ${name}`);
      } else if (name.startsWith('security.')) {
        checkPermission(a, cred, MAY_WRITE, `set ${name}`);
      } else {
        throw mdtError('EOPNOTSUPP', `xattr namespace of ${name}`);
      }
      const exists = (await this.mdd.xattr(f, name)) !== undefined;
      if (value === null) {
        if (!exists) throw mdtError('ENODATA', `no xattr ${name}`);
        await tx.xattrDel(f, name);
      } else {
        if (flags & XattrFlag.CREATE && exists) throw mdtError('EEXIST', `xattr ${name} exists`);
        if (flags & XattrFlag.REPLACE && !exists) throw mdtError('ENODATA', `no xattr ${name}`);
        await tx.xattrSet(f, name, value);
      }
      await tx.attrSet(f, { ctime: this.mdd.now() });
    });
  }

  /** lfs setstripe: a directory's default layout, or the layout of a file that has none yet. */
  async #setLayout(tx: Tx, cred: Cred, f: Fid, a: ObjectAttrs, value: Uint8Array | null): Promise<void> {
    if (!isOwnerOrRoot(a, cred)) throw mdtError('EPERM', 'only the owner sets a layout');
    if (a.type !== 'dir' && a.type !== 'reg') throw mdtError('EINVAL', 'layouts are for files and directories');
    if (value === null) {
      if (a.type !== 'dir') throw mdtError('EPERM', 'a file\'s layout cannot be removed');
      if (!(await this.mdd.xattr(f, LOV_XATTR))) throw mdtError('ENODATA', 'no default layout');
      await tx.xattrDel(f, LOV_XATTR);
      return;
    }
    let spec: LayoutSpec;
    try {
      spec = decodeDefaultLayout(value);
    } catch (err) {
      throw mdtError('EINVAL', (err as Error).message);
    }
    this.#checkSpec(spec);
    if (a.type === 'dir') {
      await tx.xattrSet(f, LOV_XATTR, encodeDefaultLayout(f, spec));
      return;
    }
    if (await this.mdd.xattr(f, LOV_XATTR)) throw mdtError('EEXIST', 'the file has a layout already');
    const resolved = resolveSpec(spec, await this.mdd.defaultLayout(ROOT_FID), this.mdd.fsLayout);
    const layout = await this.lod.allocate(tx, f, resolved);
    if (!layout) throw mdtError('ENOSPC', 'no OST in the file system');
    await tx.xattrSet(f, LOV_XATTR, encodeFileLayout(layout));
  }
}
