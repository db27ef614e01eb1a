#!/usr/bin/env node
// The storage-core demo (npm start until the file system exists): formats a device, writes and
// reads objects through the OSD, and shows what the txg log holds.
import { resolve } from 'node:path';
import { Osd, ROOT_INDEX_FID, fidToString } from '../../osd/index.js';
import { listTxgs } from '../log-view.js';

const device = resolve(process.argv[2] ?? 'demo-device');
const SEQ = 0x200000400;
console.log(`formatting ${device}`);
await Osd.format(device, { reformat: true, label: 'demo-OST0000' });
const osd = await Osd.open(device);

const dir = { seq: SEQ, oid: 1, ver: 0 };
const files = [
  { name: 'hello.txt', data: Buffer.from('Hello from the user-space OSD\n') },
  { name: 'sparse.bin', data: Buffer.from('written at 1 MiB'), offset: 1024 * 1024 },
  { name: 'numbers.txt', data: Buffer.from(Array.from({ length: 1000 }, (_, i) => i).join('\n')) },
];
let tx = osd.begin();
await tx.start();
await tx.create(dir, { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
await tx.indexInsert(ROOT_INDEX_FID, 'demo', { fid: dir, type: 'dir' });
tx.annotate({ op: 'mkdir', path: '/demo' });
await osd.waitSynced(tx.stop().txg);

for (const [i, f] of files.entries()) {
  const fid = { seq: SEQ, oid: 2 + i, ver: 0 };
  tx = osd.begin();
  await tx.start();
  await tx.create(fid, { type: 'reg', mode: 0o644, uid: 0, gid: 0 });
  await tx.write(fid, f.offset ?? 0, f.data);
  await tx.indexInsert(dir, f.name, { fid, type: 'reg' });
  tx.annotate({ op: 'create+write', path: `/demo/${f.name}` });
  tx.stop((txg) => console.log(`  committed ${f.name} as ${fidToString(fid)} in txg ${txg}`));
}
await osd.sync();

console.log('\nreading back through the OSD:');
for (const e of (await osd.indexList(dir)).entries) {
  const a = await osd.getAttrs(e.fid);
  const head = await osd.read(e.fid, 0, 32);
  console.log(`  ${e.name.padEnd(12)} ${fidToString(e.fid)} size ${String(a.size).padStart(8)}  first bytes ${JSON.stringify(head.toString('latin1').slice(0, 24))}`);
}
const s = await osd.statfs();
console.log(`\nstatfs: ${Math.round(s.bytesFree / 2 ** 20)} MiB free of ${Math.round(s.bytesTotal / 2 ** 20)} MiB, ${s.objectsFree} objects free`);
console.log(`consistency check: ${(await osd.check()).length} problems`);
await osd.close({ checkpoint: false });

const listing = await listTxgs(device, 0);
console.log(`\nthe txg log of ${device}:`);
for (const t of listing.txgs) console.log(`  txg ${t.txg}  ${t.time}  ${t.entries} transactions  ${t.bytes} bytes`);
console.log(`\nmore: npx lustre.log ${device}   |   npx lustre.log ${device} --txg ${listing.lastTxg}   |   npx lustre.log verify ${device}`);
