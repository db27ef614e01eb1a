// The OST's request handlers, one per opcode (wire bodies in protocol.ts). Each decodes and
// checks its body at the edge; OSD errors become the client's status (osdStatus).
//
// BRW write, in order: the object must exist (ENOENT before any bulk moves); the bulk is pulled
// (one GET for all niobufs); its checksum is verified (a mismatch: -EAGAIN, nothing written, the
// client resends); grant is consumed, or the write without grant must fit beside the others'
// grants (else ENOSPC); then one OSD transaction writes the niobufs, highest first, so that only
// the first can need new space: a refused write has written nothing.
//
// Statistics: each handler's latency is counted under its name in Lustre's obdfilter stats
// (create, destroy, getattr, setattr, statfs, set_info, sync, read, write, punch, in usecs), and
// each BRW's bytes as read_bytes / write_bytes [bytes], in the target's stats
// (obdfilter.*.stats) and in the stats of the client's NID (obdfilter.*.exports.NID.stats).
import assert from 'node:assert/strict';
import type { Osd } from '../../osd/index.js';
import { Errno, Opcode, statusError, type IncomingRequest, type LprocfsStats, type OpHandler, type OsdReplyTransaction, type RequestContext } from '../../ptlrpc/index.js';
import type { ChecksumPool } from './checksum.js';
import type { GrantBook } from './grants.js';
import { objectFid, osdStatus, type OstObjects } from './objects.js';
import {
  checkCreate, checkGrant, checkObjectId, checkPunch, checkRead, checkSetattr, checkWrite, decodeBody, encodeBody,
  niobufBytes, type ObdStatfs,
} from './protocol.js';

export interface OstFailLoc {
  /** Corrupt the bulk of this read after its checksum was computed (OBD_FAIL_OST_CHECKSUM_SEND). */
  corruptReadBulk?(request: IncomingRequest): boolean;
}

export interface OstCounters {
  cksumErrors: number;
  enospc: number;
  precreated: number;
  destroyed: number;
  bytesWritten: number;
  bytesRead: number;
}

export interface OstDeps {
  osd: Osd;
  objects: OstObjects;
  grants: GrantBook;
  pool: ChecksumPool;
  counters: OstCounters;
  /** The obdfilter stats of the target. */
  stats: LprocfsStats;
  failLoc: OstFailLoc;
  maxPrecreate: number;
}

type Handler = OpHandler<OsdReplyTransaction>;
type Ctx = RequestContext<OsdReplyTransaction>;

const reply = (body: object) => ({ buffers: [encodeBody(body)] });

/** The handler, with its latency counted as `name` in the target's and the export NID's stats. */
function counted(stats: LprocfsStats, name: string, h: Handler): Handler {
  return {
    ...h,
    async handle(req, ctx) {
      const start = performance.now();
      try {
        return await h.handle(req, ctx);
      } finally {
        const usecs = (performance.now() - start) * 1000;
        stats.add(name, usecs);
        req.export.stats.add(name, usecs);
      }
    },
  };
}

function countBytes(d: OstDeps, req: IncomingRequest, name: 'read_bytes' | 'write_bytes', bytes: number): void {
  d.stats.add(name, bytes, 'bytes');
  req.export.stats.add(name, bytes, 'bytes');
}

/** Lustre's obdfilter stats names of the opcodes. */
const OFD_STATS_NAMES: ReadonlyMap<number, string> = new Map([
  [Opcode.OST_CREATE, 'create'], [Opcode.OST_DESTROY, 'destroy'], [Opcode.OST_GETATTR, 'getattr'],
  [Opcode.OST_SETATTR, 'setattr'], [Opcode.OST_STATFS, 'statfs'], [Opcode.OST_SET_INFO, 'set_info'],
  [Opcode.OST_SYNC, 'sync'], [Opcode.OST_WRITE, 'write'], [Opcode.OST_READ, 'read'], [Opcode.OST_PUNCH, 'punch'],
]);

function countedAll(stats: LprocfsStats, ops: Map<number, Handler>): Map<number, Handler> {
  return new Map([...ops].map(([opcode, h]) => [opcode, counted(stats, OFD_STATS_NAMES.get(opcode)!, h)]));
}

function txOf(ctx: Ctx) {
  assert(ctx.tx, 'a modifying handler runs in a transaction');
  return ctx.tx.osdTx;
}

/** Bytes [offset, offset+length) of buffers laid back to back, as views of them (the OSD writes them with one pwritev). */
function sliceBulk(bulk: Buffer[], offset: number, length: number): Buffer[] {
  const parts: Buffer[] = [];
  let at = 0;
  for (const b of bulk) {
    const end = at + b.length;
    if (end > offset && at < offset + length) {
      parts.push(b.subarray(Math.max(0, offset - at), Math.min(b.length, offset + length - at)));
    }
    at = end;
    if (at >= offset + length) break;
  }
  return parts;
}

export function metadataOps(d: OstDeps): Map<number, Handler> {
  const { osd, objects, grants, counters } = d;
  return countedAll(d.stats, new Map<number, Handler>([
    [Opcode.OST_CREATE, { modifying: true, async handle(req, ctx) {
      const c = checkCreate(decodeBody(req.buffers, 'OST_CREATE'));
      const tx = txOf(ctx);
      if (c.delorphan) return reply({ seq: c.seq, lastId: await objects.deleteOrphans(tx, c.seq, c.lastId) });
      const before = objects.lastId(c.seq);
      const lastId = await objects.precreate(tx, c.seq, c.lastId, d.maxPrecreate);
      counters.precreated += lastId - before;
      return reply({ seq: c.seq, lastId });
    } }],
    [Opcode.OST_DESTROY, { modifying: true, async handle(req, ctx) {
      await objects.destroy(txOf(ctx), checkObjectId(decodeBody(req.buffers, 'OST_DESTROY')));
      counters.destroyed++;
      return reply({});
    } }],
    [Opcode.OST_GETATTR, { async handle(req) {
      return reply({ attrs: await objects.attrs(checkObjectId(decodeBody(req.buffers, 'OST_GETATTR'))) });
    } }],
    [Opcode.OST_SETATTR, { modifying: true, async handle(req, ctx) {
      const s = checkSetattr(decodeBody(req.buffers, 'OST_SETATTR'));
      const tx = txOf(ctx);
      await objects.locks.with(`obj:${s.seq}:${s.oid}`, () => tx.attrSet(objectFid(s), s.attrs).catch(osdStatus));
      return reply({ attrs: await objects.attrs(s) });
    } }],
    [Opcode.OST_STATFS, { async handle() {
      const s = await osd.statfs();
      const { avail } = await grants.avail();
      const bsize = 4096;
      const statfs: ObdStatfs = {
        bsize, blocks: Math.floor(s.bytesTotal / bsize), bfree: Math.floor(s.bytesFree / bsize),
        bavail: Math.floor(avail / bsize), files: s.objectsTotal, ffree: s.objectsFree, granted: grants.total,
      };
      return reply({ statfs });
    } }],
    [Opcode.OST_SET_INFO, { async handle(req) {
      const g = checkGrant(decodeBody(req.buffers, 'OST_SET_INFO'));
      const uuid = req.export.clientUuid;
      grants.release(uuid, g.release);
      return reply({ grant: await grants.grant(uuid, g.want) });
    } }],
    [Opcode.OST_SYNC, syncHandler(d)],
  ]));
}

function syncHandler(d: OstDeps): Handler {
  return { async handle(req) {
    if (req.buffers[0]?.length) {
      const body = decodeBody(req.buffers, 'OST_SYNC');
      if (body.oid !== undefined) await d.objects.attrs(checkObjectId(body)); // ENOENT for a missing object
    }
    await d.osd.sync();
    return reply({});
  } };
}

export function ioOps(d: OstDeps): Map<number, Handler> {
  const { objects } = d;
  return countedAll(d.stats, new Map<number, Handler>([
    [Opcode.OST_WRITE, { modifying: true, handle: (req, ctx) => write(d, req, ctx) }],
    [Opcode.OST_READ, { handle: (req, ctx) => read(d, req, ctx) }],
    [Opcode.OST_PUNCH, { modifying: true, async handle(req, ctx) {
      const p = checkPunch(decodeBody(req.buffers, 'OST_PUNCH'));
      const tx = txOf(ctx);
      await objects.locks.with(`obj:${p.seq}:${p.oid}`, () => tx.punch(objectFid(p), p.start, p.end ?? undefined).catch(osdStatus));
      return reply({ attrs: await objects.attrs(p) });
    } }],
    [Opcode.OST_SYNC, syncHandler(d)],
  ]));
}

async function write(d: OstDeps, req: IncomingRequest, ctx: Ctx) {
  const { objects, grants, pool, counters } = d;
  const w = checkWrite(decodeBody(req.buffers, 'OST_WRITE'));
  const f = objectFid(w);
  await objects.attrs(w); // ENOENT before any bulk moves
  const total = niobufBytes(w.niobufs);
  const bulk = await ctx.bulkGet(total);
  let got = 0;
  for (const b of bulk) got += b.length;
  if (got !== total) throw statusError(-Errno.EPROTO, `bulk of ${got} bytes for niobufs of ${total}`);
  if (w.cksumType !== 0 && (await pool.checksum(w.cksumType, bulk)) !== w.cksum) {
    counters.cksumErrors++;
    throw statusError(-Errno.EAGAIN, `bulk checksum mismatch on object 0x${w.seq.toString(16)}:${w.oid}: resend`);
  }
  const uuid = req.export.clientUuid;
  const fromGrant = w.fromGrant && grants.consume(uuid, total);
  try {
    // The request's own transaction (a write is executed once and replayed after a crash, as
    // Lustre's clients keep unstable pages until the OST commits them).
    const tx = txOf(ctx);
    {
      await objects.locks.with(`obj:${w.seq}:${w.oid}`, async () => {
        const size = (await objects.attrs(w)).size;
        const last = w.niobufs[w.niobufs.length - 1]!;
        const growth = Math.max(0, last[0] + last[1] - size);
        if (!fromGrant && !(await grants.fits(uuid, growth))) {
          throw statusError(-Errno.ENOSPC, `no space for ${growth} more bytes on this OST`);
        }
        const offsets: number[] = [];
        for (let i = 0, at = 0; i < w.niobufs.length; at += w.niobufs[i]![1], i++) offsets.push(at);
        for (let i = w.niobufs.length - 1; i >= 0; i--) {
          const [offset, length] = w.niobufs[i]!;
          await tx.write(f, offset, sliceBulk(bulk, offsets[i]!, length)).catch(osdStatus);
        }
      });
    }
  } catch (err) {
    if (fromGrant) grants.restore(uuid, total);
    if ((err as { status?: number }).status === -Errno.ENOSPC) counters.enospc++;
    if ((err as Error).name === 'OsdError') osdStatus(err);
    throw err;
  }
  counters.bytesWritten += total;
  countBytes(d, req, 'write_bytes', total);
  const grant = await grants.grant(uuid, w.want);
  return reply({ attrs: await objects.attrs(w), grant });
}

async function read(d: OstDeps, req: IncomingRequest, ctx: Ctx) {
  const { osd, objects, pool, counters, failLoc } = d;
  const r = checkRead(decodeBody(req.buffers, 'OST_READ'));
  const f = objectFid(r);
  const attrs = await objects.attrs(r);
  const pieces: Buffer[] = [];
  const lengths: number[] = [];
  for (const [offset, length] of r.niobufs) {
    const b = await osd.read(f, offset, length).catch(osdStatus);
    lengths.push(b.length);
    if (b.length > 0) pieces.push(b);
  }
  const cksum = await pool.checksum(r.cksumType, pieces);
  if (pieces.length > 0) {
    if (failLoc.corruptReadBulk?.(req)) {
      pieces[0] = Buffer.from(pieces[0]!);
      pieces[0][0] ^= 0xff;
    }
    await ctx.bulkPut(pieces);
  }
  const bytes = lengths.reduce((a, b) => a + b, 0);
  counters.bytesRead += bytes;
  countBytes(d, req, 'read_bytes', bytes);
  return reply({ attrs, lengths, cksum });
}
