// Lustre's lock manager structures, byte for byte: sizes and offsets from wiretest.c, pinned
// golden encodings, and decoders under random and corrupted input.
import { deepStrictEqual } from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import {
  decodeLdlmIntent, encodeLdlmIntent, IntentOp, decodeLdlmReply, decodeLdlmRequest, decodeOstLvb, encodeLdlmReply, encodeLdlmRequest, encodeOstLvb, LDLM_EXTENT_SIZE,
  LDLM_FLOCK_WIRE_SIZE, LDLM_INODEBITS_SIZE, LDLM_LOCK_DESC_SIZE, LDLM_POLICY_DATA_SIZE, LDLM_REPLY_SIZE, LDLM_REQUEST_SIZE,
  LDLM_RES_ID_SIZE, LDLM_RESOURCE_DESC_SIZE, LdlmError, LockFlag, LockMode, LockType, OBD_OBJECT_EOF, OST_LVB_SIZE,
  OST_LVB_V1_SIZE, type LockDesc,
} from '../../src/ldlm/index.js';

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8').replace(/\s+/g, '');
const seed = Number(process.env.LDLM_SEED ?? Date.now() % 1_000_000);
t.comment(`fast-check seed ${seed} (LDLM_SEED reproduces)`);

t.test('sizes are wiretest.c\'s', async (t) => {
  t.equal(LDLM_RES_ID_SIZE, 32);
  t.equal(LDLM_EXTENT_SIZE, 24);
  t.equal(LDLM_INODEBITS_SIZE, 32);
  t.equal(LDLM_FLOCK_WIRE_SIZE, 32);
  t.equal(LDLM_POLICY_DATA_SIZE, 32);
  t.equal(LDLM_RESOURCE_DESC_SIZE, 40);
  t.equal(LDLM_LOCK_DESC_SIZE, 80);
  t.equal(LDLM_REQUEST_SIZE, 88);
  t.equal(LDLM_REPLY_SIZE, 112);
  t.equal(OST_LVB_SIZE, 56);
  t.equal(OST_LVB_V1_SIZE, 40);
});

const extentDesc: LockDesc = {
  resId: [0x100000000n, 0x1234n, 0n, 0n], type: LockType.EXTENT, reqMode: LockMode.PW, grantedMode: 0,
  policy: { extent: { start: 4096n, end: 8191n, gid: 0n } },
};

t.test('golden: an extent enqueue request is byte-exact', async (t) => {
  const bytes = encodeLdlmRequest({ flags: LockFlag.BLOCK_NOWAIT, lockDesc: extentDesc, lockHandles: [0xabcdef0123456789n, 0n] });
  t.equal(bytes.toString('hex'), fixture('enqueue-extent-request.hex'));
  t.equal(bytes.length, 88 + 2 * 8, 'LDLM_LOCKREQ_HANDLES slots are always sent');
  // Independent reads at wiretest.c's offsets, not through our decoder.
  t.equal(bytes.readUInt32LE(0), 0x40000, 'lock_flags');
  t.equal(bytes.readUInt32LE(4), 1, 'lock_count: one meaningful handle');
  t.equal(bytes.readUInt32LE(8), 11, 'l_resource.lr_type');
  t.equal(bytes.readUInt32LE(12), 0, 'l_resource.lr_pad');
  t.equal(bytes.readBigUInt64LE(16), 0x100000000n, 'lr_name.name[0]');
  t.equal(bytes.readBigUInt64LE(24), 0x1234n, 'lr_name.name[1]');
  t.equal(bytes.readUInt32LE(8 + 40), 2, 'l_req_mode');
  t.equal(bytes.readUInt32LE(8 + 44), 0, 'l_granted_mode');
  t.equal(bytes.readBigUInt64LE(8 + 48), 4096n, 'l_extent.start');
  t.equal(bytes.readBigUInt64LE(8 + 56), 8191n, 'l_extent.end');
  t.equal(bytes.readBigUInt64LE(88), 0xabcdef0123456789n, 'lock_handle[0]');
  const back = decodeLdlmRequest(bytes);
  t.same(back.lockDesc, extentDesc);
  t.equal(back.lockCount, 1);
  t.same(back.lockHandles, [0xabcdef0123456789n, 0n]);
});

t.test('golden: an ibits enqueue reply is byte-exact', async (t) => {
  const desc: LockDesc = {
    resId: [0x200000401n, 0x1an, 0n, 0x7fn], type: LockType.IBITS, reqMode: LockMode.PR, grantedMode: LockMode.PR,
    policy: { bits: 0x13, tryBits: 0x8 },
  };
  const reply = { flags: LockFlag.LOCK_CHANGED, lockDesc: desc, lockHandle: 0x1122334455667788n, policyRes1: 0x5n, policyRes2: 0n };
  const bytes = encodeLdlmReply(reply);
  t.equal(bytes.toString('hex'), fixture('enqueue-ibits-reply.hex'));
  t.equal(bytes.length, 112);
  t.equal(bytes.readUInt32LE(0), 1, 'lock_flags');
  t.equal(bytes.readUInt32LE(4), 0, 'lock_padding');
  t.equal(bytes.readUInt32LE(8), 13, 'lr_type IBITS');
  t.equal(bytes.readBigUInt64LE(8 + 8 + 24), 0x7fn, 'name[3]: the name hash');
  t.equal(bytes.readBigUInt64LE(8 + 48), 0x13n, 'l_inodebits.bits (u64)');
  t.equal(bytes.readBigUInt64LE(8 + 56), 0x8n, 'l_inodebits.try_bits (u64)');
  t.equal(bytes.readBigUInt64LE(88), 0x1122334455667788n, 'lock_handle');
  t.equal(bytes.readBigUInt64LE(96), 5n, 'lock_policy_res1');
  t.same(decodeLdlmReply(bytes), reply);
});

t.test('golden: a flock desc and a cancel of three locks', async (t) => {
  const desc: LockDesc = {
    resId: [0x200000401n, 0x2n, 0n, 0n], type: LockType.FLOCK, reqMode: LockMode.PW, grantedMode: LockMode.PW,
    policy: { flock: { start: 100n, end: OBD_OBJECT_EOF, owner: 0xfeedn, pid: 4242 } },
  };
  const bytes = encodeLdlmRequest({ flags: 0, lockDesc: desc, lockHandles: [7n] });
  t.equal(bytes.readBigUInt64LE(8 + 48), 100n, 'lfw_start');
  t.equal(bytes.readBigUInt64LE(8 + 56), OBD_OBJECT_EOF, 'lfw_end');
  t.equal(bytes.readBigUInt64LE(8 + 64), 0xfeedn, 'lfw_owner');
  t.equal(bytes.readUInt32LE(8 + 72), 0, 'lfw_padding');
  t.equal(bytes.readUInt32LE(8 + 76), 4242, 'lfw_pid');
  t.same(decodeLdlmRequest(bytes).lockDesc, desc);

  const cancel = encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: [1n, 2n, 3n] });
  t.equal(cancel.toString('hex'), fixture('cancel-request.hex'));
  t.equal(cancel.length, 88 + 3 * 8);
  t.equal(cancel.readUInt32LE(4), 3, 'lock_count');
  const back = decodeLdlmRequest(cancel);
  t.equal(back.lockDesc, undefined, 'a zero desc is no desc');
  t.same(back.lockHandles, [1n, 2n, 3n]);
});

t.test('golden: ost_lvb, and the older 40-byte ost_lvb_v1 still opens', async (t) => {
  const lvb = { size: 1_000_000n, mtime: 1_700_000_000, atime: 1_700_000_001, ctime: -5, blocks: 2048n, mtimeNs: 123, atimeNs: 456, ctimeNs: 999_999_999 };
  const bytes = encodeOstLvb(lvb);
  t.equal(bytes.toString('hex'), fixture('ost-lvb.hex'));
  t.equal(bytes.readBigUInt64LE(0), 1_000_000n, 'lvb_size');
  t.equal(bytes.readBigInt64LE(24), -5n, 'lvb_ctime is signed');
  t.equal(bytes.readBigUInt64LE(32), 2048n, 'lvb_blocks');
  t.equal(bytes.readUInt32LE(40), 123, 'lvb_mtime_ns');
  t.equal(bytes.readUInt32LE(48), 999_999_999, 'lvb_ctime_ns');
  t.same(decodeOstLvb(bytes), lvb);
  t.same(decodeOstLvb(bytes.subarray(0, 40)), { ...lvb, mtimeNs: 0, atimeNs: 0, ctimeNs: 0 });
  t.throws(() => decodeOstLvb(bytes.subarray(0, 39)), { code: 'EPROTO' });
});

t.test('ldlm_intent: one u64 of IT_* bits', async (t) => {
  const b = encodeLdlmIntent(IntentOp.OPEN | IntentOp.CREAT);
  t.equal(b.toString('hex'), '0300000000000000');
  t.equal(decodeLdlmIntent(b), 3);
  t.equal(IntentOp.GETATTR, 8);
  t.equal(IntentOp.LOOKUP, 0x10);
  t.equal(IntentOp.LAYOUT, 0x400);
  t.throws(() => decodeLdlmIntent(Buffer.alloc(7)), { code: 'EPROTO' });
});

t.test('bad types, modes and ranges are typed errors', async (t) => {
  const good = encodeLdlmRequest({ flags: 0, lockDesc: extentDesc, lockHandles: [1n] });
  const with32 = (off: number, v: number) => {
    const b = Buffer.from(good);
    b.writeUInt32LE(v, off);
    return b;
  };
  t.throws(() => decodeLdlmRequest(with32(8, 14)), { code: 'EPROTO' }, 'unknown lr_type');
  t.throws(() => decodeLdlmRequest(with32(8 + 40, 3)), { code: 'EPROTO' }, 'a mode that is two modes');
  t.throws(() => decodeLdlmRequest(with32(8 + 40, 0)), { code: 'EPROTO' }, 'no requested mode');
  t.throws(() => decodeLdlmRequest(with32(8 + 44, 512)), { code: 'EPROTO' }, 'unknown granted mode');
  t.throws(() => decodeLdlmRequest(with32(4, 3)), { code: 'EPROTO' }, 'lock_count beyond the slots');
  const inverted = Buffer.from(good);
  inverted.writeBigUInt64LE(9000n, 8 + 48);
  t.throws(() => decodeLdlmRequest(inverted), { code: 'EPROTO' }, 'extent ending before it starts');
  t.throws(() => decodeLdlmRequest(good.subarray(0, 87)), { code: 'EPROTO' }, 'short');
  t.throws(() => decodeLdlmRequest(undefined), { code: 'EPROTO' });
  t.throws(() => decodeLdlmReply(Buffer.alloc(112)), { code: 'EPROTO' }, 'a reply needs a desc');
  t.throws(() => encodeLdlmRequest({ flags: 0, lockDesc: { ...extentDesc, reqMode: 3 as LockMode }, lockHandles: [] }), { code: 'EINVAL' });
  t.throws(() => encodeLdlmRequest({ flags: 0, lockDesc: undefined, lockHandles: [-1n] }), { code: 'EINVAL' });
});

const u64 = fc.bigInt({ min: 0n, max: OBD_OBJECT_EOF });
const range = fc.tuple(u64, u64).map(([a, b]) => (a <= b ? { start: a, end: b } : { start: b, end: a }));
const descArb: fc.Arbitrary<LockDesc> = fc.oneof(
  fc.record({ type: fc.constant(LockType.EXTENT), r: range, gid: u64 }).map(({ type, r, gid }) => ({ type, policy: { extent: { ...r, gid } } })),
  fc.record({ type: fc.constant(LockType.IBITS), bits: fc.nat({ max: 0x7f }), tryBits: fc.nat({ max: 0x7f }), gid: fc.option(fc.bigInt({ min: 1n, max: OBD_OBJECT_EOF })) })
    .map(({ type, bits, tryBits, gid }) => ({ type, policy: { bits, tryBits, ...(gid !== null ? { gid } : {}) } })),
  fc.record({ type: fc.constant(LockType.FLOCK), r: range, owner: u64, pid: fc.nat({ max: 0xffffffff }) })
    .map(({ type, r, owner, pid }) => ({ type, policy: { flock: { ...r, owner, pid } } })),
  fc.constant({ type: LockType.PLAIN }),
).chain((p) => fc.record({
  resId: fc.tuple(u64, u64, u64, u64),
  reqMode: fc.constantFrom(...Object.values(LockMode)),
  grantedMode: fc.constantFrom(0 as const, ...Object.values(LockMode)),
}).map((d) => ({ ...d, ...p }) as LockDesc));

t.test('property: request and reply round-trip', async (t) => {
  fc.assert(fc.property(descArb, fc.array(u64, { maxLength: 6 }), fc.nat({ max: 0xffffffff }), (lockDesc, lockHandles, flags) => {
    const req = decodeLdlmRequest(encodeLdlmRequest({ flags, lockDesc, lockHandles }));
    deepStrictEqual(req.lockDesc, lockDesc);
    deepStrictEqual(req.lockHandles.slice(0, lockHandles.length), lockHandles);
    deepStrictEqual(req.flags, flags);
    const rep = { flags, lockDesc, lockHandle: lockHandles[0] ?? 1n, policyRes1: 2n, policyRes2: 3n };
    deepStrictEqual(decodeLdlmReply(encodeLdlmReply(rep)), rep);
  }), { seed, numRuns: 300 });
  t.pass('300 random requests and replies round-trip');
});

t.test('property: any bytes decode to a value or a typed error', async (t) => {
  const mutated = fc.tuple(descArb, fc.array(fc.tuple(fc.nat({ max: 119 }), fc.nat({ max: 255 })), { maxLength: 6 }))
    .map(([d, flips]) => {
      const b = encodeLdlmReply({ flags: 0, lockDesc: d, lockHandle: 1n, policyRes1: 0n, policyRes2: 0n });
      for (const [i, v] of flips) if (i < b.length) b[i] = v;
      return b;
    });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), mutated), (bytes) => {
    for (const decode of [decodeLdlmRequest, decodeLdlmReply, decodeOstLvb]) {
      try {
        decode(bytes);
      } catch (err) {
        if (!(err instanceof LdlmError) || err.code !== 'EPROTO') throw err;
      }
    }
  }), { seed, numRuns: 1000 });
  t.pass('1000 random and corrupted buffers: values or EPROTO, nothing else');
});
