// alive(): a daemon killed with SIGKILL whose zombie nobody has reaped yet holds its run dir no
// more (a restart right after `kill -9` found "process N holds RUNDIR but does not answer").
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import t from 'tap';
import { alive } from '../../src/control/rundir.js';

// A parent that forks a child which exits at once, waits for that exit without reaping it
// (WNOWAIT: else the pid could be printed while the child still runs), prints the child's pid,
// and does not reap it for a while: the child stays a zombie meanwhile.
const ZOMBIE_MAKER = `
import os, sys, time
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print(pid, flush=True)
sys.stdin.readline()
`;

t.test('a zombie counts as gone; a running process and this one as alive; no such pid as gone', async (t) => {
  t.ok(alive(process.pid), 'this process');
  const parent = spawn('python3', ['-c', ZOMBIE_MAKER], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => parent.kill());
  const line = await new Promise<string>((resolve) => createInterface({ input: parent.stdout! }).once('line', resolve));
  const zombie = Number(line);
  t.ok(zombie > 0, `the child ${zombie}`);
  let signalled = false;
  try { process.kill(zombie, 0); signalled = true; } catch { /* reaped already */ }
  t.ok(signalled, 'kill(pid, 0) still finds the zombie');
  t.notOk(alive(zombie), 'alive() says it is gone');
  t.ok(alive(parent.pid!), 'its parent runs');
  parent.stdin!.end('\n');
  await new Promise((r) => parent.once('exit', r));
  t.notOk(alive(zombie), 'reaped: gone');
});
