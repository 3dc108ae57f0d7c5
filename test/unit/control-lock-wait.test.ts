import { describe, expect, it } from 'vitest';
import {
  controlLockWaitMs,
  lockWaitUnderMs,
} from '../../adapters/postgres/connection/session-bounds.js';

describe('controlLockWaitMs', () => {
  it('ends a control session lock wait at 20 s, or before the client deadline when that is shorter', () => {
    expect(controlLockWaitMs(30_000)).toBe(20_000);
    expect(controlLockWaitMs(120_000)).toBe(20_000);
    expect(controlLockWaitMs(5_000)).toBe(4_000);
    expect(controlLockWaitMs(3_000)).toBe(2_000);
    expect(controlLockWaitMs(1_000)).toBe(500);
    expect(controlLockWaitMs(1)).toBe(1);
  });
});

describe('lockWaitUnderMs', () => {
  it('leaves 1 s or 10 % of the deadline, whichever is more, and at most half of it', () => {
    expect(lockWaitUnderMs(60_000)).toBe(54_000);
    expect(lockWaitUnderMs(10_000)).toBe(9_000);
    expect(lockWaitUnderMs(8_000)).toBe(7_000);
    expect(lockWaitUnderMs(1_500)).toBe(750);
    expect(lockWaitUnderMs(2)).toBe(1);
  });
});
