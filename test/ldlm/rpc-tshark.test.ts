// The lock manager's traffic read by decoders nobody here wrote: an enqueue that is granted,
// one that waits, the blocking callback to the holder, its cancel and the waiter's completion
// callback are captured with tshark on loopback and read by Wireshark's LNet and Lustre
// dissectors. Each LDLM message must show the portal, opcode, modes, resource, extent, flags
// and lock handles it was sent with, and no frame may be malformed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LNetNI, userspacePid } from '../../src/lnet/index.js';
import { Import, Opcode, Portal, Service, targetProfiles, type OpHandler } from '../../src/ptlrpc/index.js';
import {
  CallbackService, LdlmClient, LdlmService, LockFlag, LockMode, LockType, Namespace, resId,
} from '../../src/ldlm/index.js';
import { freePort } from '../lib/net.js';

const TARGET = 'lustre-OST0000_UUID';
const ost = targetProfiles.ost;
const quiet = () => {};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function haveTshark(): boolean {
  return spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;
}

t.test('Wireshark decodes enqueue, blocking and completion callbacks and cancel as sent', { skip: haveTshark() ? false : 'no tshark here' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ldlm-tshark-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const block = 30 + ((process.pid * 11) % 200);
  const host = (i: number) => `127.${block}.${(process.pid % 250) + 1}.${i + 2}`;
  const file = join(dir, 'cap.pcap');
  const capture = spawn('tshark', ['-q', '-i', 'lo', '-f', `tcp port ${port}`, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  capture.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 100 && !/Capturing on/.test(stderr); i++) await sleep(100);
  t.match(stderr, /Capturing on/, 'tshark is capturing');
  await sleep(1000); // "Capturing on" comes a little before the capture really does

  const server = await LNetNI.start({ nid: `${host(0)}@tcp`, port, warn: quiet });
  t.teardown(() => server.stop());
  const namespace = new Namespace(`filter-${TARGET}`, { now: () => performance.now() });
  let service: Service | undefined;
  const ldlm = new LdlmService({ ni: server, namespace, exports: { byUuid: (u) => service!.exports.byUuid(u) }, evict: () => {} });
  t.teardown(() => ldlm.stop());
  service = new Service(server, { name: 'ost', targetUuid: TARGET, ...ost, ops: new Map<number, OpHandler<never>>(ldlm.handlers()) });
  t.teardown(() => service!.stop());
  const clients = [];
  for (const i of [1, 2]) {
    const ni = await LNetNI.start({ nid: `${host(i)}@tcp`, port, pid: userspacePid(31_000 + i), warn: quiet });
    t.teardown(() => ni.stop());
    const imp = await Import.connect(ni, {
      target: { nid: server.nid, pid: server.pid }, targetUuid: TARGET, clientUuid: `tshark-client-${i}`, ...ost, pingIntervalMs: 0,
    });
    t.teardown(() => imp.disconnect());
    const callbacks = CallbackService.of(ni);
    t.teardown(() => callbacks.stop());
    clients.push(new LdlmClient(imp, callbacks));
  }
  const RES = resId(0x200000401n, 5n);
  const asked = { extent: { start: 0n, end: 4095n } };
  const pw = await clients[0]!.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PW, policy: asked });
  const pr = await clients[1]!.enqueue({ resId: RES, type: LockType.EXTENT, mode: LockMode.PR, policy: asked });
  await sleep(300);
  capture.kill('SIGINT');
  await new Promise((r) => capture.once('exit', r));

  const decode = (filter: string, fields: string[]): string[][] => {
    const out = spawnSync('tshark', ['-2', '-r', file, '-d', `tcp.port==${port},lnet`, '-Y', filter, '-T', 'fields', '-E', 'separator=|',
      ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return out.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
  };
  t.same(decode('lnet && _ws.malformed', ['frame.number', '_ws.expert.message']), [], 'no LNet frame is malformed');
  const rows = decode('lustre.ldlm_request || lustre.ldlm_reply', [
    'lnet.ptl_index', 'lustre.ptlrpc_body.pb_opc', 'lustre.ptlrpc_body.pb_type', 'lustre.ldlm_request.lock_flags',
    'lustre.ldlm_reply.lock_flags', 'lustre.ldlm_request.lock_count', 'lustre.ldlm_lock_desc.l_req_mode',
    'lustre.ldlm_lock_desc.l_granted_mode', 'lustre.ldlm_resource_desc.lr_type', 'lustre.ldlm_res_id.name',
    'lustre.ldlm_extent.start', 'lustre.ldlm_extent.end', 'lustre.lustre_handle.cookie',
  ]);
  const messages = rows.map(([portal, opc, type, reqFlags, repFlags, count, reqMode, grantedMode, lrType, name, start, end, cookies]) => ({
    portal: Number(portal), opcode: Number(opc), reply: Number(type) === 4713, flags: Number(reqFlags || repFlags),
    count: Number(count || 0), reqMode: Number(reqMode), grantedMode: Number(grantedMode), type: Number(lrType),
    name: name!.split(',').map(BigInt), extent: start ? [BigInt(start), BigInt(end!)] : undefined,
    // The first cookie is the ptlrpc_body's pb_handle; the lock handles follow.
    handles: cookies!.split(',').slice(1).map((c) => BigInt(c)),
  }));
  const find = (portal: number, opcode: number, reply: boolean, reqMode: number) =>
    messages.find((m) => m.portal === portal && m.opcode === opcode && m.reply === reply && m.reqMode === reqMode);
  const name = [...RES];

  const enqueuePw = find(Portal.OST_REQUEST, Opcode.LDLM_ENQUEUE, false, LockMode.PW);
  t.match(enqueuePw, { count: 1, grantedMode: 0, type: LockType.EXTENT, name, extent: [0n, 4095n] }, 'the PW enqueue: mode, resource, extent asked');
  t.same(enqueuePw?.handles.slice(0, 2), [pw.handle, 0n], 'lock_handle[0] is the client\'s cookie');
  const grantedPw = find(Portal.OSC_REPLY, Opcode.LDLM_ENQUEUE, true, LockMode.PW);
  t.match(grantedPw, { grantedMode: LockMode.PW, name }, 'its reply: granted PW');
  t.equal(grantedPw?.extent?.[1], (pw.policy as { extent: { end: bigint } }).extent.end, 'the granted extent as the client took it');
  t.same(grantedPw?.handles, [pw.remoteHandle], 'the reply\'s lock_handle is the server\'s cookie');

  const waitingPr = find(Portal.OSC_REPLY, Opcode.LDLM_ENQUEUE, true, LockMode.PR);
  t.match(waitingPr, { grantedMode: 0 }, 'the PR enqueue\'s reply: not granted');
  t.ok(((waitingPr?.flags ?? 0) & LockFlag.BLOCK_GRANTED) !== 0, 'BLOCK_GRANTED: wait for the completion callback');

  const blocking = messages.find((m) => m.portal === Portal.LDLM_CB_REQUEST && m.opcode === Opcode.LDLM_BL_CALLBACK);
  t.match(blocking, { reply: false, reqMode: LockMode.PR, grantedMode: 0, name, extent: [0n, 4095n] },
    'the blocking callback to the holder on LDLM_CB_REQUEST_PORTAL describes the lock it blocks');
  t.ok(((blocking?.flags ?? 0) & LockFlag.AST_SENT) !== 0, 'flagged AST_SENT');
  t.same(blocking?.handles.slice(0, 2), [pw.handle, pw.remoteHandle], 'lock_handle[0] the holder\'s cookie, [1] the server\'s');

  const cancel = messages.find((m) => m.portal === Portal.OST_REQUEST && m.opcode === Opcode.LDLM_CANCEL);
  t.match(cancel, { count: 1, reqMode: 0, type: 0 }, 'the cancel: one handle, no lock desc');
  t.same(cancel?.handles.slice(0, 1), [pw.remoteHandle], 'it names the server\'s cookie');

  const completion = messages.find((m) => m.portal === Portal.LDLM_CB_REQUEST && m.opcode === Opcode.LDLM_CP_CALLBACK);
  t.match(completion, { reply: false, reqMode: LockMode.PR, grantedMode: LockMode.PR, name }, 'the completion callback: granted PR');
  t.same(completion?.handles.slice(0, 2), [pr.handle, pr.remoteHandle]);

  const answers = decode(`lustre.ptlrpc_body && lnet.ptl_index == ${Portal.LDLM_CB_REPLY}`,
    ['lustre.ptlrpc_body.pb_opc', 'lustre.ptlrpc_body.pb_type', 'lustre.ptlrpc_body.pb_status']);
  t.same(answers.map(([opc, type, status]) => [Number(opc), Number(type), Number(status)]).sort(),
    [[Opcode.LDLM_BL_CALLBACK, 4713, 0], [Opcode.LDLM_CP_CALLBACK, 4713, 0]], 'both callbacks answered on LDLM_CB_REPLY_PORTAL');
});
