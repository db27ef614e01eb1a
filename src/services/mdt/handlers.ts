// The MDT's request handlers: decode and validate (protocol.ts), squash root, run the
// operation, encode the reply. Updates (MDS_REINT, MDS_CLOSE) are modifying: the service runs
// them once per (client, xid) in a transaction whose reply record is written with them.
//
// Statistics: each handler's latency (usecs) is counted under Lustre's md_stats name (open,
// close, mknod, link, unlink, mkdir, rmdir, rename, getattr, setattr, getxattr, setxattr,
// statfs, readpage) in the target's md_stats and in the stats of the client's NID
// (mdt.*.exports.NID.stats), as mdt_counter_incr does. MDS_GET_ROOT has no md_stats name.
import { fidToString, parseFid, type Fid, type Tx } from '../../osd/index.js';
import { type IncomingRequest, type LprocfsStats, type OpHandler, type OsdReplyTransaction, type RequestContext } from '../../ptlrpc/index.js';
import { asMdtError, mdtError } from './errors.js';
import { isInternalXattr, type Mdd } from './mdd.js';
import type { Opens } from './open.js';
import { checkPermission, MAY_READ, squash } from './perm.js';
import {
  credField, decodeBody, decodeReint, encodeBody, fidField, int, keptParent, LOOKUP_NAMES_MAX, MdsOpcode, MdtProtocolError, reintOf, ReintOp, str,
  type Cred, type DirEntry, type MdtAttr, type ReadpageReply, type ReintRequest,
} from './protocol.js';
import type { Reint } from './reint.js';

/** The largest directory page a client may ask for. */
export const READPAGE_BYTES_MAX = 1024 * 1024;

export interface MdtParts {
  mdd: Mdd;
  reint: Reint;
  opens: Opens;
  /** mdt.*.md_stats. */
  mdStats: LprocfsStats;
}

type Handler = OpHandler<OsdReplyTransaction>;

function reply(body: unknown): { buffers: Buffer[] } {
  return { buffers: [encodeBody(body)] };
}

function fail(err: unknown): never {
  if (err instanceof MdtProtocolError) throw mdtError('EPROTO', err.message);
  throw asMdtError(err);
}

/** The md_stats name a request is counted under; a handler may refine it (REINT: by its op). */
interface Tally {
  name: string;
}

function wrap(name: string, stats: LprocfsStats, modifying: boolean,
  fn: (req: IncomingRequest, ctx: RequestContext<OsdReplyTransaction>, tally: Tally) => Promise<{ buffers: Buffer[] }>): Handler {
  return {
    modifying,
    async handle(req, ctx) {
      const tally: Tally = { name };
      const start = performance.now();
      try {
        return await fn(req, ctx, tally);
      } catch (err) {
        return fail(err);
      } finally {
        if (tally.name !== '') {
          const usecs = (performance.now() - start) * 1000;
          stats.add(tally.name, usecs);
          req.export.stats.add(tally.name, usecs);
        }
      }
    },
  };
}

/** md_stats names of the REINT ops (mdt_reint_* count these). */
function reintName(r: ReturnType<typeof decodeReint>): string {
  switch (r.op) {
    case ReintOp.SETATTR: return 'setattr';
    case ReintOp.CREATE: return (r.mode & 0o170000) === 0o040000 ? 'mkdir' : 'mknod';
    case ReintOp.LINK: return 'link';
    case ReintOp.UNLINK: return r.rmdir ? 'rmdir' : 'unlink';
    case ReintOp.RENAME: return 'rename';
    case ReintOp.OPEN: return 'open';
    case ReintOp.SETXATTR: return 'setxattr';
  }
}

export function mdtHandlers(p: MdtParts): Map<number, Handler> {
  const { mdd, reint, opens, mdStats: counters } = p;
  const credOf = (req: IncomingRequest, m: Record<string, unknown>): Cred => squash(credField(m.cred), req.peer.nid, mdd.rootSquash);
  const cred = (req: IncomingRequest, c: Cred): Cred => squash(c, req.peer.nid, mdd.rootSquash);
  const fidOf = (m: Record<string, unknown>, k: string): Fid => fidField(m[k], k);
  const P = (t: string): Fid => parseFid(t);

  return new Map<number, Handler>([
    [MdsOpcode.GET_ROOT, wrap('', counters, false, async () => reply({ fid: fidToString(mdd.rootFid) }))],
    [MdsOpcode.GETATTR, wrap('getattr', counters, false, async (req) => {
      const m = decodeBody(req.buffers);
      credOf(req, m);
      const f = fidOf(m, 'fid');
      const attr = await mdd.getattr(f);
      return reply(m.readlink === true ? { attr, target: await mdd.readlink(f) } : { attr });
    })],
    [MdsOpcode.GETATTR_NAME, wrap('getattr', counters, false, async (req) => {
      const m = decodeBody(req.buffers);
      const [c, parent, name] = [credOf(req, m), fidOf(m, 'parent'), str(m.name, 'name')];
      if (m.absentNames === undefined) return reply({ attr: await mdd.lookup(c, parent, name) });
      const max = int(m.absentNames, 'absentNames');
      if (max < 0 || max > LOOKUP_NAMES_MAX) throw mdtError('EINVAL', `absentNames ${max} is outside 0..${LOOKUP_NAMES_MAX}`);
      const r = await mdd.lookupOrNames(c, parent, name, max);
      return reply('attr' in r ? r : { absent: true, ...r });
    })],
    [MdsOpcode.STATFS, wrap('statfs', counters, false, async () => {
      const s = await mdd.osd.statfs();
      return reply({ statfs: { ...s, namelen: 255 } });
    })],
    [MdsOpcode.GETXATTR, wrap('getxattr', counters, false, async (req) => {
      const m = decodeBody(req.buffers);
      const c = credOf(req, m);
      const f = fidOf(m, 'fid');
      const a = await mdd.attrs(f);
      if (m.name === undefined || m.name === null) {
        const names = (await mdd.osd.xattrList(f)).filter((n) => !isInternalXattr(n) && (c.uid === 0 || !n.startsWith('trusted.')));
        return reply({ names });
      }
      const name = str(m.name, 'name');
      if (isInternalXattr(name) || (name.startsWith('trusted.') && c.uid !== 0)) throw mdtError('ENODATA', `no xattr ${name}`);
      if (name.startsWith('user.')) checkPermission(a, c, MAY_READ, `read ${name}`);
      const value = await mdd.xattr(f, name);
      if (!value) throw mdtError('ENODATA', `no xattr ${name}`);
      return reply({ value });
    })],
    [MdsOpcode.READPAGE, wrap('readpage', counters, false, async (req, ctx) => {
      const m = decodeBody(req.buffers);
      const c = credOf(req, m);
      const f = fidOf(m, 'fid');
      const bytes = int(m.bytes, 'bytes');
      if (bytes < 1024 || bytes > READPAGE_BYTES_MAX) throw mdtError('EINVAL', `readpage of ${bytes} bytes (1 KiB to 1 MiB)`);
      const cookie = m.cookie === null || m.cookie === undefined ? null : str(m.cookie, 'cookie');
      const a = await mdd.dirAttrs(f);
      checkPermission(a, c, MAY_READ, `read directory ${fidToString(f)}`);
      const page = await readdirPage(mdd, f, cookie, bytes);
      await ctx.bulkPut([page.data]);
      return reply(page.reply);
    })],
    [MdsOpcode.CLOSE, wrap('close', counters, true, async (req, ctx) => {
      const m = decodeBody(req.buffers);
      await opens.close(ctx.tx!.osdTx, req.export.clientUuid, str(m.handle, 'handle'));
      return reply({});
    })],
    [MdsOpcode.REINT, wrap('', counters, true, async (req, ctx, tally) => {
      const r = reintOf(req);
      tally.name = reintName(r);
      const tx = ctx.tx!.osdTx;
      const c = cred(req, r.cred);
      switch (r.op) {
        case ReintOp.SETATTR:
          return reply({ attr: await reint.setattr(tx, c, P(r.fid), r.attrs) });
        case ReintOp.CREATE:
          return reply(await withParentAttr(mdd, r, await reint.create(tx, c, {
            parent: P(r.parent), name: r.name, mode: r.mode, rdev: r.rdev, target: r.target, layout: r.layout, replay: replayOf(req),
          })));
        case ReintOp.LINK:
          return reply({ attr: await reint.link(tx, c, P(r.fid), P(r.parent), r.name) });
        case ReintOp.UNLINK:
          return reply(await withParentAttr(mdd, r, await reint.unlink(tx, c, P(r.parent), r.name, r.rmdir)));
        case ReintOp.RENAME:
          await reint.rename(tx, c, P(r.parent), r.name, P(r.newParent), r.newName);
          return reply({});
        case ReintOp.OPEN:
          return reply(await openBody(p, req, tx, c, r));
        case ReintOp.SETXATTR:
          await reint.setxattr(tx, c, P(r.fid), r.name, r.value, r.flags);
          return reply({});
      }
    })],
  ]);
}

/**
 * An open (MDS_REINT's, or an LDLM_ENQUEUE's IT_OPEN intent): what its reply's body says, and
 * what a replay of it hands back (replayOf).
 */
export async function openBody(p: Pick<MdtParts, 'mdd' | 'opens'>, req: IncomingRequest, tx: Tx, c: Cred, r: Extract<ReintRequest, { op: typeof ReintOp.OPEN }>):
  Promise<{ attr: MdtAttr; handle: string; created: boolean; layout?: Buffer; parentAttr?: MdtAttr }> {
  const P = (t: string): Fid => parseFid(t);
  const o = await p.opens.open(tx, req.export.clientUuid, c, {
    parent: r.parent === undefined ? undefined : P(r.parent), name: r.name, fid: r.fid === undefined ? undefined : P(r.fid),
    flags: r.flags, mode: r.mode, layout: r.layout, replay: replayOf(req),
  });
  return withParentAttr(p.mdd, r, { attr: o.attr, handle: o.handle, created: o.created, ...(o.layout && { layout: o.layout }) });
}

/**
 * The reply of an update that kept its client's lock on the parent (keepParentLock), with the
 * parent's attributes as the update left them. The MDT's lock on the parent spared only that
 * client: any other client's change there calls its lock back first, so these attributes are
 * what the lock vouches for from here on (or it is on its way back).
 */
async function withParentAttr<T extends object>(mdd: Mdd, r: ReintRequest, body: T): Promise<T & { parentAttr?: MdtAttr }> {
  const parent = keptParent(r);
  return parent === undefined ? body : { ...body, parentAttr: await mdd.getattr(parseFid(parent)) };
}

/**
 * What a replayed create or open had (recovery): the FID, layout and open handle of its
 * original reply, which the client appends to the replay. undefined for a first execution.
 */
function replayOf(req: IncomingRequest): { fid: Fid; layout?: Buffer; handle?: string } | undefined {
  if (!req.replayOf || req.replayOf.length === 0) return undefined;
  let m: Record<string, unknown>;
  try {
    m = decodeBody([req.replayOf]);
  } catch {
    throw mdtError('EPROTO', 'a replay whose original reply is not CBOR');
  }
  const attr = m.attr as Record<string, unknown> | undefined;
  if (!attr || typeof attr.fid !== 'string') throw mdtError('EPROTO', 'a replay whose original reply names no FID');
  let fid: Fid;
  try {
    fid = parseFid(attr.fid);
  } catch {
    throw mdtError('EPROTO', `a replay names FID ${JSON.stringify(attr.fid)}`);
  }
  const layout = m.layout instanceof Uint8Array ? Buffer.from(m.layout) : undefined;
  return { fid, ...(layout && { layout }), ...(typeof m.handle === 'string' && { handle: m.handle }) };
}

/** Entries after `cookie` ('.' and '..' first when null) that fit in `bytes` of CBOR. */
async function readdirPage(mdd: Mdd, dir: Fid, cookie: string | null, bytes: number): Promise<{ data: Buffer; reply: ReadpageReply }> {
  const entries: DirEntry[] = [];
  let used = 16;
  const room = (e: DirEntry) => Buffer.byteLength(e.name) + e.fid.length + 32;
  if (cookie === null) {
    entries.push({ name: '.', fid: fidToString(dir), type: 'dir' }, { name: '..', fid: fidToString(await mdd.parentOf(dir)), type: 'dir' });
    used += entries.reduce((n, e) => n + room(e), 0);
  }
  let next: string | null = cookie ?? '';
  let end = false;
  while (!end) {
    const page = await mdd.osd.indexList(dir, { cookie: next || null, limit: 256 });
    let full = false;
    for (const e of page.entries) {
      const d: DirEntry = { name: e.name, fid: fidToString(e.fid), type: e.type };
      if (used + room(d) > bytes) {
        full = true;
        break;
      }
      entries.push(d);
      used += room(d);
      next = e.name;
    }
    if (full) break;
    if (page.cookie === null) end = true;
  }
  const data = encodeBody(entries);
  return { data, reply: { count: entries.length, cookie: end ? null : next, end } };
}
