// Shared rig of the recovery tests (recovery-*.test.ts; this file is not a test file itself): the
// MGS+MDT in its own lustre.kernel process, an OST in another, clients in the calling process, and
// the helpers the tests share. Kernel 2 is the MDT and 3 the OST; their addresses are
// 127.0.0.(2 + offset) and 127.0.0.(3 + offset), clients from 127.0.0.(5 + offset), so that test
// files run at the same time each keep their own addresses.
import type { Test } from 'tap';
import { alive } from '../../src/control/rundir.js';
import { join } from 'node:path';
import { mount, type FileSystem } from '../../src/client/index.js';
import { dirtyBufferPool } from '../../src/client/extents.js';
import { LNetNI } from '../../src/lnet/index.js';
import { formatTarget } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';
import { kernelDirs, runTool, type ToolResult } from '../lib/tools.js';

export interface Rig {
  root: string;
  port: number;
  tool(name: string, args: string[], k: number): Promise<ToolResult>;
  ok(r: ToolResult, what: string): ToolResult;
  param(name: string, k?: number): Promise<string>;
  /** SIGKILL of the MDT's kernel, then start and mount again (with mount options). */
  crashMdt(options?: string): Promise<void>;
  /** The same for the OST's kernel. */
  crashOst(options?: string): Promise<void>;
  /** SIGKILL of the MDT's kernel, started again without mounting its device. */
  killMdt(): Promise<void>;
  mountMdt(options?: string): Promise<void>;
  client(uuid: string): Promise<{ fs: FileSystem; ni: LNetNI }>;
}

/** The rig maker of a test file whose addresses are 127.0.0.(k + offset). */
export function rigAt(offset: number): (t: Test, fsname: string) => Promise<Rig> {
  return (t, fsname) => rig(t, fsname, offset);
}

async function rig(t: Test, fsname: string, offset: number): Promise<Rig> {
  const nid = (k: number) => `127.0.0.${k + offset}@tcp`;
  const port = await freePort();
  const { root, rd, pidOf, closers } = await kernelDirs(t, 'recovery-', [2, 3]);
  const tool = (name: string, args: string[], k: number) => runTool(name, args, { env: { LUSTRE_RUNDIR: rd(k) } });
  const ok = (r: ToolResult, what: string): ToolResult => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  };
  const start = async (k: number) => ok(await tool('lustre-kernel', ['start', '--nid', nid(k), '--port', String(port), '--rundir', rd(k)], k), `kernel ${k}`);
  await start(2);
  await start(3);
  await formatTarget(join(root, 'mdt0'), { fsname, mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname, ost: true, index: 0, mgsNids: [nid(2)] });
  ok(await tool('lustre-mount', [join(root, 'mdt0')], 2), 'mount mdt0');
  ok(await tool('lustre-mount', [join(root, 'ost0')], 3), 'mount ost0');
  const kill = async (k: number) => {
    process.kill(pidOf(k), 'SIGKILL');
    await until(`kernel ${k} is gone`, () => {
      return !alive(pidOf(k));
    });
  };
  const crash = async (k: number, device: string, options?: string) => {
    await kill(k);
    await start(k);
    ok(await tool('lustre-mount', [...(options ? ['-o', options] : []), join(root, device)], k), `mount ${device} again`);
  };
  let n = 5;
  return {
    root, port, tool, ok,
    async param(name, k = 2) {
      return ok(await tool('lctl', ['get_param', '-n', name], k), `get_param ${name}`).stdout.trim();
    },
    async crashMdt(options) {
      await crash(2, 'mdt0', options);
    },
    async crashOst(options) {
      await crash(3, 'ost0', options);
    },
    async killMdt() {
      await kill(2);
      await start(2);
    },
    async mountMdt(options) {
      ok(await tool('lustre-mount', [...(options ? ['-o', options] : []), join(root, 'mdt0')], 2), 'mount mdt0 again');
    },
    async client(uuid) {
      const ni = await LNetNI.start({ nid: nid(n++), port, warn: () => {} });
      closers.push(() => ni.stop());
      const fs = await mount(`${nid(2)}:/${fsname}`, { ni, clientUuid: uuid, requestDeadlineMs: 120_000, connectDeadlineMs: 60_000 });
      closers.unshift(() => fs.umount({ force: true }));
      return { fs, ni };
    },
  };
}

/** Retries `op` until it succeeds: an evicted client's first requests fail, later ones work. */
export function worksAgain(who: string, op: () => Promise<unknown>): Promise<void> {
  return until(`${who} works again`, () => op().then(() => true, () => false), 30_000);
}

/** Holds a target's commits back once what is there is on disk (kernel 2: the MDT, 3: the OST). */
export async function holdCommits(r: Rig, k = 2): Promise<void> {
  // Everything is on disk when only the open txg is left and nothing is in it.
  await until('the setup is committed', async () => {
    const open = Number(await r.param('osd-txg.*.txg_open', k));
    const synced = Number(await r.param('osd-txg.*.txg_last_synced', k));
    return synced >= open - 1 && Number(await r.param('osd-txg.*.txg_dirty_bytes', k)) === 0;
  }, 30_000);
  r.ok(await r.tool('lctl', ['set_param', 'osd-txg.*.txg_timeout=600'], k), 'txg_timeout 600');
}
