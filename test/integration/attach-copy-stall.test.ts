import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { expectIdentical } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { definitionsOf, recordedCopies } from '../support/table-definitions.js';
import { twoReplicas, useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });

/**
 * `gate` takes a shared advisory lock for each row checked: a session holding
 * that lock on replica2 leaves its COPY hanging (a connection that neither
 * fails nor takes data, as a frozen server's does).
 */
const SCHEMA = `
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4243); RETURN true; END $$;
  CREATE TABLE big (id int PRIMARY KEY CHECK (gate(id)), payload text NOT NULL);
  CREATE INDEX big_payload ON big (payload);
  CREATE TABLE small (id int PRIMARY KEY);`;

describe('a replica that stops taking rows during the copy', () => {
  it('drops out after applyTimeoutMs, naming itself; the other replica commits; attach again copies it', async () => {
    const { primary } = clusters;
    const [r1, r2] = twoReplicas(clusters.replicas);
    for (const node of [primary, r1, r2]) await node.query(SCHEMA);
    // Far more than the socket buffers between lockstep and replica2 hold.
    await primary.query(`
      INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 300000) g;
      INSERT INTO small SELECT generate_series(1, 10);`);
    const before = await definitionsOf(r2);
    const holder = new pg.Client({ connectionString: r2.url });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock(4243)');
    const config = writeConfig(primary, clusters.replicas, { applyTimeoutMs: 3_000 });
    try {
      const stalled = await lockstep(['attach', '--config', config.file]);
      expect(stalled.code).toBe(1);
      expect(stalled.output).toMatch(
        /\[replica2, table public\.big\] the replica took no rows for 3000 ms/,
      );
      // replica1 was not held back: it has the whole table, recorded.
      expect(await recordedCopies(r1)).toContain('big:true');
      expect((await r1.query<{ n: string }>('SELECT count(*) AS n FROM big'))[0]?.n).toBe('300000');
      await holder.query('SELECT pg_advisory_unlock(4243)');
      // replica2 kept its table as it was: empty, every index in place, nothing recorded.
      expect(await recordedCopies(r2)).not.toContain('big:true');
      expect(await definitionsOf(r2)).toEqual(before);

      const resumed = await lockstep(['attach', '--config', config.file]);
      expect(resumed.code, resumed.output).toBe(0);
      await expectIdentical(primary, clusters.replicas, ['big', 'small']);
      expect(await definitionsOf(r2)).toEqual(await definitionsOf(primary));
    } finally {
      await holder.end();
      config.remove();
    }
  }, 180_000);
});
