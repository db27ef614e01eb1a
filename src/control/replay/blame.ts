// Blame: every transaction inside the window that touched an object, with who asked. An update
// touches an object when it names it (create, destroy, attributes, xattrs, data) or when it
// adds or removes a directory entry naming it. Who asked comes from the transaction's log
// entry: the ptlrpc service notes the transno, the client's UUID, its NID, the xid and the
// opcode in the same OSD transaction as the updates (src/ptlrpc/osd-reply-store.ts).
import { readLog } from '../../log/index.js';
import { devicePaths, fidToString, updatesOfEntries, type Fid, type Update } from '../../osd/index.js';

export interface BlameLine {
  txg: number;
  time: string;
  transno: string | null;
  client: string | null;
  nid: string | null;
  xid: string | null;
  /** The request's opcode (MDS_REINT, OST_WRITE, ...), when a request made it. */
  opcode: string | null;
  /** The transaction's updates that touched the object, described. */
  updates: string[];
}

export function describeUpdate(u: Update): string {
  switch (u.op) {
    case 'create': return `create ${u.attrs.type} mode 0${u.attrs.mode.toString(8)}`;
    case 'destroy': return 'destroy';
    case 'attr_set': return `attr_set ${Object.entries(u.attrs).map(([k, v]) => `${k}=${k === 'mode' ? `0${(v as number).toString(8)}` : String(v)}`).join(' ')}`;
    case 'xattr_set': return `xattr_set ${u.name} (${u.value.byteLength} bytes)`;
    case 'xattr_del': return `xattr_del ${u.name}`;
    case 'write': return `write ${u.offset}+${u.length} size ${u.size}`;
    case 'punch': return `punch ${u.start}-${u.end ?? 'EOF'} size ${u.size}`;
    case 'index_insert': return `index_insert '${u.name}' -> ${u.value.fid} in ${u.fid}`;
    case 'index_delete': return `index_delete '${u.name}' in ${u.fid}`;
  }
}

/** Index entries are deleted by name: this follows which FID each name held, to know whom a delete unlinked. */
class NameTracker {
  private names = new Map<string, string>();
  note(u: Update): string | undefined {
    const key = `${u.fid}/${(u as { name?: string }).name ?? ''}`;
    if (u.op === 'index_insert') this.names.set(key, u.value.fid);
    if (u.op === 'index_delete') {
      const was = this.names.get(key);
      this.names.delete(key);
      return was;
    }
    return u.op === 'index_insert' ? u.value.fid : undefined;
  }
  seed(dir: string, name: string, fid: string): void {
    this.names.set(`${dir}/${name}`, fid);
  }
}

/**
 * Every transaction after `afterTxg` that touched `fid`. `names` seeds the entries known at
 * afterTxg (dir FID, name, FID) so that an unlink of a name made before the window is seen.
 */
export async function blame(device: string, fid: Fid, afterTxg: number, names: Array<[string, string, string]> = []): Promise<BlameLine[]> {
  const target = fidToString(fid);
  const tracker = new NameTracker();
  for (const [dir, name, f] of names) tracker.seed(dir, name, f);
  const lines: BlameLine[] = [];
  for await (const record of readLog(devicePaths(device).log, { afterTxg })) {
    for (const entry of record.entries) {
      const e = entry as { updates?: unknown; tx?: Record<string, unknown> };
      const touched: string[] = [];
      for (const u of updatesOfEntries([entry], `txg ${record.txg}`)) {
        const named = tracker.note(u);
        if (u.fid === target || named === target) touched.push(describeUpdate(u));
      }
      if (touched.length === 0) continue;
      const tx = e.tx ?? {};
      const text = (k: string): string | null => (typeof tx[k] === 'string' ? tx[k] as string : null);
      lines.push({
        txg: record.txg, time: new Date(record.timeMs).toISOString(),
        transno: text('transno'), client: text('client'), nid: text('nid'), xid: text('xid'), opcode: text('opc'),
        updates: touched,
      });
    }
  }
  return lines;
}
