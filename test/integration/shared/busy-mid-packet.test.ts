import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, rowCount } from '../../support/compare-nodes.js';
import { useReplication } from '../../support/lockstep-transport.js';

const APPLY_TIMEOUT_MS = 2_500;
/** 25 parts of 2 000 changes (the primary's part size), more than the 20 000 rows an apply keeps in flight. */
const ROWS = 50_000;

/** Busy (CPU, no wait) for 8 s on the first row only: a long statement in the packet's first part. */
const SPIN_ON_FIRST = `IF NEW.id = 1 THEN
  DECLARE t0 timestamptz := clock_timestamp(); BEGIN
    WHILE clock_timestamp() < t0 + interval '8 s' LOOP PERFORM count(*) FROM generate_series(1, 20000); END LOOP;
  END; END IF;`;

describe('a replica busy in the middle of a large one-phase packet (inProcess)', () => {
  const replication = useReplication('inProcess', {
    replicas: 2,
    schema: 'CREATE TABLE big (id int PRIMARY KEY); CREATE TABLE plain (id int PRIMARY KEY);',
    config: { applyTimeoutMs: APPLY_TIMEOUT_MS },
  });

  it('lands the packet while the primary keeps writing', async () => {
    const [slow, other] = replication.replicas as [PostgresCluster, PostgresCluster];
    await slow.query(`CREATE FUNCTION big_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN ${SPIN_ON_FIRST} RETURN NEW; END $$;
      CREATE TRIGGER big_rows BEFORE INSERT ON big FOR EACH ROW EXECUTE FUNCTION big_row();
      ALTER TABLE big ENABLE ALWAYS TRIGGER big_rows;`);
    replication.start();
    await replication.converged();
    await replication.primary.query(`INSERT INTO big SELECT g FROM generate_series(1, ${ROWS}) g`);
    await eventually(async () => (await rowCount(other, 'big')) === ROWS, 'rows on the other');
    // A primary under steady load: each part pushed lets the window drop the large
    // packet's parts the busy replica (which let go of its cursor) has yet to read.
    let writing = true;
    const writer = (async () => {
      for (let i = 1; writing; i++) {
        await replication.primary.query(`INSERT INTO plain VALUES (${i})`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      // One 8 s statement: slow, not silent, it should land well within 60 s.
      await eventually(
        async () => (await rowCount(slow, 'big')) === ROWS,
        `every row on ${slow.name}`,
        60_000,
      );
    } finally {
      writing = false;
      await writer;
    }
    expect(
      replication.applier(slow.name).events('replica-stopped', { state: 'unresponsive' }),
    ).toEqual([]);
    await replication.converged();
    await expectIdentical(replication.primary, replication.replicas, ['big', 'plain']);
  });
});
