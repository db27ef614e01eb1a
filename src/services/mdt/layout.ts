// File layouts: RAID0 striping over OST objects, stored as the file's 'lustre.lov' xattr in
// Lustre's lov_mds_md_v1 layout (lustre_user.h / lustre_idl.h), little-endian:
//   off size field
//     0    4 lmm_magic          LOV_MAGIC_V1 = 0x0BD10BD0
//     4    4 lmm_pattern        LOV_PATTERN_RAID0 = 1
//     8   16 lmm_oi             the file's FID: f_seq u64, f_oid u32, f_ver u32
//    24    4 lmm_stripe_size    bytes, a multiple of 64 KiB
//    28    2 lmm_stripe_count   objects that follow (a directory default: 0 = inherit, 0xFFFF = every OST)
//    30    2 lmm_layout_gen     (a directory default: lmm_stripe_offset, 0xFFFF = any OST)
//    32   24 lmm_objects[i]     lov_ost_data_v1: l_ost_oi (the object's FID, 16 bytes as above),
//                               l_ost_gen u32 (0), l_ost_idx u32 (the OST index)
// A file's layout has stripe_count objects; a directory's default layout (what files created in
// it inherit) has none and uses the offset field. A value shorter than its count says, or with
// another magic or pattern, is refused (EINVAL at the edge).
import { type Fid } from '../../osd/index.js';
import type { LayoutSpec } from './protocol.js';

export const LOV_MAGIC_V1 = 0x0bd10bd0;
export const LOV_PATTERN_RAID0 = 1;
export const LOV_XATTR = 'lustre.lov';
export const LOV_HEADER_BYTES = 32;
export const LOV_OBJECT_BYTES = 24;
/** The smallest stripe and the unit of stripe sizes (LOV_MIN_STRIPE_SIZE). */
export const STRIPE_UNIT = 64 * 1024;
export const STRIPE_COUNT_MAX = 2000;

export interface StripeObject {
  ostIndex: number;
  fid: Fid;
}

export interface FileLayout {
  fid: Fid;
  stripeSize: number;
  objects: StripeObject[];
}

export const DEFAULT_LAYOUT: LayoutSpec = { stripeCount: 1, stripeSize: 1024 * 1024, stripeOffset: -1 };

function writeFid(b: Buffer, off: number, f: Fid): void {
  b.writeBigUInt64LE(BigInt(f.seq), off);
  b.writeUInt32LE(f.oid, off + 8);
  b.writeUInt32LE(f.ver, off + 12);
}
function readFid(b: Buffer, off: number): Fid {
  return { seq: Number(b.readBigUInt64LE(off)), oid: b.readUInt32LE(off + 8), ver: b.readUInt32LE(off + 12) };
}

export function encodeFileLayout(l: FileLayout): Buffer {
  const b = Buffer.alloc(LOV_HEADER_BYTES + LOV_OBJECT_BYTES * l.objects.length);
  b.writeUInt32LE(LOV_MAGIC_V1, 0);
  b.writeUInt32LE(LOV_PATTERN_RAID0, 4);
  writeFid(b, 8, l.fid);
  b.writeUInt32LE(l.stripeSize, 24);
  b.writeUInt16LE(l.objects.length, 28);
  b.writeUInt16LE(0, 30);
  l.objects.forEach((o, i) => {
    const off = LOV_HEADER_BYTES + LOV_OBJECT_BYTES * i;
    writeFid(b, off, o.fid);
    b.writeUInt32LE(0, off + 16);
    b.writeUInt32LE(o.ostIndex, off + 20);
  });
  return b;
}

export function encodeDefaultLayout(fid: Fid, spec: LayoutSpec): Buffer {
  const b = Buffer.alloc(LOV_HEADER_BYTES);
  b.writeUInt32LE(LOV_MAGIC_V1, 0);
  b.writeUInt32LE(LOV_PATTERN_RAID0, 4);
  writeFid(b, 8, fid);
  b.writeUInt32LE(spec.stripeSize, 24);
  b.writeUInt16LE(spec.stripeCount === -1 ? 0xffff : spec.stripeCount, 28);
  b.writeUInt16LE(spec.stripeOffset === -1 ? 0xffff : spec.stripeOffset, 30);
  return b;
}

export class LayoutError extends Error {
  readonly code = 'EINVAL';
}

function header(b: Uint8Array): Buffer {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < LOV_HEADER_BYTES) throw new LayoutError('layout shorter than its header');
  if (buf.readUInt32LE(0) !== LOV_MAGIC_V1) throw new LayoutError('layout magic is not LOV_MAGIC_V1');
  if (buf.readUInt32LE(4) !== LOV_PATTERN_RAID0) throw new LayoutError('layout pattern is not RAID0');
  return buf;
}

export function decodeFileLayout(v: Uint8Array): FileLayout {
  const b = header(v);
  const count = b.readUInt16LE(28);
  if (b.length !== LOV_HEADER_BYTES + LOV_OBJECT_BYTES * count) throw new LayoutError(`layout of ${b.length} bytes does not hold ${count} objects`);
  const objects: StripeObject[] = [];
  for (let i = 0; i < count; i++) {
    const off = LOV_HEADER_BYTES + LOV_OBJECT_BYTES * i;
    objects.push({ fid: readFid(b, off), ostIndex: b.readUInt32LE(off + 20) });
  }
  return { fid: readFid(b, 8), stripeSize: b.readUInt32LE(24), objects };
}

export function decodeDefaultLayout(v: Uint8Array): LayoutSpec {
  const b = header(v);
  if (b.length !== LOV_HEADER_BYTES) throw new LayoutError('a default layout holds no objects');
  const count = b.readUInt16LE(28);
  const offset = b.readUInt16LE(30);
  return { stripeSize: b.readUInt32LE(24), stripeCount: count === 0xffff ? -1 : count, stripeOffset: offset === 0xffff ? -1 : offset };
}

/** Checks a user's striping request (lfs setstripe): EINVAL for sizes off the 64 KiB unit or counts out of range. */
export function checkSpec(s: LayoutSpec): void {
  if (s.stripeSize !== 0 && (s.stripeSize % STRIPE_UNIT !== 0 || s.stripeSize > 0xffff0000)) {
    throw new LayoutError(`stripe size ${s.stripeSize} is not a multiple of ${STRIPE_UNIT}`);
  }
  if (s.stripeCount < -1 || s.stripeCount > STRIPE_COUNT_MAX) throw new LayoutError(`stripe count ${s.stripeCount} out of range`);
  if (s.stripeOffset < -1 || s.stripeOffset > 0xfffe) throw new LayoutError(`stripe offset ${s.stripeOffset} out of range`);
}

/**
 * The layout a new file gets: each field of the request that is unset (0; -1 for the offset)
 * comes from the directory's default, then the file system's. Lustre's lod_ah_init order.
 */
export function resolveSpec(request: LayoutSpec | undefined, ...defaults: (LayoutSpec | undefined)[]): LayoutSpec {
  const chain = [request, ...defaults, DEFAULT_LAYOUT].filter((s): s is LayoutSpec => s !== undefined);
  const pick = (f: (s: LayoutSpec) => number, unset: number) => chain.map(f).find((v) => v !== unset) ?? unset;
  return {
    stripeCount: pick((s) => s.stripeCount, 0),
    stripeSize: pick((s) => s.stripeSize, 0),
    stripeOffset: pick((s) => s.stripeOffset, -1),
  };
}

/** The file system's default layout from mountdata params (lov.stripesize, lov.stripecount, lov.stripeoffset). */
export function paramsLayout(params: Record<string, string>): LayoutSpec | undefined {
  const n = (k: string) => (params[k] !== undefined ? Number(params[k]) : undefined);
  const size = n('lov.stripesize');
  const count = n('lov.stripecount');
  const offset = n('lov.stripeoffset');
  if (size === undefined && count === undefined && offset === undefined) return undefined;
  const spec = { stripeSize: size ?? 0, stripeCount: count ?? 0, stripeOffset: offset ?? -1 };
  if (!Object.values(spec).every(Number.isInteger)) throw new LayoutError('lov.stripe* params must be integers');
  checkSpec(spec);
  return spec;
}
