import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  withSidecar,
  writeConfig,
} from '../support/lockstep-process.js';
import { copySessionsGone, definitionsOf, recordedCopies } from '../support/table-definitions.js';
import { twoReplicas, useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });
const TABLES = ['parent', 'child', 'marker'];

/**
 * Every kind of index and constraint a load drops and rebuilds, or keeps.
 * `gate` takes a shared advisory lock for each row checked: a test holding
 * that lock stops a replica's COPY after the drop, before the rebuild.
 */
const SCHEMA = `
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN true; END $$;
  CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL,
    CONSTRAINT parent_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED);
  CREATE TABLE child (id bigint PRIMARY KEY, parent_id int NOT NULL, qty int NOT NULL,
    note text, during int4range,
    CONSTRAINT child_qty_check CHECK (qty >= 0 AND gate(qty)),
    CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id)
      ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT child_during_excl EXCLUDE USING gist (during WITH &&));
  CREATE INDEX child_lower_note ON child (lower(note));
  CREATE INDEX child_big_qty ON child (qty) WHERE qty > 90;
  CREATE UNIQUE INDEX child_note_key ON child (note) WHERE note IS NOT NULL;
  COMMENT ON INDEX child_lower_note IS 'by lowered note';
  COMMENT ON CONSTRAINT parent_code_key ON parent IS 'codes are unique';
  ALTER TABLE child CLUSTER ON child_lower_note;
  CREATE TABLE marker (id bigserial PRIMARY KEY);`;

/** lockstep-copy sessions on a node waiting for the test's advisory lock. */
const waitingCopies = async (node: (typeof clusters.replicas)[number]) =>
  node.query(
    `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE a.application_name = 'lockstep-copy' AND l.locktype = 'advisory' AND NOT l.granted`,
  );

describe('attach loads without secondary indexes, from one read per table', () => {
  it('rebuilds every definition exactly, keeps failures to their replica, and resumes after a kill between drop and rebuild', async () => {
    const { primary } = clusters;
    const [r1, r2] = twoReplicas(clusters.replicas);
    for (const node of [primary, r1, r2]) await node.query(SCHEMA);
    await primary.query(`
      INSERT INTO parent SELECT g, 'code ' || g FROM generate_series(1, 200) g;
      INSERT INTO child SELECT g, 1 + g % 200, g % 100,
             CASE WHEN g % 3 = 0 THEN NULL ELSE 'Note ' || g END, int4range(g * 10, g * 10 + 5)
        FROM generate_series(1, 20000) g;`);
    const expected = await definitionsOf(primary);
    expect(expected.length).toBeGreaterThan(10);
    // replica2 has one index more, which the primary's rows cannot satisfy: its rebuild fails.
    await r2.query('CREATE UNIQUE INDEX child_qty_trap ON child (qty)');
    const trapped = await definitionsOf(r2);
    const config = writeConfig(primary, clusters.replicas);
    try {
      const failed = await lockstep(['attach', '--config', config.file]);
      expect(failed.code).toBe(1);
      expect(failed.output).toMatch(
        /\[replica2, table public\.child\] copying the table failed: could not create unique index "child_qty_trap"/,
      );
      // replica2 keeps its definitions and nothing of child; replica1 is complete and checked.
      expect(await definitionsOf(r2)).toEqual(trapped);
      expect(await r2.query('SELECT 1 FROM child')).toEqual([]);
      expect(await recordedCopies(r2)).toEqual(['marker:true', 'parent:true']);
      expect(await recordedCopies(r1)).toEqual(['child:true', 'marker:true', 'parent:true']);
      expect(await definitionsOf(r1)).toEqual(expected);
      await expectIdentical(primary, [r1], TABLES);
      // Analyzed by the copy, before any stream applies (marker is empty: nothing to sample;
      // an expression index has statistics of its own).
      expect(
        await r1.query(
          `SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public' ORDER BY 1`,
        ),
      ).toEqual([
        { tablename: 'child' },
        { tablename: 'child_lower_note' },
        { tablename: 'parent' },
      ]);

      await r2.query('DROP INDEX child_qty_trap');
      await killBetweenDropAndRebuild(r2, config.file);
      expect(await definitionsOf(r2)).toEqual(expected);
      expect(await r2.query('SELECT 1 FROM child')).toEqual([]);
      expect(await recordedCopies(r2)).toEqual(['marker:true', 'parent:true']);

      const resumed = await lockstep(['attach', '--config', config.file]);
      expect(resumed.code).toBe(0);
      for (const replica of [r1, r2]) {
        expect(await definitionsOf(replica)).toEqual(expected);
        expect(await recordedCopies(replica)).toEqual(['child:true', 'marker:true', 'parent:true']);
      }
      await expectIdentical(primary, clusters.replicas, TABLES);
      // The rebuilt indexes serve the stream's first changes.
      await withSidecar(config.file, async () => {
        await primary.query(`UPDATE child SET qty = qty + 1 WHERE id <= 500;
          DELETE FROM parent WHERE id = 5; UPDATE parent SET code = 'x' || code WHERE id < 50`);
        await waitForMarker(primary, clusters.replicas);
      });
      await expectIdentical(primary, clusters.replicas, TABLES);
    } finally {
      config.remove();
    }
  });
});

/**
 * Holds the gate's lock on `replica`, so its COPY into child waits after the
 * drop; SIGKILLs the attach there, then lets the orphaned backend go on (it
 * finds its client gone and rolls back).
 */
async function killBetweenDropAndRebuild(
  replica: (typeof clusters.replicas)[number],
  configFile: string,
): Promise<void> {
  const holder = new pg.Client({ connectionString: replica.url });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock(4242)');
    const attach = new LockstepProcess(['attach', '--config', configFile]);
    await eventually(
      async () => (await waitingCopies(replica)).length > 0,
      'the copy into child waiting after the drop',
    );
    attach.kill('SIGKILL');
    await attach.exited;
    await holder.query('COMMIT');
  } finally {
    await holder.end();
  }
  await copySessionsGone(replica, 'the killed copy rolled back');
}
