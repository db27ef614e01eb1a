// Replay-to-point for the utilities: windows and points, past views, diffs, blame, copies.
export * from './window.js';
export * from './namespace.js';
export * from './diff.js';
export * from './blame.js';
export * from './copy.js';
export * from './repoint.js';
