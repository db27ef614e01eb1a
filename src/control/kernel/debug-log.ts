// The kernel's log: pino, written to RUNDIR/kernel.log and kept in a bounded ring in memory that
// `lctl dk` dumps (and clears), as Lustre's debug buffer is read with `lctl debug_kernel`.
import { Writable } from 'node:stream';
import pino, { type Logger, type LevelWithSilent } from 'pino';

/** Lines kept for `lctl dk`, and their bytes: whichever bound is reached first drops the oldest. */
export const DEBUG_RING_LINES = 20_000;
export const DEBUG_RING_BYTES = 8 << 20;
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class DebugRing extends Writable {
  #lines: string[] = [];
  #bytes = 0;
  dropped = 0;

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    for (const line of String(chunk).split('\n')) {
      if (line.length === 0) continue;
      this.#lines.push(line);
      this.#bytes += line.length;
    }
    while (this.#lines.length > DEBUG_RING_LINES || this.#bytes > DEBUG_RING_BYTES) {
      this.#bytes -= this.#lines.shift()!.length;
      this.dropped++;
    }
    done();
  }

  /** The buffered lines as text, one per line: "time level [svname] message". */
  dump(clear: boolean): string {
    const text = this.#lines.map(formatLine).join('');
    if (clear) {
      this.#lines = [];
      this.#bytes = 0;
    }
    return text;
  }
}

function formatLine(json: string): string {
  try {
    const r = JSON.parse(json) as { time?: number; level?: number; svname?: string; msg?: string; [k: string]: unknown };
    const level = pino.levels.labels[r.level ?? 30] ?? String(r.level);
    const time = new Date(r.time ?? 0).toISOString();
    return `${time} ${level.padEnd(5)} ${r.svname ? `${r.svname}: ` : ''}${r.msg ?? ''}\n`;
  } catch {
    return json + '\n';
  }
}

export interface KernelLog {
  logger: Logger;
  ring: DebugRing;
  close(): Promise<void>;
}

/** A logger to `file` (appended, created 0600) and to the ring. */
export function openKernelLog(file: string, level: LevelWithSilent): KernelLog {
  const ring = new DebugRing();
  const dest = pino.destination({ dest: file, sync: false, mkdir: true, mode: 0o600 });
  const logger = pino({ level, base: { pid: process.pid } }, pino.multistream([
    { stream: dest, level: 'trace' },
    { stream: ring, level: 'trace' },
  ]));
  return {
    logger, ring,
    close: () => new Promise<void>((resolve) => {
      dest.end();
      dest.once('close', () => resolve());
      dest.once('error', () => resolve());
    }),
  };
}
