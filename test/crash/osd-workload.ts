// What the OSD crash test's parent and child agree on.
export const WORK_INDEX = 'crash-work';
export const WORKERS = 8;
export const SEQ = 0x200000400;
export const XATTR = 'user.tag';
