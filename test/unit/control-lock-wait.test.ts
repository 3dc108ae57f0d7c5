import { describe, expect, it } from 'vitest';
import {
  controlLockWaitMs,
  lockWaitUnderMs,
} from '../../adapters/postgres/connection/session-bounds.js';

describe('controlLockWaitMs', () => {
  it.each([
    [30_000, 20_000],
    [120_000, 20_000],
    [5_000, 4_000],
    [3_000, 2_000],
    [1_000, 500],
    [1, 1],
  ])(
    'ends a control session lock wait at 20 s, or before a client deadline of %i ms: %i',
    (deadline, wait) => {
      expect(controlLockWaitMs(deadline)).toBe(wait);
    },
  );
});

describe('lockWaitUnderMs', () => {
  it.each([
    [60_000, 54_000],
    [10_000, 9_000],
    [8_000, 7_000],
    [1_500, 750],
    [2, 1],
  ])(
    'leaves 1 s or 10 % of a %i ms deadline, whichever is more, at most half: %i',
    (deadline, wait) => {
      expect(lockWaitUnderMs(deadline)).toBe(wait);
    },
  );
});
