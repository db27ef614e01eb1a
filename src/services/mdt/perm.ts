// Permission checks as the Linux VFS makes them (generic_permission, may_delete, chown_ok):
// owner bits for the owner, group bits for a member of the file's group, other bits for the
// rest; root passes read and write always and exec when any exec bit is set (or on a
// directory). Root squash maps uid 0 to an unprivileged uid/gid before any check.
import type { ObjectAttrs } from '../../osd/index.js';
import type { Cred } from './protocol.js';
import { mdtError } from './errors.js';

export const MAY_EXEC = 1;
export const MAY_WRITE = 2;
export const MAY_READ = 4;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
const S_IXGRP = 0o010;

/**
 * The setuid bit, and the setgid bit when it means "group may execute", that a write or a
 * truncate by someone without CAP_FSETID, and a chown, take away (Linux's should_remove_suid).
 * The MDT clears them (a chown, MDS_ATTR_KILL_SUID) and llite asks for it (a FUSE write).
 */
export function suidGidKilled(mode: number): number {
  return (mode & S_ISUID) | ((mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) ? S_ISGID : 0);
}

export function inGroup(cred: Cred, gid: number): boolean {
  return cred.gid === gid || cred.groups.includes(gid);
}

export function permits(a: ObjectAttrs, cred: Cred, mask: number): boolean {
  if (cred.uid === 0) {
    if ((mask & MAY_EXEC) === 0) return true;
    return a.type === 'dir' || (a.mode & 0o111) !== 0;
  }
  let bits: number;
  if (cred.uid === a.uid) bits = (a.mode >> 6) & 7;
  else if (inGroup(cred, a.gid)) bits = (a.mode >> 3) & 7;
  else bits = a.mode & 7;
  return (bits & mask) === mask;
}

export function checkPermission(a: ObjectAttrs, cred: Cred, mask: number, what: string): void {
  if (!permits(a, cred, mask)) throw mdtError('EACCES', `permission denied: ${what}`);
}

/** may_delete's sticky rule: in a sticky directory only the file's owner, the directory's owner or root may remove or rename an entry. */
export function checkSticky(dir: ObjectAttrs, child: ObjectAttrs, cred: Cred, what: string): void {
  if ((dir.mode & S_ISVTX) === 0 || cred.uid === 0) return;
  if (cred.uid === child.uid || cred.uid === dir.uid) return;
  throw mdtError('EPERM', `sticky directory: ${what}`);
}

export function isOwnerOrRoot(a: ObjectAttrs, cred: Cred): boolean {
  return cred.uid === 0 || cred.uid === a.uid;
}

export interface RootSquash {
  uid: number;
  gid: number;
  /** NIDs whose root stays root (Lustre's nosquash_nids). */
  nosquashNids: string[];
}

/** Parses 'mdt.root_squash' = 'UID:GID' and 'mdt.nosquash_nids' = 'NID NID ...' (undefined: no squash). */
export function parseRootSquash(params: Record<string, string>): RootSquash | undefined {
  const v = params['mdt.root_squash'];
  if (!v) return undefined;
  const m = /^(\d+):(\d+)$/.exec(v.trim());
  if (!m) throw new Error(`mdt.root_squash must be UID:GID, not ${JSON.stringify(v)}`);
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  if (uid === 0 && gid === 0) return undefined;
  return { uid, gid, nosquashNids: (params['mdt.nosquash_nids'] ?? '').split(/[\s,]+/).filter(Boolean) };
}

export function squash(cred: Cred, nid: string, rs: RootSquash | undefined): Cred {
  if (!rs || cred.uid !== 0 || rs.nosquashNids.includes(nid)) return cred;
  return { uid: rs.uid, gid: rs.gid, groups: [] };
}
