// A small seeded PRNG (mulberry32) for randomized tests: a failing run prints its seed, and
// the seed reproduces the run.

export interface Prng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
}

export function prng(seed: number): Prng {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}

/** The seed of a randomized test: from the environment variable when set, else random. */
export function seedFrom(envName: string): number {
  const v = process.env[envName];
  return v !== undefined ? Number(v) >>> 0 : Math.floor(Math.random() * 2 ** 32);
}

/** The bytes a crash-test write puts at its range: derived from the write's own seed. */
export function patternBytes(seed: number, length: number): Buffer {
  return prng(seed).bytes(length);
}
