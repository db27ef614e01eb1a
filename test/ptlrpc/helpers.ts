// Shared by the ptlrpc tests: pairs of real LNet interfaces, over 0@lo or TCP on loopback.
import { LNetNI } from '../../src/lnet/index.js';
import { LNET_PID_LUSTRE, targetProfiles } from '../../src/ptlrpc/index.js';

export type Lnd = 'lo' | 'tcp';

let nextLoPid = 20000 + (process.pid % 1000) * 20;

/** A free TCP port on 127.0.0.1 (the LNet TCP LND binds the same port on each node's address). */
import { freePort } from '../lib/net.js';
export { freePort };

/** Loopback addresses of our own, so that test files running at once never collide. */
export function loopbackHosts(count: number): string[] {
  const base = 2 + ((process.pid * 7) % 200);
  return Array.from({ length: count }, (_, i) => `127.${(base % 250) + 1}.${(process.pid % 250) + 1}.${i + 2}`);
}

export interface Nodes {
  server: LNetNI;
  /** The TCP port every node listens on (0 over 0@lo). */
  port: number;
  clients: LNetNI[];
  stop(): Promise<void>;
}

const quiet = () => {};

export async function startNodes(lnd: Lnd, clientCount = 1): Promise<Nodes> {
  let server: LNetNI;
  let port = 0;
  const clients: LNetNI[] = [];
  if (lnd === 'lo') {
    server = await LNetNI.start({ nid: '0@lo', pid: LNET_PID_LUSTRE, warn: quiet });
    for (let i = 0; i < clientCount; i++) clients.push(await LNetNI.start({ nid: '0@lo', pid: nextLoPid++, warn: quiet }));
  } else {
    port = await freePort();
    const hosts = loopbackHosts(clientCount + 1);
    server = await LNetNI.start({ nid: `${hosts[0]}@tcp`, port, warn: quiet });
    for (let i = 0; i < clientCount; i++) clients.push(await LNetNI.start({ nid: `${hosts[i + 1]}@tcp`, port, warn: quiet }));
  }
  return {
    server,
    port,
    clients,
    async stop() {
      for (const c of clients) await c.stop();
      await server.stop();
    },
  };
}

export const ost = targetProfiles.ost;
export const TARGET_UUID = 'lustre-OST0000_UUID';

export function serverId(ni: LNetNI): { nid: string; pid: number } {
  return { nid: ni.nid, pid: ni.pid };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
