// What every target shares: the device's mountdata, its named local objects (last_rcvd, ...),
// and the mount of a target, which opens the OSD and starts the services its profile lists.
//
//   const target = await Target.mount('/srv/ost0', ni);   // MDT and OST register with the MGS
//   ...
//   await target.umount({ force: false });
export {
  readMountdata, writeMountdata, targetName, checkFsname, TargetError, MOUNTDATA_FILE, INDEX_MAX, FSNAME_MAX_LENGTH,
  type Mountdata, type TargetKind, type TargetErrorCode,
} from './mountdata.js';
export { Target, MGS_SLOT_PREFIX, type ServiceContext, type RunningService, type ServiceModule, type MountOptions } from './target.js';
export { localObject, LAST_RCVD_FID, MGS_CONFIGS_FID, LocalOid, FID_SEQ_LOCAL_FILE, FID_SEQ_LOCAL_NAME } from './local-files.js';
export { formatTarget, plan as planFormat, type FormatTargetOptions } from './format.js';
export {
  TargetLdlm, namespaceName, LOCAL_OWNER_PREFIX, LOCAL_WAIT_FACTOR, type LocalLockSpec, type TargetLdlmConfig,
} from './ldlm.js';
