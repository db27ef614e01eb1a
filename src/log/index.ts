// The transaction-group log: group commit, commit callbacks, replay, checkpoints.
export * from './api.js';
export { LogError, LogCorruptError, OutcomeError, withoutStackTraces } from './errors.js';
export { TxgLog, readLog, decodeRecord, readCheckpointHint, writeCheckpointHint } from './txg-log.js';
export { listSegments, scanLog, segmentSizes, type SegmentInfo, type ScanOutcome, type TornTail } from './segments.js';
export {
  encodeRecord, parseRecord, encodeSegmentHeader, decodeSegmentHeader, segmentName, parseSegmentName,
  SEGMENT_HEADER_BYTES, RECORD_OVERHEAD_BYTES, RECORD_HEADER_BYTES,
} from './record.js';
export {
  FailLoc, failLoc, FAIL, FAIL_POINTS, parseFailLoc, formatFailLoc,
  CFS_FAIL_ONCE, CFS_FAILED, CFS_FAIL_SKIP, CFS_FAIL_SOME, CFS_FAIL_RAND, CFS_FAIL_USR1, CFS_FAULT, CFS_FAIL_MASK_LOC,
  type FailPoint, type FailAction, type FailLocOptions,
} from './fail-loc.js';
