// The client modules: MGC (config), MDC, OSC, LOV. Each engineer appends its module's export line.
export { Mgc, type MgcOptions, type ConfigChange } from './mgc.js';
export { Osc, type OscOptions, type OscCounters, type OscFailLoc, type WriteExtent } from './osc.js';
export { Lov, LovError, checkLayout, mapExtent, fileSizeOfStripe, stripeObjectSize, LOV_MIN_STRIPE_SIZE, type Raid0Layout, type LovObject, type StripePiece } from './lov.js';
export { Mdc, MdcError, type MdcOptions } from './mdc.js';
export { mount, FileSystem, FileHandle, Dir, Stats, Dirent, FsError, ClientParams, DEFAULT_TUNABLES, constants, parseDevice, XATTR_CREATE, XATTR_REPLACE, type StatFs, type ClientTunables, type MountOptions } from './fs.js';
