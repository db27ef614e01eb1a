// The client modules: MGC (config), MDC, OSC, LOV. Each engineer appends its module's export line.
export { Mgc, type MgcOptions, type ConfigChange } from './mgc.js';
export { Osc, type OscOptions, type OscCounters, type OscFailLoc, type WriteExtent } from './osc.js';
export { Lov, LovError, checkLayout, mapExtent, fileSizeOfStripe, stripeObjectSize, LOV_MIN_STRIPE_SIZE, type Raid0Layout, type LovObject, type StripePiece } from './lov.js';
export { Mdc, MdcError, type MdcOptions } from './mdc.js';
export { mount, FileSystem, constants, XATTR_CREATE, XATTR_REPLACE } from './fs.js'; export { FileHandle } from './handle.js'; export { Dir } from './dir.js'; export { Stats, Dirent, type StatFs } from './stats.js'; export { FsError } from './errors.js'; export { ClientParams, DEFAULT_TUNABLES, type ClientTunables } from './params.js'; export { parseDevice, type MountOptions } from './mount.js';
