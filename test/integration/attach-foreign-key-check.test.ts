import { describe, expect, it } from 'vitest';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { recordedCopies } from '../support/table-definitions.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

describe('attach checks foreign keys once the data is in', () => {
  it('refuses rows that break a key on the replica, and checks again on the next attach', async () => {
    const { primary } = clusters;
    const replica = clusters.replicas[0] as (typeof clusters.replicas)[number];
    await primary.query(`
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
      INSERT INTO parent SELECT generate_series(1, 10);
      INSERT INTO child SELECT g, 1 + g % 10 FROM generate_series(1, 100) g;`);
    // The replica's key points at a table of its own, not replicated and empty.
    await replica.query(`
      CREATE SCHEMA local; CREATE TABLE local.other (id int PRIMARY KEY);
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY,
        parent_id int CONSTRAINT child_parent_id_fkey REFERENCES local.other (id));`);
    const config = writeConfig(primary, clusters.replicas);
    try {
      const failed = await lockstep(['attach', '--config', config.file]);
      expect(failed.code).toBe(1);
      expect(failed.output).toMatch(
        /\[replica1, table public\.child\] checking foreign key child_parent_id_fkey after the copy failed: .*violates foreign key constraint/,
      );
      // The copy stays (it is the primary's data); the key is left as it was, to check again.
      expect(await recordedCopies(replica)).toEqual(['child:false', 'parent:true']);
      const valid = () =>
        replica.query<{ v: boolean }>(
          `SELECT convalidated AS v FROM pg_constraint WHERE conname = 'child_parent_id_fkey'`,
        );
      expect(await valid()).toEqual([{ v: true }]);

      await replica.query('INSERT INTO local.other SELECT generate_series(1, 10)');
      const resumed = await lockstep(['attach', '--config', config.file]);
      expect(resumed.code).toBe(0);
      expect(await recordedCopies(replica)).toEqual(['child:true', 'parent:true']);
      expect(await valid()).toEqual([{ v: true }]);
    } finally {
      config.remove();
    }
  });
});
