// OsdReplyStore's transnos across a restart: the highest transno given survives, whether it is
// still in a client's reply record or its client was forgotten (records removed) before.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fid, Osd } from '../../src/osd/index.js';
import { OsdReplyStore } from '../../src/ptlrpc/index.js';

const STORE = fid(0x200000401, 1);

async function answer(store: OsdReplyStore, client: string, tag: number): Promise<bigint> {
  const tx = await store.begin(client);
  await store.finish(tx, client, { tag, xid: tx.transno, transno: tx.transno, status: 0, buffers: [Buffer.from('ok')] });
  return tx.transno;
}

t.test('the highest transno given survives a restart, with its records or after they were forgotten', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'reply-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await Osd.format(dir);
  let osd = await Osd.open(dir);
  let store = await OsdReplyStore.open(osd, STORE);
  await answer(store, 'a', 1);
  await answer(store, 'b', 1);
  const last = await answer(store, 'b', 2);
  t.equal(last, 3n);
  await osd.close();

  osd = await Osd.open(dir);
  store = await OsdReplyStore.open(osd, STORE);
  t.equal(store.lastTransno(), 3n, 'from the records');
  t.same(store.lookup('b', 2)?.transno, 3n);
  await store.forget('b'); // the records holding the highest transno go
  t.equal(store.lookup('b', 2), undefined);
  await osd.close();

  osd = await Osd.open(dir);
  t.teardown(() => osd.close());
  store = await OsdReplyStore.open(osd, STORE);
  t.equal(store.lastTransno(), 3n, 'kept when the records holding it were forgotten');
  t.same(store.clients(), ['a']);
  t.equal(await answer(store, 'a', 1), 4n, 'and the next transno follows it');
});
