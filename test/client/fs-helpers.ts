// A file system for the library's tests: an MGS+MDT and two OSTs, each formatted and mounted
// with Target.mount on its own loopback NID (127.0.0.2, .3, .4) with a free port, in this
// process; clients mount it from 127.0.0.5 and up.
import type { Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mount, type FileSystem, type MountOptions } from '../../src/client/index.js';
import { LNetNI } from '../../src/lnet/index.js';
import type { RunningMdt } from '../../src/services/mdt/index.js';
import { formatTarget, Target } from '../../src/services/target/index.js';
import { freePort, until } from '../lib/net.js';

const quiet = (): void => {};

export interface TestFs {
  port: number;
  device: string;
  targets: Target[];
  mdt: RunningMdt;
  /** Mounts a client on 127.0.0.<n>@tcp (n >= 5). */
  mount(n: number, options?: MountOptions): Promise<FileSystem>;
}

export async function startFs(t: Test, fsname = 'testfs'): Promise<TestFs> {
  const port = await freePort();
  const [mdsNid, ost0Nid, ost1Nid] = ['127.0.0.2@tcp', '127.0.0.3@tcp', '127.0.0.4@tcp'];
  const root = await mkdtemp(join(tmpdir(), 'client-fs-'));
  await formatTarget(join(root, 'mdt0'), { fsname, mgs: true, mdt: true, index: 0 });
  await formatTarget(join(root, 'ost0'), { fsname, ost: true, index: 0, mgsNids: [mdsNid] });
  await formatTarget(join(root, 'ost1'), { fsname, ost: true, index: 1, mgsNids: [mdsNid] });
  // A bulk PUT to a client that gave up waiting (it resent after a slow disk) holds its
  // handler, and so the target's umount, for the reply timeout: keep that short here.
  const nis = await Promise.all([mdsNid, ost0Nid, ost1Nid].map((nid) => LNetNI.start({ nid, port, warn: quiet, replyTimeoutMs: 3000 })));
  const targets: Target[] = [];
  const mounts: FileSystem[] = [];
  t.teardown(async () => {
    for (const m of mounts.reverse()) await m.umount({ force: true }).catch(() => {});
    for (const target of targets.reverse()) await target.umount().catch(() => {});
    for (const ni of nis) await ni.stop();
    await rm(root, { recursive: true, force: true });
  });
  const osd = { txgTimeoutMs: 10 };
  targets.push(await Target.mount(join(root, 'mdt0'), nis[0]!, { osd }));
  targets.push(await Target.mount(join(root, 'ost0'), nis[1]!, { osd }));
  targets.push(await Target.mount(join(root, 'ost1'), nis[2]!, { osd }));
  const mdt = targets[0]!.running.find((r) => r.name === 'mdt') as RunningMdt;
  await until('the MDT connected to both OSTs', () => mdt.osps.size === 2);
  await Promise.all([...mdt.osps.values()].map((o) => o.started));
  await until('objects precreated on both OSTs', () => [...mdt.osps.values()].every((o) => o.available() > 0));
  const device = `${mdsNid}:/${fsname}`;
  return {
    port, device, targets, mdt,
    async mount(n, options = {}) {
      const fs = await mount(device, { nid: `127.0.0.${n}@tcp`, port, ...options });
      mounts.push(fs);
      await until('the client connected to both OSTs', () => fs.core.oscs.size === 2);
      return fs;
    },
  };
}

/** Resolves with the error the promise rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; syscall?: string; path?: string; message: string; errno?: number; dest?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection, the call succeeded');
}
