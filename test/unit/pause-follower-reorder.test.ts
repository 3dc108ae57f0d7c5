import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PauseFollower } from '../../plugin/sidecar/pause-follower.js';

// Reads of the flag go to a pool: two overlapping reads may answer out of order.
describe('PauseFollower with overlapping reads', () => {
  it('ends with the flag as last read on the primary, whatever order the answers come in', async () => {
    const answers: Array<(since: Date | null) => void> = [];
    const pause = new PauseFollower({
      read: () => new Promise((resolve) => answers.push(resolve)),
      signal: { listen: async () => undefined, close: async () => undefined },
      log: pino({ level: 'silent' }),
      changed: () => undefined,
    });
    const paused = new Date('2026-01-01T00:00:00Z');
    // Paused (known), then: resume notified (read 1 starts), pause notified (read 2 starts).
    const first = pause.follow();
    answers[0]?.(paused);
    await first;
    const resumeRead = pause.follow();
    const pauseRead = pause.follow();
    // The later read (taken after the second pause committed) answers first: paused, no change.
    answers[2]?.(paused);
    await pauseRead;
    // `lockstep pause` sees the slot unstreamed and returns 0 here. Then the stale read answers.
    answers[1]?.(null);
    await resumeRead;
    expect(pause.since).toEqual(paused);
  });
});
