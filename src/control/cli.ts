// What every command-line utility shares: how it reports an expected failure (one line naming
// what is wrong, a non-zero exit) versus a bug (the stack).
import { Command } from 'commander';

/** A failure the user caused or can act on: printed as one line, exit code `exitCode`. */
export class UsageError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UsageError';
  }
}

function isExpected(err: unknown): err is Error & { code?: string } {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown })?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/** Runs a commander program, turning expected errors into `NAME: message` and exit 1. */
export async function runCli(program: Command, argv = process.argv): Promise<void> {
  program.exitOverride((err) => { process.exit(err.exitCode); });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (isExpected(err)) {
      process.stderr.write(`${program.name()}: ${err.message}\n`);
      process.exit(err instanceof UsageError ? err.exitCode : 1);
    }
    throw err;
  }
}

/** Parses a non-negative integer option or argument, naming it when it is not one. */
export function parseCount(name: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a non-negative integer, not '${value}'`, 2);
    return Number(value);
  };
}
