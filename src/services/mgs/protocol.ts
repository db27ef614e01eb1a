// The MGS's wire protocol: the request and reply buffers of its opcodes, and the config log
// records (llog records carrying lustre_cfg commands) that targets and clients read.
//
// Opcodes (Lustre's enum mgs_cmd): MGS_CONNECT 250 / MGS_DISCONNECT 251 (ptlrpc's connect),
// MGS_TARGET_REG 253, MGS_SET_INFO 255, MGS_CONFIG_READ 256. Each request and reply carries one
// operation buffer, a CBOR map (Lustre sends struct mgs_target_info, mgs_send_param and
// mgs_config_body; these maps hold the same fields by name):
//   MGS_TARGET_REG  -> { fsname, svname, kind: 'mdt'|'ost', index (-1: assign one), uuid,
//                        nids: string[], virgin: bool, params: {k: v},
//                        deviceUuid }
//                   <- { svname, index }                      errors: EADDRINUSE, EINVAL
//   MGS_SET_INFO    -> { mode: 'set_param' | 'conf_param', params: [[key, value]...] }
//                   <- { logs: { [logname]: lastIndex } }     errors: EINVAL, ENOENT
//   MGS_CONFIG_READ -> { logs: [[logname, afterIndex]...], waitMs, maxBytes }
//                   <- { logs: [{ name, records: ConfigRecord[], lastIndex }] }
// MGS_CONFIG_READ returns the records of each log with an index above afterIndex, at most
// maxBytes of them; when there are none in any log and waitMs > 0 the MGS holds the request
// until one is appended or waitMs passes (a long poll). Lustre instead gives each MGC an
// LDLM config lock whose blocking callback tells it to re-read; LDLM comes in a later issue,
// and then the poll becomes a lock.
//
// Config log records (one llog per log name, stored through the OSD; see llog.ts for bytes):
//   { index, command, name, args }   index from 1 up, command a Lustre LCFG_* number, name the
//   lustre_cfg device name (lcfg_bufs[0]), args the other lustre_cfg buffers as strings.
import { decode, encode } from 'cbor-x';

/** enum lcfg_command_type (lustre_cfg.h). */
export const Lcfg = {
  ATTACH: 0x00cf001,
  DETACH: 0x00cf002,
  SETUP: 0x00cf003,
  CLEANUP: 0x00cf004,
  ADD_UUID: 0x00cf005,
  DEL_UUID: 0x00cf006,
  ADD_CONN: 0x00cf00b,
  LOV_ADD_OBD: 0x00cf00d,
  PARAM: 0x00cf00f,
  MARKER: 0x00ce010,
  ADD_MDC: 0x00cf014,
  SET_PARAM: 0x00ce023,
} as const;

const lcfgNames = new Map<number, string>(Object.entries(Lcfg).map(([k, v]) => [v, k.toLowerCase()]));

/** 'attach', 'setup', 'lov_add_obd', ... as lctl llog_print names them. */
export function lcfgName(command: number): string {
  return lcfgNames.get(command) ?? `lcfg_0x${command.toString(16)}`;
}

export interface ConfigRecord {
  index: number;
  command: number;
  name: string;
  args: string[];
}

export type TargetKindOnWire = 'mdt' | 'ost';

export interface TargetRegistration {
  fsname: string;
  svname: string;
  kind: TargetKindOnWire;
  /** -1: the MGS assigns the next free index of that kind. */
  index: number;
  uuid: string;
  nids: string[];
  virgin: boolean;
  params: Record<string, string>;
  /** The OSD's format uuid: tells a repeat registration of the same device from another device. */
  deviceUuid: string;
}

export interface RegistrationReply {
  svname: string;
  index: number;
}

export type SetInfoMode = 'set_param' | 'conf_param';

export interface SetInfoRequest {
  mode: SetInfoMode;
  params: Array<[string, string]>;
}

export interface SetInfoReply {
  logs: Record<string, number>;
}

export interface ConfigReadRequest {
  logs: Array<[string, number]>;
  waitMs: number;
  maxBytes: number;
}

export interface ConfigReadReply {
  logs: Array<{ name: string; records: ConfigRecord[]; lastIndex: number }>;
}

/** The limits the MGS holds every request to. */
export const MGS_LIMITS = {
  /** A CONFIG_READ reply's records, in encoded bytes (well under ptlrpc's 64 KiB reply). */
  readBytesMax: 32 * 1024,
  /** How long a CONFIG_READ may be held. */
  waitMsMax: 30_000,
  /** Logs named by one CONFIG_READ. */
  logsPerReadMax: 16,
  /** Params in one SET_INFO, NIDs in one registration, bytes of one name. */
  paramsMax: 64,
  nidsMax: 16,
  nameBytesMax: 256,
} as const;

/** The log that set_param -P writes (Lustre's "params" log, read by every node). */
export const PARAMS_LOG = 'params';

export function clientLogName(fsname: string): string {
  return `${fsname}-client`;
}

export const encodeMgs = (value: unknown): Buffer => encode(value);

/** Decodes one operation buffer; undefined for bytes that are not CBOR. */
export function decodeMgs(buffer: Buffer | undefined): unknown {
  if (!buffer || buffer.length === 0) return undefined;
  try {
    return decode(buffer);
  } catch {
    return undefined;
  }
}

// ---- the client's view of a config log ----

export interface ConfigTarget {
  svname: string;
  uuid: string;
  index: number;
  nids: string[];
}

export interface FsConfig {
  mdts: Map<number, ConfigTarget>;
  osts: Map<number, ConfigTarget>;
  params: Map<string, string>;
  /** NIDs named for each target uuid by setup and add_conn records so far. */
  uuidNids: Map<string, string[]>;
  lastIndex: number;
}

export function emptyFsConfig(): FsConfig {
  return { mdts: new Map(), osts: new Map(), params: new Map(), uuidNids: new Map(), lastIndex: 0 };
}

/**
 * Applies records of a client (or MDT) log to a view: lov_add_obd adds an OST, add_mdc an
 * MDT, each with the NIDs its setup and add_conn records named; param / set_param set a
 * parameter. Records are applied in index order; older ones are skipped.
 */
export function applyConfigRecords(view: FsConfig, records: ConfigRecord[]): FsConfig {
  const nidsOf = view.uuidNids;
  for (const r of records) {
    if (r.index <= view.lastIndex) continue;
    view.lastIndex = r.index;
    switch (r.command) {
      case Lcfg.SETUP: {
        const [uuid, nid] = r.args;
        if (uuid && nid) nidsOf.set(uuid, [nid]);
        break;
      }
      case Lcfg.ADD_CONN: {
        const [uuid, nid] = r.args;
        if (uuid && nid) nidsOf.set(uuid, [...(nidsOf.get(uuid) ?? []), nid]);
        break;
      }
      case Lcfg.LOV_ADD_OBD:
      case Lcfg.ADD_MDC: {
        const [uuid, index] = r.args;
        if (!uuid || index === undefined) break;
        const target = { svname: uuid.replace(/_UUID$/, ''), uuid, index: Number(index), nids: nidsOf.get(uuid) ?? [] };
        (r.command === Lcfg.LOV_ADD_OBD ? view.osts : view.mdts).set(target.index, target);
        break;
      }
      case Lcfg.PARAM:
      case Lcfg.SET_PARAM: {
        const arg = r.args[0] ?? '';
        const eq = arg.indexOf('=');
        if (eq > 0) view.params.set(r.command === Lcfg.PARAM && r.name ? `${r.name}.${arg.slice(0, eq)}` : arg.slice(0, eq), arg.slice(eq + 1));
        break;
      }
      default:
        break;
    }
  }
  return view;
}
