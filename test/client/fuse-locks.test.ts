// Locks and cache invalidation through the kernel: a small in-memory file system, mounted, whose
// getlk/setlk keep a lock table of their own (POSIX byte ranges per owner, flock per open file,
// waiters woken on every change). Separate processes take locks on it as applications do:
// Python's fcntl (F_SETLK, F_SETLKW, F_GETLK, flock) driven line by line over a pipe, and
// util-linux flock(1). Then the kernel's caches: a page cache kept across opens (keepCache) that
// only invalInode drops, and a cached name that only invalEntry drops.
//
// Needs /dev/fuse and root (mount(8) with fd=3), python3 and flock(1); skipped otherwise.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import t from 'tap';
import { whyNoFuse } from '../lib/fuse.js';
import { until } from '../lib/net.js';
import {
  FuseSession, InitFlag, OFFSET_MAX, fuseError, fuseMountAt, type Attr, type Entry, type FileLock, type FuseOps,
  type ReleaseInfo, type RequestContext, type SetlkOptions,
} from '../../src/client/fuse/index.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** A wait that would mean a hang (a deadlock), never a measure of speed. */
const HANG_MS = 20_000;

function whyNot(): string | null {
  const fuse = whyNoFuse();
  if (fuse) return fuse;
  if (spawnSync(PYTHON, ['-c', 'import fcntl'], { stdio: 'ignore' }).status !== 0) return 'python3 is missing';
  if (spawnSync('flock', ['--version'], { stdio: 'ignore' }).status !== 0) return 'flock(1) is missing';
  return null;
}

// ---- the lock table of the test's file system ----

interface Held { nodeid: number; owner: bigint; flock: boolean; start: bigint; end: bigint; type: 'read' | 'write'; pid: number }
interface Waiter { nodeid: number; owner: bigint; lock: FileLock; flock: boolean; grant: () => void }

function overlaps(a: { start: bigint; end: bigint }, b: { start: bigint; end: bigint }): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/** POSIX locks by (nodeid, owner) with splitting, flock locks by open file; the two kinds never meet, as in Linux. */
class LockTable {
  held: Held[] = [];
  waiters: Waiter[] = [];

  conflict(nodeid: number, owner: bigint, lock: FileLock, flock: boolean): Held | undefined {
    return this.held.find((h) => h.nodeid === nodeid && h.flock === flock && h.owner !== owner && overlaps(h, lock)
      && (h.type === 'write' || lock.type === 'write'));
  }

  /** Takes or ends a lock at once; false when another owner's lock is in the way. */
  tryApply(nodeid: number, owner: bigint, lock: FileLock, flock: boolean): boolean {
    if (lock.type !== 'unlock' && this.conflict(nodeid, owner, lock, flock)) return false;
    const kept: Held[] = [];
    for (const h of this.held) {
      if (h.nodeid !== nodeid || h.owner !== owner || h.flock !== flock || !overlaps(h, lock)) { kept.push(h); continue; }
      if (h.start < lock.start) kept.push({ ...h, end: lock.start - 1n });
      if (h.end > lock.end) kept.push({ ...h, start: lock.end + 1n });
    }
    if (lock.type !== 'unlock') kept.push({ nodeid, owner, flock, start: lock.start, end: lock.end, type: lock.type, pid: lock.pid });
    this.held = kept;
    if (lock.type === 'unlock' || this.waiters.length > 0) this.wake();
    return true;
  }

  /** Grants every waiter that can go now, in the order they came. */
  private wake(): void {
    for (const w of [...this.waiters]) {
      if (!this.waiters.includes(w)) continue;
      if (this.conflict(w.nodeid, w.owner, w.lock, w.flock)) continue;
      this.waiters.splice(this.waiters.indexOf(w), 1);
      this.tryApply(w.nodeid, w.owner, w.lock, w.flock);
      w.grant();
    }
  }

  async setlk(ctx: RequestContext, nodeid: number, owner: bigint, lock: FileLock, o: SetlkOptions): Promise<void> {
    if (this.tryApply(nodeid, owner, lock, o.flock)) return;
    if (!o.wait) throw fuseError('EAGAIN');
    if (ctx.signal.aborted) throw fuseError('EINTR');
    await new Promise<void>((resolve, reject) => {
      const w: Waiter = { nodeid, owner, lock, flock: o.flock, grant: () => { ctx.signal.removeEventListener('abort', onAbort); resolve(); } };
      const onAbort = (): void => {
        // Interrupted: the waiter goes, and nothing was taken for it.
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(fuseError('EINTR'));
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }
}

// ---- the in-memory file system ----

interface Node { nodeid: number; data: Buffer; keepCache: boolean }

const MTIME_NS = 1_700_000_000_000_000_000n;
const LONG_MS = 3_600_000;

class MemFs {
  readonly names = new Map<string, number>();
  readonly nodes = new Map<number, Node>();
  readonly table = new LockTable();
  readonly counts = { lookup: new Map<string, number>(), read: new Map<number, number>(), setlkClose: 0 };
  readonly flushes: { nodeid: number; owner: bigint }[] = [];
  readonly releases: { nodeid: number; info: ReleaseInfo }[] = [];
  /** Called inside the lookup of a name (the deadlock check). */
  readonly onLookup = new Map<string, () => void>();
  /** Awaited inside the READ of a nodeid (a READ held open). */
  readonly onRead = new Map<number, () => Promise<void>>();
  private nextId = 2;

  add(name: string, content: string, keepCache = false): Node {
    const n: Node = { nodeid: this.nextId++, data: Buffer.from(content), keepCache };
    this.nodes.set(n.nodeid, n);
    this.names.set(name, n.nodeid);
    return n;
  }

  attr(nodeid: number): Attr {
    if (nodeid === 1) {
      return { ino: 1, mode: 0o040755, nlink: 2, uid: 0, gid: 0, rdev: 0, size: 0, blocks: 0, blksize: 4096, atimeNs: MTIME_NS, mtimeNs: MTIME_NS, ctimeNs: MTIME_NS };
    }
    const n = this.nodes.get(nodeid);
    if (!n) throw fuseError('ENOENT');
    // Times never change: only a notification can tell the kernel that the data did.
    return { ino: nodeid, mode: 0o100666, nlink: 1, uid: 0, gid: 0, rdev: 0, size: n.data.length, blocks: 1, blksize: 4096, atimeNs: MTIME_NS, mtimeNs: MTIME_NS, ctimeNs: MTIME_NS };
  }

  /** The ops, with or without the lock ops. */
  ops(locks: boolean): FuseOps {
    const ops: FuseOps = {
      lookup: async (_ctx, parent, name): Promise<Entry> => {
        this.counts.lookup.set(name, (this.counts.lookup.get(name) ?? 0) + 1);
        this.onLookup.get(name)?.();
        const nodeid = parent === 1 ? this.names.get(name) : undefined;
        if (nodeid === undefined) throw fuseError('ENOENT');
        return { nodeid, attr: this.attr(nodeid), entryTimeoutMs: LONG_MS, attrTimeoutMs: LONG_MS };
      },
      getattr: async (_ctx, nodeid) => ({ attr: this.attr(nodeid), attrTimeoutMs: LONG_MS }),
      open: async (_ctx, nodeid) => ({ fh: nodeid, keepCache: this.nodes.get(nodeid)?.keepCache ?? false }),
      read: async (_ctx, nodeid, _fh, offset, size) => {
        this.counts.read.set(nodeid, (this.counts.read.get(nodeid) ?? 0) + 1);
        await this.onRead.get(nodeid)?.();
        return this.nodes.get(nodeid)!.data.subarray(offset, offset + size);
      },
      flush: async (_ctx, nodeid, _fh, owner) => { this.flushes.push({ nodeid, owner }); },
      release: async (_ctx, nodeid, _fh, _flags, info) => { this.releases.push({ nodeid, info }); },
    };
    if (locks) {
      ops.getlk = async (_ctx, nodeid, _fh, owner, lock) => {
        const h = this.table.conflict(nodeid, owner, lock, false);
        return h ? { start: h.start, end: h.end, type: h.type, pid: h.pid } : null;
      };
      ops.setlk = async (ctx, nodeid, _fh, owner, lock, o) => {
        if (o.close) this.counts.setlkClose++;
        return this.table.setlk(ctx, nodeid, owner, lock, o);
      };
    }
    return ops;
  }
}

// ---- processes that take locks ----

const LOCKER = `
import sys, os, fcntl, struct, errno
fds = {}
TYPES = {'r': fcntl.F_RDLCK, 'w': fcntl.F_WRLCK, 'u': fcntl.F_UNLCK}
def flk(t, start, length):
    return struct.pack('hhqqixxxx', TYPES[t], 0, start, length, 0)
print('ready', os.getpid(), flush=True)
for line in sys.stdin:
    a = line.split()
    try:
        if a[0] == 'open':
            fds[a[1]] = os.open(a[2], os.O_RDWR)
        elif a[0] == 'close':
            os.close(fds.pop(a[1]))
        elif a[0] in ('setlk', 'setlkw'):
            fcntl.fcntl(fds[a[1]], fcntl.F_SETLK if a[0] == 'setlk' else fcntl.F_SETLKW, flk(a[2], int(a[3]), int(a[4])))
        elif a[0] == 'getlk':
            r = fcntl.fcntl(fds[a[1]], fcntl.F_GETLK, flk(a[2], int(a[3]), int(a[4])))
            t, _, s, l, p = struct.unpack('hhqqixxxx', r)
            print('lock', 'rwu'[t], s, l, p, flush=True)
            continue
        elif a[0] == 'flock':
            op = {'ex': fcntl.LOCK_EX, 'sh': fcntl.LOCK_SH, 'un': fcntl.LOCK_UN}[a[2]]
            fcntl.flock(fds[a[1]], op | (fcntl.LOCK_NB if 'nb' in a[3:] else 0))
        print('ok', flush=True)
    except OSError as e:
        print('err', errno.errorcode.get(e.errno, str(e.errno)), flush=True)
`;

/** A Python process taking locks as told, one command a line, one answer a line. */
class Locker {
  readonly child: ChildProcess;
  readonly exited: Promise<NodeJS.Signals | number | null>;
  pid = 0;
  private readonly answers: string[] = [];
  private readonly wanting: ((line: string) => void)[] = [];

  constructor() {
    this.child = spawn(PYTHON, ['-u', '-c', LOCKER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(signal ?? code)));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const w = this.wanting.shift();
      if (w) w(line);
      else this.answers.push(line);
    });
  }

  static async start(): Promise<Locker> {
    const l = new Locker();
    const ready = await l.next();
    l.pid = Number(ready.split(' ')[1]);
    return l;
  }

  private next(): Promise<string> {
    const line = this.answers.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve) => this.wanting.push(resolve));
  }

  /** Sends a command; the promise is its answer ('ok', 'err EAGAIN', 'lock w 0 100 PID'). */
  send(cmd: string): Promise<string> {
    this.child.stdin!.write(`${cmd}\n`);
    return this.next();
  }

  /** Whether an answer came that nobody has asked for yet (a waiter that must still wait has none). */
  get answered(): boolean {
    return this.answers.length > 0;
  }

  async end(): Promise<void> {
    this.child.stdin!.end();
    await this.exited;
  }
}

interface Run { code: number; stdout: string; stderr: string }

/** A command in a child process, awaited: this process is the daemon and must never block on its own mount. */
function sh(cmd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', cmd], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function withinHang<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no end after ${HANG_MS} ms (a deadlock?)`)), HANG_MS); });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

const skip = whyNot();
if (skip) {
  t.comment(`skipped: ${skip}`);
  t.pass(`skipped: ${skip}`);
} else {
  const top = mkdtempSync(join(tmpdir(), 'fuse-locks-'));
  const mnt = join(top, 'mnt');
  const mntPlain = join(top, 'plain');
  const sessions: FuseSession[] = [];
  const lockers: Locker[] = [];
  const log = pino({ level: 'silent' });

  t.teardown(async () => {
    // Also when a test failed: nothing may stay mounted or running. A process killed in a lock
    // wait that was never answered stays until its request ends, so the connection is aborted
    // first when one is still mounted.
    for (const l of lockers) l.child.kill('SIGKILL');
    for (const s of sessions) {
      if (fuseMountAt(s.mountpoint)) {
        s.abort();
        await s.unmount({ lazy: true }).catch(() => {});
      }
    }
    await Promise.all(lockers.map((l) => l.exited));
    for (const m of [mnt, mntPlain]) {
      if (fuseMountAt(m)) spawnSync('umount', ['-l', m]);
    }
    await rm(top, { recursive: true, force: true });
  });

  await Promise.all([mkdir(mnt), mkdir(mntPlain)]);
  const fs = new MemFs();
  for (const name of ['posix', 'waited', 'killed', 'flocked']) fs.add(name, '');
  // Two requests inside the session at most, three lock waiters: a waiter must not hold a credit.
  const session = await FuseSession.mount(mnt, fs.ops(true), { subtype: 'memlocks', maxInFlight: 2, maxLockWaiters: 3, logger: log });
  sessions.push(session);
  const at = (name: string): string => join(mnt, name);
  const locker = async (): Promise<Locker> => {
    const l = await Locker.start();
    lockers.push(l);
    return l;
  };
  const nodeOf = (name: string): number => fs.names.get(name)!;

  t.test('INIT offers POSIX and flock locks only when the ops serve them; without them the kernel keeps locks to itself', async (t) => {
    const flags = session.conn!.flags;
    t.ok(flags & InitFlag.POSIX_LOCKS, 'FUSE_POSIX_LOCKS with getlk and setlk');
    t.ok(flags & InitFlag.FLOCK_LOCKS, 'FUSE_FLOCK_LOCKS with setlk');

    const plainFs = new MemFs();
    plainFs.add('f', '');
    const plain = await FuseSession.mount(mntPlain, plainFs.ops(false), { subtype: 'memplain', logger: log });
    sessions.push(plain);
    t.equal(plain.conn!.flags & (InitFlag.POSIX_LOCKS | InitFlag.FLOCK_LOCKS), 0, 'neither without the lock ops');
    const [a, b] = [await locker(), await locker()];
    t.equal(await a.send(`open f ${join(mntPlain, 'f')}`), 'ok');
    t.equal(await b.send(`open f ${join(mntPlain, 'f')}`), 'ok');
    t.equal(await a.send('setlk f w 0 0'), 'ok');
    t.equal(await b.send('setlk f w 0 0'), 'err EAGAIN', 'the kernel still sees the conflict on this one mount');
    await Promise.all([a.end(), b.end()]);
    await plain.unmount();
  });

  t.test('fcntl: a conflicting F_SETLK fails EAGAIN, other ranges and shared locks go, F_GETLK names the holder', async (t) => {
    const [a, b] = [await locker(), await locker()];
    t.equal(await a.send(`open p ${at('posix')}`), 'ok');
    t.equal(await b.send(`open p ${at('posix')}`), 'ok');
    t.equal(await a.send('setlk p w 0 100'), 'ok', 'A write-locks bytes 0..99');
    t.equal(await b.send('setlk p w 50 10'), 'err EAGAIN', 'B cannot take 50..59');
    t.equal(await b.send('setlk p r 99 1'), 'err EAGAIN', 'nor read-lock its last byte');
    t.equal(await b.send('setlk p w 100 100'), 'ok', 'but 100..199 is free');
    t.equal(await b.send('getlk p w 0 10'), `lock w 0 100 ${a.pid}`, 'F_GETLK: A holds 0..99 for writing');
    t.equal(await b.send('getlk p r 200 10'), 'lock u 200 10 0', 'nothing in the way of 200..209');
    t.equal(await a.send('setlk p r 0 100'), 'ok', 'A turns its lock into a shared one');
    t.equal(await b.send('setlk p r 0 50'), 'ok', 'and B shares 0..49');
    t.equal(await a.send('setlk p w 0 10'), 'err EAGAIN', 'so A cannot write-lock 0..9 again');
    t.same(fs.table.held.filter((h) => h.pid === a.pid).map((h) => [h.start, h.end, h.type]), [[0n, 99n, 'read']], 'the table: A holds 0..99 shared');

    // Closing any descriptor ends all of the closer's POSIX locks on the file: FLUSH carries the owner.
    const bOwner = fs.table.held.find((h) => h.pid === b.pid)!.owner;
    t.equal(await b.send(`open p2 ${at('posix')}`), 'ok');
    const closes = fs.counts.setlkClose;
    t.equal(await b.send('close p2'), 'ok');
    t.ok(fs.counts.setlkClose > closes, 'the close reached setlk as an unlock');
    t.ok(fs.flushes.some((f) => f.nodeid === nodeOf('posix') && f.owner === bOwner), 'flush saw the owner of the locks');
    t.same(fs.table.held.filter((h) => h.pid === b.pid), [], 'B holds nothing once one of its descriptors closed');
    t.equal(await a.send('setlk p w 0 0'), 'ok', 'so A can write-lock the whole file');
    await a.end();
    t.same(fs.table.held.filter((h) => h.nodeid === nodeOf('posix')), [], 'a process that exits leaves no lock');
    await b.end();
  });

  t.test('fcntl: F_SETLKW waits until the holder unlocks, more waiters than maxInFlight included; one waiter too many is ENOLCK', async (t) => {
    const holder = await locker();
    const waiters = [await locker(), await locker(), await locker()];
    const extra = await locker();
    for (const l of [holder, ...waiters, extra]) t.equal(await l.send(`open w ${at('waited')}`), 'ok');
    t.equal(await holder.send('setlk w w 0 0'), 'ok');
    const granted = waiters.map((l) => l.send('setlkw w w 0 0'));
    await until('three waiters in the table', () => fs.table.waiters.length === 3);
    t.equal(session.stats.lockWaiters, 3, 'three SETLKW wait in the session');
    t.equal(await extra.send('setlkw w w 0 0'), 'err ENOLCK', 'a fourth is refused (maxLockWaiters 3)');
    t.notOk(waiters.some((l) => l.answered), 'no waiter has an answer while the lock is held');
    // The unlock gets in although the waiters outnumber maxInFlight (2).
    t.equal(await withinHang('the unlock', holder.send('setlk w u 0 0')), 'ok');
    // Each waiter in turn: granted, then it unlocks and the next one goes.
    for (let i = 0; i < 3; i++) {
      const first = await withinHang('a grant', Promise.race(granted.map((g, j) => g.then(() => j))));
      t.equal(await granted[first], 'ok', `waiter ${first} granted`);
      t.same(fs.table.held.filter((h) => h.nodeid === nodeOf('waited')).map((h) => h.pid), [waiters[first]!.pid], 'and it alone holds the lock');
      t.equal(await waiters[first]!.send('setlk w u 0 0'), 'ok');
      granted[first] = new Promise(() => {});
    }
    t.equal(session.stats.lockWaiters, 0);
    await Promise.all([holder, ...waiters, extra].map((l) => l.end()));
  });

  t.test('fcntl: a waiter killed in F_SETLKW ends at once and leaves no lock behind', async (t) => {
    const [a, c, d] = [await locker(), await locker(), await locker()];
    for (const l of [a, c, d]) t.equal(await l.send(`open k ${at('killed')}`), 'ok');
    t.equal(await a.send('setlk k w 0 0'), 'ok');
    const interrupts = session.stats.interrupts;
    void c.send('setlkw k w 0 0');
    await until('C waiting', () => fs.table.waiters.length === 1);
    c.child.kill('SIGKILL');
    t.equal(await withinHang('the killed waiter', c.exited), 'SIGKILL', 'C ended while A still holds the lock');
    t.equal(session.stats.interrupts, interrupts + 1, 'the INTERRUPT reached the waiting setlk');
    t.same(fs.table.waiters, [], 'no waiter left');
    t.same(fs.table.held.filter((h) => h.pid === c.pid), [], 'nothing held for C');
    t.equal(await a.send('setlk k u 0 0'), 'ok');
    t.equal(await d.send('setlk k w 0 0'), 'ok', 'the next process gets the lock at once');
    await Promise.all([a.end(), d.end()]);
  });

  t.test('flock: flock -n fails while held, flock(1) waits for the release, and the close ends an open file\'s flock', async (t) => {
    const a = await locker();
    t.equal(await a.send(`open f ${at('flocked')}`), 'ok');
    t.equal(await a.send('flock f ex nb'), 'ok', 'A takes the flock');
    const aFlock = fs.table.held.find((h) => h.flock)!;
    t.same([aFlock.start, aFlock.end, aFlock.type, aFlock.pid], [0n, OFFSET_MAX, 'write', a.pid], 'a flock is a write lock of the whole file');
    const aOwner = aFlock.owner;
    let r = await sh(`flock -n ${at('flocked')} -c true`);
    t.equal(r.code, 1, 'flock -n fails while A holds it');
    r = await sh(`flock -n -s ${at('flocked')} -c true`);
    t.equal(r.code, 1, 'a shared one too');
    t.equal(await a.send(`setlk f w 0 0`), 'ok', 'POSIX locks and flocks are apart, as in Linux');

    const waiting = sh(`flock ${at('flocked')} -c 'echo got'`);
    await until('flock(1) waiting', () => fs.table.waiters.some((w) => w.flock));
    t.equal(await a.send('close f'), 'ok', 'A closes its only descriptor: RELEASE ends its flock');
    r = await withinHang('flock(1)', waiting);
    t.same([r.code, r.stdout], [0, 'got\n'], 'flock(1) got the lock once A let go');
    t.ok(fs.releases.some((x) => x.nodeid === nodeOf('flocked') && x.info.flockOwner === aOwner), 'release saw the flock owner');
    // flock(1)'s own release is on its way in the background.
    await until('the flock gone', () => !fs.table.held.some((h) => h.flock));
    r = await sh(`flock -n ${at('flocked')} -c true`);
    t.equal(r.code, 0, 'free again');
    await a.end();
  });

  t.test('invalInode: a page cache kept across opens shows new data only once invalidated', async (t) => {
    const kept = fs.add('kept', 'old-data', true);
    const dropped = fs.add('dropped', 'old-data', false);
    t.equal((await sh(`cat ${at('kept')} ${at('dropped')}`)).stdout, 'old-dataold-data');
    kept.data = Buffer.from('new-data');
    dropped.data = Buffer.from('new-data');
    const reads = fs.counts.read.get(kept.nodeid);
    t.equal((await sh(`cat ${at('kept')}`)).stdout, 'old-data', 'keepCache: the next open reads the cached pages');
    t.equal(fs.counts.read.get(kept.nodeid), reads, 'without a READ');
    t.equal((await sh(`cat ${at('dropped')}`)).stdout, 'new-data', 'without keepCache the open dropped them');
    t.equal(await session.invalInode(kept.nodeid), true, 'invalidated');
    t.equal((await sh(`cat ${at('kept')}`)).stdout, 'new-data', 'the read after it sees the new data');

    kept.data = Buffer.from('a longer content');
    t.equal((await sh(`stat -c %s ${at('kept')}`)).stdout, '8\n', 'the cached size holds');
    t.equal(await session.invalInode(kept.nodeid, -1), true, 'attributes only');
    t.equal((await sh(`stat -c %s ${at('kept')}`)).stdout, '16\n', 'stat sees the new size');
    t.equal(await session.invalInode(999_999), false, 'a nodeid the kernel never saw: nothing cached, no error');
    await t.rejects(session.invalInode(0), { code: 'EINVAL' });

    kept.data = Buffer.from('longer still, written at once');
    t.equal((await sh(`stat -c %s ${at('kept')}`)).stdout, '16\n', 'the cached size holds again');
    t.equal(session.invalAttrsNow(kept.nodeid), true, 'attributes dropped from this thread, at once');
    t.equal((await sh(`stat -c %s ${at('kept')}`)).stdout, '29\n', 'stat sees the new size');
    t.equal(session.invalAttrsNow(999_999), false, 'a nodeid the kernel never saw: nothing cached, no error');
    t.throws(() => session.invalAttrsNow(0), { code: 'EINVAL' });
  });

  t.test('invalEntry: a cached name fails after a rename behind the kernel once invalidated', async (t) => {
    fs.add('before', 'x');
    t.equal((await sh(`stat -c %s ${at('before')}`)).code, 0);
    fs.names.set('after', fs.names.get('before')!);
    fs.names.delete('before');
    const lookups = fs.counts.lookup.get('before');
    t.equal((await sh(`stat -c %s ${at('before')}`)).code, 0, 'the cached name still resolves');
    t.equal(fs.counts.lookup.get('before'), lookups, 'without a LOOKUP');
    t.equal(await session.invalEntry(1, 'before'), true, 'invalidated');
    const r = await sh(`stat -c %s ${at('before')}`);
    t.match(r.stderr, /No such file or directory/, 'the old name is gone');
    t.equal((await sh(`cat ${at('after')}`)).stdout, 'x', 'the new one is there');
    t.equal(await session.invalEntry(1, 'never-looked-up'), false, 'a name the kernel never cached: no error');
    await t.rejects(session.invalEntry(1, 'a/b'), { code: 'EINVAL' });
    await t.rejects(session.invalEntry(1, ''), { code: 'EINVAL' });
  });

  t.test('an invalidation sent from inside a lookup in the same directory completes after the reply, without a deadlock', async (t) => {
    fs.add('cached-name', 'y');
    fs.add('trigger', 'z');
    t.equal((await sh(`stat -c %s ${at('cached-name')}`)).code, 0);
    let sent: Promise<boolean> | undefined;
    // The kernel holds the directory's lock while this LOOKUP waits for its reply; the
    // notification needs that lock, so it can only finish after the reply.
    fs.onLookup.set('trigger', () => { sent = session.invalEntry(1, 'cached-name'); });
    const r = await withinHang('stat of trigger', sh(`stat -c %s ${at('trigger')}`));
    t.equal(r.stdout, '1\n', 'the lookup was answered');
    t.equal(await withinHang('the notification', sent!), true, 'and the notification went through after it');
    const lookups = fs.counts.lookup.get('cached-name');
    t.equal((await sh(`stat -c %s ${at('cached-name')}`)).code, 0);
    t.equal(fs.counts.lookup.get('cached-name'), (lookups ?? 0) + 1, 'the name was looked up again');
    fs.onLookup.clear();
  });

  t.test('a page invalidation blocked on a READ holds no other up, and says when the kernel has it', async (t) => {
    const blocked = fs.add('read-held', 'held-data', true);
    const other = fs.add('other-kept', 'other-data', true);
    t.equal((await sh(`cat ${at('other-kept')}`)).stdout, 'other-data');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reading!: () => void;
    const inRead = new Promise<void>((resolve) => (reading = resolve));
    fs.onRead.set(blocked.nodeid, async () => { reading(); await gate; });
    // The kernel keeps the page it reads into locked until this READ is answered.
    const cat = sh(`cat ${at('read-held')}`);
    await withinHang('the READ', inRead);
    let entered = false;
    let firstDone = false;
    const first = session.invalInode(blocked.nodeid, 0, 0, () => { entered = true; });
    void first.finally(() => { firstDone = true; });
    await withinHang('the first notification handed to the kernel', until('entered', () => entered));
    t.equal(await withinHang('a second page invalidation', session.invalInode(other.nodeid)), true,
      'a second page invalidation is done while the first waits for the READ\'s page');
    t.notOk(firstDone, 'the first still waits: the READ is not answered');
    release();
    t.equal((await cat).stdout, 'held-data', 'the READ is answered');
    t.equal(await withinHang('the first notification', first), true, 'and the first invalidation is done after it');
    fs.onRead.clear();
  });

  t.test('unmount: notifications after the end are no error', async (t) => {
    await session.unmount();
    t.equal(fuseMountAt(mnt), undefined);
    t.equal(await session.invalInode(nodeOf('posix')), false);
    t.equal(await session.invalEntry(1, 'posix'), false);
  });
}
