// One soak client's workload: a seeded stream of namespace and data operations on the names
// the client owns (its directory /cK and the names "cK-..." in /shared), each applied to the
// client's model only when the file system said it succeeded. Content is derived from each
// operation's own seed, so the model is exact and a failure can name the bytes it expected.
import type { FileSystem } from '../../src/client/index.js';
import { patternBytes, type Prng } from '../lib/prng.js';
import { cloneTree, isUnder, parentOf, renameIn, resized, writtenAt, type Tree } from './soak-model.js';

export const SHARED = '/shared';
const STRIPE_SIZE = 64 * 1024;
const FILES_MAX = 48;
const DIRS_MAX = 10;

export interface Operation {
  /** What it does, e.g. "rename /c1/f3 -> /shared/c1-f9". */
  what: string;
  run(fs: FileSystem): Promise<void>;
  apply(model: Tree): void;
}

export interface Failure {
  client: number;
  index: number;
  what: string;
  error: string;
  atMs: number;
}

export interface ClientRun {
  client: number;
  succeeded: number;
  counts: Record<string, number>;
  model: Tree;
  /** Every operation tried, in order, with when it started and ended (ms since the soak's start). */
  history: Array<{ what: string; fromMs: number; toMs: number; failed?: string }>;
  /** When an operation failed: the model as it would be had it taken effect (either is accepted). */
  alternative: Tree | undefined;
  failure: Failure | undefined;
}

/** Whether `path` is one of client k's names. */
export function ownedBy(path: string, k: number): boolean {
  return isUnder(path, `/c${k}`) || path.startsWith(`${SHARED}/c${k}-`);
}

export class Workload {
  readonly k: number;
  readonly #rng: Prng;
  #n = 0;

  constructor(k: number, rng: Prng) {
    this.k = k;
    this.#rng = rng;
  }

  /** The next operation, chosen from what the model holds now. */
  next(model: Tree): Operation {
    const r = this.#rng;
    const entries = [...model].filter(([p]) => p !== `/c${this.k}`);
    const files = entries.filter(([, e]) => e.type === 'file').map(([p]) => p);
    const dirs = [`/c${this.k}`, ...entries.filter(([, e]) => e.type === 'dir').map(([p]) => p)];
    const choices: Array<[number, () => Operation | undefined]> = [
      [files.length < FILES_MAX ? 25 : 2, () => this.#create(dirs)],
      [dirs.length < DIRS_MAX ? 8 : 0, () => this.#mkdir(dirs)],
      [12, () => this.#rename(model, entries.map(([p]) => p), files, dirs)],
      [files.length > FILES_MAX / 2 ? 20 : 8, () => this.#unlink(files)],
      [4, () => this.#rmdir(model, dirs)],
      [10, () => this.#chmod(entries.map(([p]) => p))],
      [10, () => this.#truncate(model, files)],
      [10, () => this.#pwrite(model, files)],
      [6, () => this.#overwrite(model, files)],
    ];
    for (;;) {
      const total = choices.reduce((s, [w]) => s + w, 0);
      let x = r.int(total);
      const pick = choices.find(([w]) => (x -= w) < 0)!;
      const op = pick[1]();
      if (op) return op;
    }
  }

  #name(parent: string, kind: 'f' | 'd'): string {
    const n = ++this.#n;
    return parent === SHARED ? `${SHARED}/c${this.k}-${kind}${n}` : `${parent}/${kind}${n}`;
  }

  #size(): number {
    return this.#rng.next() < 0.7 ? this.#rng.int(8192) : this.#rng.int(160 * 1024);
  }

  #create(dirs: string[]): Operation {
    const r = this.#rng;
    const path = this.#name(r.next() < 0.3 ? SHARED : r.pick(dirs), 'f');
    const data = patternBytes(r.int(2 ** 32), this.#size());
    const stripeCount = r.pick([1, 2]);
    const mode = 0o644;
    return {
      what: `create ${path} (${data.length} bytes, ${stripeCount} stripe(s))`,
      async run(fs) {
        const h = await fs.open(path, 'wx', mode, { stripeCount, stripeSize: STRIPE_SIZE });
        try {
          if (data.length > 0) await h.write(data, 0, data.length, 0);
        } finally {
          await h.close();
        }
      },
      apply: (m) => void m.set(path, { type: 'file', mode, data }),
    };
  }

  #mkdir(dirs: string[]): Operation {
    const path = this.#name(this.#rng.next() < 0.2 ? SHARED : this.#rng.pick(dirs), 'd');
    return {
      what: `mkdir ${path}`,
      run: async (fs) => void (await fs.mkdir(path, { mode: 0o755 })),
      apply: (m) => void m.set(path, { type: 'dir', mode: 0o755 }),
    };
  }

  #rename(model: Tree, all: string[], files: string[], dirs: string[]): Operation | undefined {
    const r = this.#rng;
    if (all.length === 0) return undefined;
    const from = r.pick(all);
    const isFile = model.get(from)!.type === 'file';
    let to: string;
    if (isFile && files.length > 1 && r.next() < 0.3) {
      to = r.pick(files); // over an existing file: its objects go to the unlink log
      if (to === from) return undefined;
    } else {
      const parents = [...dirs, SHARED].filter((d) => !isUnder(d, from));
      to = this.#name(r.pick(parents), isFile ? 'f' : 'd');
    }
    return {
      what: `rename ${from} -> ${to}`,
      run: (fs) => fs.rename(from, to),
      apply: (m) => renameIn(m, from, to),
    };
  }

  #unlink(files: string[]): Operation | undefined {
    if (files.length === 0) return undefined;
    const path = this.#rng.pick(files);
    return { what: `unlink ${path}`, run: (fs) => fs.unlink(path), apply: (m) => void m.delete(path) };
  }

  #rmdir(model: Tree, dirs: string[]): Operation | undefined {
    const empty = dirs.filter((d) => d !== `/c${this.k}` && ![...model.keys()].some((p) => p !== d && isUnder(p, d)));
    if (empty.length === 0) return undefined;
    const path = this.#rng.pick(empty);
    return { what: `rmdir ${path}`, run: (fs) => fs.rmdir(path), apply: (m) => void m.delete(path) };
  }

  #chmod(all: string[]): Operation | undefined {
    if (all.length === 0) return undefined;
    const path = this.#rng.pick(all);
    // Owner rwx stays, so that the client (root or not) can go on working in and on it.
    const mode = 0o700 | this.#rng.int(0o100);
    return {
      what: `chmod ${mode.toString(8)} ${path}`,
      run: (fs) => fs.chmod(path, mode),
      apply: (m) => void m.set(path, { ...m.get(path)!, mode }),
    };
  }

  #truncate(model: Tree, files: string[]): Operation | undefined {
    if (files.length === 0) return undefined;
    const path = this.#rng.pick(files);
    const old = model.get(path)!;
    const size = this.#rng.int(Math.max(1, Math.floor((old.type === 'file' ? old.data.length : 0) * 1.5)) + 1024);
    return {
      what: `truncate ${path} ${size}`,
      run: (fs) => fs.truncate(path, size),
      apply: (m) => {
        const e = m.get(path)!;
        if (e.type === 'file') m.set(path, { ...e, data: resized(e.data, size) });
      },
    };
  }

  #pwrite(model: Tree, files: string[]): Operation | undefined {
    if (files.length === 0) return undefined;
    const r = this.#rng;
    const path = r.pick(files);
    const old = model.get(path)!;
    const at = r.int((old.type === 'file' ? old.data.length : 0) + 4096);
    const chunk = patternBytes(r.int(2 ** 32), 1 + r.int(r.next() < 0.8 ? 4096 : 96 * 1024));
    return {
      what: `pwrite ${path} ${chunk.length} bytes at ${at}`,
      async run(fs) {
        const h = await fs.open(path, 'r+');
        try {
          await h.write(chunk, 0, chunk.length, at);
        } finally {
          await h.close();
        }
      },
      apply: (m) => {
        const e = m.get(path)!;
        if (e.type === 'file') m.set(path, { ...e, data: writtenAt(e.data, at, chunk) });
      },
    };
  }

  #overwrite(model: Tree, files: string[]): Operation | undefined {
    if (files.length === 0) return undefined;
    const path = this.#rng.pick(files);
    const data = patternBytes(this.#rng.int(2 ** 32), this.#size());
    void model;
    return {
      what: `writeFile ${path} (${data.length} bytes, O_TRUNC)`,
      run: (fs) => fs.writeFile(path, data),
      apply: (m) => {
        const e = m.get(path)!;
        if (e.type === 'file') m.set(path, { ...e, data });
      },
    };
  }
}

/**
 * Runs client k's operations one after another until `stop()` says so; an operation that fails
 * ends the run (its effect is then uncertain: both outcomes are kept).
 */
export async function runClient(k: number, fs: FileSystem, rng: Prng, stop: () => boolean, onFailure: (f: Failure) => void, startedMs = Date.now(), onSuccess: () => void = () => {}): Promise<ClientRun> {
  const w = new Workload(k, rng);
  const run: ClientRun = {
    client: k, succeeded: 0, counts: {}, model: new Map([[`/c${k}`, { type: 'dir', mode: 0o755 }]]), history: [], alternative: undefined, failure: undefined,
  };
  for (let i = 0; !stop(); i++) {
    const op = w.next(run.model);
    const h: ClientRun['history'][number] = { what: op.what, fromMs: Date.now() - startedMs, toMs: 0 };
    run.history.push(h);
    try {
      await op.run(fs);
      h.toMs = Date.now() - startedMs;
    } catch (err) {
      h.toMs = Date.now() - startedMs;
      h.failed = String(err);
      run.failure = { client: k, index: i, what: op.what, error: `${(err as { code?: string }).code ?? ''} ${String(err)}`.trim(), atMs: Date.now() - startedMs };
      run.alternative = cloneTree(run.model);
      op.apply(run.alternative);
      onFailure(run.failure);
      break;
    }
    op.apply(run.model);
    run.succeeded++;
    onSuccess();
    const kind = op.what.split(' ')[0]!;
    run.counts[kind] = (run.counts[kind] ?? 0) + 1;
  }
  return run;
}

/** The operations that made `path` what it is, oldest first (renames followed back to the old names). */
export function historyOf(run: ClientRun, path: string): string[] {
  const out: string[] = [];
  let current = path;
  for (let i = run.history.length - 1; i >= 0; i--) {
    const h = run.history[i]!;
    const m = /^rename (\S+) -> (\S+)$/.exec(h.what);
    const words = h.what.split(' ');
    const line = `#${i} ${(h.fromMs / 1000).toFixed(2)}-${(h.toMs / 1000).toFixed(2)}s ${h.what}${h.failed ? ` FAILED ${h.failed}` : ''}`;
    if (m && isUnder(current, m[2]!)) {
      out.push(line);
      current = m[1]! + current.slice(m[2]!.length);
    } else if (words.includes(current)) out.push(line);
  }
  return out.reverse();
}
