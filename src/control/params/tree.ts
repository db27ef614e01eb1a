// lctl list_param / get_param / set_param over the node's parameter tree (nodes.ts), with
// lctl's globbing (glob.ts) and output (print_param_internal in lustre/utils/lustre_param.c).
import { compilePattern, matches, type CompiledPattern } from './glob.js';
import { ParamError } from './errors.js';
import { buildParams, type Param } from './nodes.js';
import type { KernelView } from './index.js';

export interface ParamValue {
  name: string;
  /** Without a trailing newline; a multi-line value holds '\n' between its lines. */
  value: string;
}

export interface ListOptions {
  /** -R: every name below each matching directory too (get: every parameter below it). */
  recursive?: boolean;
}

export class ParamTree {
  readonly #view: KernelView;

  constructor(view: KernelView) {
    this.#view = view;
  }

  /** Names of parameters and directories matching the pattern (lctl list_param [-R]). */
  async list(pattern: string, opts: ListOptions = {}): Promise<string[]> {
    const compiled = compilePattern(pattern);
    const params = buildParams(this.#view);
    const nodes = nodePaths(params);
    const out = new Set<string>();
    for (const alternative of compiled.alternatives) {
      const hits = nodes.filter((n) => matches(alternative, n.path)).map((n) => n.name).sort();
      for (const name of hits) {
        out.add(name);
        if (opts.recursive) for (const below of nodes.filter((n) => n.name.startsWith(`${name}.`)).map((n) => n.name).sort()) out.add(below);
      }
    }
    if (out.size === 0) throw notFound(compiled);
    return [...out];
  }

  /** Values of the parameters matching the pattern (lctl get_param [-R]). */
  async get(pattern: string, opts: ListOptions = {}): Promise<ParamValue[]> {
    const compiled = compilePattern(pattern);
    const params = select(buildParams(this.#view), compiled, opts.recursive ?? false);
    const out: ParamValue[] = [];
    for (const p of params) out.push({ name: p.path.join('.'), value: await p.read() });
    return out;
  }

  /**
   * Sets every parameter matching the pattern (lctl set_param NAME=VALUE) and returns what was
   * set. All of them must be writable (else EROFS naming the first that is not, nothing set); a
   * value one of them refuses is EINVAL naming the value, and those before it keep it.
   */
  async set(pattern: string, value: string): Promise<ParamValue[]> {
    if (typeof value !== 'string' || value.includes('\n')) throw new ParamError('EINVAL', `set_param ${pattern}: a value is one line`);
    const compiled = compilePattern(pattern);
    const params = select(buildParams(this.#view), compiled);
    const readOnly = params.find((p) => !p.write);
    if (readOnly) throw new ParamError('EROFS', `${readOnly.path.join('.')} is read-only`);
    const v = value.trim();
    const out: ParamValue[] = [];
    for (const p of params) {
      await p.write!(v);
      out.push({ name: p.path.join('.'), value: v });
    }
    return out;
  }
}

/**
 * The parameters the pattern names, in lctl's order: per brace alternative, sorted by name.
 * recursive (-R): also every parameter below a directory the pattern names.
 */
function select(params: readonly Param[], compiled: CompiledPattern, recursive = false): Param[] {
  const out: Param[] = [];
  const seen = new Set<Param>();
  const named = (alternative: CompiledPattern['alternatives'][number], p: Param): boolean => {
    if (!recursive) return matches(alternative, p.path);
    for (let depth = 1; depth <= p.path.length; depth++) if (matches(alternative, p.path.slice(0, depth))) return true;
    return false;
  };
  for (const alternative of compiled.alternatives) {
    const hits = params.filter((p) => !seen.has(p) && named(alternative, p)).sort(byName);
    for (const p of hits) seen.add(p);
    out.push(...hits);
  }
  if (out.length > 0) return out;
  const dirs = nodePaths(params).filter((n) => n.dir && compiled.alternatives.some((a) => matches(a, n.path)));
  if (dirs.length > 0) throw new ParamError('EISDIR', `'${compiled.text}' names directories only (${dirs[0]!.name}, ...): get_param -R reads what is in them, list_param shows it`);
  throw notFound(compiled);
}

function notFound(compiled: CompiledPattern): ParamError {
  return new ParamError('ENOENT', `no parameter matches '${compiled.text}' (lctl list_param -R '*' lists them all)`);
}

const byName = (a: Param, b: Param): number => {
  const x = a.path.join('.');
  const y = b.path.join('.');
  return x < y ? -1 : x > y ? 1 : 0;
};

interface NodePath {
  path: readonly string[];
  name: string;
  dir: boolean;
}

/** Every parameter and every directory above one, once. */
function nodePaths(params: readonly Param[]): NodePath[] {
  const out: NodePath[] = [];
  const seen = new Set<string>();
  for (const p of params) {
    for (let depth = 1; depth <= p.path.length; depth++) {
      const path = p.path.slice(0, depth);
      const name = path.join('.');
      if (seen.has(name)) continue;
      seen.add(name);
      out.push({ path, name, dir: depth < p.path.length });
    }
  }
  return out;
}

/**
 * lctl get_param's output: NAME=VALUE per line; a multi-line value as NAME= and its lines
 * below; -n the values only; -N the names only. With -n an empty value prints nothing.
 */
export function formatGetParam(values: readonly ParamValue[], opts: { valuesOnly?: boolean; namesOnly?: boolean } = {}): string {
  let out = '';
  for (const { name, value } of values) {
    if (opts.namesOnly) out += `${name}\n`;
    else if (opts.valuesOnly) out += value === '' ? '' : `${value}\n`;
    else if (value.includes('\n')) out += `${name}=\n${value}\n`;
    else out += `${name}=${value}\n`;
  }
  return out;
}
