// Re-pointing a copy set: the copies of a file system's targets, started on other NIDs as a file
// system of their own, must not reach the live one. Three places name NIDs: each target's
// mountdata (the MGS NIDs), the MGS's config logs (ADD_UUID, SETUP and ADD_CONN records carry
// the NIDs of the MDTs and OSTs that clients and OSPs connect to) and the MGS's registry of
// targets. A NID map OLD=NEW rewrites all three in a copy, as Lustre's `lctl replace_nids` does
// on a stopped MGS: the config logs are rewritten whole, same records and indexes, other NIDs.
import { decode, encode } from 'cbor-x';
import { Osd, type Fid } from '../../osd/index.js';
import { decodeLlog, encodeLlogRecord } from '../../services/mgs/index.js';
import { MGS_CONFIGS_FID } from '../../services/target/index.js';

const REGISTRY_PREFIX = 'mgs.target.';

/** Parses OLD=NEW pairs (each a NID like 127.0.0.2@tcp). */
export function parseNidMap(pairs: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const p of pairs) {
    const m = /^([^=\s]+@[a-z]+\d*)=([^=\s]+@[a-z]+\d*)$/.exec(p);
    if (!m) throw Object.assign(new Error(`--nid takes OLD=NEW NIDs (e.g. 127.0.0.2@tcp=127.0.0.5@tcp), not '${p}'`), { code: 'EINVAL' });
    map.set(m[1]!, m[2]!);
  }
  return map;
}

const mapArg = (map: Map<string, string>, a: string): string => map.get(a) ?? a;

/** Rewrites the NIDs of an MGS copy's config logs and registry; returns how many records changed. */
export async function repointMgs(copy: string, map: Map<string, string>): Promise<number> {
  const osd = await Osd.open(copy);
  let changed = 0;
  try {
    if (!(await osd.exists(MGS_CONFIGS_FID))) return 0;
    const logs: Array<{ name: string; fid: Fid }> = [];
    let cookie: string | null | undefined;
    do {
      const page = await osd.indexList(MGS_CONFIGS_FID, { cookie, limit: 256 });
      logs.push(...page.entries.map((e) => ({ name: e.name, fid: e.fid })));
      cookie = page.cookie;
    } while (cookie);
    const tx = osd.begin();
    await tx.start();
    try {
      for (const log of logs) {
        const size = (await osd.getAttrs(log.fid)).size;
        const records = decodeLlog(size > 0 ? await osd.read(log.fid, 0, size) : Buffer.alloc(0), log.name);
        let touched = false;
        const next = records.map((r) => {
          const args = r.args.map((a) => mapArg(map, a));
          if (args.some((a, i) => a !== r.args[i])) { touched = true; changed++; }
          return { ...r, args };
        });
        if (!touched) continue;
        const bytes = Buffer.concat(next.map((r) => encodeLlogRecord(r)));
        await tx.punch(log.fid, 0);
        await tx.write(log.fid, 0, bytes);
      }
      for (const name of await osd.xattrList(MGS_CONFIGS_FID)) {
        if (!name.startsWith(REGISTRY_PREFIX)) continue;
        const entry = decode(await osd.xattrGet(MGS_CONFIGS_FID, name)) as { nids?: string[] };
        if (!Array.isArray(entry.nids)) continue;
        await tx.xattrSet(MGS_CONFIGS_FID, name, encode({ ...entry, nids: entry.nids.map((n) => mapArg(map, n)) }));
      }
    } finally {
      await osd.waitSynced(tx.stop().txg);
    }
  } finally {
    await osd.close();
  }
  return changed;
}
