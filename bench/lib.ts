// Shared by the benchmarks: progress on stderr, one JSON line per figure on stdout, and the
// baselines every benchmark measures in the same run.
import { SingleBar, Presets } from 'cli-progress';
import { open, rm } from 'node:fs/promises';

export interface Figure {
  bench: string;
  value: number;
  unit: string;
  baseline: number;
  /** Above 1 beats the baseline: value / baseline for a rate, baseline / value for a latency. */
  ratio: number;
}

const round = (x: number): number => Number(x.toPrecision(4));

export function rateFigure(bench: string, value: number, unit: string, baseline: number): Figure {
  return { bench, value: round(value), unit, baseline: round(baseline), ratio: round(value / baseline) };
}

export function latencyFigure(bench: string, value: number, unit: string, baseline: number): Figure {
  return { bench, value: round(value), unit, baseline: round(baseline), ratio: round(baseline / value) };
}

export function emit(figure: Figure): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

/** A progress bar on stderr; a no-op line per step when stderr is not a terminal. */
export function progress(label: string, total: number): { update(n: number): void; stop(): void } {
  const bar = new SingleBar({
    format: `${label.padEnd(34)} [{bar}] {percentage}% {value}/{total}`,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 2000,
  }, Presets.shades_classic);
  bar.start(total, 0);
  return { update: (n) => bar.update(Math.min(n, total)), stop: () => bar.stop() };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The raw disk's small durable write: 4 KiB appended and fdatasync'ed, one after the other, for
 * about durationMs. Returns the rate and the latencies (ms, sorted).
 */
export async function rawFdatasync(file: string, durationMs: number): Promise<{ perSecond: number; latenciesMs: number[] }> {
  const fh = await open(file, 'w');
  const block = Buffer.alloc(4096, 0xab);
  const latencies: number[] = [];
  const bar = progress('raw 4 KiB write+fdatasync', durationMs);
  const start = performance.now();
  let offset = 0;
  try {
    while (performance.now() - start < durationMs) {
      const t0 = performance.now();
      await fh.write(block, 0, block.length, offset);
      await fh.datasync();
      latencies.push(performance.now() - t0);
      offset += block.length;
      if (latencies.length % 100 === 0) bar.update(performance.now() - start);
    }
  } finally {
    bar.stop();
    await fh.close();
    await rm(file, { force: true });
  }
  const elapsed = performance.now() - start;
  return { perSecond: (latencies.length * 1000) / elapsed, latenciesMs: latencies.sort((a, b) => a - b) };
}

/** Sequential write of `bytes` in `ioBytes` pieces to a plain file, then fdatasync: MiB/s. */
export async function plainSequentialWrite(file: string, bytes: number, ioBytes: number): Promise<number> {
  const fh = await open(file, 'w');
  const block = Buffer.alloc(ioBytes, 0x5a);
  const bar = progress('plain file write', bytes);
  const start = performance.now();
  try {
    for (let at = 0; at < bytes; at += ioBytes) {
      await fh.write(block, 0, ioBytes, at);
      if ((at / ioBytes) % 64 === 0) bar.update(at);
    }
    await fh.datasync();
  } finally {
    bar.stop();
    await fh.close();
  }
  return bytes / (1024 * 1024) / ((performance.now() - start) / 1000);
}

/** Sequential read of a plain file in `ioBytes` pieces: MiB/s. */
export async function plainSequentialRead(file: string, bytes: number, ioBytes: number): Promise<number> {
  const fh = await open(file, 'r');
  const block = Buffer.alloc(ioBytes);
  const bar = progress('plain file read', bytes);
  const start = performance.now();
  try {
    for (let at = 0; at < bytes; at += ioBytes) {
      await fh.read(block, 0, ioBytes, at);
      if ((at / ioBytes) % 64 === 0) bar.update(at);
    }
  } finally {
    bar.stop();
    await fh.close();
  }
  return bytes / (1024 * 1024) / ((performance.now() - start) / 1000);
}
