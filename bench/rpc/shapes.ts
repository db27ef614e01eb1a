// The operation buffers the RPC benchmark sends, in Lustre's layouts (RQF_OST_GETATTR,
// RQF_OST_BRW_WRITE), so that Wireshark's Lustre dissector reads them as what they are:
//   OST_GETATTR request [ptlrpc_body][ost_body 208]          reply [ptlrpc_body][ost_body 208]
//   OST_WRITE   request [ptlrpc_body][ost_body 208][obd_ioobj 24][niobuf_remote 16 * n]
//               reply   [ptlrpc_body][ost_body 208][rcs 4 * n]
// ost_body is an obdo: o_valid u64 at 0, o_oi (ost_id, 16) at 8, o_size u64 at 32.
// obd_ioobj: ost_id 16, ioo_max_brw u32, ioo_bufcnt u32. niobuf_remote: offset u64, len u32, flags u32.

export const OST_BODY_BYTES = 208;
export const OBD_MD_FLID = 0x1n;
export const OBD_MD_FLSIZE = 0x8n;

export function ostBody(objectId: bigint, size = 0n): Buffer {
  const b = Buffer.allocUnsafe(OST_BODY_BYTES).fill(0);
  b.writeUInt32LE(Number(OBD_MD_FLID | OBD_MD_FLSIZE), 0);
  writeU64(b, 8, objectId);
  writeU64(b, 32, size);
  return b;
}

function writeU64(b: Buffer, offset: number, v: bigint): void {
  b.writeUInt32LE(Number(v & 0xffffffffn), offset);
  b.writeUInt32LE(Number(v >> 32n), offset + 4);
}

export function ioObject(objectId: bigint, niobufs: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(objectId, 0);
  b.writeUInt32LE(niobufs, 20);
  return b;
}

export function niobuf(offset: number, length: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(offset), 0);
  b.writeUInt32LE(length, 8);
  return b;
}

export function writeRequestBuffers(objectId: bigint, offset: number, length: number): Buffer[] {
  return [ostBody(objectId), ioObject(objectId, 1), niobuf(offset, length)];
}

/** The length the one niobuf of an OST_WRITE asks for (0 when the buffers are not that shape). */
export function writeLength(buffers: Buffer[]): number {
  const nb = buffers[2];
  return nb && nb.length >= 16 ? nb.readUInt32LE(8) : 0;
}
