// OutcomeError and withoutStackTraces (src/log/errors.ts): the errors every layer makes for
// expected outcomes carry no stack trace, failures keep theirs, and Error.stackTraceLimit is
// always what it was before, even when the code run without traces throws.
import t from 'tap';
import { OutcomeError, withoutStackTraces } from '../../src/log/index.js';
import { OsdError } from '../../src/osd/index.js';
import { PtlrpcError } from '../../src/ptlrpc/index.js';
import { MdcError } from '../../src/client/mdc.js';

const frames = (err: Error): number => (err.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at ')).length;

t.test('an outcome has no stack trace, a failure has one, and the limit is left as it was', async (t) => {
  const limit = Error.stackTraceLimit;
  const outcome = new OutcomeError('no such name', true);
  t.equal(frames(outcome), 0, 'outcome: no frames');
  t.equal(outcome.message, 'no such name');
  t.ok(outcome instanceof Error);
  t.ok(frames(new OutcomeError('a real failure', false)) > 0, 'failure: frames');
  t.equal(Error.stackTraceLimit, limit);
});

t.test("each layer's errors: outcomes without a trace, failures with one", async (t) => {
  t.equal(frames(new OsdError('ENOENT', 'no object')), 0, 'OSD ENOENT');
  t.equal(frames(new OsdError('ENODATA', 'no xattr')), 0, 'OSD ENODATA');
  t.ok(frames(new OsdError('ENOSPC', 'full')) > 0, 'OSD ENOSPC keeps its trace');
  t.equal(frames(new PtlrpcError('ENOENT', 'the server said so', -2)), 0, "a server's status");
  t.ok(frames(new PtlrpcError('ETIMEDOUT', 'no reply')) > 0, 'a local failure keeps its trace');
  t.equal(frames(new MdcError('ENOENT', 'the MDT said so', -2)), 0, "the MDT's answer");
  t.ok(frames(new MdcError('EPROTO', 'a reply not understood')) > 0);
  const e = new OsdError('EEXIST', 'there already');
  t.equal(e.code, 'EEXIST');
  t.equal(e.name, 'OsdError');
});

t.test('withoutStackTraces: no traces inside, the limit restored after a return and after a throw', async (t) => {
  const limit = Error.stackTraceLimit;
  const inside = withoutStackTraces(() => {
    try {
      throw new Error('EAGAIN');
    } catch (err) {
      return err as Error;
    }
  });
  t.equal(frames(inside), 0);
  t.equal(Error.stackTraceLimit, limit);
  t.throws(() => withoutStackTraces(() => { throw new Error('escapes'); }), /escapes/);
  t.equal(Error.stackTraceLimit, limit, 'restored after a throw');
  t.ok(frames(new Error('after')) > 0, 'traces again after it');
});
