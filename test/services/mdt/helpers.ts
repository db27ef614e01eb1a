// Shared by the MDT tests: a real MDT (OSD in a temp folder, LNet on 127.x.y.z with a free port,
// the OSD reply store) and real OSTs, started as the framework would, and MDCs connected to it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mdc, type MdcOptions } from '../../../src/client/mdc.js';
import { LNetNI } from '../../../src/lnet/index.js';
import { Osd, type OsdOptions } from '../../../src/osd/index.js';
import { OsdReplyStore } from '../../../src/ptlrpc/index.js';
import { startMdtWith, type MdtTunables, type RunningMdt } from '../../../src/services/mdt/index.js';
import { createOst, type RunningOst } from '../../../src/services/ost/index.js';
import { LAST_RCVD_FID, localObject, type Mountdata, type ServiceContext } from '../../../src/services/target/index.js';

import { freePort } from '../../lib/net.js';
export { freePort };

/** Loopback addresses of this test process, so that files running at once never collide. */
export function hosts(count: number, salt = 0): string[] {
  const a = ((process.pid * 7 + salt * 13) % 200) + 20;
  const b = (process.pid % 250) + 1;
  return Array.from({ length: count }, (_, i) => `127.${a}.${b}.${i + 2}`);
}

const quiet = () => {};

export interface Node {
  dir: string;
  ni: LNetNI;
  osd: Osd;
  ctx: ServiceContext;
}

export async function openNode(dir: string, nid: string, port: number, md: Mountdata, osdOpts: OsdOptions = {}, ni?: LNetNI): Promise<Node> {
  const osd = await Osd.open(dir, { txgTimeoutMs: 5, ...osdOpts });
  const lastRcvd = await localObject(osd, 'last_rcvd', 'reg', { fid: LAST_RCVD_FID, mode: 0o600 });
  const replyStore = await OsdReplyStore.open(osd, lastRcvd);
  ni ??= await LNetNI.start({ nid, port, warn: quiet });
  return { dir, ni, osd, ctx: { osd, ni, mountdata: md, replyStore, log: quiet, mgsNids: [] } };
}

export async function newDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await Osd.format(dir);
  return dir;
}

export function mdtMountdata(params: Record<string, string> = {}): Mountdata {
  return {
    fsname: 'testfs', svname: 'testfs-MDT0000', mgs: false, mdt: true, ost: false, index: 0, mgsNids: [],
    params, uuid: 'testfs-MDT0000_UUID', virgin: false, profile: ['mdt'],
  };
}

export function ostMountdata(index: number): Mountdata {
  const svname = `testfs-OST${index.toString(16).padStart(4, '0')}`;
  return {
    fsname: 'testfs', svname, mgs: false, mdt: false, ost: true, index, mgsNids: [], params: {},
    uuid: `${svname}_UUID`, virgin: false, profile: ['ost'],
  };
}

export interface MdtNode extends Node {
  mdt: RunningMdt;
  /** Stops the MDT and closes its OSD, keeping the NI (a restart reuses it). */
  stop(): Promise<void>;
}

export async function startMdtNode(dir: string, nid: string, port: number, params: Record<string, string> = {},
  tun: MdtTunables = {}, ni?: LNetNI): Promise<MdtNode> {
  const node = await openNode(dir, nid, port, mdtMountdata(params), {}, ni);
  const mdt = await startMdtWith(node.ctx, tun);
  return {
    ...node, mdt,
    async stop() {
      await mdt.stop({ force: false });
      await node.osd.close();
    },
  };
}

export interface OstNode extends Node {
  ost: RunningOst;
  stop(): Promise<void>;
}

export async function startOstNode(dir: string, nid: string, port: number, index: number, osdOpts: OsdOptions = {}, ni?: LNetNI): Promise<OstNode> {
  const node = await openNode(dir, nid, port, ostMountdata(index), osdOpts, ni);
  const ost = await createOst(node.ctx);
  return {
    ...node, ost,
    async stop() {
      await ost.stop({ force: false });
      await node.osd.close();
    },
  };
}

export async function connectMdc(ni: LNetNI, mdtNid: string, clientUuid: string, extra: Partial<MdcOptions> = {}): Promise<Mdc> {
  return Mdc.connect(ni, {
    nid: mdtNid, targetUuid: 'testfs-MDT0000_UUID', clientUuid, pingIntervalMs: 0,
    at: { minMs: 50, maxMs: 5000 }, initialEstimateMs: 200, ...extra,
  });
}

export async function startClientNi(nid: string, port: number): Promise<LNetNI> {
  return LNetNI.start({ nid, port, warn: quiet });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
