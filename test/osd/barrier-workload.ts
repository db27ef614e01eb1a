// The state test/osd/barrier.test.ts makes on a device: what exists at the barrier, and the
// changes made after it (each kind of update once), shared by the child and the in-process case.
import { fid, ROOT_INDEX_FID, type Osd, type Tx } from '../../src/osd/index.js';

export const FID = {
  x: fid(0x200000400, 1, 0), // kept, changed after the barrier
  y: fid(0x200000400, 2, 0), // created after the barrier
  z: fid(0x200000400, 3, 0), // destroyed after the barrier
};
export const X_DATA = Buffer.from('xxxx-at-the-barrier');
export const Z_DATA = Buffer.from('zzzz-at-the-barrier');

async function txn(osd: Osd, fn: (tx: Tx) => Promise<void>, onCommit?: () => void): Promise<void> {
  const tx = osd.begin();
  await tx.start();
  try {
    await fn(tx);
  } finally {
    tx.stop(onCommit);
  }
}

export async function beforeBarrier(osd: Osd): Promise<void> {
  await txn(osd, async (tx) => {
    await tx.create(FID.x, { type: 'reg', mode: 0o600 });
    await tx.write(FID.x, 0, X_DATA);
    await tx.indexInsert(ROOT_INDEX_FID, 'x', { fid: FID.x, type: 'reg' });
    await tx.create(FID.z, { type: 'reg', mode: 0o600 });
    await tx.write(FID.z, 0, Z_DATA);
    await tx.indexInsert(ROOT_INDEX_FID, 'z', { fid: FID.z, type: 'reg' });
  });
}

/** Every kind of change, each in its own transaction; onCommit names the one committed. */
export async function afterBarrier(osd: Osd, onCommit: (name: string) => void): Promise<void> {
  await txn(osd, async (tx) => { await tx.attrSet(FID.x, { mode: 0o644 }); }, () => onCommit('x-mode'));
  await txn(osd, async (tx) => { await tx.write(FID.x, X_DATA.length, Buffer.from('-appended')); }, () => onCommit('x-append'));
  await txn(osd, async (tx) => { await tx.xattrSet(FID.x, 'user.after', Buffer.from('1')); }, () => onCommit('x-xattr'));
  await txn(osd, async (tx) => {
    await tx.create(FID.y, { type: 'reg', mode: 0o600 });
    await tx.write(FID.y, 0, Buffer.from('yyyy'));
    await tx.indexInsert(ROOT_INDEX_FID, 'y', { fid: FID.y, type: 'reg' });
  }, () => onCommit('y-create'));
  await txn(osd, async (tx) => {
    await tx.indexDelete(ROOT_INDEX_FID, 'z');
    await tx.destroy(FID.z);
  }, () => onCommit('z-destroy'));
}
