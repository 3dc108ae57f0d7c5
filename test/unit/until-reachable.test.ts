import { describe, expect, it, vi } from 'vitest';
import { untilReachable } from '../../plugin/support/until-reachable.js';
import { capturedLog } from '../support/fake-round-world.js';
import { useFakeTimers } from '../support/fake-timers.js';

const WAITING = {
  node: 'primary',
  event: 'primary-unreachable',
  message: 'cannot reach the primary',
};

/** A step that fails with each of `errors` in turn, then answers 'ready'. */
function failing(errors: Error[]): () => Promise<string> {
  return async () => {
    const error = errors.shift();
    if (error) throw error;
    return 'ready';
  };
}

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('untilReachable', () => {
  useFakeTimers();

  it('waits out a node restarting, refusing, or frozen under a query, logging each wait', async () => {
    const { log, lines } = capturedLog();
    const reached = untilReachable(
      failing([
        withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
        withCode('the database system is starting up', '57P03'),
        withCode('terminating connection due to administrator command', '57P01'),
        new Error('Connection terminated unexpectedly'),
        new Error('Query read timeout'),
      ]),
      WAITING,
      log,
    );
    await vi.advanceTimersByTimeAsync(60_000);
    expect(await reached).toBe('ready');
    // One wait per failure, backing off.
    const waits = lines
      .filter((l) => l.event === 'primary-unreachable')
      .map((l) => Number(l.retryMs));
    expect(waits).toHaveLength(5);
    expect(waits).toEqual([...waits].sort((a, b) => a - b));
    expect(waits.at(-1)).toBeGreaterThan(waits[0] ?? 0);
  });

  it('throws what waiting cannot cure, at once', async () => {
    const { log, lines } = capturedLog();
    const reached = untilReachable(
      failing([withCode('permission denied for schema lockstep', '42501')]),
      WAITING,
      log,
    );
    await expect(reached).rejects.toThrow(/permission denied/);
    expect(lines).toEqual([]);
  });
});
