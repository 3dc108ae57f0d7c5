import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { outOfCapture, useCapturingReplicas } from '../support/replicas-applying.js';

// Permanent DDL reaching a temporary object: PostgreSQL drops what depends on a temporary
// object at the session's end with no event trigger firing (the primary alone loses it),
// and a replica has no temporary object for a captured statement to name (it halts).
const SCHEMA = `
  CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE ROLE app LOGIN;
  GRANT CREATE ON SCHEMA public TO app;
  CREATE TABLE perm (a int PRIMARY KEY, b int);
  ALTER TABLE perm OWNER TO app;
  CREATE TABLE perm2 (a int PRIMARY KEY);
  ALTER TABLE perm2 OWNER TO app;
  CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1';
  ALTER FUNCTION one() OWNER TO app;
  -- Not published: CREATE TABLE AS into a published schema is refused for its rows anyway.
  CREATE SCHEMA side AUTHORIZATION app;`;

/** What must match on every node: perm's columns, defaults, constraints and grants, relations, policies, statistics, functions. */
const schemaOf = (node: PostgresCluster) =>
  node.query(
    `SELECT 'column' AS kind, attname || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS name
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = 'public.perm'::regclass AND a.attnum > 0 AND NOT a.attisdropped
     UNION ALL SELECT 'constraint', conname::text FROM pg_constraint WHERE conrelid = 'public.perm'::regclass
     UNION ALL SELECT 'acl', coalesce(relacl::text, '') FROM pg_class WHERE oid = 'public.perm'::regclass
     UNION ALL SELECT 'relation', relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
     UNION ALL SELECT 'policy', polname::text FROM pg_policy
     UNION ALL SELECT 'statistics', stxname::text FROM pg_statistic_ext WHERE stxnamespace = 'public'::regnamespace
     UNION ALL SELECT 'function', proname || ' ' || provolatile::text || coalesce(obj_description(oid, 'pg_proc'), '')
       FROM pg_proc WHERE pronamespace = 'public'::regnamespace
     UNION ALL SELECT 'language', coalesce(lanacl::text, '') FROM pg_language WHERE lanname = 'plpgsql'
     ORDER BY 1, 2`,
  );

/** Runs `statements` one after another on `client` (each its own query, as an application sends them). */
async function each(client: pg.ClientBase, statements: readonly string[]): Promise<void> {
  for (const text of statements) await client.query(text);
}

/** The primary's refusal: raised by the capture (P0001), its message starting so. */
const refusal = (start: string) => ({
  code: 'P0001',
  message: expect.stringMatching(new RegExp(`^lockstep: ${start}`)),
});

describe('DDL reaching a temporary object: refused on the primary, never halting a replica', () => {
  const { clusters, running, expectEveryReplicaApplying } = useCapturingReplicas(SCHEMA, schemaOf);

  it('refuses a permanent object depending on a temporary one, made in sight or not', async () => {
    const { app } = running;
    await app.query('CREATE TEMP TABLE anchor (x int)');
    await app.query('CREATE TEMP SEQUENCE sq');
    await app.query('CREATE TYPE pg_temp.ty AS (x int)');
    const [{ oid } = { oid: '' }] = (
      await app.query<{ oid: string }>(`SELECT 'anchor'::regclass::oid::text AS oid`)
    ).rows;
    const dependents = [
      `ALTER TABLE perm ADD CONSTRAINT b_nonneg CHECK (b >= 0 OR '${oid}'::regclass IS NULL)`,
      `ALTER TABLE perm ADD COLUMN g int GENERATED ALWAYS AS (a * 2 + ('${oid}'::regclass::oid::int * 0)) STORED`,
      `CREATE VIEW pv AS SELECT a, b FROM perm WHERE '${oid}'::regclass IS NOT NULL`,
      `ALTER TABLE perm ALTER COLUMN b SET DEFAULT nextval('sq')`,
      'ALTER TABLE perm ADD COLUMN c pg_temp.ty',
      'CREATE POLICY p ON perm USING (a IN (SELECT x FROM anchor))',
      'CREATE CAST (pg_temp.ty AS int) WITH INOUT',
    ];
    for (const text of dependents)
      await expect(app.query(text), text).rejects.toMatchObject(
        refusal('[A-Z ]+ leaves the permanent .* depending on the temporary '),
      );
    // Made by lockstep's own role out of the capture's sight: the session's next DDL,
    // kept local or not, is refused until the dependency is gone.
    const admin = new pg.Client({ connectionString: clusters.primary.url });
    await admin.connect();
    try {
      await admin.query('CREATE TEMP TABLE unseen (x int)');
      await outOfCapture(
        admin,
        `ALTER TABLE perm ADD CONSTRAINT unseen_c CHECK ('pg_temp.unseen'::regclass IS NOT NULL)`,
      );
      await expect(admin.query('CREATE INDEX ON pg_temp.unseen (x)')).rejects.toMatchObject(
        refusal('CREATE INDEX leaves the permanent table constraint unseen_c'),
      );
      await outOfCapture(admin, 'ALTER TABLE perm DROP CONSTRAINT unseen_c');
    } finally {
      await admin.end();
    }
    await expectEveryReplicaApplying();
  });

  it('refuses CREATE TABLE … LIKE a temporary relation, and … AS in a session with temporary objects', async () => {
    const { app } = running;
    await app.query('CREATE TEMP TABLE tq (a int, b int)');
    const likes = [
      'CREATE TABLE permq (LIKE tq)',
      'CREATE TABLE permq (id int, LIKE tq)',
      'CREATE TABLE permq (LIKE pg_temp . "tq" INCLUDING ALL)',
      // No name the text can read after LIKE: the columns decide.
      'CREATE TABLE permq (LIKE /* here */ tq)',
    ];
    for (const text of likes)
      await expect(app.query(text), text).rejects.toMatchObject(
        refusal('CREATE TABLE LIKE a temporary relation'),
      );
    await expect(app.query('CREATE TABLE side.permr AS SELECT * FROM tq')).rejects.toMatchObject(
      refusal('CREATE TABLE AS in a session with temporary objects'),
    );
    // Not all of tq's columns: replicated.
    await app.query('CREATE TABLE perm_later (a int, c int)');
    // All of a one-column temporary table's columns, but no LIKE: replicated.
    await app.query('CREATE TEMP TABLE ids (id int)');
    await app.query('CREATE TABLE perm_ids (id int, note text)');
    await app.query('DISCARD TEMP');
    await app.query('CREATE TABLE side.perm_copy AS SELECT * FROM perm');
    await expectEveryReplicaApplying();
  });

  it('keeps a GRANT on temporary objects local, replicates one on permanent ones, refuses a mix', async () => {
    const { app } = running;
    await each(app, [
      'CREATE TEMP TABLE tt (a int, b int)',
      'GRANT SELECT ON tt TO PUBLIC',
      'GRANT SELECT (a) ON tt TO PUBLIC',
      'REVOKE UPDATE ON tt FROM PUBLIC',
    ]);
    await expect(app.query('GRANT SELECT ON tt, perm TO PUBLIC')).rejects.toMatchObject(
      refusal('GRANT changes both temporary and permanent objects'),
    );
    // In one transaction after a permanent CREATE INDEX: only the GRANT's own rows count.
    await each(app, [
      'BEGIN',
      'CREATE INDEX perm_b ON perm (b)',
      'GRANT SELECT ON tt TO PUBLIC',
      'GRANT SELECT ON perm TO PUBLIC',
      'COMMIT',
    ]);
    await expectEveryReplicaApplying();
  });

  it('refuses a statistics object outside its relation’s kind of schema', async () => {
    const { app } = running;
    await expect(app.query('CREATE STATISTICS s1 ON a, b FROM tt')).rejects.toMatchObject(
      refusal('CREATE STATISTICS puts statistics object public\\.s1 '),
    );
    await expect(app.query('CREATE STATISTICS pg_temp.ps ON a, b FROM perm')).rejects.toMatchObject(
      refusal('CREATE STATISTICS puts statistics object pg_temp\\.ps '),
    );
    await app.query('CREATE STATISTICS pg_temp.s1 ON a, b FROM tt');
    await app.query('CREATE STATISTICS IF NOT EXISTS s1 ON a, b FROM perm');
    await expectEveryReplicaApplying();
    expect(await schemaOf(clusters.primary)).toContainEqual({ kind: 'statistics', name: 's1' });
  });

  it('refuses a permanent object depending on another session’s temporary one', async () => {
    const holder = new pg.Client({ connectionString: clusters.primary.urlFor({ user: 'app' }) });
    const plain = new pg.Client({ connectionString: clusters.primary.urlFor({ user: 'app' }) });
    await holder.connect();
    await plain.connect();
    try {
      await holder.query('CREATE TEMP TABLE held (x int)');
      const [{ oid } = { oid: '' }] = (
        await holder.query<{ oid: string }>(`SELECT 'held'::regclass::oid::text AS oid`)
      ).rows;
      // plain has no temporary schema of its own.
      const dependents = [
        `ALTER TABLE perm ADD CONSTRAINT b_c CHECK (b >= 0 OR '${oid}'::regclass IS NULL)`,
        `CREATE VIEW pv AS SELECT a FROM perm WHERE '${oid}'::regclass IS NOT NULL`,
        `ALTER TABLE perm ALTER COLUMN b SET DEFAULT ('${oid}'::regclass::oid::int * 0)`,
      ];
      for (const text of dependents)
        await expect(plain.query(text), text).rejects.toMatchObject(
          refusal('[A-Z ]+ leaves the permanent .* depending on the temporary table pg_temp_'),
        );
    } finally {
      await holder.end();
      await plain.end();
    }
    await expectEveryReplicaApplying();
  });

  it('reads a GRANT in a savepoint by its rows, and refuses a no-op REVOKE beside temporary tables', async () => {
    const { app } = running;
    await each(app, [
      'CREATE TEMP TABLE saved (x int)',
      'BEGIN',
      'SAVEPOINT s',
      'GRANT SELECT ON saved TO PUBLIC',
      'RELEASE SAVEPOINT s',
      'SAVEPOINT t',
    ]);
    await expect(app.query('GRANT INSERT ON saved, perm TO PUBLIC')).rejects.toMatchObject(
      refusal('GRANT changes both temporary and permanent objects'),
    );
    await each(app, [
      'ROLLBACK TO SAVEPOINT t',
      'SAVEPOINT u',
      'GRANT INSERT ON perm TO PUBLIC',
      'COMMIT',
    ]);
    // No grant to revoke: no row written tells what it names; beside temporary tables, refused.
    for (const text of [
      'REVOKE SELECT (x) ON saved FROM PUBLIC',
      'REVOKE SELECT (a) ON perm FROM PUBLIC',
    ])
      await expect(app.query(text), text).rejects.toMatchObject(
        refusal('REVOKE changed no catalog row lockstep could read'),
      );
    // Without them, captured: a no-op on the replicas too.
    await app.query('DISCARD TEMP');
    await app.query('REVOKE SELECT (a) ON perm FROM PUBLIC');
    // A language's grant writes pg_language: captured.
    await clusters.primary.query('GRANT USAGE ON LANGUAGE plpgsql TO app');
    await expectEveryReplicaApplying();
  });

  it('replicates DDL on a SQL function, and LIKE naming no temporary relation', async () => {
    const { app } = running;
    await app.query('CREATE TEMP TABLE shared_a (a int)');
    await app.query(`COMMENT ON FUNCTION one() IS 'one'`);
    await app.query('ALTER FUNCTION one() STABLE');
    await app.query('CREATE TABLE perm_like (LIKE perm2)');
    await app.query(`CREATE TABLE perm_checked (a int, n text CHECK (n LIKE 'a%'))`);
    await expectEveryReplicaApplying();
  });
});
