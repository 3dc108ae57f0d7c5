import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { holdInTransaction } from '../support/frozen-replica.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

const slots = async () =>
  (
    await clusters.primary.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots',
    )
  ).map((r) => r.slot_name);

// Creating the slot waits for the primary's running transactions. An operator who gives up
// (Ctrl-C, a deploy's timeout) must not leave a slot made after attach ended: nothing would
// ever consume it, and the primary would keep its WAL for ever.
describe('attach stopped while creating the slot waits for a transaction', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s leaves no slot once the transaction ends',
    async (signal) => {
      const { primary, replicas } = clusters;
      await Promise.all(
        [primary, ...replicas].map((n) =>
          n.query('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)'),
        ),
      );
      const config = writeConfig(primary, replicas);
      const blocker = await holdInTransaction(primary, 'INSERT INTO t VALUES (1)');
      const attach = new LockstepProcess(['attach', '--config', config.file]);
      try {
        await eventually(
          async () => /creating the slot waits for running transactions/.test(attach.output),
          'attach waiting for the transaction',
        );
        attach.kill(signal);
        await attach.closed;
        await blocker.release();
        // A walsender that outlived its client would make the slot now: wait until none is left.
        await eventually(
          async () =>
            (await primary.query(`SELECT 1 FROM pg_stat_activity WHERE backend_type = 'walsender'`))
              .length === 0,
          'no walsender left',
        );
        expect(await slots(), attach.output).toEqual([]);
      } finally {
        attach.kill('SIGKILL');
        await blocker.release();
        config.remove();
      }
    },
  );
});
