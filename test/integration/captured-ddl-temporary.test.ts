import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { outOfCapture, useCapturingReplicas } from '../support/replicas-applying.js';

// DDL on a temporary table's sub-objects: a replica has none of them, so capturing it
// halts every replica. An application role that may create a temporary table must not
// be able to stop replication, nor to keep DDL on a permanent table from the replicas.
const SCHEMA = `
  CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE ROLE app LOGIN;
  GRANT CREATE ON SCHEMA public TO app;
  CREATE TABLE accounts (id int PRIMARY KEY, a int, b int);
  ALTER TABLE accounts OWNER TO app;
  CREATE FUNCTION tf() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
  ALTER FUNCTION tf() OWNER TO app;
  CREATE FUNCTION other_tf() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
  ALTER FUNCTION other_tf() OWNER TO app;
  CREATE TRIGGER kept BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION tf();
  CREATE TRIGGER dropped BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION tf();
  CREATE TRIGGER mixed BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION tf();
  CREATE TRIGGER cascaded BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION other_tf();
  CREATE INDEX accounts_a ON accounts (a);`;

// Each alone in its query string, as an application sends them.
const TEMPORARY_DDL = [
  'CREATE TEMP TABLE tt (id int PRIMARY KEY, a int, b int)',
  'CREATE TRIGGER trg BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION tf()',
  'CREATE TRIGGER trg2 BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION tf()',
  'CREATE TRIGGER trg3 BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION other_tf()',
  'CREATE RULE r AS ON UPDATE TO tt DO ALSO NOTIFY tt_changed',
  'CREATE POLICY p ON tt USING (true)',
  'ALTER TABLE tt ADD CONSTRAINT c CHECK (a > 0)',
  'CREATE INDEX ti ON tt (a)',
  "COMMENT ON COLUMN tt.a IS 'note'",
  "COMMENT ON TRIGGER trg ON tt IS 'note'",
  'ALTER TABLE tt DISABLE TRIGGER trg',
  'ALTER TABLE tt ENABLE TRIGGER trg',
  'CREATE STATISTICS pg_temp.st ON a, b FROM tt',
  'ALTER STATISTICS pg_temp.st SET STATISTICS 50',
  'CREATE STATISTICS pg_temp.st2 ON a, b FROM tt',
  'CREATE TEMP SEQUENCE ts',
  'ALTER SEQUENCE ts RESTART 5',
  'CREATE TEMP VIEW tv AS SELECT * FROM accounts',
  'DROP TRIGGER trg ON tt',
  'DROP RULE r ON tt',
  'DROP POLICY p ON tt',
  'ALTER TABLE tt DROP CONSTRAINT c',
  'DROP INDEX ti',
  'DROP STATISTICS pg_temp.st',
  'DROP STATISTICS pg_temp.st2',
  'DROP VIEW tv',
  'CREATE STATISTICS pg_temp.st3 ON a, b FROM tt',
  // Drops st3 too.
  'ALTER TABLE tt DROP COLUMN b',
];

/** What must match on every node: the permanent triggers, indexes and columns, and nothing of tt. */
const schemaOf = (node: PostgresCluster) =>
  node.query(
    `SELECT 'trigger' AS kind, tgname::text AS name FROM pg_trigger WHERE tgrelid = 'public.accounts'::regclass
     UNION ALL SELECT 'index', indexrelid::regclass::text FROM pg_index WHERE indrelid = 'public.accounts'::regclass
     UNION ALL SELECT 'column', attname::text FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0 AND NOT attisdropped
     UNION ALL SELECT 'statistics', stxname::text FROM pg_statistic_ext
     ORDER BY 1, 2`,
  );

describe('DDL on a temporary table stays local; DDL on a permanent one still replicates', () => {
  const { clusters, running, expectEveryReplicaApplying } = useCapturingReplicas(SCHEMA, schemaOf);

  it('keeps every replica applying through DDL on temporary sub-objects', async () => {
    for (const text of TEMPORARY_DDL) await running.app.query(text);
    await expectEveryReplicaApplying();
  });

  it('replicates a permanent DROP TRIGGER, also after a temporary one in the same string', async () => {
    await running.app.query('DROP TRIGGER dropped ON accounts');
    await running.app.query('DROP TRIGGER trg2 ON tt; DROP TRIGGER mixed ON accounts');
    // Reaches the trigger on tt and the one on accounts: captured, the replicas drop theirs.
    await running.app.query('DROP FUNCTION other_tf() CASCADE');
    await expectEveryReplicaApplying();
    for (const node of [clusters.primary, ...clusters.replicas])
      expect((await schemaOf(node)).filter((r) => r.kind === 'trigger').map((r) => r.name)).toEqual(
        ['kept'],
      );
  });

  it('refuses on the primary a statement on temporary and permanent objects alike', async () => {
    await running.app.query('CREATE INDEX ti2 ON tt (a)');
    await expect(running.app.query('DROP INDEX ti2, accounts_a')).rejects.toMatchObject({
      message: expect.stringMatching(
        /^lockstep: DROP INDEX of a temporary object also drops the permanent index public\.accounts_a/,
      ),
    });
    // A permanent column of a temporary type (made out of the capture's sight): a DROP
    // … CASCADE of the type would drop it on the primary alone.
    const admin = new pg.Client({ connectionString: clusters.primary.url });
    await admin.connect();
    try {
      await outOfCapture(
        admin,
        'CREATE TYPE pg_temp.ty AS (x int); ALTER TABLE accounts ADD COLUMN c pg_temp.ty',
      );
      await expect(admin.query('DROP TYPE pg_temp.ty CASCADE')).rejects.toMatchObject({
        message: expect.stringMatching(
          /^lockstep: DROP TYPE of a temporary object also drops the permanent table column public\.accounts\.c/,
        ),
      });
      expect(
        await clusters.primary.query(
          `SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'c'`,
        ),
      ).toEqual([{ attname: 'c' }]);
      await outOfCapture(admin, 'ALTER TABLE accounts DROP COLUMN c');
    } finally {
      await admin.end();
    }
    await expectEveryReplicaApplying();
  });
});
