import { describe, expect, it } from 'vitest';
import { formatStepFields } from '../../plugin/cli/attach-progress-view.js';

describe('formatStepFields', () => {
  it('writes each field as key=value, lists joined, values with spaces quoted', () => {
    expect(formatStepFields(undefined)).toBe('');
    expect(formatStepFields({ replica: 'replica1', version: 12 })).toBe(
      ' replica=replica1 version=12',
    );
    expect(formatStepFields({ replicas: ['r1'], fix: 'run "it" again' })).toBe(
      ' replicas=r1 fix="run \\"it\\" again"',
    );
    expect(formatStepFields({ replicas: ['r1', 'r2'] })).toBe(' replicas="r1, r2"');
  });
});
