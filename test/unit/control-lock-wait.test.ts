import { describe, expect, it } from 'vitest';
import { controlLockWaitMs } from '../../adapters/postgres/connection/session-bounds.js';

describe('controlLockWaitMs', () => {
  it('ends a control session lock wait at 20 s, or before the client deadline when that is shorter', () => {
    expect(controlLockWaitMs(30_000)).toBe(20_000);
    expect(controlLockWaitMs(120_000)).toBe(20_000);
    expect(controlLockWaitMs(3_000)).toBe(2_700);
    expect(controlLockWaitMs(1_000)).toBe(900);
    expect(controlLockWaitMs(1)).toBe(1);
  });
});
