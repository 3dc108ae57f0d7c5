import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { expectIdentical, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE marker (id bigserial PRIMARY KEY);
           CREATE TABLE items (id int PRIMARY KEY, name text);`,
  seed: `INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 20) g;`,
  config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
});

let sidecar: LockstepProcess;
beforeAll(() => {
  sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
});
afterAll(async () => {
  sidecar.kill('SIGTERM');
  await sidecar.exited;
});

async function refusal(
  node: PostgresCluster,
  sql: string,
): Promise<{ message: string; hint?: string }> {
  return node.query(sql).then(
    () => ({ message: 'not refused' }),
    (error: { message: string; hint?: string }) => ({ message: error.message, hint: error.hint }),
  );
}

const columnsOf = (node: PostgresCluster, table: string) =>
  node.query(
    `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [table],
  );

describe('captured DDL is replicated identically or refused on the primary, never wedged', () => {
  it('refuses DDL inside a DO block or a function, naming lockstep migrate', async () => {
    const p = clusters.primary;
    const inDo = await refusal(p, 'DO $$ BEGIN CREATE TABLE from_do (id int PRIMARY KEY); END $$');
    expect(inDo.message).toMatch(/inside a function, procedure or DO block/);
    expect(inDo.hint).toMatch(/lockstep migrate or lockstep exec/);
    await p.query(`CREATE FUNCTION make_t() RETURNS void LANGUAGE sql
                   AS 'CREATE TABLE from_fn (id int PRIMARY KEY)'`);
    expect((await refusal(p, 'SELECT make_t()')).message).toMatch(/inside a function/);
    expect(
      await p.query("SELECT to_regclass('from_do') AS t, to_regclass('from_fn') AS f"),
    ).toEqual([{ t: null, f: null }]);
  });

  it('refuses CREATE TABLE AS and SELECT INTO a replicated table (its rows would arrive twice)', async () => {
    const p = clusters.primary;
    const ctas = await refusal(p, 'CREATE TABLE items_copy AS SELECT * FROM items');
    expect(ctas.message).toMatch(/CREATE TABLE AS into a replicated table/);
    expect(ctas.hint).toMatch(/INSERT \.\.\. SELECT/);
    expect((await refusal(p, 'SELECT * INTO items_copy2 FROM items')).message).toMatch(
      /into a replicated table/,
    );
    // The alternative streams its rows once.
    await p.query('CREATE TABLE items_copy (LIKE items INCLUDING ALL)');
    await p.query('INSERT INTO items_copy SELECT * FROM items');
    await waitForMarker(p, clusters.replicas);
    await expectIdentical(p, clusters.replicas, ['items_copy']);
  });

  it('refuses a column with a volatile default on a replicated table with rows; a constant default replicates', async () => {
    const p = clusters.primary;
    const uuid = await refusal(
      p,
      'ALTER TABLE items ADD COLUMN token uuid DEFAULT gen_random_uuid()',
    );
    expect(uuid.message).toMatch(/volatile default gets different values on every node/);
    expect(uuid.hint).toMatch(/UPDATE/);
    expect(
      (await refusal(p, 'ALTER TABLE items ADD COLUMN at timestamptz DEFAULT clock_timestamp()'))
        .message,
    ).toMatch(/volatile default/);
    await p.query(`ALTER TABLE items ADD COLUMN kind text DEFAULT 'plain'`);
    await p.query('ALTER TABLE items ADD COLUMN token uuid');
    await p.query('UPDATE items SET token = gen_random_uuid()');
    await waitForMarker(p, clusters.replicas);
    for (const replica of clusters.replicas)
      expect(await columnsOf(replica, 'items')).toEqual(await columnsOf(p, 'items'));
    await expectIdentical(p, clusters.replicas, ['items']);
  });

  it('refuses a column whose default each node would compute at the ALTER (now())', async () => {
    const refused = await refusal(
      clusters.primary,
      'ALTER TABLE items ADD COLUMN added_at timestamptz DEFAULT now()',
    );
    expect(refused.message).toMatch(/default computed at the ALTER/);
  });

  it('replicates CREATE EXTENSION once, and never runs a statement the primary did not', async () => {
    const p = clusters.primary;
    await p.query('CREATE EXTENSION citext');
    // One query string: a SELECT of an E'' string that looks like a DROP, then the DDL.
    await p.query(
      "SELECT E'\\'; DROP TABLE items; --';\nCREATE TABLE after_string (id int PRIMARY KEY)",
    );
    await p.query('INSERT INTO after_string VALUES (1)');
    await waitForMarker(p, clusters.replicas);
    for (const replica of clusters.replicas) {
      expect(
        await replica.query("SELECT extname FROM pg_extension WHERE extname = 'citext'"),
      ).toEqual([{ extname: 'citext' }]);
      expect(await replica.query("SELECT to_regclass('items') IS NOT NULL AS kept")).toEqual([
        { kept: true },
      ]);
    }
    await expectIdentical(p, clusters.replicas, ['after_string', 'items']);
  });

  it('nothing refused above left a prepared transaction or held the stream', async () => {
    await clusters.primary.query(`INSERT INTO items (id, name) VALUES (100, 'after')`);
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['items']);
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  });
});
