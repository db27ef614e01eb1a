// The notification writer (src/client/fuse/notify.ts) on a FIFO nobody reads yet, so that
// its writes block as FUSE_NOTIFY_INVAL_INODE does on pages a READ holds: each blocked write
// holds no other up, and spare threads stay started for the next one.
import { execFileSync } from 'node:child_process';
import { constants, createReadStream, openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { NOTIFY_THREADS_MAX, NOTIFY_THREADS_SPARE, Notifier } from '../../src/client/fuse/notify.js';

const BIG = 256 * 1024; // past a pipe's 64 KiB: the write blocks until someone reads

t.test('blocked notifications each have a thread, spares stay started, and all complete once unblocked', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'notify-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // O_RDWR: the open does not wait for a reader.
  const fd = openSync(fifo, constants.O_RDWR);
  t.teardown(() => closeSync(fd));
  const n = new Notifier(fd, NOTIFY_THREADS_SPARE);
  t.teardown(() => n.close());

  n.warm();
  t.equal(n.idle, NOTIFY_THREADS_SPARE, 'the spare threads are started ahead of the first notification');
  const plain = new Notifier(fd);
  t.teardown(() => plain.close());
  plain.warm();
  t.equal(plain.idle, 1, 'a notifier with no spares starts one thread ahead');

  const blocked = 3;
  const entered: number[] = [];
  const results = Array.from({ length: blocked }, (_, i) => n.send(Buffer.alloc(BIG, i + 1), () => entered.push(i)));
  t.equal(n.idle, NOTIFY_THREADS_SPARE, 'spares are started again behind the busy threads');
  const deadline = Date.now() + 20_000;
  while (entered.length < blocked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.same(entered.sort(), [0, 1, 2], 'every write entered while the first one is blocked: none queues behind another');
  t.equal(n.waiting, blocked, 'all are still waiting: nobody reads the FIFO');

  // Read everything: the writes complete.
  let read = 0;
  const reader = createReadStream(fifo);
  reader.on('data', (chunk) => {
    read += chunk.length;
    if (read >= blocked * BIG) reader.destroy();
  });
  t.same(await Promise.all(results), [null, null, null], 'each write applied');
  t.ok(NOTIFY_THREADS_SPARE + blocked <= NOTIFY_THREADS_MAX, 'the test stays within the thread bound');
});
