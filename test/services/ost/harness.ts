// Shared by the OST, OSC and LOV tests: real OSTs (a real OSD in a temp folder, a real LNet
// interface, the OSD reply store) on 127.0.0.3, 127.0.0.4, ..., and a client interface on
// 127.0.0.9, all on one free port (LNet's TCP convention: every node on the same port).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LNetNI } from '../../../src/lnet/index.js';
import { Osd, type OsdOptions } from '../../../src/osd/index.js';
import { OsdReplyStore } from '../../../src/ptlrpc/index.js';
import { createOst, type OstOptions, type RunningOst } from '../../../src/services/ost/index.js';
import { LAST_RCVD_FID, type Mountdata, type ServiceContext } from '../../../src/services/target/index.js';
import { Osc, type OscOptions } from '../../../src/client/osc.js';

export const FSNAME = 'testfs';
export const CLIENT_NID = '127.0.0.9@tcp';

import { freePort } from '../../lib/net.js';
export { freePort };

export interface OstNode {
  index: number;
  nid: string;
  targetUuid: string;
  dir: string;
  osd: Osd;
  ni: LNetNI;
  ost: RunningOst;
}

export interface Cluster {
  osts: OstNode[];
  client: LNetNI;
  /** An OSC of the client to OST i (disconnected at stop). */
  osc(i: number, opts?: Partial<OscOptions>): Promise<Osc>;
  stop(): Promise<void>;
}

const quiet = () => {};

export async function startCluster(count: number, opts: { osd?: OsdOptions; ost?: OstOptions } = {}): Promise<Cluster> {
  const port = await freePort();
  const osts: OstNode[] = [];
  const oscs: Osc[] = [];
  for (let index = 0; index < count; index++) {
    const dir = await mkdtemp(join(tmpdir(), 'ost-test-'));
    await Osd.format(dir, { label: `${FSNAME}-OST000${index}` });
    const osd = await Osd.open(dir, { txgTimeoutMs: 20, ...opts.osd });
    const nid = `127.0.0.${3 + index}@tcp`;
    const ni = await LNetNI.start({ nid, port, warn: quiet });
    const replyStore = await OsdReplyStore.open(osd, LAST_RCVD_FID);
    const svname = `${FSNAME}-OST000${index}`;
    const mountdata: Mountdata = {
      fsname: FSNAME, svname, mgs: false, mdt: false, ost: true, index, mgsNids: [], params: {},
      uuid: `uuid-${svname}`, virgin: false, profile: ['ost'],
    };
    const ctx: ServiceContext = { osd, ni, mountdata, replyStore, log: quiet, mgsNids: [] };
    const ost = await createOst(ctx, opts.ost);
    osts.push({ index, nid, targetUuid: `${svname}_UUID`, dir, osd, ni, ost });
  }
  const client = await LNetNI.start({ nid: CLIENT_NID, port, warn: quiet });
  let clients = 0;
  return {
    osts,
    client,
    async osc(i, o = {}) {
      const node = osts[i]!;
      const osc = await Osc.connect(client, {
        nid: node.nid, targetUuid: node.targetUuid, clientUuid: `client-${++clients}`,
        importOptions: { pingIntervalMs: 0, initialEstimateMs: 500, at: { minMs: 200, maxMs: 5000 } }, ...o,
      });
      oscs.push(osc);
      return osc;
    },
    async stop() {
      for (const osc of oscs) await osc.disconnect().catch(() => undefined);
      await client.stop();
      for (const n of osts) {
        await n.ost.stop({ force: false });
        await n.osd.close();
        await n.ni.stop();
        await rm(n.dir, { recursive: true, force: true });
      }
    },
  };
}

/** Deterministic bytes: a xorshift stream from a seed. */
export function patternBytes(length: number, seed: number): Buffer {
  const b = Buffer.alloc(Math.ceil(length / 4) * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b.subarray(0, length);
}
