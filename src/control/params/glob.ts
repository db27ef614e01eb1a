// Parameter names and patterns as lctl reads them (lustre/utils/lustre_param.c, jt_clean_path,
// and glob(3) with GLOB_BRACE):
//   - `{a,b}` alternatives expand first, over the whole pattern (nesting allowed), so an
//     alternative may hold dots: `{ost.OSS.ost,mds.MDS.mdt}.stats`;
//   - each expanded pattern splits into path components at '.', except inside a NID: after
//     `.exports.` (or `.MGC`) in a pattern that holds '@', the NID runs to the first '.' after
//     its '@', so `exports.127.0.0.5@tcp.stats` is the three components exports, 127.0.0.5@tcp,
//     stats;
//   - each component is matched by fnmatch rules: `*` any run of characters, `?` one, `[...]`
//     one of a set (`[!...]` or `[^...]` not in it, `a-z` ranges), `\x` the character x. A
//     wildcard never crosses a component.
import { ParamError } from './errors.js';

/** More alternatives than this from one pattern's braces is refused (EINVAL). */
export const BRACE_EXPANSION_MAX = 1024;
/** The longest pattern taken. */
export const PATTERN_LENGTH_MAX = 4096;

/** The patterns `{a,b}` alternatives stand for, in order. */
export function expandBraces(pattern: string): string[] {
  const out: string[] = [];
  const pending = [pattern];
  while (pending.length > 0) {
    const p = pending.shift()!;
    const group = firstBraceGroup(p);
    if (!group) {
      out.push(p);
    } else {
      const head = p.slice(0, group.open);
      const tail = p.slice(group.close + 1);
      for (const alternative of group.alternatives) pending.push(head + alternative + tail);
    }
    if (out.length + pending.length > BRACE_EXPANSION_MAX) {
      throw new ParamError('EINVAL', `pattern '${pattern}' expands to more than ${BRACE_EXPANSION_MAX} names`);
    }
  }
  return out;
}

/** The first top-level `{...,...}` of p, split at its top-level commas; none without a comma. */
function firstBraceGroup(p: string): { open: number; close: number; alternatives: string[] } | undefined {
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '\\') {
      i++;
      continue;
    }
    if (p[i] !== '{') continue;
    let depth = 0;
    let start = i + 1;
    const alternatives: string[] = [];
    for (let j = i; j < p.length; j++) {
      const c = p[j];
      if (c === '\\') {
        j++;
      } else if (c === '{') {
        depth++;
      } else if (c === '}') {
        depth--;
        if (depth === 0) {
          alternatives.push(p.slice(start, j));
          if (alternatives.length > 1) return { open: i, close: j, alternatives };
          break; // `{x}` is no group: glob takes it literally
        }
      } else if (c === ',' && depth === 1) {
        alternatives.push(p.slice(start, j));
        start = j + 1;
      }
    }
  }
  return undefined;
}

/** Splits one expanded pattern (or a name) into its path components, keeping NIDs whole. */
export function splitComponents(pattern: string): string[] {
  let nidStart = -1;
  let nidEnd = -1;
  if (pattern.includes('@')) {
    const exportsAt = pattern.indexOf('.exports.');
    if (pattern.startsWith('exports.')) nidStart = 'exports.'.length;
    else if (exportsAt >= 0) nidStart = exportsAt + '.exports.'.length;
    else if (pattern.indexOf('.MGC') >= 0) nidStart = pattern.indexOf('.MGC') + 1;
    if (nidStart >= 0) {
      const at = pattern.indexOf('@', nidStart);
      if (at < 0) nidStart = -1;
      else nidEnd = pattern.indexOf('.', at) < 0 ? pattern.length : pattern.indexOf('.', at);
    }
  }
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < pattern.length; i++) {
    if (i === nidStart) {
      current += pattern.slice(nidStart, nidEnd);
      i = nidEnd - 1;
      continue;
    }
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      current += c + pattern[++i];
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

/** A component matcher: fnmatch rules, anchored. */
export type ComponentMatcher = (name: string) => boolean;

export function componentMatcher(glob: string): ComponentMatcher {
  if (!/[*?[\\]/.test(glob)) return (name) => name === glob;
  const re = new RegExp(`^${globToRegExp(glob)}$`, 's');
  return (name) => re.test(name);
}

function globToRegExp(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '\\' && i + 1 < glob.length) out += escapeRegExp(glob[++i]!);
    else if (c === '[') {
      const end = classEnd(glob, i);
      if (end < 0) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      let negate = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        negate = true;
        body = body.slice(1);
      }
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else out += escapeRegExp(c);
  }
  return out;
}

/** Index of the ']' closing the class opened at `open`; a ']' first in the class is literal. */
function classEnd(glob: string, open: number): number {
  let i = open + 1;
  if (glob[i] === '!' || glob[i] === '^') i++;
  if (glob[i] === ']') i++;
  for (; i < glob.length; i++) if (glob[i] === ']') return i;
  return -1;
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, (m) => `\\${m}`);
}

/** A pattern as matchers per component, for each of its brace expansions. */
export interface CompiledPattern {
  readonly text: string;
  readonly alternatives: ReadonlyArray<readonly ComponentMatcher[]>;
}

export function compilePattern(pattern: string): CompiledPattern {
  if (typeof pattern !== 'string' || pattern.length === 0) throw new ParamError('EINVAL', 'an empty parameter name');
  if (pattern.length > PATTERN_LENGTH_MAX) {
    throw new ParamError('EINVAL', `parameter pattern of ${pattern.length} characters (at most ${PATTERN_LENGTH_MAX})`);
  }
  if (/[\0\n/=]/.test(pattern)) throw new ParamError('EINVAL', `'${pattern}' is no parameter name (it holds '/', '=' or a newline)`);
  const alternatives = expandBraces(pattern).map((p) => splitComponents(p).map(componentMatcher));
  return { text: pattern, alternatives };
}

/** Whether every component of `path` matches its matcher (same depth). */
export function matches(matchers: readonly ComponentMatcher[], path: readonly string[]): boolean {
  if (matchers.length !== path.length) return false;
  for (let i = 0; i < path.length; i++) if (!matchers[i]!(path[i]!)) return false;
  return true;
}
