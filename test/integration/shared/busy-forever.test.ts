import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  rowCount,
} from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';

const APPLY_TIMEOUT_MS = 2_500;
const WINDOW_CHANGES = 100;
/** Transactions of rows written while one replica is busy: together five windows' worth. */
const WRITES = 10;
const ROWS_PER_WRITE = 50;

/** A trigger body that never ends and never waits: CPU between NOTICEs, as a wedged loop. */
const SPIN = `LOOP RAISE NOTICE 'still here'; PERFORM count(*) FROM generate_series(1, 200000); END LOOP;`;

describe.each(transports)('a replica whose apply statement is busy for ever (%s)', (transport) => {
  const replication = useReplication(transport, {
    replicas: 2,
    schema: `CREATE TABLE noisy (id int PRIMARY KEY); CREATE TABLE plain (id int PRIMARY KEY);
      CREATE TABLE crit (id int PRIMARY KEY);`,
    config: {
      applyTimeoutMs: APPLY_TIMEOUT_MS,
      windowChanges: WINDOW_CHANGES,
      batch: { maxRows: ROWS_PER_WRITE },
      twoPhase: { tables: ['public.crit'], voteTimeoutMs: 3 * APPLY_TIMEOUT_MS },
    },
  });

  /** Makes `table`'s rows on the busy replica run `body` (a trigger that fires under replication). */
  const trigger = async (replica: PostgresCluster, table: string, body: string) => {
    await replica.query(`
      CREATE OR REPLACE FUNCTION ${table}_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN ${body} RETURN NEW; END $$;`);
    if (body)
      await replica.query(`
        CREATE TRIGGER ${table}_rows BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_row();
        ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${table}_rows;`);
  };

  /** Ends the loop: a body that returns at once, and the statement running the old one cancelled. */
  const release = async (replica: PostgresCluster, table: string) => {
    await trigger(replica, table, '');
    await replica.query(
      `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lockstep-apply-%'`,
    );
  };

  const unresponsive = (name: string) =>
    replication.applier(name).events('replica-stopped', { state: 'unresponsive' });
  const busy = (name: string) => replication.applier(name).events('replica-busy');

  it('does not hold the other replica back, and is logged busy, not dropped', async () => {
    const [spinning, other] = replication.replicas as [PostgresCluster, PostgresCluster];
    await trigger(spinning, 'noisy', SPIN);
    replication.start();
    await replication.converged();
    await replication.primary.query('INSERT INTO noisy VALUES (1)');
    try {
      await eventually(
        async () => busy(spinning.name).length > 0 || unresponsive(spinning.name).length > 0,
        `${spinning.name} found busy, or counted unresponsive`,
      );
      // Five windows of new writes: a replica pinning the window would stall the other at one.
      for (let i = 0; i < WRITES; i++)
        await replication.primary.query(
          `INSERT INTO plain SELECT g FROM generate_series(${i * ROWS_PER_WRITE + 1}, ${(i + 1) * ROWS_PER_WRITE}) g`,
        );
      await eventually(
        async () => (await rowCount(other, 'plain')) === WRITES * ROWS_PER_WRITE,
        `every new row on ${other.name} while ${spinning.name} is busy`,
        60_000,
      );
      expect(unresponsive(spinning.name)).toEqual([]);
      expect(busy(spinning.name)[0]).toMatchObject({
        node: spinning.name,
        version: expect.any(Number),
        busyMs: expect.any(Number),
      });
    } finally {
      await release(spinning, 'noisy');
    }
    await replication.converged();
    await expectIdentical(replication.primary, replication.replicas, ['noisy', 'plain']);
  });

  it('aborts a round at its vote deadline, leaving nothing prepared, and commits it once the loop ends', async () => {
    const [spinning] = replication.replicas as [PostgresCluster, PostgresCluster];
    await trigger(spinning, 'crit', SPIN);
    replication.start();
    await replication.converged();
    await replication.primary.query('INSERT INTO crit VALUES (1)');
    try {
      // The round's statement_timeout (voteTimeoutMs) ends the statement, not the apply deadline.
      await eventually(
        async () => replication.coordinator.events('round-aborted').length > 0,
        'the round aborted at its vote deadline',
        30_000,
      );
      expect(unresponsive(spinning.name)).toEqual([]);
      expect(busy(spinning.name).length).toBeGreaterThan(0);
    } finally {
      await release(spinning, 'crit');
    }
    await replication.converged();
    await expectIdentical(replication.primary, replication.replicas, ['crit']);
    expect(await preparedGids([replication.primary, ...replication.replicas])).toEqual([]);
  });
});
