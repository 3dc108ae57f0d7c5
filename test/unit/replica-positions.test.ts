import { describe, expect, it } from 'vitest';
import { type Queryable, waitForPositions } from '../../plugin/client/replica-positions.js';

/** A replica that answers at version 7 (lsn 0/70). */
const answering: Queryable = {
  query: async () => ({ rows: [{ version: '7', lsn: '0/70' }] }),
};

/** A replica whose server stopped answering (frozen): its reads never settle. */
const frozen: Queryable = { query: () => new Promise(() => undefined) };

/** A replica whose reads answer after `ms`, at the versions given in turn (the last one from then on). */
function slow(ms: number, ...versions: number[]): Queryable {
  let reads = 0;
  return {
    query: async () => {
      const version = versions[Math.min(reads++, versions.length - 1)] as number;
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { rows: [{ version: String(version), lsn: `0/${version}0` }] };
    },
  };
}

describe('waitForPositions', () => {
  it('ends past its timeout and final read with a replica that never answers, reported unanswered', async () => {
    const result = await waitForPositions(
      [
        { name: 'replica1', db: frozen },
        { name: 'replica2', db: answering },
      ],
      { version: 7 },
      { timeoutMs: 50, stream: 'lockstep', finalReadMs: 50 },
    );
    expect(result).toEqual({
      reached: false,
      replicas: [
        { name: 'replica1', version: null, lsn: null, reached: false },
        { name: 'replica2', version: 7, lsn: '0/70', reached: true },
      ],
      unanswered: ['replica1'],
    });
  });

  it('ends past its timeout when the nudge (the primary barrier) never answers, after a final read', async () => {
    const result = await waitForPositions(
      [{ name: 'replica2', db: answering }],
      { version: 8 },
      {
        timeoutMs: 50,
        stream: 'lockstep',
        nudge: () => new Promise(() => undefined),
      },
    );
    expect(result).toEqual({
      reached: false,
      replicas: [{ name: 'replica2', version: 7, lsn: '0/70', reached: false }],
      unanswered: [],
    });
  });

  it('a timeout shorter than a round trip still reads a caught-up replica: reached, not behind', async () => {
    const result = await waitForPositions(
      [{ name: 'replica1', db: slow(20, 7) }],
      { version: 7 },
      { timeoutMs: 0, stream: 'lockstep' },
    );
    expect(result).toEqual({
      reached: true,
      replicas: [{ name: 'replica1', version: 7, lsn: '0/70', reached: true }],
      unanswered: [],
    });
  });

  it('a read running at the deadline may still answer: the replica is not called behind at an older position', async () => {
    // First read at version 6 at once; the next one starts before the 100 ms timeout, ends past it and says 7.
    let reads = 0;
    const catchingUp: Queryable = {
      query: async (...args) => {
        if (reads++ === 0) return { rows: [{ version: '6', lsn: '0/60' }] };
        return slow(200, 7).query(...args);
      },
    };
    const result = await waitForPositions(
      [{ name: 'replica1', db: catchingUp }],
      { version: 7 },
      { timeoutMs: 100, stream: 'lockstep' },
    );
    expect(result).toMatchObject({ reached: true, replicas: [{ version: 7, reached: true }] });
    expect(reads).toBe(2);
  });

  it('a timeout beyond the longest timer (about 24.8 days) still waits for a read to answer', async () => {
    const result = await waitForPositions(
      [{ name: 'replica1', db: slow(20, 7) }],
      { version: 7 },
      { timeoutMs: 3_000_000_000, stream: 'lockstep' },
    );
    expect(result).toMatchObject({ reached: true, unanswered: [] });
  });
});
