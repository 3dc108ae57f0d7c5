import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// An application role with DDL rights on its own tables, and a trigger it must not get
// enabled ALWAYS on a replica (it would fire there as lockstep's role).
const SCHEMA = `
  CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE ROLE app LOGIN;
  GRANT CREATE ON SCHEMA public TO app;
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0);
  CREATE TABLE scratch (x int PRIMARY KEY);
  ALTER TABLE accounts OWNER TO app;
  ALTER TABLE scratch OWNER TO app;
  CREATE FUNCTION f(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
  ALTER FUNCTION f(int) OWNER TO app;
  CREATE FUNCTION evil_fn() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
  CREATE TRIGGER evil BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION evil_fn();`;

const clusters = useAttached({
  replicas: 2,
  schema: SCHEMA,
  config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
});

let sidecar: LockstepProcess;
let app: pg.Client;
beforeAll(async () => {
  sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
  app = new pg.Client({ connectionString: clusters.primary.urlFor({ user: 'app' }) });
  await app.connect();
});
afterAll(async () => {
  await app?.end();
  sidecar.kill('SIGTERM');
  await sidecar.exited;
});

/** Indexes, columns and trigger states of the public tables, and the functions: what must match. */
const schemaOf = (node: PostgresCluster) =>
  node.query(
    `SELECT 'index' AS kind, indexrelid::regclass::text AS name, indrelid::regclass::text AS detail
       FROM pg_index WHERE indrelid IN ('accounts'::regclass, 'scratch'::regclass)
     UNION ALL SELECT 'column', attrelid::regclass::text || '.' || attname, format_type(atttypid, atttypmod)
       FROM pg_attribute WHERE attrelid IN ('accounts'::regclass, 'scratch'::regclass) AND attnum > 0 AND NOT attisdropped
     UNION ALL SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT 'function', oid::regprocedure::text, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace
     ORDER BY 1, 2`,
  );

async function expectSameSchema(): Promise<void> {
  await waitForMarker(clusters.primary, clusters.replicas);
  const expected = await schemaOf(clusters.primary);
  for (const replica of clusters.replicas) expect(await schemaOf(replica)).toEqual(expected);
}

const EVIL = /evil/;
const named = (rows: Array<Record<string, unknown>>, kind: string) =>
  rows.filter((r) => r.kind === kind).map((r) => String(r.name));

describe('a replica runs the captured statement PostgreSQL ran, or refuses', () => {
  it('reads a non-ASCII dollar-quote tag as PostgreSQL does', async () => {
    await app.query(
      'SELECT $é$; CREATE INDEX evil ON public.accounts ((public.f(id))); $é$; CREATE INDEX scratch_i ON public.scratch (x)',
    );
    await expectSameSchema();
    for (const node of [clusters.primary, ...clusters.replicas]) {
      const indexes = named(await schemaOf(node), 'index');
      expect(indexes).toContain('scratch_i');
      expect(indexes.filter((name) => EVIL.test(name))).toEqual([]);
    }
  });

  it('applies tricky multi-statement strings exactly as the primary ran them', async () => {
    const strings = [
      // An E'' string continued on the next line: its \' escapes there too.
      "SELECT E'a'\n'\\'; CREATE INDEX evil2 ON accounts (balance); --'; CREATE INDEX scratch_i2 ON scratch (x)",
      // A -- comment ends at a carriage return.
      'SELECT 1 -- note\r; CREATE INDEX scratch_i3 ON scratch (x)',
      // A $q$ after a non-ASCII identifier character is part of the name.
      'SELECT 1 AS é$q$; CREATE INDEX scratch_i4 ON scratch (x); SELECT 1 AS x$q$',
      '/* /* */ CREATE INDEX evil3 ON accounts (balance); */ CREATE INDEX scratch_i5 ON scratch (x)',
      "SELECT U&'\\' UESCAPE '!'; CREATE INDEX scratch_i6 ON scratch (x); SELECT B'01'",
    ];
    for (const text of strings) await app.query(text);
    await expectSameSchema();
    const indexes = named(await schemaOf(clusters.primary), 'index');
    expect(indexes.filter((name) => /scratch_i\d/.test(name))).toHaveLength(5);
    expect(indexes.filter((name) => EVIL.test(name))).toEqual([]);
  });

  it('refuses on the primary DDL whose backslashes a setting decides', async () => {
    const attempts = [
      // Off for the session: the primary reads \' as an escaped quote.
      "SELECT 'a\\'; ALTER TABLE accounts ENABLE ALWAYS TRIGGER evil; -- '\n; ALTER TABLE scratch ADD COLUMN z int",
      // Off when the string is lexed, on when its DDL runs.
      "SET standard_conforming_strings = on; SELECT 'a\\'; ALTER TABLE accounts ENABLE ALWAYS TRIGGER evil; -- '\n; ALTER TABLE scratch ADD COLUMN z int",
    ];
    for (const text of attempts) {
      await app.query('SET standard_conforming_strings = off');
      await expect(app.query(text)).rejects.toMatchObject({
        message: expect.stringMatching(
          /^lockstep: ALTER TABLE with a backslash in its query string/,
        ),
      });
    }
    await app.query('RESET standard_conforming_strings');
    // Backslashes in an E'' string of a statement of its own still replicate.
    await app.query("COMMENT ON TABLE scratch IS E'back\\\\slash'");
    await expectSameSchema();
    const comment = `SELECT obj_description('scratch'::regclass, 'pg_class') AS comment`;
    for (const node of [clusters.primary, ...clusters.replicas]) {
      expect(await node.query(`SELECT tgenabled FROM pg_trigger WHERE tgname = 'evil'`)).toEqual([
        { tgenabled: 'O' },
      ]);
      expect(named(await schemaOf(node), 'column')).not.toContain('scratch.z');
      expect(await node.query(comment)).toEqual([{ comment: 'back\\slash' }]);
    }
  });

  it('counts DDL as the trigger fires: global objects not, SELECT INTO yes, each send from 1', async () => {
    const [{ db }] = (await app.query<{ db: string }>('SELECT current_database() AS db')).rows as [
      { db: string },
    ];
    await app.query(
      `REVOKE CONNECT ON DATABASE "${db}" FROM app; REVOKE ALL ON scratch FROM public`,
    );
    await app.query(
      'SELECT 1 AS a INTO TEMP tt2; CREATE TABLE a1 (x int); CREATE TABLE a2 (y int)',
    );
    // The same string twice in one transaction: the second send counts from 1 again.
    await app.query('BEGIN');
    const twice = "COMMENT ON TABLE scratch IS 'sent'; SELECT 1";
    await app.query(twice);
    await app.query(twice);
    await app.query('COMMIT');
    await expectSameSchema();
    const described = `SELECT relname, relacl::text AS acl, obj_description(oid, 'pg_class') AS note,
        (SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0) AS cols
       FROM pg_class c WHERE relname IN ('scratch', 'a1', 'a2') ORDER BY relname`;
    const expected = await clusters.primary.query(described);
    expect(expected.map((r) => r.cols)).toEqual(['x', 'y', 'x']);
    for (const replica of clusters.replicas)
      expect(await replica.query(described)).toEqual(expected);
  });

  it('refuses SQL-standard routine bodies on the primary, whatever follows them', async () => {
    for (const text of [
      'CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS begin; END; INSERT INTO scratch VALUES (42); SELECT 1 AS end',
      'CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; INSERT INTO scratch VALUES (43); SELECT 1 AS end',
    ])
      await expect(app.query(text)).rejects.toMatchObject({
        message: expect.stringMatching(/^lockstep: CREATE FUNCTION with a SQL-standard body/),
      });
    await expectSameSchema();
    for (const node of [clusters.primary, ...clusters.replicas])
      expect(await node.query('SELECT x FROM scratch WHERE x IN (42, 43)')).toEqual([]);
  });

  it('keeps temporary objects to the session: dropped without a trace, never hiding a name', async () => {
    await app.query('CREATE TEMP TABLE scratch_tmp (x int)');
    await app.query('DROP TABLE scratch_tmp');
    await app.query('CREATE DOMAIN dom AS int');
    await app.query('CREATE TEMP TABLE accounts (id int)');
    await app.query('CREATE DOMAIN pg_temp.dom AS int');
    // On a replica these names mean the objects they hide here: nothing of such a
    // session is captured, however the names are spelled (a column of the temporary
    // domain is refused first as depending on it).
    const hidden =
      /^lockstep: ALTER TABLE (in a session whose temporary table or type hides|leaves the permanent table column public\.scratch\.c depending on the temporary type pg_temp\.dom)/;
    for (const text of [
      `ALTER TABLE U&"acco!0075nts" UESCAPE '!' ADD COLUMN pwn int; ALTER TABLE public.accounts ALTER COLUMN balance SET DEFAULT 0`,
      'ALTER TABLE public.scratch ADD COLUMN c dom',
    ])
      await expect(app.query(text)).rejects.toMatchObject({
        message: expect.stringMatching(hidden),
      });
    // The rows it wrote are the temporary table's: kept to the session.
    await app.query('GRANT SELECT ON accounts TO public');
    await app.query('DROP TABLE accounts');
    await app.query('DROP DOMAIN pg_temp.dom');
    await app.query('ALTER TABLE public.scratch ADD COLUMN c dom');
    await expectSameSchema();
    for (const node of [clusters.primary, ...clusters.replicas]) {
      const columns = named(await schemaOf(node), 'column');
      expect(columns).not.toContain('accounts.pwn');
      expect(columns).toContain('scratch.c');
      expect(await node.query(`SELECT to_regclass('public.accounts')::text AS t`)).toEqual([
        { t: 'accounts' },
      ]);
    }
  });
});
