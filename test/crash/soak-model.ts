// The crash soak's model of a namespace: what a client's succeeded operations must have left,
// path by path (type, mode, and a file's bytes). Each client of the soak works in names of its
// own (its directory /cK and the names "cK-..." in /shared), so the models of the clients are
// disjoint and the order between clients does not matter: the file system at the end must
// equal the union of the models.

export type Entry =
  | { type: 'dir'; mode: number }
  | { type: 'file'; mode: number; data: Buffer };

export type Tree = Map<string, Entry>;

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** A copy whose entries can be changed without touching the original (file data is replaced, never mutated). */
export function cloneTree(t: Tree): Tree {
  return new Map(t);
}

/** rename(2) in the model: the entry and everything under it move; a file at `to` is replaced. */
export function renameIn(t: Tree, from: string, to: string): void {
  const moved = [...t].filter(([p]) => isUnder(p, from));
  t.delete(to);
  for (const [p] of moved) t.delete(p);
  for (const [p, e] of moved) t.set(to + p.slice(from.length), e);
}

/** The bytes of a file cut or extended (with zeros) to `size`. */
export function resized(data: Buffer, size: number): Buffer {
  if (size <= data.length) return Buffer.from(data.subarray(0, size));
  return Buffer.concat([data, Buffer.alloc(size - data.length)]);
}

/** The bytes of a file after `chunk` was written at `at`. */
export function writtenAt(data: Buffer, at: number, chunk: Buffer): Buffer {
  const out = resized(data, Math.max(data.length, at + chunk.length));
  chunk.copy(out, at);
  return out;
}

/** The differences between an expected and an actual tree, in words (empty when equal). */
export function diffTrees(expected: Tree, actual: Tree, limit = 20): string[] {
  const out: string[] = [];
  const paths = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const p of paths) {
    const e = expected.get(p);
    const a = actual.get(p);
    if (!e) out.push(`${p}: present (${a!.type}) but no succeeded operation made it`);
    else if (!a) out.push(`${p}: missing (a ${e.type} a succeeded operation left)`);
    else if (e.type !== a.type) out.push(`${p}: a ${a.type}, expected a ${e.type}`);
    else if (e.mode !== a.mode) out.push(`${p}: mode ${a.mode.toString(8)}, expected ${e.mode.toString(8)}`);
    else if (e.type === 'file' && a.type === 'file' && !e.data.equals(a.data)) {
      const at = firstDifference(e.data, a.data);
      const hex = (b: Buffer) => b.subarray(at, at + 16).toString('hex');
      const zeros = a.data.subarray(at).every((x) => x === 0);
      out.push(`${p}: ${a.data.length} bytes, expected ${e.data.length}; first difference at byte ${at}: ${hex(a.data)}${zeros ? ' (zeros to the end)' : ''}, expected ${hex(e.data)}`);
    }
    if (out.length >= limit) {
      out.push('...');
      break;
    }
  }
  return out;
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
