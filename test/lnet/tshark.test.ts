// The wire check by a decoder nobody here wrote: traffic between two NIs on loopback is
// captured with tshark and decoded with Wireshark's LNet dissector (-d tcp.port==PORT,lnet).
// Every LNet message sent must come out with the NIDs, pids, type, portal and match bits it
// was sent with, and no LNet frame may be malformed.
//
// One limit of the dissector is worked around, and checked as such: it hands a PUT's payload
// to the dissector registered for its portal (Lustre's, for request and reply portals) and
// flags the payload bytes no one takes as a length mismatch (ei_lnet_buflen, group
// Malformed) — so a PUT of raw bulk data (OST_BULK_PORTAL 8 and the like, which real Lustre
// sends too) is "malformed" to it although its header decodes whole. The capture is decoded
// twice: as is, where exactly those PUTs must be the flagged ones, with the header ending at
// byte 96 as it should; and with Wireshark's generic "data" dissector registered for the bulk
// portals used here (a Lua line), where nothing may be flagged.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL, collect, freePort, sleep, startNi } from './helpers.js';

function haveTshark(): boolean {
  return spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;
}

function installTshark(): string | null {
  if (haveTshark()) return null;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: 'ignore' as const, env, timeout: 300_000 };
  if (spawnSync('apt-get', ['install', '-y', '-qq', 'tshark'], opts).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], opts);
    spawnSync('apt-get', ['install', '-y', '-qq', 'tshark'], opts);
  }
  return haveTshark() ? null : 'tshark is missing and `apt-get install -y tshark` did not work here';
}

/** Starts tshark on lo and resolves once it demonstrably sees packets (UDP probes on the port). */
async function startCapture(port: number, file: string): Promise<{ stop(): Promise<string> }> {
  const cap: ChildProcess = spawn('tshark', [
    '-i', 'lo', '-B', '64', '-f', `tcp port ${port} or udp port ${port}`, '-w', file, '-P', '-l',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let live = false;
  let stderr = '';
  cap.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('UDP')) live = true; });
  cap.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const probe = dgram.createSocket('udp4');
  const deadline = Date.now() + 30_000;
  while (!live) {
    if (Date.now() > deadline || cap.exitCode !== null) throw new Error(`tshark did not start capturing: ${stderr}`);
    probe.send('probe', port, '127.0.0.1');
    await sleep(50);
  }
  probe.close();
  return {
    async stop() {
      await sleep(200);
      cap.kill('SIGINT');
      if (cap.exitCode === null) await new Promise((r) => cap.once('exit', r));
      return stderr;
    },
  };
}

interface Decoded {
  frame: number; type: number; dest: string; src: string; destPid: number; srcPid: number;
  portal: number | null; matchBits: bigint | null; payloadLength: number;
}

/** Each LNet PDU tshark finds, the NOOPs, and the LNet frames it calls malformed. */
function decode(file: string, port: number, extra: string[] = []): { pdus: Decoded[]; noops: number; malformed: Array<{ frame: number; text: string }> } {
  const run = (args: string[]): string => {
    const r = spawnSync('tshark', ['-r', file, '-d', `tcp.port==${port},lnet`, ...extra, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`tshark ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // A segment TCP sent again (a late ACK on a busy machine) holds no new message.
  const json = JSON.parse(run(['-Y', 'lnet && !tcp.analysis.retransmission', '-T', 'json', '--no-duplicate-keys', '-J', 'frame lnet'])) as Array<{ _source: { layers: Record<string, unknown> } }>;
  const pdus: Decoded[] = [];
  for (const pkt of json) {
    const layers = pkt._source.layers;
    const frame = Number((layers.frame as Record<string, string>)['frame.number']);
    const lnets = ([] as unknown[]).concat(layers.lnet) as Array<Record<string, unknown>>;
    for (const l of lnets) {
      if (l['lnet.msg_type'] === undefined) continue;
      const nid = (n: unknown): string => {
        const f = n as Record<string, string>;
        return `${f['lnet.nid.addr']}@${f['lnet.nid.type'] === '2' ? 'tcp' : `type${f['lnet.nid.type']}`}${f['lnet.nid.net_interface']}`;
      };
      pdus.push({
        frame,
        type: Number(l['lnet.msg_type']),
        dest: nid(l['lnet.dest_nid']),
        src: nid(l['lnet.src_nid']),
        // The dissector labels the first pid "Src pid"; lnet_hdr has dest_pid first.
        srcPid: Number(l['lnet.dest_pid']),
        destPid: Number(l['lnet.src_pid']),
        portal: l['lnet.ptl_index'] === undefined ? null : Number(l['lnet.ptl_index']),
        matchBits: l['lnet.msg_dst_match_bits'] === undefined ? null : BigInt(l['lnet.msg_dst_match_bits'] as string),
        payloadLength: Number(l['lnet.payload_length']),
      });
    }
  }
  const noops = run(['-Y', 'lnet.ksm_type == 0xc0', '-T', 'fields', '-e', 'lnet.ksm_type']).split('\n')
    .filter(Boolean).reduce((n, line) => n + line.split(',').length, 0);
  const malformed = run(['-Y', 'lnet && _ws.malformed && !_ws.short', '-T', 'fields', '-e', 'frame.number', '-e', '_ws.expert.message'])
    .split('\n').filter(Boolean).map((line) => {
      const [frame, text] = line.split('\t');
      return { frame: Number(frame), text: text ?? '' };
    });
  return { pdus, noops, malformed };
}

const noTshark = installTshark();

t.test('tshark decodes the traffic of two NIs as LNet, with what was sent', { skip: noTshark ?? false }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lnet-tshark-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'lnet.pcapng');
  const port = await freePort();
  const capture = await startCapture(port, file);

  const a = await startNi(t, { nid: '127.0.0.80@tcp', port, keepaliveMs: 250 });
  const b = await startNi(t, { nid: '127.0.0.81@tcp', port, keepaliveMs: 250 });
  const bId = { nid: b.nid, pid: 12345 };
  const aId = { nid: a.nid, pid: 12345 };
  const events = collect(b);
  b.attach(8, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 2 << 20 });
  b.attach(40, { matchBits: 0n, ignoreBits: ALL }, { kind: 'sink', maxLength: 1 << 20 });
  const bulk = Buffer.alloc(1 << 20, 0x5a);
  b.attach(14, { matchBits: 0x4000n }, { kind: 'source', buffers: [bulk] });

  // What is sent, as [type, from, to, portal, matchBits, payloadLength].
  type Sent = [number, string, string, number | null, bigint | null, number];
  const sent: Sent[] = [];
  await a.put(bId, 8, 0x1001n, Buffer.from('small bulk'));
  sent.push([1, a.nid, b.nid, 8, 0x1001n, 10]);
  await a.put(bId, 8, 0x1002n, Buffer.alloc(0), { ack: true });
  sent.push([1, a.nid, b.nid, 8, 0x1002n, 0], [0, b.nid, a.nid, null, 0x1002n, 0]);
  await Promise.all(Array.from({ length: 20 }, (_, i) => a.put(bId, 40, 0x2000n + BigInt(i), Buffer.alloc(0))));
  for (let i = 0; i < 20; i++) sent.push([1, a.nid, b.nid, 40, 0x2000n + BigInt(i), 0]);
  await a.put(bId, 8, 0x3000n, bulk, { ack: true });
  sent.push([1, a.nid, b.nid, 8, 0x3000n, 1 << 20], [0, b.nid, a.nid, null, 0x3000n, 0]);
  const got = await a.get(bId, 14, 0x4000n, 1 << 20);
  t.equal(Buffer.concat(got).compare(bulk), 0);
  sent.push([2, a.nid, b.nid, 14, 0x4000n, 0], [3, b.nid, a.nid, null, null, 1 << 20]);
  await b.put(aId, 40, 0x5000n, Buffer.alloc(0));
  sent.push([1, b.nid, a.nid, 40, 0x5000n, 0]);
  await events.waitFor(23);
  await sleep(600); // idle: keepalives both ways
  // Counted once both have stopped: a keepalive timer may fire while the first one stops.
  await a.stop();
  await b.stop();
  const keepalives = a.stats().peers.reduce((n, p) => n + p.keepalivesSent, 0) + b.stats().peers.reduce((n, p) => n + p.keepalivesSent, 0);
  const stderr = await capture.stop();
  t.notMatch(stderr, /[1-9]\d* packets? dropped/, 'the capture lost nothing');

  const plain = decode(file, port);
  const seen: Sent[] = plain.pdus.map((p) => [p.type, p.src.replace(/@tcp0$/, '@tcp'), p.dest.replace(/@tcp0$/, '@tcp'), p.portal, p.type === 3 ? null : p.matchBits, p.payloadLength]);
  const key = (s: Sent): string => s.map(String).join(' ');
  t.same(seen.map(key).sort(), sent.map(key).sort(), 'every message decodes with its type, NIDs, portal, match bits and length');
  t.ok(plain.pdus.every((p) => p.srcPid === 12345 && p.destPid === 12345), 'pids');
  t.equal(plain.noops, keepalives, `${keepalives} keepalive NOOPs decode as KSOCK_MSG_NOOP`);
  const bulkPuts = new Set(plain.pdus.filter((p) => p.type === 1 && p.payloadLength > 0).map((p) => p.frame));
  t.same(plain.malformed.map((m) => m.frame).sort(), [...bulkPuts].sort(),
    'as is, the dissector flags exactly the PUTs whose payload no portal dissector takes');
  t.ok(plain.malformed.every((m) => /offset:96 /.test(m.text)), 'and only for the payload: their 96-byte header decoded whole');

  const lua = join(dir, 'bulk-portals.lua');
  await writeFile(lua, 'local t = DissectorTable.get("lnet.ptl_index")\nfor _, p in ipairs({8, 40}) do t:add(p, Dissector.get("data")) end\n');
  const withData = decode(file, port, ['-X', `lua_script:${lua}`]);
  t.equal(withData.pdus.length, sent.length);
  t.same(withData.malformed, [], 'with a dissector for the bulk portals, no LNet frame is malformed');
});

