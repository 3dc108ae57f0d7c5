import { describe, expect, it } from 'vitest';
import { advanceSequences } from '../../adapters/postgres/setup/sequence-sync.js';
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

  it('ends at the highest value read when many copies race, each retried as the next period would', async () => {
    await replica().query('CREATE SEQUENCE public.raced');
    const values = Array.from({ length: 24 }, (_, i) => String(1000 + ((i * 7) % 24)));
    const copy = async (lastValue: string): Promise<void> => {
      try {
        await advanceSequences(replica().url, [{ schema: 'public', name: 'raced', lastValue }]);
      } catch (error) {
        // Only the key held by another copy may stop one; it goes again.
        expect((error as Error).message).toMatch(/another lockstep process/);
        await copy(lastValue);
      }
    };
    await Promise.all(values.map(copy));
    expect(await lastValue('public.raced')).toBe('1023');
  });
});
