// The client's tunables, in one object that a mount reads at every use and the kernel's
// parameter tree can read and set while the mount runs (lctl get_param / set_param). Names are
// Lustre's: osc.<fsname>-OSTxxxx-osc-<instance>.max_dirty_mb and .max_rpcs_in_flight, and
// llite.<fsname>-<instance>.max_read_ahead_mb (and .max_read_ahead_per_file_mb). Here one value
// holds for every OSC of a mount (what `osc.*.max_dirty_mb=N` sets); a name matching the
// pattern of one OSC sets it for all of them.
//
// What each bounds (see file.ts):
//   max_dirty_mb               dirty (written, not yet acknowledged by an OST) bytes of one open
//                              file; the mount as a whole holds at most this times its OSC count
//   max_rpcs_in_flight         BRW RPCs on the wire at once to one OST
//   max_read_ahead_mb          bytes read ahead in all the mount's open files together
//   max_read_ahead_per_file_mb the largest read-ahead window of one open file

export interface ClientTunables {
  maxDirtyMb: number;
  maxRpcsInFlight: number;
  maxReadAheadMb: number;
  maxReadAheadPerFileMb: number;
}

/**
 * Lustre's defaults (max_dirty_mb 32 on small machines; RPCs in flight 8; read-ahead 64 MiB),
 * except read-ahead per file: half the mount's, so that a file whose window has grown to its
 * largest can still fetch the next window while the current one is read.
 */
export const DEFAULT_TUNABLES: ClientTunables = { maxDirtyMb: 32, maxRpcsInFlight: 8, maxReadAheadMb: 64, maxReadAheadPerFileMb: 32 };

/** Each tunable's range (Lustre's: OSC_MAX_RIF_MAX 256; max_dirty_mb below 2 GiB). */
const RANGES: Record<keyof ClientTunables, [number, number]> = {
  maxDirtyMb: [1, 2047],
  maxRpcsInFlight: [1, 256],
  maxReadAheadMb: [0, 65536],
  maxReadAheadPerFileMb: [0, 65536],
};

interface ParamDef {
  device: 'osc' | 'llite';
  name: string;
  key: keyof ClientTunables;
}

const PARAMS: ParamDef[] = [
  { device: 'osc', name: 'max_dirty_mb', key: 'maxDirtyMb' },
  { device: 'osc', name: 'max_rpcs_in_flight', key: 'maxRpcsInFlight' },
  { device: 'llite', name: 'max_read_ahead_mb', key: 'maxReadAheadMb' },
  { device: 'llite', name: 'max_read_ahead_per_file_mb', key: 'maxReadAheadPerFileMb' },
];

export class ParamError extends Error {
  readonly code: 'EINVAL' | 'ENOENT';
  constructor(code: 'EINVAL' | 'ENOENT', message: string) {
    super(message);
    this.code = code;
  }
}

/** value, when an integer from lo to hi; else EINVAL naming the parameter, the range and what was given. */
export function checkInteger(name: string, value: number, lo: number, hi: number, given: string | number = value): number {
  if (!Number.isSafeInteger(value) || value < lo || value > hi) {
    throw new ParamError('EINVAL', `${name} must be an integer from ${lo} to ${hi}, not ${given}`);
  }
  return value;
}

export function checkTunable(key: keyof ClientTunables, value: number): number {
  const [lo, hi] = RANGES[key];
  return checkInteger(key, value, lo, hi);
}

/** lctl's glob: '*' for any run of characters, '?' for one. */
function globToRegExp(pattern: string): RegExp {
  const body = pattern.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

/** More settable parameters of a mount beside its tunables (its lock namespaces: ldlm.namespaces.<ns>.*). */
export interface ParamSource {
  list(): Array<{ name: string; value: string }>;
  /** Sets one parameter listed by list(); throws ParamError('EINVAL') for a read-only one or a bad value. */
  set(name: string, value: string): void;
}

/**
 * Files beside the tunables (llite.*.stats, mdc.*.import, ...): each formatted only when read,
 * as a proc file is, since a stats file costs more to print than to list. Only a stats file
 * takes a write, which clears it.
 */
export interface ParamFiles {
  names(): string[];
  /** The file's text; undefined for a name not (or no longer) its. */
  read(name: string): string | undefined;
  /** Clears a stats file (any value written to it, as Lustre's); false if name is not one of its stats files. */
  clear?(name: string): boolean;
}

export class ClientParams {
  readonly #values: ClientTunables;
  readonly #onChange: Array<(key: keyof ClientTunables, value: number) => void> = [];
  readonly #sources: ParamSource[] = [];
  readonly #files: ParamFiles[] = [];

  constructor(
    initial: Partial<ClientTunables>,
    /** The devices' names now: the llite instance and one name per OSC (they follow the config). */
    private readonly devices: () => { llite: string; oscs: string[] },
  ) {
    this.#values = { ...DEFAULT_TUNABLES };
    for (const [k, v] of Object.entries(initial) as Array<[keyof ClientTunables, number | undefined]>) {
      if (v !== undefined) this.#values[k] = checkTunable(k, v);
    }
  }

  get values(): Readonly<ClientTunables> {
    return this.#values;
  }

  /** Calls fn after each change (the mount resizes its OSCs' RPC slots). */
  onChange(fn: (key: keyof ClientTunables, value: number) => void): void {
    this.#onChange.push(fn);
  }

  setTunable(key: keyof ClientTunables, value: number): void {
    this.#values[key] = checkTunable(key, value);
    for (const fn of this.#onChange) fn(key, value);
  }

  /** Adds parameters listed and set beside the tunables. */
  addSource(source: ParamSource): void {
    this.#sources.push(source);
  }

  /** Adds files (read-only, but for the clearing of stats files). */
  addFiles(files: ParamFiles): void {
    this.#files.push(files);
  }

  /** Every parameter as lctl lists it: 'osc.testfs-OST0000-osc-ab12cd34.max_dirty_mb' -> '32'. */
  list(): Array<{ name: string; value: string }> {
    const out = this.#settable();
    for (const files of this.#files) for (const name of files.names()) out.push({ name, value: files.read(name) ?? '' });
    return out;
  }

  /** Every parameter's name, and whether set() takes it, without reading the files (a stats file clears). */
  names(): Array<{ name: string; writable: boolean }> {
    const out = this.#settable().map(({ name }) => ({ name, writable: true }));
    for (const files of this.#files) for (const name of files.names()) out.push({ name, writable: files.clear !== undefined && name.endsWith('.stats') });
    return out;
  }

  /** Clears the stats file `name` (lctl set_param NAME=clear); false when there is none of that name. */
  clearFile(name: string): boolean {
    return this.#files.some((f) => f.clear?.(name) ?? false);
  }

  /** One parameter's value (undefined: no such parameter). */
  read(name: string): string | undefined {
    for (const files of this.#files) {
      const v = files.read(name);
      if (v !== undefined) return v;
    }
    return this.#settable().find((p) => p.name === name)?.value;
  }

  #settable(): Array<{ name: string; value: string }> {
    const { llite, oscs } = this.devices();
    const out: Array<{ name: string; value: string }> = [];
    for (const p of PARAMS) {
      for (const dev of p.device === 'osc' ? oscs : [llite]) out.push({ name: `${p.device}.${dev}.${p.name}`, value: String(this.#values[p.key]) });
    }
    for (const source of this.#sources) out.push(...source.list());
    return out;
  }

  /** lctl get_param PATTERN: the matching parameters (ENOENT when none matches). */
  get(pattern: string): Array<{ name: string; value: string }> {
    const re = globToRegExp(pattern);
    const hits = this.list().filter((p) => re.test(p.name));
    if (hits.length === 0) throw new ParamError('ENOENT', `no parameter matches ${pattern}`);
    return hits;
  }

  /** lctl set_param PATTERN=VALUE: sets the tunable behind every matching name; returns their count. */
  set(pattern: string, value: string | number): number {
    const re = globToRegExp(pattern);
    const { llite, oscs } = this.devices();
    const keys = new Set<keyof ClientTunables>();
    let n = 0;
    for (const p of PARAMS) {
      for (const dev of p.device === 'osc' ? oscs : [llite]) {
        if (re.test(`${p.device}.${dev}.${p.name}`)) {
          keys.add(p.key);
          n++;
        }
      }
    }
    const others: Array<{ source: ParamSource; name: string }> = [];
    for (const source of this.#sources) for (const p of source.list()) if (re.test(p.name)) others.push({ source, name: p.name });
    const files = this.#files.flatMap((f) => f.names()).filter((name) => re.test(name));
    const stats = files.filter((name) => name.endsWith('.stats'));
    if (n + others.length + stats.length === 0) {
      if (files.length > 0) throw new ParamError('EINVAL', `${files[0]} is read-only`);
      throw new ParamError('ENOENT', `no parameter matches ${pattern}`);
    }
    const v = typeof value === 'number' ? value : Number(value.trim());
    for (const k of keys) checkTunable(k, v);
    for (const k of keys) this.setTunable(k, v);
    for (const o of others) o.source.set(o.name, String(value));
    // A stats file clears whatever is written to it.
    const cleared = stats.filter((name) => this.clearFile(name)).length;
    return n + others.length + cleared;
  }
}
