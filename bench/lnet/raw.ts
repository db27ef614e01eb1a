// Raw Node socket baselines for network benchmarks: what a plain socket does on this machine
// in the same run, so that LNet's and ptlrpc's figures can be shown beside it.
//   ping-pong: length-prefixed frames (u32 length, then bytes) echoed by the server, with a
//              number of them in flight on one socket;
//   streaming: large writes on one socket, backpressure respected, until the server has
//              them all (it answers one byte at the end).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

/** Echoes every length-prefixed frame it receives. */
export async function rawEchoServer(host: string, port: number): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    let pending: Buffer[] = [];
    let have = 0;
    socket.on('data', (chunk: Buffer) => {
      pending.push(chunk);
      have += chunk.length;
      let buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      let at = 0;
      while (have - at >= 4) {
        const len = buf.readUInt32LE(at);
        if (have - at < 4 + len) break;
        socket.write(buf.subarray(at, at + 4 + len));
        at += 4 + len;
      }
      buf = buf.subarray(at);
      have -= at;
      pending = have ? [buf] : [];
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

/** Counts what arrives; sends one byte back once `total` bytes came (per connection). */
export async function rawSinkServer(host: string, port: number, total: number): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    let got = 0;
    socket.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (got >= total) { socket.write(Buffer.from([1])); got -= total; }
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}

async function dial(host: string, port: number, localAddress?: string): Promise<Socket> {
  const socket = connect({ host, port, localAddress, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** Round trips per second of `size`-byte frames, `inFlight` at a time, for `durationMs`. */
export async function rawPingPong(host: string, port: number, size: number, inFlight: number, durationMs: number, localAddress?: string): Promise<number> {
  const socket = await dial(host, port, localAddress);
  const frame = Buffer.alloc(4 + size, 7);
  frame.writeUInt32LE(size, 0);
  let received = 0;
  let done = 0;
  let outstanding = 0;
  const start = performance.now();
  const end = start + durationMs;
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      while (received >= frame.length) {
        received -= frame.length;
        done++;
        outstanding--;
        if (performance.now() < end) { socket.write(frame); outstanding++; }
      }
      if (outstanding === 0) resolve();
    });
    for (let i = 0; i < inFlight; i++) { socket.write(frame); outstanding++; }
  });
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  return done / seconds;
}

/** MiB per second of `chunkBytes` writes, `total` bytes in all, on one socket. */
export async function rawStream(host: string, port: number, chunkBytes: number, total: number, localAddress?: string): Promise<number> {
  const socket = await dial(host, port, localAddress);
  const chunk = Buffer.alloc(chunkBytes, 9);
  const finished = once(socket, 'data');
  const start = performance.now();
  for (let sent = 0; sent < total; sent += chunkBytes) {
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  await finished;
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  return total / (1 << 20) / seconds;
}
