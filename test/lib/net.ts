// What tests that start servers share: a free TCP port on loopback, and waiting for a condition.
import { createServer } from 'node:net';

/** A TCP port nobody listens on right now (tests bind their NIs on 127.0.0.0/8 to it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once cond() holds, checking every few milliseconds; rejects naming `what` after limitMs. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
