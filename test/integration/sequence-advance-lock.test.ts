import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  ADVANCE_SEQUENCE_SQL,
  advanceSequences,
} from '../../adapters/postgres/setup/sequence-sync.js';
import { holdInTransaction } from '../support/frozen-replica.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

const replica = () => {
  const [node] = clusters.replicas;
  if (!node) throw new Error('no replica started');
  return node;
};

const lastValue = async (sequence: string) => {
  const rows = await replica().query<{ v: string | null }>(
    'SELECT pg_sequence_last_value($1::regclass)::text AS v',
    [sequence],
  );
  return rows[0]?.v ?? null;
};

// Two copies at once (attach's and the sidecar's) must not interleave their compare and
// setval: the one holding an older read of the primary could move the replica backwards.
describe("a replica sequence's advance", () => {
  it('compares and sets under the sequence key: while another copy holds it, names the sequence and sets nothing', async () => {
    await replica().query('CREATE SEQUENCE public.ids');
    const copying = await holdInTransaction(
      replica(),
      `SELECT pg_advisory_xact_lock(hashtext('lockstep.sequence'), hashtext('public.ids'))`,
    );
    try {
      await expect(
        advanceSequences(replica().url, [{ schema: 'public', name: 'ids', lastValue: '40' }]),
      ).rejects.toThrow(/sequences locked on the replica .*: public\.ids/);
      expect(await lastValue('public.ids')).toBeNull();
    } finally {
      await copying.release();
    }
    expect(
      await advanceSequences(replica().url, [{ schema: 'public', name: 'ids', lastValue: '40' }]),
    ).toBe(1);
    expect(await lastValue('public.ids')).toBe('40');
  });

  it('ends at the highest value read, however copies sent at once from open sessions interleave', async () => {
    // Sessions opened first, so the statements meet on the server (fresh connections each
    // arrive one after another). The statement without the key ended lower within the first
    // 16 of these rounds in each of 3 runs.
    const sessions = await Promise.all(
      Array.from({ length: 24 }, async () => {
        const client = new pg.Client({ connectionString: replica().url });
        await client.connect();
        return client;
      }),
    );
    try {
      for (let round = 0; round < 100; round++) {
        const sequence = `raced_${round}`;
        await replica().query(`CREATE SEQUENCE public.${sequence}`);
        await Promise.all(
          sessions.map((client, i) =>
            client.query(ADVANCE_SEQUENCE_SQL, ['public', sequence, String(1000 + ((i * 7) % 24))]),
          ),
        );
        expect(await lastValue(`public.${sequence}`), sequence).toBe('1023');
      }
    } finally {
      await Promise.all(sessions.map((client) => client.end()));
    }
  });
});
