// Shared by the target, MGS and MGC tests: devices in temp folders, LNet NIs on loopback
// addresses of this test file's own, and a service module standing in for an MDT or OST
// service in tests of registration (it starts no service; the registration itself is real).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { LNetNI } from '../../../src/lnet/index.js';
import type { RunningService, ServiceContext, ServiceModule } from '../../../src/services/target/index.js';

import { freePort } from '../../lib/net.js';
export { freePort };
import { until as untilHolds } from '../../lib/net.js';

export async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** NIs on 127.<salt>.<pid>.<n>: one port for all (the TCP LND listens on each node's address). */
export async function network(t: Test, salt: number): Promise<{ node(n: number): Promise<LNetNI> }> {
  const port = await freePort();
  const a = 200 + (salt % 50);
  const b = (process.pid % 250) + 1;
  return {
    async node(n: number): Promise<LNetNI> {
      const ni = await LNetNI.start({ nid: `127.${a}.${b}.${n}@tcp`, port, warn: () => {} });
      t.teardown(() => ni.stop());
      return ni;
    },
  };
}

/** Stands in for an MDT or OST service: records the context it was started with. */
export function standIn(name: string, started: ServiceContext[] = []): ServiceModule {
  return async (ctx): Promise<RunningService> => {
    started.push(ctx);
    return { name, services: [], stats: () => ({}), stop: async () => {} };
  };
}

export const quiet = (): void => {};

/** until(cond, what) as these tests call it; see test/lib/net.ts. */
export function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  return untilHolds(what, cond, limitMs);
}
