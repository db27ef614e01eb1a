// The child of test/osd/barrier.test.ts: makes a known state on a device, then either sets a
// replay barrier and changes everything after it, or arms a txg crash point and commits, and
// waits to be killed (or is killed by its own fail point). One JSON line per event on stdout:
//   {barrier: TXG}  {after: true} (every change after the barrier applied)  {c: NAME}  a commit
//   argv: DEVICE MODE   (MODE: barrier | before-sync | after-sync)
import { FAIL, failLoc } from '../../src/log/index.js';
import { Osd } from '../../src/osd/index.js';
import { afterBarrier, beforeBarrier, FID } from './barrier-workload.js';

const [device, mode] = process.argv.slice(2);
const emit = (line: object): void => { process.stdout.write(`${JSON.stringify(line)}\n`); };

const osd = await Osd.open(device!, { txgTimeoutMs: 5 });
await beforeBarrier(osd);
await osd.sync();
if (mode === 'barrier') {
  emit({ barrier: await osd.replayBarrier() });
  await afterBarrier(osd, (name) => emit({ c: name }));
  emit({ after: true });
} else {
  failLoc.set(mode === 'before-sync' ? FAIL.OBD_FAIL_TXG_BEFORE_SYNC_CRASH! : FAIL.OBD_FAIL_TXG_AFTER_SYNC_CRASH!);
  const tx = osd.begin();
  await tx.start();
  await tx.attrSet(FID.x, { mode: 0o640 });
  tx.stop(() => emit({ c: 'x-mode' }));
  emit({ stopped: tx.txg });
  await osd.waitSynced(tx.txg);
  emit({ survived: true });
}
setInterval(() => {}, 60_000); // wait for the SIGKILL
