// Lock modes, types and resource names against Lustre's own tables.
import t from 'tap';
import { fid } from '../../src/osd/index.js';
import {
  hasFlag, wireFlags, withFlags, withoutFlags, fidOfResId, InodeBits, INODEBITS_FULL, LockFlag, LockMode, lockModeCompat, lockModeCovers, lockModeName, LockType,
  lockTypeName, nameHash, resId, resIdEquals, resIdKey, resIdOfFid, resIdOfName, resIdToString,
} from '../../src/ldlm/index.js';

t.test('mode, type and bit values are Lustre\'s', async (t) => {
  t.same(LockMode, { EX: 1, PW: 2, PR: 4, CW: 8, CR: 16, NL: 32, GROUP: 64, COS: 128, TXN: 256 });
  t.same(LockType, { PLAIN: 10, EXTENT: 11, FLOCK: 12, IBITS: 13 });
  t.same([InodeBits.LOOKUP, InodeBits.UPDATE, InodeBits.OPEN, InodeBits.LAYOUT, InodeBits.PERM, InodeBits.XATTR, InodeBits.DOM],
    [1, 2, 4, 8, 0x10, 0x20, 0x40]);
  t.equal(INODEBITS_FULL, 0x7f);
  t.equal(LockFlag.BLOCK_GRANTED, 0x2);
  t.equal(LockFlag.AST_SENT, 0x20);
  t.equal(LockFlag.BLOCK_NOWAIT, 0x40000);
  t.equal(LockFlag.TEST_LOCK, 0x80000);
  t.equal(LockFlag.CANCEL_ON_BLOCK, 0x800000);
  t.equal(LockFlag.CBPENDING, 2 ** 34);
  t.equal(lockModeName(LockMode.PW), 'PW');
  t.equal(lockModeName(undefined), '--');
  t.equal(lockTypeName(LockType.IBITS), 'IBT');
});

t.test('the compatibility matrix is the table in lustre_dlm.h', async (t) => {
  // Rows and columns in the order of the table: NL CR CW PR PW EX GROUP COS TXN.
  const order = [LockMode.NL, LockMode.CR, LockMode.CW, LockMode.PR, LockMode.PW, LockMode.EX, LockMode.GROUP, LockMode.COS, LockMode.TXN];
  const table = [
    '111111111',
    '111110001',
    '111000000',
    '110100001',
    '110000000',
    '100000000',
    '100000100',
    '100000010',
    '110100001',
  ];
  order.forEach((a, i) => order.forEach((b, j) => {
    t.equal(lockModeCompat(a, b), table[i]![j] === '1', `${lockModeName(a)} vs ${lockModeName(b)}`);
  }));
});

t.test('a held mode covers the needs a client may serve from it', async (t) => {
  t.ok(lockModeCovers(LockMode.PW, LockMode.PR));
  t.ok(lockModeCovers(LockMode.EX, LockMode.PW));
  t.ok(lockModeCovers(LockMode.PR, LockMode.PR));
  t.notOk(lockModeCovers(LockMode.PR, LockMode.PW));
  t.notOk(lockModeCovers(LockMode.CR, LockMode.PR));
});

t.test('resource names as fid_build_reg_res_name builds them', async (t) => {
  const r = resIdOfFid(fid(0x200000401, 0x1a, 2));
  t.same(r, [0x200000401n, 0x2_0000_001an, 0n, 0n]);
  t.same(fidOfResId(r), { seq: 0x200000401, oid: 0x1a, ver: 2 });
  t.equal(resIdToString(r), '[0x200000401:0x20000001a:0x0].0x0');
  const byName = resIdOfName(fid(0x200000401, 0x1a), nameHash('file.txt'));
  t.equal(byName[3], BigInt(nameHash('file.txt')), 'the name hash goes to name[3] (LUSTRE_RES_ID_HSH_OFF)');
  t.equal(byName[2], 0n);
  t.notOk(resIdEquals(byName, resIdOfFid(fid(0x200000401, 0x1a))));
  t.not(resIdKey(byName), resIdKey(resIdOfFid(fid(0x200000401, 0x1a))));
  t.not(nameHash('a'), nameHash('b'));
  t.throws(() => resId(-1n), { code: 'EINVAL' });
});

t.test('flags above bit 31 survive being combined', async (t) => {
  let f = withFlags(0, LockFlag.CBPENDING, LockFlag.AST_DISCARD_DATA, LockFlag.AST_SENT);
  t.equal(f, 2 ** 34 + 2 ** 31 + 0x20);
  t.ok(hasFlag(f, LockFlag.CBPENDING));
  t.ok(hasFlag(f, LockFlag.AST_DISCARD_DATA));
  t.notOk(hasFlag(f, LockFlag.CANCELING, LockFlag.BLOCK_GRANTED));
  t.equal(wireFlags(f), 2 ** 31 + 0x20, 'the wire takes the low 32 bits, unsigned');
  f = withoutFlags(f, LockFlag.AST_DISCARD_DATA, LockFlag.CBPENDING);
  t.equal(f, 0x20);
});
