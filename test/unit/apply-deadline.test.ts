import { describe, expect, it, vi } from 'vitest';
import { ApplyError } from '../../plugin/ports/apply-error.js';
import { withinDeadline } from '../../plugin/replica/apply-deadline.js';
import type { ReplicaTarget } from '../../plugin/replica/replica-target.js';
import { useFakeTimers } from '../support/fake-timers.js';

const TIMEOUT_MS = 2_000;

/** A target whose replica answered `answers` statements so far; `aborted` once the deadline dropped it. */
function target(withHeard = true) {
  const state = { answers: 0, aborted: false };
  const t = {
    node: 'r1',
    ignoredMissingRows: 0,
    abort: () => {
      state.aborted = true;
    },
    ...(withHeard ? { heard: () => state.answers } : {}),
  } as unknown as ReplicaTarget;
  return { t, state };
}

/** Work that settles only when told. */
function pending() {
  let resolve: () => void = () => undefined;
  const work = new Promise<void>((r) => {
    resolve = r;
  });
  return { work, resolve };
}

describe('the apply deadline', () => {
  useFakeTimers();

  it('lets a step run ten deadlines long while the replica keeps answering', async () => {
    const { t, state } = target();
    const { work, resolve } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2);
      state.answers += 100;
    }
    resolve();
    await expect(step).resolves.toBeUndefined();
    expect(state.aborted).toBe(false);
  });

  it('drops a replica silent for the deadline, even after it answered for long', async () => {
    const { t, state } = target();
    const { work } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    const failed = expect(step).rejects.toSatisfy(
      (e) => e instanceof ApplyError && e.kind === 'unresponsive' && e.version === 7,
    );
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(TIMEOUT_MS / 2);
      state.answers += 100;
    }
    expect(state.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS + TIMEOUT_MS / 4);
    await failed;
    expect(state.aborted).toBe(true);
  });

  it('bounds a step as a whole for a target that cannot tell its answers', async () => {
    const { t, state } = target(false);
    const { work } = pending();
    const step = withinDeadline(t, 'r1', TIMEOUT_MS, work, 7);
    const failed = expect(step).rejects.toBeInstanceOf(ApplyError);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    await failed;
    expect(state.aborted).toBe(true);
  });
});
