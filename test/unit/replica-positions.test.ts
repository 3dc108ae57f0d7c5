import { describe, expect, it } from 'vitest';
import { type Queryable, waitForPositions } from '../../plugin/client/replica-positions.js';

/** A replica that answers at version 7 (lsn 0/70). */
const answering: Queryable = {
  query: async () => ({ rows: [{ version: '7', lsn: '0/70' }] }),
};

/** A replica whose server stopped answering (frozen): its reads never settle. */
const frozen: Queryable = { query: () => new Promise(() => undefined) };

describe('waitForPositions', () => {
  it('ends at its timeout with a replica that never answers, reported behind', async () => {
    const result = await waitForPositions(
      [
        { name: 'replica1', db: frozen },
        { name: 'replica2', db: answering },
      ],
      { version: 7 },
      { timeoutMs: 50, stream: 'lockstep' },
    );
    expect(result).toEqual({
      reached: false,
      replicas: [
        { name: 'replica1', version: null, lsn: null, reached: false },
        { name: 'replica2', version: 7, lsn: '0/70', reached: true },
      ],
    });
  });

  it('ends at its timeout when the nudge (the primary barrier) never answers', async () => {
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
    });
  });
});
