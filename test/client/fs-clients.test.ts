// The library at a larger scale and with more than one client: a directory of a few thousand
// entries listed through opendir page by page; two mounts of one file system, where what one
// writes and closes the other reads (no stale data, no stale size); and a mount that loses its
// servers, whose calls fail within their deadline instead of hanging.
import t from 'tap';
import { createHash } from 'node:crypto';
import { patternBytes, prng, seedFrom } from '../lib/prng.js';
import { rejection, startFs } from './fs-helpers.js';

const SEED = seedFrom('LUSTRE_FS_SEED');
const ENTRIES = 3000;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test(`a large directory, two clients, lost servers (seed ${SEED})`, async (t) => {
  const random = prng(SEED);
  const sys = await startFs(t);
  const a = await sys.mount(5);
  const b = await sys.mount(6);

  t.test(`a directory of ${ENTRIES} entries, streamed by opendir`, async (t) => {
    await a.mkdir('/many');
    const names = Array.from({ length: ENTRIES }, (_, i) => `entry-${i.toString().padStart(5, '0')}-${'x'.repeat(random.int(40))}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(names.slice(i, i + 50).map(async (n, j) => {
        if ((i + j) % 10 === 0) await a.mkdir(`/many/${n}`);
        else await (await a.open(`/many/${n}`, 'wx')).close();
      }));
    }
    let pages = 0;
    const readdir = b.mdc.readdir.bind(b.mdc);
    b.mdc.readdir = (...args: Parameters<typeof readdir>) => {
      pages++;
      return readdir(...args);
    };
    const seen = new Map<string, boolean>();
    const twice: string[] = [];
    const dir = await b.opendir('/many');
    for await (const e of dir) {
      if (seen.has(e.name)) twice.push(e.name);
      seen.set(e.name, e.isDirectory());
    }
    t.same(twice, [], 'no entry listed twice');
    t.equal(seen.size, ENTRIES, 'every entry listed');
    t.same([...seen.keys()].sort(), [...names].sort(), 'the names created');
    t.equal([...seen.values()].filter(Boolean).length, ENTRIES / 10, 'the directories among them');
    t.ok(pages > 2, `read in ${pages} pages, not at once`);
    t.equal(((await a.readdir('/many')) as string[]).length, ENTRIES, 'readdir lists them too');
    t.equal((await b.stat('/many')).nlink, 2 + ENTRIES / 10, 'the directory links its subdirectories');
  });

  t.test('what one client writes and closes, the other reads', async (t) => {
    const data = patternBytes(random.int(2 ** 31), 5 * 1024 * 1024 + 333);
    const w = await a.open('/shared', 'w', 0o644, { stripeCount: 2, stripeSize: 1024 * 1024 });
    await w.write(data, 0, data.length, 0);
    await w.close();
    t.equal((await b.stat('/shared')).size, data.length, 'the other client sees the size');
    t.equal(sha((await b.readFile('/shared')) as Buffer), sha(data), 'and the bytes');
    // The reader keeps nothing from one open to the next: a rewrite and a shrink by the first
    // client are what the second reads next.
    const r = await b.open('/shared', 'r');
    const head = Buffer.alloc(4096);
    await r.read(head, 0, head.length, 0);
    await r.close();
    const patch = Buffer.alloc(4096, 0x5a);
    const w2 = await a.open('/shared', 'r+');
    await w2.write(patch, 0, patch.length, 0);
    await w2.truncate(3 * 1024 * 1024);
    await w2.close();
    const back = (await b.readFile('/shared')) as Buffer;
    t.equal(back.length, 3 * 1024 * 1024, 'the new size, not a cached one');
    t.ok(back.subarray(0, 4096).equals(patch), 'the new bytes, not cached ones');
    t.ok(back.subarray(4096).equals(data.subarray(4096, 3 * 1024 * 1024)), 'the rest unchanged');
    // Metadata too: a rename and an unlink by one are seen at once by the other.
    await a.rename('/shared', '/shared2');
    t.equal((await b.stat('/shared2')).size, 3 * 1024 * 1024);
    await a.unlink('/shared2');
    t.equal((await rejection(b.stat('/shared2'))).code, 'ENOENT', 'an unlink is seen');
    t.equal(b.core.files.size, 0, 'nothing of the file is held after its handles closed');
  });

  t.test('a client that loses its servers gets errors within its deadline', async (t) => {
    const c = await sys.mount(7, { requestDeadlineMs: 1500, connectDeadlineMs: 1000 });
    await c.writeFile('/before', 'x');
    const fh = await c.open('/before', 'r+');
    await fh.write('dirty', 0, 'utf8');
    for (const ost of sys.targets.slice(1)) await ost.umount();
    const start = Date.now();
    const closeErr = await rejection(fh.close());
    t.ok(['ETIMEDOUT', 'EIO', 'ENOTCONN'].includes(closeErr.code!), `close with dirty data: ${closeErr.code} (${closeErr.message})`);
    const statErr = await rejection(c.stat('/before'));
    t.ok(['ETIMEDOUT', 'EIO', 'ENOTCONN'].includes(statErr.code!), `stat of a file on lost OSTs: ${statErr.code}`);
    t.ok((await c.stat('/')).isDirectory(), 'the MDT still answers');
    await sys.targets[0]!.umount();
    const mdErr = await rejection(c.readdir('/'));
    t.ok(['ETIMEDOUT', 'EIO', 'ENOTCONN'].includes(mdErr.code!), `readdir with the MDT gone: ${mdErr.code}`);
    t.ok(Date.now() - start < 20_000, 'every call came back (bounded by the deadlines, not hung)');
    await c.umount({ force: true });
  });
});
