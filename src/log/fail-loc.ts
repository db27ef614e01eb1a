// Fault injection, after libcfs's fail_loc (libcfs_fail.h, libcfs/fail.c): one per-process
// registry that tests and `lctl set_param fail_loc=ID fail_val=N fail_err=E` arm, and named
// points in the code that ask it whether to fail right there.
//
// fail_loc is a 32-bit word: its low 16 bits name the point (OBD_FAIL_* below), its high bits
// the mode, with Lustre's values:
//   0x80000000 CFS_FAIL_ONCE   fail once: the first hit sets CFS_FAILED and later ones pass
//   0x40000000 CFS_FAILED      set by the registry at the first hit
//   0x20000000 CFS_FAIL_SKIP   pass the first fail_val hits, then fail every time
//   0x10000000 CFS_FAIL_SOME   fail fail_val times, then behave as ONCE after a failure
//   0x08000000 CFS_FAIL_RAND   fail one hit in fail_val, at random
//   0x02000000 CFS_FAULT       matches any point checked with CFS_FAULT in its id
// So `fail_loc=0x80000122` loses one MDS reply; `0x20000211 fail_val=3` passes three OST
// replies and loses every later one; `0x08000212 fail_val=10` loses one OST request in ten.
//
// A point decides what failing means there (Lustre's CFS_FAIL_CHECK drops, CFS_FAIL_TIMEOUT
// sleeps): check() for a drop or an error (fail_err holds the errno, EIO when 0), timeout() to
// sleep fail_val milliseconds, crash() to stop the process at once (SIGKILL, as a power cut
// would: no exit handler runs, nothing buffered reaches a file).
//
// Cost when off: `check(id)` reads one field and compares it with 0; a point on a hot path
// that would have to allocate (an await) guards itself with `failLoc.active` first.
//
// Ids: Lustre's own numbers from lustre/include/obd_support.h where Lustre has the point; the
// points Lustre has no number for (txg sync, a crash between an update and its reply, a
// client losing a reply) take ids from 0x3f00-0x3fff, unused in Lustre's 0x0100-0x3fff range.
import assert from 'node:assert/strict';

export const CFS_FAIL_MASK_SYS = 0x0000ff00;
export const CFS_FAIL_MASK_LOC = 0x0000ffff;
export const CFS_FAILED = 0x40000000;
export const CFS_FAIL_ONCE = 0x80000000;
export const CFS_FAIL_SKIP = 0x20000000;
export const CFS_FAIL_SOME = 0x10000000;
export const CFS_FAIL_RAND = 0x08000000;
export const CFS_FAIL_USR1 = 0x04000000;
export const CFS_FAULT = 0x02000000;

/** How a point that fails behaves there. */
export type FailAction = 'drop' | 'delay' | 'error' | 'crash';

export interface FailPoint {
  readonly name: string;
  readonly id: number;
  readonly action: FailAction;
  /** Where the point is, in a sentence (lctl fail_loc --list prints it). */
  readonly where: string;
}

const point = (name: string, id: number, action: FailAction, where: string): FailPoint => ({ name, id, action, where });

/** Every point the code checks, by Lustre's name. */
export const FAIL_POINTS: readonly FailPoint[] = [
  point('OBD_FAIL_MDS_REINT_NET', 0x107, 'drop', 'MDT: a REINT request is lost on arrival'),
  point('OBD_FAIL_MDS_REINT_NET_REP', 0x119, 'drop', 'MDT: the reply of an executed REINT is lost'),
  point('OBD_FAIL_MDS_ALL_REPLY_NET', 0x122, 'drop', 'MDT: a reply is lost (any opcode but ping)'),
  point('OBD_FAIL_MDS_ALL_REQUEST_NET', 0x123, 'drop', 'MDT: a request is lost on arrival (any opcode but ping)'),
  point('OBD_FAIL_OST_BRW_NET', 0x20a, 'drop', 'OST: a BRW (read or write) request is lost on arrival'),
  point('OBD_FAIL_OST_ALL_REPLY_NET', 0x211, 'drop', 'OST: a reply is lost (any opcode but ping)'),
  point('OBD_FAIL_OST_ALL_REQUEST_NET', 0x212, 'drop', 'OST: a request is lost on arrival (any opcode but ping)'),
  point('OBD_FAIL_OST_BRW_PAUSE_BULK', 0x214, 'delay', 'OST: a BRW pauses fail_val ms before its bulk moves'),
  point('OBD_FAIL_PTLRPC_BULK_GET_NET', 0x503, 'drop', 'server: a bulk GET (a write\'s data) is never started'),
  point('OBD_FAIL_PTLRPC_BULK_PUT_NET', 0x504, 'drop', 'server: a bulk PUT (a read\'s data) is never started'),
  point('OBD_FAIL_PTLRPC_PAUSE_REQ', 0x50a, 'delay', 'server: a request waits fail_val ms before its handler runs'),
  point('OBD_FAIL_MGS_ALL_REQUEST_NET', 0x901, 'drop', 'MGS: a request is lost on arrival (any opcode but ping)'),
  point('OBD_FAIL_MGS_ALL_REPLY_NET', 0x902, 'drop', 'MGS: a reply is lost (any opcode but ping)'),
  point('OBD_FAIL_TXG_BEFORE_SYNC_CRASH', 0x3f01, 'crash', 'txg log: stop after a txg closed, before its record is appended (the txg is lost)'),
  point('OBD_FAIL_TXG_AFTER_SYNC_CRASH', 0x3f02, 'crash', 'txg log: stop after a txg\'s fdatasync, before its commit callbacks (durable, never acknowledged)'),
  point('OBD_FAIL_TXG_SYNC_DELAY', 0x3f03, 'delay', 'txg log: a txg waits fail_val ms before its append (a slow disk: commits lag)'),
  point('OBD_FAIL_TXG_WRITE_ERR', 0x3f04, 'error', 'txg log: a txg\'s append fails with fail_err (EIO when 0): the log stops, as on a disk error'),
  point('OBD_FAIL_SRV_REPLY_CRASH', 0x3f10, 'crash', 'server: stop after a modifying request\'s transaction, before its reply is sent'),
  point('OBD_FAIL_SRV_REQUEST_ERR', 0x3f11, 'error', 'server: a request fails with fail_err (EIO when 0) before its handler runs'),
  point('OBD_FAIL_SRV_BULK_CRASH', 0x3f12, 'crash', 'server: stop in the middle of a bulk, after its transfer started'),
  point('OBD_FAIL_IMP_REPLY_DROP', 0x3f20, 'drop', 'client: a reply is lost on arrival at the import'),
];

/** The ids by name: `FAIL.OBD_FAIL_MDS_ALL_REPLY_NET === 0x122`. */
export const FAIL: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(FAIL_POINTS.map((p) => [p.name, p.id])));

const MODES: ReadonlyArray<[string, number]> = [
  ['ONCE', CFS_FAIL_ONCE], ['SKIP', CFS_FAIL_SKIP], ['SOME', CFS_FAIL_SOME], ['RAND', CFS_FAIL_RAND], ['FAULT', CFS_FAULT],
];

/**
 * Parses a fail_loc as lctl takes it: a number (0x..., decimal) or a point's name, optionally
 * followed by modes, e.g. `OBD_FAIL_MDS_ALL_REPLY_NET|ONCE`. Returns undefined if it is neither.
 */
export function parseFailLoc(text: string): number | undefined {
  const parts = text.trim().split('|').map((s) => s.trim());
  let loc = 0;
  for (const part of parts) {
    const mode = MODES.find(([name]) => name === part.toUpperCase() || `CFS_FAIL_${name}` === part.toUpperCase());
    if (mode) { loc |= mode[1]; continue; }
    if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(part)) {
      const n = Number(part);
      if (!Number.isSafeInteger(n) || n > 0xffffffff) return undefined;
      loc |= n;
      continue;
    }
    const id = FAIL[part.toUpperCase()];
    if (id === undefined) return undefined;
    loc |= id;
  }
  return loc >>> 0;
}

/** fail_loc as `lctl get_param fail_loc` shows it (Lustre prints decimal; we add the hex and name). */
export function formatFailLoc(loc: number): string {
  if (loc === 0) return '0';
  const p = FAIL_POINTS.find((x) => x.id === (loc & CFS_FAIL_MASK_LOC));
  const modes = MODES.filter(([, bit]) => (loc & bit) !== 0).map(([name]) => name);
  if ((loc & CFS_FAILED) !== 0) modes.push('FAILED');
  return `0x${loc.toString(16)}${p ? ` (${[p.name, ...modes].join('|')})` : ''}`;
}

export interface FailLocOptions {
  /** A number in [0, 1) (CFS_FAIL_RAND); Math.random by default, seeded in tests. */
  random?: () => number;
  /** What crash() does once the point hit: SIGKILL of this process by default. */
  crash?: (message: string) => void;
  /** Where a hit is reported (Lustre's "*** cfs_fail_loc=..." console line): stderr by default. */
  log?: (message: string) => void;
}

const NOSET = 0;
const ORSET = 1;
const RESET = 2;
const VALUE = 3;

/** One process's fail_loc, fail_val and fail_err (libcfs's cfs_fail_loc / _val / _err). */
export class FailLoc {
  // A plain field, read by check() before anything else: the whole cost when off.
  #loc = 0;
  #val = 0;
  #err = 0;
  #count = 0;
  #hits = 0;
  readonly #random: () => number;
  readonly #crash: (message: string) => void;
  readonly #log: (message: string) => void;
  readonly #sleepers = new Set<() => void>();

  constructor(opts: FailLocOptions = {}) {
    this.#random = opts.random ?? Math.random;
    this.#crash = opts.crash ?? killSelf;
    this.#log = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
  }

  /** True when a fail_loc is set: points that would allocate check this first. */
  get active(): boolean {
    return this.#loc !== 0;
  }

  get loc(): number {
    return this.#loc;
  }

  get value(): number {
    return this.#val;
  }

  set value(val: number) {
    assert(Number.isSafeInteger(val) && val >= 0 && val <= 0xffffffff, 'fail_val is an unsigned 32-bit integer');
    this.#val = val;
  }

  /** fail_err: the errno an 'error' point fails with (0: EIO). */
  get err(): number {
    return this.#err;
  }

  set err(errno: number) {
    assert(Number.isSafeInteger(errno) && Math.abs(errno) <= 0xffff, 'fail_err is an errno');
    this.#err = Math.abs(errno);
  }

  /** How many times a point failed since the last set() (for tests and lctl). */
  get hits(): number {
    return this.#hits;
  }

  /**
   * Arms fail_loc (0 disarms) and, if given, fail_val. The skip/some counter restarts, and any
   * timeout() sleeping wakes up when fail_loc changes, as in Lustre.
   */
  set(loc: number, val?: number): void {
    assert(Number.isSafeInteger(loc) && loc >= 0 && loc <= 0xffffffff, 'fail_loc is an unsigned 32-bit integer');
    if (val !== undefined) this.value = val;
    const changed = loc !== this.#loc;
    this.#loc = loc;
    this.#count = 0;
    this.#hits = 0;
    if (changed) for (const wake of [...this.#sleepers]) wake();
  }

  /** Whether the point `id` fails now (CFS_FAIL_CHECK). */
  check(id: number): boolean {
    if (this.#loc === 0) return false;
    return this.#precheck(id) && this.#checkSet(id, this.#val, NOSET);
  }

  /** Fails only if fail_val is `value` (or 0xffffffff, Lustre's -1: any) (CFS_FAIL_CHECK_VALUE). */
  checkValue(id: number, value: number): boolean {
    if (this.#loc === 0) return false;
    return this.#precheck(id) && this.#checkSet(id, value, VALUE);
  }

  /** On a hit, ORs `value` into fail_loc (CFS_FAIL_CHECK_ORSET). */
  checkOrset(id: number, value: number): boolean {
    if (this.#loc === 0) return false;
    return this.#precheck(id) && this.#checkSet(id, value, ORSET);
  }

  /** On a hit, replaces fail_loc with `value` (CFS_FAIL_CHECK_RESET). */
  checkReset(id: number, value: number): boolean {
    if (this.#loc === 0) return false;
    return this.#precheck(id) && this.#checkSet(id, value, RESET);
  }

  /**
   * On a hit, sleeps `ms` (fail_val by default) milliseconds, or until fail_loc changes, and
   * resolves true; resolves false at once otherwise (CFS_FAIL_TIMEOUT_MS).
   */
  async timeout(id: number, ms?: number): Promise<boolean> {
    if (!this.check(id)) return false;
    const wait = ms ?? this.#val;
    if (wait <= 0) return true;
    this.#log(`cfs_fail_timeout id ${id.toString(16)} sleeping for ${wait}ms`);
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, wait);
      this.#sleepers.add(wake);
    });
    return true;
  }

  /** The errno an 'error' point fails with: fail_err, EIO (5) when 0. */
  errno(): number {
    return this.#err || 5;
  }

  /** On a hit, stops the process right here (SIGKILL); returns false otherwise. */
  crash(id: number): boolean {
    if (!this.check(id)) return false;
    const p = FAIL_POINTS.find((x) => x.id === (id & CFS_FAIL_MASK_LOC));
    this.#crash(`*** cfs_fail_loc=${id.toString(16)}, val=${this.#val}*** ${p?.name ?? ''}: stopping process ${process.pid} with SIGKILL`);
    return true;
  }

  #precheck(id: number): boolean {
    const loc = this.#loc;
    return (loc & CFS_FAIL_MASK_LOC) === (id & CFS_FAIL_MASK_LOC) || (loc & id & CFS_FAULT) !== 0;
  }

  // libcfs/fail.c's __cfs_fail_check_set, step by step.
  #checkSet(id: number, value: number, set: number): boolean {
    assert((id & CFS_FAIL_ONCE) === 0, 'a fail point id carries no CFS_FAIL_ONCE');
    const loc = this.#loc;
    if ((loc & CFS_FAILED) !== 0 && (loc & CFS_FAIL_ONCE) !== 0) {
      this.#count = 0;
      return false;
    }
    if ((loc & CFS_FAIL_RAND) !== 0) {
      if (this.#val < 2 || Math.floor(this.#random() * this.#val) > 0) return false;
    }
    if ((loc & CFS_FAIL_SKIP) !== 0) {
      if (++this.#count <= this.#val) return false;
    }
    if (set === VALUE && this.#val !== 0xffffffff && this.#val !== value) return false;
    // The fail_val-th hit of CFS_FAIL_SOME fails too ("only fail N times"); libcfs, which
    // sets ONCE before its FAILED test, lets only N - 1 through when N > 1.
    let lastOfSome = false;
    if ((loc & CFS_FAIL_SOME) !== 0 && ((loc & CFS_FAIL_ONCE) === 0 || this.#val <= 1)) {
      const count = ++this.#count;
      if (count >= this.#val) {
        this.#loc = (this.#loc | CFS_FAIL_ONCE) >>> 0;
        this.#count = 0;
        if (count > this.#val) return false;
        lastOfSome = true;
      }
    }
    if (set === ORSET && (value & CFS_FAIL_ONCE) !== 0) this.#loc = (this.#loc | CFS_FAIL_ONCE) >>> 0;
    const failedBefore = (this.#loc & CFS_FAILED) !== 0;
    this.#loc = (this.#loc | CFS_FAILED) >>> 0;
    if (failedBefore && (this.#loc & CFS_FAIL_ONCE) !== 0 && !lastOfSome) return false;
    if (set === ORSET) this.#loc = (this.#loc | (value & ~(CFS_FAILED | CFS_FAIL_ONCE))) >>> 0;
    else if (set === RESET) {
      this.#loc = value >>> 0;
      this.#count = 0;
    }
    this.#hits++;
    this.#log(`*** cfs_fail_loc=${id.toString(16)}, val=${this.#val}***`);
    return true;
  }
}

// Stops the process as a power cut would: no exit handlers, no flush of anything buffered.
// The signal is delivered on the way out of kill(2); the wait only makes sure no more
// JavaScript runs should delivery be late.
function killSelf(message: string): void {
  process.stderr.write(`${message}\n`);
  process.kill(process.pid, 'SIGKILL');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}

/** The process's registry: every point in src/ checks this one. */
export const failLoc = new FailLoc();
