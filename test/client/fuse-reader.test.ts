// The loop reader (src/client/fuse/reader.ts) on its own, through a FIFO in place of /dev/fuse:
// both are pollable character streams, and a FIFO needs neither root nor a mount. Each message
// is written once the previous one was delivered, so each read returns one message, as each
// read of /dev/fuse returns one request. Pinned here: Node's internal bindings it stands on
// still work on this Node; large messages are handed over in slots and small ones copied;
// with every slot busy a message is read into the spare and copied, never over a slot still in
// use; no read happens without a credit; stop ends it; close() closes the fd.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { startLoopReader, type Readers } from '../../src/client/fuse/reader.js';
import { until } from '../lib/net.js';

const KiB = 1024;
// The smallest message kept in its slot, and the most a FIFO holds: a larger write would wait
// for a read by this very thread.
const BIG = 64 * KiB;

interface Got { b: Buffer; release: () => void; copy: Buffer }

function fifo(t: Test): { readFd: number; writeFd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'fuse-reader-'));
  const path = join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [path]).status, 0, 'mkfifo');
  // O_RDWR: opening the read side does not wait for a writer, and the FIFO never reads EOF.
  const readFd = openSync(path, fsc.O_RDWR);
  const writeFd = openSync(path, fsc.O_WRONLY);
  t.teardown(() => {
    closeSync(writeFd);
    rmSync(dir, { recursive: true, force: true });
  });
  return { readFd, writeFd };
}

interface Rig {
  r: Readers;
  got: Got[];
  /** Writes a message into the FIFO. */
  write: (b: Buffer) => void;
  /** Writes a message and waits until it is delivered. */
  send: (b: Buffer) => Promise<void>;
  readFd: number;
}

function start(t: Test, opts: { maxInFlight: number; slots: number }): Rig {
  const { readFd, writeFd } = fifo(t);
  const got: Got[] = [];
  const r = startLoopReader(readFd, {
    bufferBytes: 2 * BIG, maxInFlight: opts.maxInFlight, slots: opts.slots,
    onRequest: (b, release) => got.push({ b, release, copy: Buffer.from(b) }),
  });
  if (typeof r === 'string') throw new Error(`the loop reader is not usable on this Node: ${r}`);
  r.begin();
  t.teardown(() => { r.stop(); try { r.close(); } catch { /* closed by the test */ } });
  const write = (b: Buffer): void => { writeSync(writeFd, b); };
  const send = async (b: Buffer): Promise<void> => {
    const before = got.length;
    write(b);
    await until('the message to be delivered', () => got.length === before + 1);
  };
  return { r, got, write, send, readFd };
}

t.test("Node's bindings poll a FIFO: messages delivered whole, large ones in slots, small ones copied", async (t) => {
  const { r, got, send } = start(t, { maxInFlight: 16, slots: 2 });
  t.equal(r.kind, 'loop');
  const small = randomBytes(100);
  const big1 = randomBytes(BIG);
  const big2 = randomBytes(BIG);
  const big3 = randomBytes(BIG);
  await send(small);
  await send(big1);
  await send(big2);
  t.same(got.map((g) => g.b.length), [100, BIG, BIG]);
  t.ok(got.every((g, i) => g.b.equals([small, big1, big2][i]!)), 'each delivered as written');
  t.equal(got[0]!.b.buffer.byteLength < 2 * BIG, true, 'the small one is a copy of its own, not a view of a slot');
  t.not(got[1]!.b.buffer, got[2]!.b.buffer, 'two large messages in flight are in two slots');
  t.equal(got[1]!.b.byteOffset, 0);

  // Both slots busy: the next large message goes to the spare and is copied out.
  await send(big3);
  t.ok(got[3]!.b.equals(big3));
  t.not(got[3]!.b.buffer, got[1]!.b.buffer);
  t.not(got[3]!.b.buffer, got[2]!.b.buffer);
  t.equal(got[3]!.b.buffer.byteLength < 2 * BIG, true, 'a copy, the slots left alone');
  // A small message with both slots busy is read into the spare too: nothing overwrites them.
  await send(randomBytes(10));
  t.ok(got[1]!.b.equals(big1) && got[2]!.b.equals(big2), 'the slots still hold their messages');

  // Released slots are used again.
  got[1]!.release();
  got[2]!.release();
  const again = [randomBytes(BIG), randomBytes(BIG)];
  for (const b of again) await send(b);
  // The reader moves back to a slot at the read after the one into the spare.
  const fromSlots = got.slice(5).filter((g) => g.b.buffer === got[1]!.b.buffer || g.b.buffer === got[2]!.b.buffer);
  t.ok(fromSlots.length >= 1, 'a released slot is read into again');
  t.ok(got.slice(5).every((g) => g.b.equals(g.copy)), 'each delivered as written');
});

t.test('no read without a credit: maxInFlight requests, then the next only after a credit', async (t) => {
  const { r, got, send, write } = start(t, { maxInFlight: 2, slots: 4 });
  await send(Buffer.from('one'));
  await send(Buffer.from('two'));
  write(Buffer.from('three'));
  await sleep(100);
  t.equal(got.length, 2, 'the third waits in the FIFO while two are in flight');
  r.credit();
  await until('the third to be read after a credit', () => got.length === 3);
  t.equal(got[2]!.b.toString(), 'three');
});

t.test('stop ends the reader; close() closes the fd', async (t) => {
  const { r, got, readFd, send, write } = start(t, { maxInFlight: 4, slots: 1 });
  await send(Buffer.from('before'));
  r.stop();
  t.equal(await r.ended, 'stopped');
  write(Buffer.from('after'));
  await sleep(50);
  t.equal(got.length, 1, 'nothing read after stop');
  r.close();
  t.throws(() => fstatSync(readFd), { code: 'EBADF' }, 'the fd is closed with the handle');
});
