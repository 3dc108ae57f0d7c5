import { describe, expect, it } from 'vitest';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

/** Ends the comment's literal where standard_conforming_strings is off, if quotes are only doubled. */
const PAYLOAD = String.raw`x\'; CREATE TABLE injected (); --`;

const SCHEMA = `
  CREATE TABLE parent (id int PRIMARY KEY, code text NOT NULL,
    CONSTRAINT parent_code_key UNIQUE (code));
  CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL,
    CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id));
  CREATE INDEX child_parent ON child (parent_id);
  COMMENT ON CONSTRAINT child_parent_fk ON child IS $c$${PAYLOAD}$c$;
  COMMENT ON CONSTRAINT parent_code_key ON parent IS $c$${PAYLOAD}$c$;
  COMMENT ON INDEX child_parent IS $c$${PAYLOAD}$c$;`;

const COMMENTS = `
  SELECT obj_description(oid, 'pg_constraint') AS x FROM pg_constraint
   WHERE conname IN ('child_parent_fk', 'parent_code_key')
  UNION ALL SELECT obj_description('child_parent'::regclass, 'pg_class')`;

describe('comments a load rebuilds on a replica', () => {
  it('arrive as text, never as SQL, with standard_conforming_strings off there', async () => {
    const { primary } = clusters;
    const [replica] = clusters.replicas;
    if (!replica) throw new Error('the test needs a replica');
    for (const node of [primary, replica]) await node.query(SCHEMA);
    const [{ db } = { db: '' }] = await replica.query<{ db: string }>(
      'SELECT current_database() AS db',
    );
    await replica.query(`ALTER DATABASE "${db}" SET standard_conforming_strings = off`);
    await primary.query(`
      INSERT INTO parent SELECT g, 'code ' || g FROM generate_series(1, 50) g;
      INSERT INTO child SELECT g, g FROM generate_series(1, 50) g;`);
    const config = writeConfig(primary, clusters.replicas);
    try {
      const attached = await lockstep(['attach', '--config', config.file]);
      expect(attached.code, attached.output).toBe(0);
    } finally {
      config.remove();
    }
    expect(await replica.query(`SELECT to_regclass('public.injected') AS t`)).toEqual([
      { t: null },
    ]);
    expect(await replica.query(COMMENTS)).toEqual([{ x: PAYLOAD }, { x: PAYLOAD }, { x: PAYLOAD }]);
  });
});
