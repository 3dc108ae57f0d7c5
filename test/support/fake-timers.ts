import { afterEach, beforeEach, vi } from 'vitest';

/** Fake timers for every test of the enclosing `describe` (real ones again after each). */
export function useFakeTimers(): void {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}
