import { describe, expect, it } from 'vitest';
import { isUnanswered, nodeStepError } from '../../plugin/attach/node-step.js';
import { ExitCode, exitCodeFor } from '../../plugin/cli/exit-codes.js';

const step = (error: unknown) =>
  nodeStepError(
    'primary',
    'reading the sequence values',
    'within its control deadline',
    error,
    'run lockstep attach again',
  );

describe('a step on a node that did not answer', () => {
  it("counts pg's connect timeout as not answering: named, unreachable (exit 3)", () => {
    const error = step(new Error('timeout expired'));
    expect(error.problem).toBe(
      'reading the sequence values failed: the primary did not answer within its control deadline',
    );
    expect(exitCodeFor(error)).toBe(ExitCode.unreachable);
  });

  it('counts a query past its deadline as not answering', () => {
    expect(isUnanswered(new Error('Query read timeout'))).toBe(true);
  });

  it('leaves other failures, and texts merely containing the words, as they are', () => {
    expect(isUnanswered(new Error('relation "t" does not exist'))).toBe(false);
    expect(isUnanswered(new Error('statement timeout expired early'))).toBe(false);
    expect(step(new Error('permission denied')).problem).toBe(
      'reading the sequence values failed: permission denied',
    );
  });
});
