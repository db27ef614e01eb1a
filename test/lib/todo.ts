// Subtests that wait on work not done yet are marked todo, and tap then does not run them at all.
// LUSTRE_TEST_TODO=1 runs them as ordinary subtests, to see how far the code has come (and that
// such a test fails for the reason it names, not for a mistake of its own).

/** Options for t.test: `{ todo: reason }`, or nothing when LUSTRE_TEST_TODO=1 asks to run todo subtests. */
export function todoUnlessAsked(reason: string): { todo?: string } {
  return process.env.LUSTRE_TEST_TODO === '1' ? {} : { todo: reason };
}
