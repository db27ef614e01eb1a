// lfs: the kernel's side (serveLfs, run on the client file system behind a path), the edge
// check of its control request, and Lustre's output layouts for the utility.
export { serveLfs, type ResolveClient } from './serve.js';
export { checkLfsRequest } from './check.js';
export type {
  LfsRequest, LfsResult, LfsOp, StripeSpec, SetstripeRequest, GetstripeRequest, DfRequest, FindRequest,
  Path2fidRequest, Fid2pathRequest, WalkCursor, GetstripeEntry, LayoutInfo, DfTarget,
} from './types.js';
export { WALK_PAGE_MAX } from './types.js';
export {
  formatGetstripe, formatLayout, formatDf, formatPath2fid, formatFid2path, patternString, statfsRatio, strerror,
  VERBOSE_DEFAULT, VERBOSE_DETAIL, VERBOSE_DFID, VERBOSE_GENERATION, VERBOSE_OBJID, VERBOSE_PATTERN,
  VERBOSE_STRIPE_COUNT, VERBOSE_STRIPE_OFFSET, VERBOSE_STRIPE_SIZE, type DfFormat, type GetstripeFormat,
} from './format.js';
export { parseSize, parseSizeTest, parseCountTest, parseFidArg, parseStripeSize, parseStripeCount, parseStripeIndex } from './args.js';
