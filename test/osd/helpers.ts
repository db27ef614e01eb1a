// Shared helpers of the OSD tests: temp devices, a tx runner and a full snapshot of a device.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Osd, ROOT_INDEX_FID, fidKey, isDataType, isIndexType, type Fid, type OsdOptions, type Tx } from '../../src/osd/index.js';

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'osd-test-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function newDevice(opts: OsdOptions = {}): Promise<{ dir: string; osd: Osd }> {
  const dir = await tempDir();
  await Osd.format(dir, { label: 'test', uuid: '00000000-0000-4000-8000-000000000000', clock: () => 1_700_000_000_000 });
  const osd = await Osd.open(dir, { txgTimeoutMs: 5, clock: () => 1_700_000_000_000, ...opts });
  return { dir, osd };
}

/** Runs fn inside one transaction and returns the txg it joined. */
export async function txn(osd: Osd, fn: (tx: Tx) => Promise<void>, onCommit?: (txg: number) => void): Promise<number> {
  const tx = osd.begin();
  await tx.start();
  try {
    await fn(tx);
  } finally {
    tx.stop(onCommit);
  }
  return tx.txg;
}

/** Everything observable about the objects reachable from the root index (and `extra`). */
export async function snapshot(osd: Osd, extra: Fid[] = []): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const todo: Fid[] = [ROOT_INDEX_FID, ...extra];
  while (todo.length > 0) {
    const f = todo.pop()!;
    const key = fidKey(f);
    if (key in out) continue;
    if (!(await osd.exists(f))) {
      out[key] = null;
      continue;
    }
    const attrs = await osd.getAttrs(f);
    const xattrs: Record<string, string> = {};
    for (const name of await osd.xattrList(f)) xattrs[name] = (await osd.xattrGet(f, name)).toString('hex');
    const o: Record<string, unknown> = { attrs, xattrs };
    if (isDataType(attrs.type)) o.data = (await osd.read(f, 0, attrs.size)).toString('hex');
    if (isIndexType(attrs.type)) {
      const entries = [];
      let cookie: string | null | undefined;
      do {
        const page = await osd.indexList(f, { cookie, limit: 7 });
        entries.push(...page.entries);
        cookie = page.cookie;
      } while (cookie);
      o.entries = entries;
      for (const e of entries) todo.push(e.fid);
    }
    out[key] = o;
  }
  return out;
}
