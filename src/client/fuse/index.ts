// FUSE in user space: the kernel protocol spoken over /dev/fuse with no libfuse and no native
// addon. FuseSession.mount(mountpoint, ops, options) mounts any FuseOps (the inode-based
// low-level operations); Passthrough is such ops over a local directory, MemoryFs such ops over
// this process's memory (the FUSE layer's own floor).
export { FuseSession, type SessionOptions, type SessionStats, type DebugEvent } from './session.js';
export {
  fuseError, RENAME_EXCHANGE, RENAME_NOREPLACE, servesFlockLocks, servesPosixLocks,
  type FuseOps, type RequestContext, type Entry, type AttrReply, type OpenReply, type SetattrChanges,
  type ConnectionInfo, type Attr, type Dirent, type Statfs, type FileLock, type LockType, type SetlkOptions, type ReleaseInfo,
} from './ops.js';
export { Passthrough, attrOf } from './passthrough.js';
export { MemoryFs } from './memory.js';
export { fuseMountAt, abortConnection } from './mount.js';
export { FUSE_ROOT_ID, OFFSET_MAX, Opcode, InitFlag, WireError, WriteFlag } from './wire.js';
export { NOTIFY_QUEUE_MAX } from './notify.js';
