// Formatting a target (what mkfs.lustre does): checks Lustre's combinations of target kinds,
// refuses a device formatted already (unless reformat) or in use, then writes the OSD (labelled
// with the target's name) and the mountdata with the profile of services to start.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Osd, type DeviceInfo } from '../../osd/index.js';
import { checkFsname, INDEX_MAX, MOUNTDATA_FILE, targetName, TargetError, writeMountdata, type Mountdata, type TargetKind } from './mountdata.js';

export interface FormatTargetOptions {
  fsname: string;
  mgs?: boolean;
  mdt?: boolean;
  ost?: boolean;
  /** -1 or absent: the MGS assigns one at the first mount. */
  index?: number;
  mgsNids?: string[];
  params?: Record<string, string>;
  reformat?: boolean;
}

const NID = /^[0-9A-Za-z.:_-]+@[a-z]+[0-9]*$/;

/** Formats `device`; returns the mountdata written and the OSD's identity. */
export async function formatTarget(device: string, opts: FormatTargetOptions): Promise<{ mountdata: Mountdata; osd: DeviceInfo }> {
  const md = plan(opts);
  await refuseInUse(device, opts.reformat ?? false);
  const osd = await Osd.format(device, { label: md.svname, reformat: opts.reformat ?? false });
  await writeMountdata(device, md);
  return { mountdata: md, osd };
}

/** The mountdata a format writes, or EINVAL naming what is wrong with the options. */
export function plan(opts: FormatTargetOptions): Mountdata {
  checkFsname(opts.fsname);
  const mgs = opts.mgs ?? false;
  const mdt = opts.mdt ?? false;
  const ost = opts.ost ?? false;
  if (!mgs && !mdt && !ost) throw new TargetError('EINVAL', 'name the target kind: --mgs, --mdt or --ost');
  if (ost && (mdt || mgs)) throw new TargetError('EINVAL', 'an OST cannot share its device with an MDT or the MGS');
  const index = opts.index ?? -1;
  if (!Number.isInteger(index) || index < -1 || index >= INDEX_MAX) throw new TargetError('EINVAL', `--index must be 0 to ${INDEX_MAX - 1}`);
  if (mgs && !mdt && opts.index !== undefined && index !== -1) throw new TargetError('EINVAL', 'the MGS has no index');
  const mgsNids = opts.mgsNids ?? [];
  for (const nid of mgsNids) if (!NID.test(nid)) throw new TargetError('EINVAL', `'${nid}' is not a NID (like 192.168.0.2@tcp)`);
  if (!mgs && mgsNids.length === 0) throw new TargetError('EINVAL', 'a target without the MGS needs --mgsnode=NID');
  const params = opts.params ?? {};
  for (const [k, v] of Object.entries(params)) {
    if (!/^[A-Za-z0-9_*.\-[\]]+$/.test(k)) throw new TargetError('EINVAL', `bad parameter name '${k}'`);
    if (v.includes('\n')) throw new TargetError('EINVAL', `bad value for ${k}`);
  }
  const kind: TargetKind = mdt ? 'mdt' : ost ? 'ost' : 'mgs';
  const svname = targetName(opts.fsname, kind, index);
  const profile: TargetKind[] = [];
  if (mgs) profile.push('mgs');
  if (mdt) profile.push('mdt');
  if (ost) profile.push('ost');
  return {
    fsname: opts.fsname, svname, mgs, mdt, ost, index: kind === 'mgs' ? -1 : index, mgsNids, params,
    uuid: `${svname}_UUID`, virgin: true, profile,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function refuseInUse(device: string, reformat: boolean): Promise<void> {
  const formatted = (await exists(join(device, 'osd.format'))) || (await exists(join(device, MOUNTDATA_FILE)));
  if (!formatted) return;
  if (!reformat) {
    throw new TargetError('EALREADY', `${device} is formatted already (use --reformat to replace it; its contents are lost)`);
  }
  // In use: the OSD's open reports EBUSY while a mounted target holds it.
  let osd: Osd | undefined;
  try {
    osd = await Osd.open(device);
  } catch (err) {
    if ((err as { code?: string }).code === 'EBUSY') throw new TargetError('EBUSY', `${device} is in use (mounted); unmount it first`);
    return; // damaged or partial: reformat replaces it
  }
  await osd.close();
}
