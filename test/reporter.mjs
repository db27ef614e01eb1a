// A tap reporter: passes the TAP stream through unchanged and ends with the plain line
// "N passed, N failed", counted from tap's own final summary.
import { Transform } from 'node:stream';

export default class PlainSummary extends Transform {
  #tail = '';
  _transform(chunk, _encoding, done) {
    const text = chunk.toString();
    this.#tail = (this.#tail + text).slice(-4096);
    done(null, chunk);
  }
  _flush(done) {
    // tap ends its stream with "# { total: N, pass: N, fail: N, ... }" when not on a terminal:
    // the last such line (a test's comments may hold other braces, a server's JSON log line).
    const summary = [...this.#tail.matchAll(/^#\s*\{[^\n]*\btotal:[^\n]*\}\s*$/gm)].pop()?.[0] ?? '';
    const num = (key) => Number((new RegExp(`${key}:\\s*(\\d+)`).exec(summary) ?? [])[1] ?? 0);
    const pass = num('pass');
    const fail = num('fail');
    done(null, `\n${pass} passed, ${fail} failed\n`);
  }
}
