import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';

/** Rows of the one critical transaction: a large packet, streamed to the replicas in parts of 2,000. */
const ROWS = 24_000;
/**
 * Every fifth row sleeps 1 ms on a replica (pg_sleep waits whole ms): the
 * apply takes ROWS / 5 ms (4.8 s) at least, a part of 2,000 rows about 0.4 s.
 */
const SLOW_EVERY = 5;
const APPLY_TIMEOUT_MS = 2_000;

/** Slows inserts into `big` on `replica`, as a slow disk would: a trigger the apply fires too. */
async function slowDown(replica: PostgresCluster): Promise<void> {
  await replica.query(`
    CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id % ${SLOW_EVERY} = 0 THEN PERFORM pg_sleep(0.001); END IF; RETURN NEW; END $$;
    CREATE TRIGGER slow_rows BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION slow_row();
    ALTER TABLE big ENABLE ALWAYS TRIGGER slow_rows;`);
}

describe.each(transports)(
  'a two-phase round that applies longer than applyTimeoutMs (%s)',
  (transport) => {
    const replication = useReplication(transport, {
      replicas: 2,
      schema:
        'CREATE TABLE big (id int PRIMARY KEY, note text NOT NULL); CREATE TABLE noisy (id int PRIMARY KEY);',
      // The round's vote deadline, 1 s per 10,000 rows (3 s), is shorter than the apply too.
      config: {
        applyTimeoutMs: APPLY_TIMEOUT_MS,
        twoPhase: { tables: ['public.big'], voteTimeoutMs: 1_000 },
      },
    });

    it('commits at its first attempt on every replica: the replicas answer all along, none counts as unresponsive', async () => {
      const replicas = replication.replicas as [PostgresCluster, PostgresCluster];
      for (const replica of replicas) await slowDown(replica);
      replication.start();
      await replication.primary.query(
        `INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, ${ROWS}) g`,
      );
      await eventually(
        async () =>
          (await replicas[0].query('SELECT 1 FROM big')).length === ROWS &&
          (await replicas[1].query('SELECT 1 FROM big')).length === ROWS,
        'the round to commit on both replicas',
        90_000,
      );
      await replication.converged();
      await expectIdentical(replication.primary, replicas, ['big']);
      expect(await preparedGids([replication.primary, ...replicas])).toEqual([]);
      const appliers = replicas.map((r) => replication.applier(r.name));
      const unresponsive = appliers.flatMap((p) =>
        p.logLines().filter((l) => l.state === 'unresponsive'),
      );
      expect(unresponsive).toEqual([]);
      // The replicas answered the round's apply all along: its first attempt waited for them.
      expect(replication.coordinator.events('round-aborted')).toEqual([]);
    });

    it('takes a replica that only sends NOTICEs while its statement never ends for one that does not answer', async () => {
      const replica = replication.replicas[0] as PostgresCluster;
      // A trigger stuck in a loop that talks: the server sends a NOTICE every 100 ms, never an answer.
      const trigger = (body: string) =>
        replica.query(`
          CREATE OR REPLACE FUNCTION noisy_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN ${body} RETURN NEW; END $$;`);
      await trigger(`LOOP RAISE NOTICE 'still here'; PERFORM pg_sleep(0.1); END LOOP;`);
      await replica.query(`
        CREATE TRIGGER noisy_rows BEFORE INSERT ON noisy FOR EACH ROW EXECUTE FUNCTION noisy_row();
        ALTER TABLE noisy ENABLE ALWAYS TRIGGER noisy_rows;`);
      replication.start();
      await replication.primary.query('INSERT INTO noisy VALUES (1)');
      const applier = replication.applier(replica.name);
      await eventually(
        async () =>
          applier.logLines().some((l) => l.state === 'unresponsive' && l.replica === replica.name),
        `${replica.name} counted unresponsive while it only sends NOTICEs`,
      );
      await trigger('');
      await replication.converged();
      await expectIdentical(replication.primary, replication.replicas, ['noisy']);
    });
  },
);
