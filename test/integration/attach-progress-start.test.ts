import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../plugin/support/sleep.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { twoReplicas, useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

/** `gate` takes a shared advisory lock per row checked: holding it stops a replica's COPY. */
const SCHEMA = `
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4343); RETURN true; END $$;
  CREATE TABLE slow (id int PRIMARY KEY, body text NOT NULL, CONSTRAINT slow_gate CHECK (gate(id)));
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

/** How long the test holds the gate once the copy waits on it. */
const HELD_MS = 1_500;

describe("attach's progress times a table from the start of its copy", () => {
  it('reports the time a copy of fewer rows than a progress step took', async () => {
    const { primary } = clusters;
    const [r1, r2] = twoReplicas(clusters.replicas);
    for (const node of [primary, r1, r2]) await node.query(SCHEMA);
    await primary.query(
      `INSERT INTO slow SELECT g, repeat('w', 1000) FROM generate_series(1, 3) g`,
    );
    const config = writeConfig(primary, clusters.replicas);
    const holder = new pg.Client({ connectionString: r1.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock(4343)');
      const attach = new LockstepProcess(['attach', '--config', config.file]);
      await eventually(
        async () =>
          (
            await r1.query(
              `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                WHERE a.application_name = 'lockstep-copy' AND l.locktype = 'advisory'
                  AND NOT l.granted`,
            )
          ).length > 0,
        "replica1's copy of slow waiting on the gate",
      );
      await sleep(HELD_MS);
      await holder.query('SELECT pg_advisory_unlock(4343)');
      expect(await attach.closed, attach.output).toBe(0);
      const line = /✓ replica1: public\.slow {2}3 rows {2}[\d.]+ MB in ([\d.]+) s/.exec(
        attach.output,
      );
      expect(line, attach.output).not.toBeNull();
      // The copy began before the wait the test held: it cannot have taken less.
      expect(Number(line?.[1])).toBeGreaterThanOrEqual(HELD_MS / 1000 - 0.05);
    } finally {
      await holder.end();
      config.remove();
    }
  });
});
