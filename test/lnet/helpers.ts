// Shared by the LNet tests: free ports, NIs on loopback addresses, and a raw peer that speaks
// the wire format byte by byte (to check what an NI sends, and to misbehave at will).
import { createServer, connect, type Socket, type Server } from 'node:net';
import { once } from 'node:events';
import type { Test } from 'tap';
import { LNetNI, wire, nidToWire, parseNid, type LNetConfig, type PutEvent } from '../../src/lnet/index.js';

export const ALL = 0xffffffffffffffffn;

/** A port free on 127.0.0.1 now (the tests then use it on other 127.0.0.x addresses too). */
import { freePort } from '../lib/net.js';
export { freePort };
import { until as untilHolds } from '../lib/net.js';

export interface Warnings { lines: string[] }

/** Starts an NI whose warnings are collected (not printed) and which is stopped at teardown. */
export async function startNi(t: Test, config: LNetConfig, warnings: Warnings = { lines: [] }): Promise<LNetNI> {
  const ni = await LNetNI.start({ warn: (m) => warnings.lines.push(m), ...config });
  t.teardown(() => ni.stop());
  return ni;
}

/** Collects the events of an NI; next() waits for the next one not yet taken. */
export function collect(ni: LNetNI): { events: PutEvent[]; next(): Promise<PutEvent>; waitFor(n: number): Promise<void> } {
  const events: PutEvent[] = [];
  const waiters: Array<() => void> = [];
  let taken = 0;
  ni.events$.subscribe((e) => { events.push(e); for (const w of waiters.splice(0)) w(); });
  const waitFor = async (n: number): Promise<void> => {
    while (events.length < n) await new Promise<void>((r) => waiters.push(r));
  };
  return {
    events,
    waitFor,
    async next() { await waitFor(taken + 1); return events[taken++]!; },
  };
}

/** until(cond, what) as these tests call it; see test/lib/net.ts. */
export function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  return untilHolds(what, cond, limitMs);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bytes a raw socket receives, consumed in exact sizes. */
export class ByteReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  ended = false;
  /** When set, bytes are counted and dropped rather than kept. */
  discarding = false;
  discarded = 0;
  constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      if (this.discarding) { this.discarded += c.length; return; }
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    socket.on('close', () => { this.ended = true; this.waiter?.(); });
    socket.on('error', () => { /* seen as close */ });
  }
  get buffered(): number { return this.buf.length; }
  async read(n: number, limitMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + limitMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`socket closed with ${this.buf.length} of ${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out with ${this.buf.length} of ${n} bytes`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 50); });
      this.waiter = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }
  async closed(limitMs = 5000): Promise<void> {
    await until(() => this.ended, 'the socket to close', limitMs);
  }
}

/** Connects a raw socket to an NI, from a given loopback address. */
export async function rawConnect(host: string, port: number, localAddress: string): Promise<{ socket: Socket; reader: ByteReader }> {
  const socket = connect({ host, port, localAddress });
  socket.setNoDelay(true);
  const reader = new ByteReader(socket);
  await once(socket, 'connect');
  return { socket, reader };
}

/** A HELLO as the raw peer sends it. */
export function helloFrom(nid: string, incarnation: bigint, dstNid: string, ctype = wire.SOCKLND_CONN_CONTROL, version = 3): Buffer {
  return wire.encodeHello({
    srcNid: nidToWire(parseNid(nid)), dstNid: nidToWire(parseNid(dstNid)), srcPid: 12345, dstPid: 0,
    srcIncarnation: incarnation, dstIncarnation: 0n, ctype, version,
  });
}

/** A raw peer that completed the handshake with an NI (as the connecting side). */
export async function rawPeer(ni: LNetNI, port: number, asNid: string): Promise<{ socket: Socket; reader: ByteReader; hello: Buffer }> {
  const host = asNid.split('@')[0]!;
  const target = ni.nid.split('@')[0]!;
  const { socket, reader } = await rawConnect(target, port, host);
  socket.write(Buffer.concat([wire.encodeConnReq(ni.wireNid), helloFrom(asNid, 77n, ni.nid)]));
  const hello = await reader.read(wire.HELLO_BYTES);
  return { socket, reader, hello };
}

/** A raw listener standing for a node: accepts one connection and answers its HELLO. */
export async function rawNode(host: string, port: number, asNid: string): Promise<{ server: Server; accepted: Promise<{ socket: Socket; reader: ByteReader; opening: Buffer }> }> {
  const server = createServer();
  server.listen(port, host);
  await once(server, 'listening');
  const accepted = new Promise<{ socket: Socket; reader: ByteReader; opening: Buffer }>((resolve) => {
    server.once('connection', (socket: Socket) => {
      socket.setNoDelay(true);
      const reader = new ByteReader(socket);
      void (async () => {
        const opening = await reader.read(wire.CONNREQ_BYTES + wire.HELLO_BYTES);
        const peerNid = wire.decodeHello(opening.subarray(wire.CONNREQ_BYTES)).srcNid;
        socket.write(wire.encodeHello({
          srcNid: nidToWire(parseNid(asNid)), dstNid: peerNid, srcPid: 12345, dstPid: 0,
          srcIncarnation: 99n, dstIncarnation: 0n, ctype: wire.SOCKLND_CONN_CONTROL,
        }));
        resolve({ socket, reader, opening });
      })();
    });
  });
  return { server, accepted };
}

/** A whole LNET frame (header and payload) as bytes, built with the module's encoder. */
export function frame(h: Partial<InstanceType<typeof wire.LNetHeader>>, payload: Buffer = Buffer.alloc(0)): Buffer {
  const hdr = Object.assign(new wire.LNetHeader(), h, { payloadLength: payload.length || h.payloadLength || 0 });
  const b = Buffer.alloc(wire.FRAME_HEADER_BYTES);
  wire.encodeFrameHeader(hdr, b, 0);
  return Buffer.concat([b, payload]);
}

export function nidWire(text: string): bigint { return nidToWire(parseNid(text)); }
