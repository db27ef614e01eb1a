// The buffers of connect requests and replies (MDS_CONNECT, OST_CONNECT, MGS_CONNECT), as
// Lustre's RQF_*_CONNECT layouts have them, little-endian:
//   request: [ptlrpc_body][obd_uuid target (40)][obd_uuid client (40)][lustre_handle (8)]
//            [obd_connect_data (192)]
//   reply:   [ptlrpc_body][obd_connect_data (192)]; the reply's pb_handle is the export's cookie.
// obd_uuid: ASCII, NUL-terminated, at most 39 characters.
// obd_connect_data (the fields used here; the rest is zero and ignored when read):
//    0 u64 ocd_connect_flags   8 u32 ocd_version   12 u32 ocd_grant   16 u32 ocd_index
//   20 u32 ocd_brw_size       24 u64 ocd_ibits_known 40 u64 ocd_transno  60 u32 ocd_instance
//   64 u64 ocd_maxbytes       72 u16 ocd_maxmodrpcs  80 u64 ocd_connect_flags2
import { protocolError } from './errors.js';

export const UUID_BYTES = 40;
export const CONNECT_DATA_BYTES = 192;
/** OBD_OCD_VERSION(2, 15, 0, 0): the Lustre release whose wire format this follows. */
export const LUSTRE_VERSION_CODE = 0x020f0000;

export interface ConnectData {
  connectFlags: bigint;
  version: number;
  index: number;
  brwSize: number;
  transno: bigint;
  instance: number;
  maxModRpcs: number;
}

export interface ConnectRequest {
  targetUuid: string;
  clientUuid: string;
  handle: bigint;
  data: ConnectData;
}

export function encodeUuid(uuid: string): Buffer {
  checkUuid(uuid);
  const out = Buffer.alloc(UUID_BYTES);
  out.write(uuid, 0, 'latin1');
  return out;
}

function checkUuid(uuid: string): void {
  if (uuid.length === 0 || uuid.length >= UUID_BYTES || !/^[\x21-\x7e]+$/.test(uuid)) {
    throw new RangeError(`a uuid is 1..${UUID_BYTES - 1} printable ASCII characters, got ${JSON.stringify(uuid)}`);
  }
}

export function decodeUuid(buffer: Buffer | undefined, what: string): string {
  if (!buffer || buffer.length < UUID_BYTES) throw protocolError(`${what} uuid buffer is missing or short`);
  const end = buffer.indexOf(0);
  if (end <= 0 || end >= UUID_BYTES) throw protocolError(`${what} uuid is empty or not NUL-terminated`);
  const text = buffer.subarray(0, end).toString('latin1');
  if (!/^[\x21-\x7e]+$/.test(text)) throw protocolError(`${what} uuid holds non-printable bytes`);
  return text;
}

export function encodeConnectData(d: ConnectData): Buffer {
  const out = Buffer.alloc(CONNECT_DATA_BYTES);
  out.writeBigUInt64LE(d.connectFlags, 0);
  out.writeUInt32LE(d.version, 8);
  out.writeUInt32LE(d.index, 16);
  out.writeUInt32LE(d.brwSize, 20);
  out.writeBigUInt64LE(d.transno, 40);
  out.writeUInt32LE(d.instance, 60);
  out.writeUInt16LE(d.maxModRpcs, 72);
  return out;
}

export function decodeConnectData(buffer: Buffer | undefined): ConnectData {
  // Lustre accepts a shorter obd_connect_data from older peers; the fields read here sit in
  // its first 80 bytes.
  if (!buffer || buffer.length < 80) throw protocolError('obd_connect_data is missing or short');
  return {
    connectFlags: buffer.readBigUInt64LE(0),
    version: buffer.readUInt32LE(8),
    index: buffer.readUInt32LE(16),
    brwSize: buffer.readUInt32LE(20),
    transno: buffer.readBigUInt64LE(40),
    instance: buffer.readUInt32LE(60),
    maxModRpcs: buffer.readUInt16LE(72),
  };
}

export function encodeConnectRequest(r: ConnectRequest): Buffer[] {
  const handle = Buffer.alloc(8);
  handle.writeBigUInt64LE(r.handle);
  return [encodeUuid(r.targetUuid), encodeUuid(r.clientUuid), handle, encodeConnectData(r.data)];
}

export function decodeConnectRequest(buffers: readonly Buffer[]): ConnectRequest {
  if (buffers.length < 4) throw protocolError(`connect request has ${buffers.length + 1} buffers, needs 5`);
  const handle = buffers[2]!;
  if (handle.length < 8) throw protocolError('connect request handle is short');
  return {
    targetUuid: decodeUuid(buffers[0], 'target'),
    clientUuid: decodeUuid(buffers[1], 'client'),
    handle: handle.readBigUInt64LE(0),
    data: decodeConnectData(buffers[3]),
  };
}
