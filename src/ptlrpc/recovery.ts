// A target's recovery after a restart (Lustre's target recovery in ldlm_lib.c): the clients
// that were connected when the target stopped (its last_rcvd client records) are expected
// back within a window; each reconnects, replays the requests it kept (executed but maybe not
// committed), then says it is done (a ping with MSG_REQ_REPLAY_DONE). Replays run one at a
// time, strictly in transno order across every client: the next one runs when its transno is
// the next expected, or, at a gap, once every connected client has a replay queued or is done
// (nobody can fill the gap). New clients are refused (EBUSY) until recovery ends; requests
// other than replays wait for the end.
//
// Lock replay (Lustre's lock replay queue): a client's first lock replay says it has no request
// left to replay (it comes flagged MSG_REQ_REPLAY_DONE). Lock replays run only once no client
// may still replay a request (every client replays its locks, is done or evicted, and the
// request queue is empty), so that no request replay meets a lock granted again before it;
// they start in arrival order without waiting for each other (each takes its lock at once).
// A lock replay never evicts: a refused lock is the client's to drop.
//
// The window: a soft limit that each sign of life of a recovering client renews, never past
// a hard limit counted from the start (recovery_time_soft / recovery_time_hard). When the
// soft limit passes, the clients that never reconnected are evicted (their queued replays
// dropped) and the others go on; at the hard limit, every client not done is evicted and
// recovery ends with what was replayed. abort() (abort_recov) ends it at once the same way. A replay that fails where its original succeeded (its objects changed since: the
// version check of Lustre's VBR in its simplest form) evicts only that client.
//
// Participants are named by slot key (a service's prefix and the client's UUID): a client
// with two imports to one target (ost and ost_io) recovers each.
import { Subject } from 'rxjs';

/** Lustre's defaults: three and nine times obd_timeout (100 s). */
export const RECOVERY_TIME_SOFT_MS = 300_000;
export const RECOVERY_TIME_HARD_MS = 900_000;

export interface RecoveryWindow {
  softMs: number;
  hardMs: number;
}

export type RecoveryStatus = 'INACTIVE' | 'WAITING' | 'RECOVERING' | 'COMPLETE';

/** 'locks': its requests replayed, it replays its locks. */
type Participant = { state: 'expected' | 'connected' | 'locks' | 'done' | 'evicted'; queued: number };

interface QueuedLockReplay {
  key: string;
  run: () => Promise<void>;
  drop: () => void;
}

interface QueuedReplay {
  key: string;
  transno: bigint;
  run: () => Promise<{ failed: boolean }>;
  drop: () => void;
}

export interface RecoveryFigures {
  status: RecoveryStatus;
  startMs: number;
  endMs: number;
  expected: number;
  connected: number;
  replaying: number;
  /** Clients replaying their locks. */
  lockReplaying: number;
  completed: number;
  evicted: number;
  replayed: number;
  queued: number;
  /** Lock replays run, and waiting for the lock phase. */
  locksReplayed: number;
  locksQueued: number;
  nextTransno: bigint;
  remainingMs: number;
}

export class TargetRecovery {
  /** Emits each participant key evicted by the window, abort or a failed replay. */
  readonly evictions$ = new Subject<string>();
  readonly done: Promise<void>;

  readonly #participants = new Map<string, Participant>();
  readonly #queue: QueuedReplay[] = [];
  readonly #lockQueue: QueuedLockReplay[] = [];
  readonly #clock: () => number;
  readonly #startMs: number;
  #window: RecoveryWindow;
  #deadline: number;
  #endMs = 0;
  #active: boolean;
  #running = false;
  #replayed = 0;
  #locksReplayed = 0;
  #nextTransno: bigint;
  #timer: NodeJS.Timeout | undefined;
  #resolve!: () => void;

  /**
   * `expected`: participant keys the target had at its stop. `lastTransno`: the highest
   * transno on disk; replays continue after it. Nothing expected: recovery is INACTIVE.
   */
  constructor(expected: Iterable<string>, lastTransno: bigint, window: RecoveryWindow, clock: () => number = () => performance.now()) {
    this.#clock = clock;
    this.#window = { ...window };
    this.#startMs = clock();
    this.#deadline = this.#startMs + Math.min(window.softMs, window.hardMs);
    this.#nextTransno = lastTransno + 1n;
    for (const key of expected) this.#participants.set(key, { state: 'expected', queued: 0 });
    this.#active = this.#participants.size > 0;
    this.done = new Promise<void>((resolve) => (this.#resolve = resolve));
    if (!this.#active) {
      this.#endMs = this.#startMs;
      this.#resolve();
    } else this.#arm();
  }

  /** Replays are accepted and new clients refused. */
  get recovering(): boolean {
    return this.#active;
  }

  get window(): RecoveryWindow {
    return { ...this.#window };
  }

  /** Changes the limits (recovery_time_soft / _hard); a running window is re-armed. */
  setWindow(w: Partial<RecoveryWindow>): void {
    this.#window = { ...this.#window, ...w };
    if (!this.#active) return;
    this.#deadline = Math.min(this.#deadline, this.#startMs + this.#window.hardMs);
    this.#arm();
  }

  /** Whether the key was connected when the target stopped and has not been evicted since. */
  expects(key: string): boolean {
    const p = this.#participants.get(key);
    return this.#active && p !== undefined && p.state !== 'evicted';
  }

  /** A recovering client (re)connected. */
  connected(key: string): void {
    const p = this.#participants.get(key);
    if (!this.#active || !p || p.state === 'evicted') return;
    if (p.state === 'expected') p.state = 'connected';
    this.#renew();
    this.#step();
  }

  /** Queues one replayed request; `run` executes it, `drop` answers it when it will not run. */
  enqueue(key: string, transno: bigint, run: QueuedReplay['run'], drop: () => void): void {
    const p = this.#participants.get(key);
    if (!this.#active || !p || p.state === 'evicted') {
      drop();
      return;
    }
    if (p.state === 'expected') p.state = 'connected';
    p.queued++;
    let i = this.#queue.length;
    while (i > 0 && this.#queue[i - 1]!.transno > transno) i--;
    this.#queue.splice(i, 0, { key, transno, run, drop });
    this.#renew();
    this.#step();
  }

  /**
   * Queues one lock replay: the client has no request left to replay. `run` answers it; `drop`
   * answers it when it will not run (the client was evicted, or recovery ended).
   */
  enqueueLock(key: string, run: () => Promise<void>, drop: () => void): void {
    const p = this.#participants.get(key);
    if (!this.#active || !p || p.state === 'evicted') {
      drop();
      return;
    }
    if (p.state === 'expected' || p.state === 'connected') p.state = 'locks';
    this.#lockQueue.push({ key, run, drop });
    this.#renew();
    this.#step();
  }

  /** The client sent everything it kept (MSG_REQ_REPLAY_DONE). */
  replayDone(key: string): void {
    const p = this.#participants.get(key);
    if (!this.#active || !p || p.state === 'evicted') return;
    p.state = 'done';
    this.#renew();
    this.#step();
  }

  /** Ends recovery now, evicting every client not done (abort_recov). */
  abort(): void {
    if (!this.#active) return;
    this.#closeWindow();
  }

  figures(): RecoveryFigures {
    let connected = 0;
    let replaying = 0;
    let lockReplaying = 0;
    let completed = 0;
    let evicted = 0;
    for (const p of this.#participants.values()) {
      if (p.state === 'evicted') evicted++;
      else if (p.state === 'done') completed++;
      if (p.state === 'connected' || p.state === 'locks' || p.state === 'done') connected++;
      if (p.state === 'connected') replaying++;
      if (p.state === 'locks') lockReplaying++;
    }
    const status: RecoveryStatus = this.#participants.size === 0 ? 'INACTIVE'
      : !this.#active ? 'COMPLETE' : connected === 0 ? 'WAITING' : 'RECOVERING';
    return {
      status, startMs: this.#startMs, endMs: this.#endMs, expected: this.#participants.size, connected, replaying, lockReplaying, completed,
      evicted, replayed: this.#replayed, queued: this.#queue.length, locksReplayed: this.#locksReplayed, locksQueued: this.#lockQueue.length,
      nextTransno: this.#nextTransno,
      remainingMs: this.#active ? Math.max(0, this.#deadline - this.#clock()) : 0,
    };
  }

  /** lctl get_param *.*.recovery_status, laid out as Lustre's. */
  formatStatus(wallClockMs = Date.now()): string {
    const f = this.figures();
    const startWall = Math.round((wallClockMs - (this.#clock() - f.startMs)) / 1000);
    if (f.status === 'INACTIVE') return 'status: INACTIVE';
    if (f.status === 'COMPLETE') {
      return [
        'status: COMPLETE', `recovery_start: ${startWall}`, `recovery_duration: ${Math.round((f.endMs - f.startMs) / 1000)}`,
        `completed_clients: ${f.expected - f.evicted}/${f.expected}`, `replayed_requests: ${f.replayed}`,
        `last_transno: ${f.nextTransno - 1n}`, 'VBR: ENABLED', 'IR: DISABLED',
      ].join('\n');
    }
    return [
      `status: ${f.status}`, `recovery_start: ${startWall}`, `time_remaining: ${Math.ceil(f.remainingMs / 1000)}`,
      `connected_clients: ${f.connected}/${f.expected}`, `req_replay_clients: ${f.replaying}`, `lock_repay_clients: ${f.lockReplaying}`,
      `completed_clients: ${f.completed}`, `evicted_clients: ${f.evicted}`, `replayed_requests: ${f.replayed}`,
      `queued_requests: ${f.queued}`, `next_transno: ${f.nextTransno}`,
    ].join('\n');
  }

  /** Stops the timer (the target is going away); waiters are released as if recovery ended. */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#active) {
      for (const q of this.#queue.splice(0)) q.drop();
      for (const q of this.#lockQueue.splice(0)) q.drop();
      this.#finish();
    }
  }

  #renew(): void {
    const soft = this.#clock() + this.#window.softMs;
    const hard = this.#startMs + this.#window.hardMs;
    this.#deadline = Math.max(this.#deadline, Math.min(soft, hard));
    this.#arm();
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    const wait = Math.max(0, this.#deadline - this.#clock());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#active) return;
      const now = this.#clock();
      if (now >= this.#startMs + this.#window.hardMs) this.#closeWindow();
      else if (now >= this.#deadline) {
        // The soft limit: who never came back is stale; who is replaying goes on, until the hard limit.
        this.#evictStale();
        this.#deadline = this.#startMs + this.#window.hardMs;
        if (this.#active) this.#arm();
      } else this.#arm();
    }, Math.min(wait, 2 ** 31 - 1));
    this.#timer.unref();
  }

  #evictStale(): void {
    for (const [key, p] of this.#participants) if (p.state === 'expected') this.#evict(key, p);
    this.#step();
  }

  #closeWindow(): void {
    for (const [key, p] of this.#participants) if (p.state !== 'done' && p.state !== 'evicted') this.#evict(key, p);
    this.#step();
  }

  #evict(key: string, p: Participant): void {
    p.state = 'evicted';
    for (let i = 0; i < this.#queue.length; i++) {
      if (this.#queue[i]!.key !== key) continue;
      this.#queue.splice(i--, 1)[0]!.drop();
    }
    p.queued = 0;
    for (let i = 0; i < this.#lockQueue.length; i++) {
      if (this.#lockQueue[i]!.key === key) this.#lockQueue.splice(i--, 1)[0]!.drop();
    }
    this.evictions$.next(key);
  }

  /** Runs the next replay when its turn has come; ends recovery when nothing is left. */
  #step(): void {
    if (!this.#active || this.#running) return;
    const head = this.#queue[0];
    if (head) {
      if (head.transno > this.#nextTransno && !this.#nobodyCanFillGap()) return;
      this.#queue.shift();
      const p = this.#participants.get(head.key)!;
      p.queued--;
      this.#running = true;
      void head.run().then(
        ({ failed }) => this.#ran(head, p, failed),
        () => this.#ran(head, p, true),
      );
      return;
    }
    if (this.#lockQueue.length > 0) {
      // The lock phase: nobody may replay a request any more. Lock replays touch nothing but
      // the lock namespace, each at once: they run side by side, in arrival order.
      for (const p of this.#participants.values()) if (p.state === 'expected' || p.state === 'connected') return;
      const ran = () => void this.#locksReplayed++;
      for (const lock of this.#lockQueue.splice(0)) void lock.run().then(ran, ran);
      return;
    }
    for (const p of this.#participants.values()) if (p.state !== 'done' && p.state !== 'evicted') return;
    this.#finish();
  }

  #ran(r: QueuedReplay, p: Participant, failed: boolean): void {
    this.#running = false;
    this.#replayed++;
    if (r.transno >= this.#nextTransno) this.#nextTransno = r.transno + 1n;
    if (failed && p.state !== 'evicted') this.#evict(r.key, p);
    this.#step();
  }

  /** At a gap: every live client either has a replay queued (all above the gap) or is done. */
  #nobodyCanFillGap(): boolean {
    for (const p of this.#participants.values()) {
      if (p.state === 'expected') return false;
      if (p.state === 'connected' && p.queued === 0) return false;
    }
    return true;
  }

  #finish(): void {
    this.#active = false;
    this.#endMs = this.#clock();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#resolve();
  }
}
