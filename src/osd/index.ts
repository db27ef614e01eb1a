// The object storage device: objects by FID (attributes, xattrs, data, index objects) over the
// txg log, with materialized state in LevelDB. See osd.ts for the life of a change.
export { Osd, type OsdOptions, type OsdStatfs, type OsdStats, type IndexPage } from './osd.js';
export { Tx, type CreateAttrs, type XattrSetFlags } from './tx.js';
export { OsdError, OsdDeviceError, type OsdErrorCode, type OsdDeviceErrorCode } from './errors.js';
export { fid, fidToString, parseFid, fidKey, parseFidKey, fidEquals, isValidFid, keptPerObject, ROOT_INDEX_FID, type Fid } from './fid.js';
export { type CheckProblem, type CheckKind, type CheckProgress } from './check.js';
export { type DeviceInfo, type FormatOptions, FORMAT_VERSION, FORMAT_MAGIC, devicePaths, readDevice } from './device.js';
export {
  OBJECT_TYPES, isDataType, isIndexType, MAX_FILE_BYTES,
  type ObjectType, type ObjectAttrs, type SettableAttrs, type IndexValue, type IndexEntry, type Update, type LogEntry,
} from './types.js';
export { objectKey, xattrKey, indexKey, COUNTER, encodeValue, decodeValue } from './keys.js';
export { DataFiles } from './data.js';
export { type Base, BaseError, listBases, readBase, writeBase, encodeBase, decodeBase, baseDir } from './base.js';
export { PastState, stateAt, oldestBase, dataSource, moveBase, atticDir, atticPath, type Destroyed } from './past.js';
export { initialState, writeInitialState } from './device.js';
export { applyUpdate, updatesOfEntries } from './apply.js';
export { AlignedSlots, alignedSlots, DEFAULT_IO_CACHE, MAX_CACHE_FILESIZE, DIRECT_ALIGN, type IoCachePolicy } from './aligned.js';
