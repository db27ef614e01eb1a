// The wire check by decoders nobody here wrote: ptlrpc traffic over LNet/TCP on loopback is
// captured with tshark and read by Wireshark's LNet and Lustre dissectors
// (-d tcp.port==PORT,lnet). Every frame must be LNet with the NIDs, types, portals and match
// bits that were sent, none malformed, and each request and reply must show the opcode, xid
// (the match bits), transno and status it was sent with.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Errno, Import, Opcode, Portal, Service, statusError, type OpHandler } from '../../src/ptlrpc/index.js';
import { ostBody, writeRequestBuffers } from '../../bench/rpc/shapes.js';
import { ost, serverId, sleep, startNodes, TARGET_UUID } from './helpers.js';

function haveTshark(): boolean {
  if (spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0) return true;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['install', '-y', '-qq', 'tshark'], { stdio: 'ignore', env, timeout: 300_000 });
  return spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;
}

interface Sent {
  kind: 'request' | 'reply';
  opcode: number;
  xid: bigint;
  transno: bigint;
  status: number;
}

t.test('Wireshark decodes ptlrpc over LNet as sent', { skip: haveTshark() ? false : 'tshark is not installable here' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ptlrpc-tshark-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const nodes = await startNodes('tcp');
  t.teardown(() => nodes.stop());
  const file = join(dir, 'cap.pcap');
  const capture = spawn('tshark', ['-q', '-i', 'lo', '-f', `tcp port ${nodes.port}`, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  capture.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 100 && !/Capturing on/.test(stderr); i++) await sleep(100);
  t.match(stderr, /Capturing on/, 'tshark is capturing');
  await sleep(1000); // "Capturing on" comes a little before the capture really does

  const ops = new Map<number, OpHandler<never>>([
    [Opcode.OST_GETATTR, { handle: (req) => {
      if (req.buffers[0]!.readBigUInt64LE(8) === 404n) throw statusError(-Errno.ENOENT, 'no such object');
      return { buffers: [ostBody(req.buffers[0]!.readBigUInt64LE(8), 4096n)] };
    } }],
    [Opcode.OST_SETATTR, { modifying: true, handle: (req) => ({ buffers: [ostBody(req.buffers[0]!.readBigUInt64LE(8))] }) }],
    [Opcode.OST_WRITE, { modifying: true, handle: async (req, ctx) => {
      const data = await ctx.bulkGet(req.buffers[2]!.readUInt32LE(8));
      return { buffers: [ostBody(0n, BigInt(data.reduce((n, b) => n + b.length, 0))), Buffer.alloc(4)] };
    } }],
  ]);
  const service = new Service(nodes.server, { name: 'ost', targetUuid: TARGET_UUID, ...ost, ops });
  const imp = await Import.connect(nodes.clients[0]!, {
    target: serverId(nodes.server), targetUuid: TARGET_UUID, clientUuid: 'tshark-client', ...ost, pingIntervalMs: 0,
  });
  const sent: Sent[] = [];
  const note = (opcode: number, xid: bigint, transno: bigint, status: number) => {
    sent.push({ kind: 'request', opcode, xid, transno: 0n, status: 0 }, { kind: 'reply', opcode, xid, transno, status });
  };
  const call = async (opcode: number, buffers: Buffer[], options = {}) => {
    try {
      const r = await imp.request(opcode, buffers, options);
      note(opcode, r.xid, r.transno, r.status);
    } catch (err) {
      const e = err as { status?: number };
      t.equal(e.status, -Errno.ENOENT, 'the one failing request failed with ENOENT');
      return;
    }
  };
  await call(Opcode.OBD_PING, []);
  for (let i = 1; i <= 5; i++) await call(Opcode.OST_GETATTR, [ostBody(BigInt(i))]);
  for (let i = 1; i <= 5; i++) await call(Opcode.OST_SETATTR, [ostBody(BigInt(i))], { modifying: true });
  await call(Opcode.OST_WRITE, writeRequestBuffers(7n, 0, 65536), { modifying: true, bulkWrite: [Buffer.alloc(65536, 0x5a)] });
  // The failing request: note what the server answered, from its stats, below.
  const before = sent.length;
  await call(Opcode.OST_GETATTR, [ostBody(404n)]);
  t.equal(sent.length, before, 'the ENOENT reply was not noted as a success');
  await imp.disconnect();
  await service.stop();
  await sleep(300);
  capture.kill('SIGINT');
  await new Promise((r) => capture.once('exit', r));

  const decode = (filter: string, fields: string[]): string[][] => {
    const out = spawnSync('tshark', ['-2', '-r', file, '-d', `tcp.port==${nodes.port},lnet`, '-Y', filter, '-T', 'fields', '-E', 'separator=|',
      ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return out.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
  };
  t.ok(decode('lnet', ['frame.number']).length > 20, 'the frames decode as LNet');
  // The others are each connection's opening: the acceptor request and the socklnd HELLO,
  // which the dissector does not take (magics 0xacce7100 and LNET_PROTO_MAGIC 0x45726963),
  // besides TCP segments of LNet messages reassembled in a later frame, and segments TCP sent
  // again (a tail loss probe resends the last segment, such as the payload behind a header
  // that left alone, when the ACK is late on a busy machine).
  const others = decode('tcp.len > 0 && !lnet && !tcp.reassembled_in && !tcp.analysis.retransmission', ['tcp.payload'])
    .map(([hex]) => Buffer.from(hex!.replace(/:/g, ''), 'hex').readUInt32LE(0));
  t.ok(others.length > 0 && others.every((magic) => magic === 0xacce7100 || magic === 0x45726963),
    `every other frame opens a connection (${others.length}: ${others.map((m) => m.toString(16)).join(" ")})`);
  t.same(decode('lnet && _ws.malformed', ['frame.number', '_ws.expert.message']), [], 'no LNet frame is malformed');

  const serverNid = nodes.server.nid.split('@')[0];
  const clientNid = nodes.clients[0]!.nid.split('@')[0];
  const rows = decode('lustre.ptlrpc_body', ['lnet.msg_type', 'lnet.nid.addr', 'lnet.ptl_index', 'lnet.msg_dst_match_bits',
    'lustre.ptlrpc_body.pb_type', 'lustre.ptlrpc_body.pb_opc', 'lustre.ptlrpc_body.pb_transno', 'lustre.ptlrpc_body.pb_status']);
  const seen = rows.map(([type, nids, portal, bits, pbType, opc, transno, status]) => {
    const [dest, src] = nids!.split(',');
    return { type: Number(type), dest, src, portal: Number(portal), xid: BigInt(bits!), pbType: Number(pbType), opcode: Number(opc), transno: BigInt(transno!), status: Number(status) };
  });
  for (const s of sent) {
    const isRequest = s.kind === 'request';
    const match = seen.find((f) => f.xid === s.xid && f.pbType === (isRequest ? 4711 : 4713));
    t.ok(match, `${s.kind} of opcode ${s.opcode} xid ${s.xid} is in the capture`);
    if (!match) continue;
    t.same({ type: match.type, dest: match.dest, src: match.src, portal: match.portal, opcode: match.opcode, transno: match.transno, status: match.status }, {
      type: 1, dest: isRequest ? serverNid : clientNid, src: isRequest ? clientNid : serverNid,
      portal: isRequest ? Portal.OST_REQUEST : Portal.OSC_REPLY, opcode: s.opcode, transno: s.transno, status: s.status,
    }, `${s.kind} xid ${s.xid}: a PUT between the right NIDs on the right portal, with opcode, transno and status as sent`);
  }
  const enoent = seen.filter((f) => f.pbType === 4713 && f.status === -Errno.ENOENT);
  t.equal(enoent.length, 1, 'the ENOENT reply shows status -2');
  t.ok(seen.some((f) => f.opcode === Opcode.OST_CONNECT) && seen.some((f) => f.opcode === Opcode.OST_DISCONNECT), 'connect and disconnect are there too');
  t.ok(sent.filter((s) => s.kind === 'reply' && s.transno > 0n).length >= 6, 'modifying requests carried transnos');
  const gets = decode('lnet.msg_type == 2', ['lnet.ptl_index', 'lnet.msg_dst_match_bits']);
  const write = sent.find((s) => s.opcode === Opcode.OST_WRITE)!;
  t.same(gets.map(([portal, bits]) => [Number(portal), BigInt(bits!)]), [[Portal.OST_BULK, write.xid]], 'the bulk GET on OST_BULK_PORTAL with the request xid as match bits');
});
