// Lustre's numbers for ptlrpc, carried over as facts from
// lustre/include/uapi/linux/lustre/lustre_idl.h: portals, opcodes, message types and flags.
// Every value here is on the wire; none may change.

/** Portals: FOO_REQUEST_PORTAL takes requests to FOO, FOO_REPLY_PORTAL replies to FOO. */
export const Portal = {
  CONNMGR_REQUEST: 1,
  CONNMGR_REPLY: 2,
  OSC_REPLY: 4,
  OST_IO: 6,
  OST_CREATE: 7,
  OST_BULK: 8,
  MDC_REPLY: 10,
  MDS_REQUEST: 12,
  MDS_IO: 13,
  MDS_BULK: 14,
  LDLM_CB_REQUEST: 15,
  LDLM_CB_REPLY: 16,
  LDLM_CANCEL_REQUEST: 17,
  LDLM_CANCEL_REPLY: 18,
  MDS_READPAGE: 23,
  OUT: 24,
  MGC_REPLY: 25,
  MGS_REQUEST: 26,
  MGS_REPLY: 27,
  OST_REQUEST: 28,
  FLD_REQUEST: 29,
  SEQ_METADATA: 30,
  SEQ_DATA: 31,
  SEQ_CONTROLLER: 32,
  MGS_BULK: 33,
} as const;

/** Opcodes (enum ost_cmd, mds_cmd, ldlm_cmd, mgs_cmd, obd_cmd, ...). */
export const Opcode = {
  OST_REPLY: 0,
  OST_GETATTR: 1,
  OST_SETATTR: 2,
  OST_READ: 3,
  OST_WRITE: 4,
  OST_CREATE: 5,
  OST_DESTROY: 6,
  OST_GET_INFO: 7,
  OST_CONNECT: 8,
  OST_DISCONNECT: 9,
  OST_PUNCH: 10,
  OST_STATFS: 13,
  OST_SYNC: 16,
  OST_SET_INFO: 17,
  OST_QUOTACTL: 19,
  OST_LADVISE: 21,
  OST_FALLOCATE: 22,
  OST_SEEK: 23,
  MDS_GETATTR: 33,
  MDS_GETATTR_NAME: 34,
  MDS_CLOSE: 35,
  MDS_REINT: 36,
  MDS_READPAGE: 37,
  MDS_CONNECT: 38,
  MDS_DISCONNECT: 39,
  MDS_GET_ROOT: 40,
  MDS_STATFS: 41,
  MDS_SYNC: 44,
  MDS_SET_INFO: 46,
  MDS_QUOTACTL: 48,
  MDS_GETXATTR: 49,
  MDS_GET_INFO: 53,
  LDLM_ENQUEUE: 101,
  LDLM_CONVERT: 102,
  LDLM_CANCEL: 103,
  LDLM_BL_CALLBACK: 104,
  LDLM_CP_CALLBACK: 105,
  LDLM_GL_CALLBACK: 106,
  LDLM_SET_INFO: 107,
  MGS_CONNECT: 250,
  MGS_DISCONNECT: 251,
  MGS_EXCEPTION: 252,
  MGS_TARGET_REG: 253,
  MGS_TARGET_DEL: 254,
  MGS_SET_INFO: 255,
  MGS_CONFIG_READ: 256,
  OBD_PING: 400,
  OBD_IDX_READ: 403,
  LLOG_ORIGIN_HANDLE_CREATE: 501,
  QUOTA_DQACQ: 601,
  SEQ_QUERY: 700,
  FLD_QUERY: 900,
  OUT_UPDATE: 1000,
} as const;

/** Names as lprocfs prints them (ll_rpc_opcode_table in lustre/ptlrpc/lproc_ptlrpc.c). */
const opcodeNames: ReadonlyMap<number, string> = new Map([
  [0, 'ost_reply'], [1, 'ost_getattr'], [2, 'ost_setattr'], [3, 'ost_read'], [4, 'ost_write'],
  [5, 'ost_create'], [6, 'ost_destroy'], [7, 'ost_get_info'], [8, 'ost_connect'],
  [9, 'ost_disconnect'], [10, 'ost_punch'], [11, 'ost_open'], [12, 'ost_close'],
  [13, 'ost_statfs'], [16, 'ost_sync'], [17, 'ost_set_info'], [19, 'ost_quotactl'],
  [21, 'ost_ladvise'], [22, 'ost_fallocate'], [23, 'ost_seek'],
  [33, 'mds_getattr'], [34, 'mds_getattr_lock'], [35, 'mds_close'], [36, 'mds_reint'],
  [37, 'mds_readpage'], [38, 'mds_connect'], [39, 'mds_disconnect'], [40, 'mds_get_root'],
  [41, 'mds_statfs'], [44, 'mds_sync'], [46, 'mds_set_info'], [48, 'mds_quotactl'],
  [49, 'mds_getxattr'], [53, 'mds_get_info'],
  [101, 'ldlm_enqueue'], [102, 'ldlm_convert'], [103, 'ldlm_cancel'], [104, 'ldlm_bl_callback'],
  [105, 'ldlm_cp_callback'], [106, 'ldlm_gl_callback'], [107, 'ldlm_set_info'],
  [250, 'mgs_connect'], [251, 'mgs_disconnect'], [252, 'mgs_exception'], [253, 'mgs_target_reg'],
  [254, 'mgs_target_del'], [255, 'mgs_set_info'], [256, 'mgs_config_read'],
  [400, 'obd_ping'], [403, 'dt_index_read'], [501, 'llog_origin_handle_open'],
  [601, 'quota_acquire'], [700, 'seq_query'], [900, 'fld_query'], [1000, 'out_update'],
]);

export function opcodeName(opcode: number): string {
  return opcodeNames.get(opcode) ?? `opc_${opcode}`;
}

/** pb_type. */
export const MsgType = {
  REQUEST: 4711,
  ERR: 4712,
  REPLY: 4713,
} as const;

/** pb_version = target version | PTLRPC_MSG_VERSION. */
export const PTLRPC_MSG_VERSION = 0x00000003;
export const LUSTRE_VERSION_MASK = 0xffff0000;
export const TargetVersion = {
  OBD: 0x00010000,
  MDS: 0x00020000,
  OST: 0x00030000,
  DLM: 0x00040000,
  LOG: 0x00050000,
  MGS: 0x00060000,
} as const;

/** pb_flags of requests. */
export const MsgFlag = {
  RESENT: 0x0002,
  REPLAY: 0x0004,
  REQ_REPLAY_DONE: 0x0040,
  LOCK_REPLAY_DONE: 0x0080,
} as const;

/** pb_op_flags of connect requests and replies. */
export const ConnectFlag = {
  RECOVERING: 0x00000001,
  RECONNECT: 0x00000002,
  REPLAYABLE: 0x00000004,
  INITIAL: 0x00000020,
  NEXT_VER: 0x00000080,
  TRANSNO: 0x00000100,
} as const;

/** ocd_connect_flags bits this implementation sets. */
export const OBD_CONNECT_VERSION = 0x20n;
export const OBD_CONNECT_AT = 0x1000000n;
export const OBD_CONNECT_FULL20 = 0x1000000000n;
export const OBD_CONNECT_MULTIMODRPCS = 0x200000000000000n;

export const LUSTRE_MSG_MAGIC_V2 = 0x0bd00bd3;
export const LUSTRE_MSG_MAGIC_V2_SWABBED = 0xd30bd00b;

/** lnet_process_id pid of every Lustre service. */
export const LNET_PID_LUSTRE = 12345;

/** Linux x86 errno numbers, as pb_status carries them (negated). */
export const Errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, EAGAIN: 11,
  ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ETXTBSY: 26, EFBIG: 27,
  ENOSPC: 28, EROFS: 30, EMLINK: 31, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, ETIME: 62, EPROTO: 71, EBADMSG: 74,
  EOVERFLOW: 75, EOPNOTSUPP: 95, EADDRINUSE: 98, ENOBUFS: 105, ENOTCONN: 107, ESHUTDOWN: 108,
  ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115,
  ESTALE: 116, EDQUOT: 122, ECANCELED: 125, ENOTSUPP: 524,
} as const;

const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(Errno).map(([name, value]) => [value, name]),
);

/** 'ENOENT' for 2 or -2; 'E<n>' for a number without a name here. */
export function errnoName(status: number): string {
  const n = Math.abs(status);
  return errnoNames.get(n) ?? `E${n}`;
}
