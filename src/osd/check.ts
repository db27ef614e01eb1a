// The consistency check: a streaming scan of LevelDB and the data folder. Memory stays bounded
// apart from the set of FIDs that index entries reference. It reads LevelDB only, so the OSD
// checkpoints first (osd.check()).
//
// Problems, each { kind, fid, message } (fid in Lustre's text form):
//   bad-key              a LevelDB key that fits none of the formats in keys.ts
//   entry-without-index  an index entry whose owner is missing or is not an index object
//   dangling-entry       an index entry whose value FID names no object (fid: the value FID)
//   entry-type-mismatch  an index entry whose type differs from its object's type
//   xattr-without-object an xattr whose object is missing
//   unreferenced-object  an object no index entry references (the root index excepted)
//   orphan-data          a data file whose object is missing, or whose generation is not the
//                        object's current one (left by a destroy whose removal did not finish)
//   data-on-non-regular  a data file for an object whose type holds no data
//   data-missing         a data object whose recorded blocks are > 0 but has no data file
//   counter-mismatch     m:objects or m:bytes differs from the objects actually present
// Not a problem: a data file longer than its object's size. Those bytes were written by a txg a
// crash lost; they are never visible and the next update that extends the size trims them
// (data.ts), so a device is consistent with them.

import { readdir, stat } from 'node:fs/promises';
import { isErrno } from './errors.js';
import { join } from 'node:path';
import type { DataFiles } from './data.js';
import { fidKey, fidToString, parseFidKey, ROOT_INDEX_FID, type Fid } from './fid.js';
import { COUNTER, decodeValue, kindEnd, kindStart, objectKey, splitOwnedKey } from './keys.js';
import type { Db } from './state.js';
import { isDataType, isIndexType, type IndexValue, type ObjectAttrs } from './types.js';

export type CheckKind =
  | 'bad-key' | 'entry-without-index' | 'dangling-entry' | 'entry-type-mismatch' | 'xattr-without-object'
  | 'unreferenced-object' | 'orphan-data' | 'data-on-non-regular' | 'data-missing'
  | 'counter-mismatch';

export interface CheckProblem {
  kind: CheckKind;
  fid: string;
  message: string;
}

const BATCH = 512;

async function attrsMany(db: Db, fids: Fid[]): Promise<(ObjectAttrs | undefined)[]> {
  const keys = fids.map(objectKey);
  const values = await db.getMany(keys);
  return values.map((v, i) => (v === undefined ? undefined : (decodeValue(keys[i]!, v) as ObjectAttrs)));
}

/** What a long check tells as it goes: the phase and the keys it has read in it so far. */
export type CheckProgress = (phase: 'indexes' | 'xattrs' | 'objects' | 'data files', scanned: number) => void;

const PHASE: Record<'o' | 'x' | 'i', Parameters<CheckProgress>[0]> = { i: 'indexes', x: 'xattrs', o: 'objects' };

async function* scan(db: Db, kind: 'o' | 'x' | 'i', progress?: CheckProgress): AsyncGenerator<[string, Uint8Array]> {
  let scanned = 0;
  for await (const row of db.iterator({ gte: kindStart(kind), lt: kindEnd(kind) })) {
    if (++scanned % 4096 === 0) progress?.(PHASE[kind], scanned);
    yield row;
  }
  progress?.(PHASE[kind], scanned);
}

export async function checkDevice(db: Db, data: DataFiles, progress?: CheckProgress): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  const referenced = new Set<string>();
  await checkIndexes(db, problems, referenced, progress);
  await checkXattrs(db, problems, progress);
  await checkObjects(db, data, problems, referenced, progress);
  await checkDataFiles(db, data, problems);
  return problems;
}

/**
 * The rows of an owned kind (index entries, xattrs) with their owner's attributes, looked up
 * once per run of one owner's keys; a key of no known shape is a problem and is skipped.
 */
async function* ownedRows(db: Db, kind: 'x' | 'i', problems: CheckProblem[], progress?: CheckProgress):
    AsyncGenerator<{ key: string; bytes: Uint8Array; fid: Fid; name: string; owner: ObjectAttrs | undefined }> {
  let ownerKey = '';
  let owner: ObjectAttrs | undefined;
  for await (const [key, bytes] of scan(db, kind, progress)) {
    const parts = splitOwnedKey(key);
    if (!parts) {
      problems.push({ kind: 'bad-key', fid: '', message: `malformed key ${JSON.stringify(key)}` });
      continue;
    }
    const k = fidKey(parts.fid);
    if (k !== ownerKey) {
      ownerKey = k;
      [owner] = await attrsMany(db, [parts.fid]);
    }
    yield { key, bytes, ...parts, owner };
  }
}

async function checkIndexes(db: Db, problems: CheckProblem[], referenced: Set<string>, progress?: CheckProgress): Promise<void> {
  let batch: { index: Fid; name: string; value: IndexValue }[] = [];
  const flush = async () => {
    const attrs = await attrsMany(db, batch.map((e) => e.value.fid));
    batch.forEach((e, i) => {
      const a = attrs[i];
      const where = `${JSON.stringify(e.name)} in index ${fidToString(e.index)}`;
      if (!a) problems.push({ kind: 'dangling-entry', fid: fidToString(e.value.fid), message: `${where} names ${fidToString(e.value.fid)}, which does not exist` });
      else if (a.type !== e.value.type) problems.push({ kind: 'entry-type-mismatch', fid: fidToString(e.value.fid), message: `${where} says ${e.value.type}, the object is ${a.type}` });
    });
    batch = [];
  };
  for await (const { key, bytes, fid, name, owner } of ownedRows(db, 'i', problems, progress)) {
    const value = decodeValue(key, bytes) as IndexValue;
    referenced.add(fidKey(value.fid));
    if (!owner || !isIndexType(owner.type)) {
      problems.push({ kind: 'entry-without-index', fid: fidToString(fid), message: `entry ${JSON.stringify(name)} belongs to ${fidToString(fid)}, which is not an index object` });
      continue;
    }
    batch.push({ index: fid, name, value });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
}

async function checkXattrs(db: Db, problems: CheckProblem[], progress?: CheckProgress): Promise<void> {
  for await (const { fid, name, owner } of ownedRows(db, 'x', problems, progress)) {
    if (!owner) problems.push({ kind: 'xattr-without-object', fid: fidToString(fid), message: `xattr ${JSON.stringify(name)} of ${fidToString(fid)}, which does not exist` });
  }
}

async function checkObjects(db: Db, data: DataFiles, problems: CheckProblem[], referenced: Set<string>, progress?: CheckProgress): Promise<void> {
  let objects = 0;
  let bytes = 0;
  const rootKey = fidKey(ROOT_INDEX_FID);
  for await (const [key, value] of scan(db, 'o', progress)) {
    const fid = parseFidKey(key.slice(2));
    if (!fid) {
      problems.push({ kind: 'bad-key', fid: '', message: `malformed key ${JSON.stringify(key)}` });
      continue;
    }
    const a = decodeValue(key, value) as ObjectAttrs;
    const text = fidToString(fid);
    objects++;
    if (isDataType(a.type)) bytes += a.size;
    const k = fidKey(fid);
    if (k !== rootKey && !referenced.has(k)) problems.push({ kind: 'unreferenced-object', fid: text, message: `${a.type} object ${text} is referenced by no index entry` });
    if (!isDataType(a.type) || a.gen === undefined) continue;
    if (a.blocks === 0) continue;
    const st = await stat(data.path(fid, a.gen)).catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    });
    if (!st) problems.push({ kind: 'data-missing', fid: text, message: `${text} records ${a.blocks} blocks but has no data file` });
  }
  const counted = await db.getMany([COUNTER.objects, COUNTER.bytes]);
  const [o, b] = counted.map((v, i) => (v === undefined ? undefined : decodeValue(i === 0 ? COUNTER.objects : COUNTER.bytes, v)));
  if (o !== objects) problems.push({ kind: 'counter-mismatch', fid: '', message: `m:objects says ${String(o)}, the device holds ${objects}` });
  if (b !== bytes) problems.push({ kind: 'counter-mismatch', fid: '', message: `m:bytes says ${String(b)}, the data objects hold ${bytes}` });
}

const DATA_NAME = /^([0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{8})\.([0-9a-f]+)$/;

async function checkDataFiles(db: Db, data: DataFiles, problems: CheckProblem[]): Promise<void> {
  for (const bucket of (await readdir(data.dir)).sort()) {
    const names = await readdir(join(data.dir, bucket));
    for (let i = 0; i < names.length; i += BATCH) {
      const files = names.slice(i, i + BATCH).map((name) => {
        const m = DATA_NAME.exec(name);
        return { name, fid: m ? parseFidKey(m[1]!) : undefined, gen: m ? parseInt(m[2]!, 16) : NaN };
      });
      const known = files.filter((f): f is typeof f & { fid: Fid } => f.fid !== undefined);
      const attrs = await attrsMany(db, known.map((f) => f.fid));
      for (const f of files) {
        const where = join(bucket, f.name);
        if (!f.fid) {
          problems.push({ kind: 'orphan-data', fid: '', message: `data/${where} is not a data file name` });
          continue;
        }
        const a = attrs[known.indexOf(f as (typeof known)[number])];
        const text = fidToString(f.fid);
        if (!a) problems.push({ kind: 'orphan-data', fid: text, message: `data/${where} belongs to ${text}, which does not exist` });
        else if (!isDataType(a.type)) problems.push({ kind: 'data-on-non-regular', fid: text, message: `data/${where} belongs to ${text}, a ${a.type} object` });
        else if (a.gen !== f.gen) problems.push({ kind: 'orphan-data', fid: text, message: `data/${where} is generation ${f.gen} of ${text}, whose data is generation ${String(a.gen)}` });
      }
    }
  }
}
