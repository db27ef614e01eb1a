// The child processes of bench/recovery.ts: what the bench kills with SIGKILL is a real process.
// Two roles, one line of JSON per event on stdout:
//
//   server.ts write DEVICE TRANSACTIONS
//     Opens the OSD of DEVICE with checkpoints held off and runs TRANSACTIONS setattr
//     transactions (WRITERS at a time, each waiting for its commit, on the objects the bench
//     created before the last checkpoint), prints {"progress":n} on the way and
//     {"written":n,"txgs":t} once every one is durable, then waits to be killed: the device is
//     left as a crash leaves it, with TRANSACTIONS log entries after its checkpoint.
//
//   server.ts kernel IP LNET_PORT RUNDIR OPTIONS DEVICE...
//     A node's lustre.kernel (the Kernel class) on IP@tcp mounting each DEVICE with OPTIONS
//     (comma-separated mount options, '-' for none); prints {"mounted":svname,"mountMs":ms,
//     "lastTransno","lastCommitted"} per device (its reply store's, right after the mount),
//     {"ready":true}, and for a target that recovers clients {"recovery":{...}} when its
//     recovery ends: the figures of its TargetRecovery, and when the
//     first and the last expected client reconnected (polled every millisecond: the figures
//     have no such times).
//     stdin lines: "hold" holds the first target's commits back (once what is there is on disk,
//     txg_timeout 600 s: test/e2e/recovery-rig.ts's holdCommits, in process) and prints
//     {"held":true}. stdin's end unmounts everything and exits.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Kernel } from '../../src/control/kernel/kernel.js';
import { Osd, ROOT_INDEX_FID, type Fid } from '../../src/osd/index.js';
import type { Target } from '../../src/services/target/index.js';
import { WRITERS, objectName } from './shape.js';

const emit = (line: object): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

async function write(device: string, transactions: number): Promise<void> {
  // No checkpoint while writing: every transaction stays in the log after the last one.
  const osd = await Osd.open(device, { checkpointKeysMax: 1e12, checkpointBytesMax: 1e15 });
  const fids: Fid[] = [];
  for (let w = 0; w < WRITERS; w++) {
    const found = await osd.indexLookup(ROOT_INDEX_FID, objectName(w));
    if (!found) throw new Error(`${device} has no ${objectName(w)}: the bench creates them first`);
    fids.push(found.fid);
  }
  const firstTxg = osd.lastSyncedTxg;
  let issued = 0;
  let done = 0;
  await Promise.all(fids.map(async (fid, w) => {
    while (issued < transactions) {
      issued++;
      const tx = osd.begin();
      await tx.start();
      await tx.attrSet(fid, { mtime: 1_700_000_000 + issued, ctime: 1_700_000_000 + issued, mode: 0o600 | (w & 0o077) });
      await new Promise<void>((resolve) => {
        const { txg } = tx.stop(() => resolve());
        void osd.waitSynced(txg);
      });
      if (++done % 10_000 === 0) emit({ progress: done });
    }
  }));
  await osd.sync();
  emit({ written: done, txgs: osd.lastSyncedTxg - firstTxg });
  // Killed here (SIGKILL): nothing is closed, nothing checkpointed.
  setInterval(() => {}, 1 << 30);
}

/**
 * Reports the end of a target's recovery, when its first client came back, and when the last
 * expected one did (with the requests replayed by then: replays wait at a transno gap until
 * the client that can fill it is back).
 */
function watchRecovery(target: Target): void {
  const recovery = target.recovery;
  if (!recovery.recovering) return;
  let firstConnectMs = 0;
  let allConnectedMs = 0;
  let replayedWhenAllConnected = 0;
  const poll = setInterval(() => {
    const f = recovery.figures();
    const back = f.connected + f.evicted;
    if (firstConnectMs === 0 && back > 0) firstConnectMs = performance.now();
    if (allConnectedMs === 0 && back === f.expected) {
      allConnectedMs = performance.now();
      replayedWhenAllConnected = f.replayed;
    }
  }, 1);
  void recovery.done.then(() => {
    clearInterval(poll);
    const f = recovery.figures();
    emit({
      recovery: {
        svname: target.svname, status: f.status, expected: f.expected, completed: f.completed, evicted: f.evicted,
        replayed: f.replayed, durationMs: f.endMs - f.startMs, fromFirstConnectMs: f.endMs - (firstConnectMs || f.startMs),
        fromAllConnectedMs: f.endMs - (allConnectedMs || f.endMs), replayedWhenAllConnected,
      },
    });
  });
}

/** Waits until everything the target has is on disk, then holds its commits back. */
async function holdCommits(osd: Osd): Promise<void> {
  for (;;) {
    const s = osd.stats();
    if (s.lastSyncedTxg >= s.openTxg - 1 && s.dirtyBytes === 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  osd.tune({ txgTimeoutMs: 600_000 });
}

async function kernel(ip: string, port: number, rundir: string, options: string, devices: string[]): Promise<void> {
  const k = await Kernel.start({ nid: `${ip}@tcp`, port, rundir, logFile: join(rundir, 'kernel.log'), logLevel: (process.env.LUSTRE_BENCH_KERNEL_LOG ?? 'warn') as 'warn' });
  const targets: Target[] = [];
  for (const device of devices) {
    const t0 = performance.now();
    const target = await k.mount(device, options === '-' ? [] : options.split(','));
    const mountMs = performance.now() - t0;
    emit({ mounted: target.svname, mountMs, lastTransno: String(target.replyStore.lastTransno()), lastCommitted: String(target.replyStore.lastCommitted()) });
    watchRecovery(target);
    targets.push(target);
  }
  emit({ ready: true });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await k.stop();
    process.exit(0);
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === 'hold') void holdCommits(targets[0]!.osd).then(() => emit({ held: true }));
  });
  lines.on('close', () => void stop());
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void stop());
}

const [role, ...args] = process.argv.slice(2);
if (role === 'write' && args.length === 2) await write(args[0]!, Number(args[1]));
else if (role === 'kernel' && args.length >= 5) await kernel(args[0]!, Number(args[1]), args[2]!, args[3]!, args.slice(4));
else throw new Error('usage: server.ts write DEVICE TRANSACTIONS | server.ts kernel IP LNET_PORT RUNDIR OPTIONS DEVICE...');
