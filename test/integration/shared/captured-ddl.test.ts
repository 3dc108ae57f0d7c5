import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../../support/compare-nodes.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';
import { refusedBy } from '../../support/round-log.js';

// An ordinary application role on every node, allowed what applications usually are.
const SCHEMA = `CREATE SCHEMA shop;
  CREATE TABLE events (id int PRIMARY KEY, amount int NOT NULL);
  CREATE ROLE app LOGIN;
  GRANT ALL ON events TO app;`;

/** Columns and indexes of every user table: what must end up identical. */
const schemaOf = async (node: PostgresCluster) =>
  node.query(
    `SELECT n.nspname, c.relname, c.relkind,
            (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
               FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('public', 'shop') AND c.relkind IN ('r', 'i')
      ORDER BY 1, 2`,
  );

const tableExists = async (node: PostgresCluster, name: string) =>
  (await node.query('SELECT to_regclass($1) IS NOT NULL AS found', [name]))[0]?.found === true;

describe.each(transports)('captured DDL (twoPhase.captureDdl, %s)', (transport) => {
  const replication = useReplication(transport, {
    replicas: 2,
    schema: SCHEMA,
    config: {
      twoPhase: { captureDdl: true, voteTimeoutMs: 3_000 },
      tables: ['public.*', 'shop.*'],
      retry: { initialMs: 200, maxMs: 2_000 },
    },
  });
  const replicas = () => replication.replicas as [PostgresCluster, PostgresCluster];
  const noGidLeft = () =>
    eventually(
      async () => (await preparedGids([replication.primary, ...replicas()])).length === 0,
      'no lockstep gid prepared anywhere',
    );
  const sameSchema = async () => {
    const expected = await schemaOf(replication.primary);
    for (const replica of replicas()) expect(await schemaOf(replica)).toEqual(expected);
  };

  it('CREATE, ALTER, CREATE INDEX and DROP on the primary, interleaved with writes, end up identical on the replicas', async () => {
    replication.start();
    const p = replication.primary;
    await p.query('CREATE TABLE gadgets (id int PRIMARY KEY, name text NOT NULL)');
    await p.query(`INSERT INTO gadgets SELECT g, 'g' || g FROM generate_series(1, 50) g`);
    await p.query('ALTER TABLE gadgets ADD COLUMN price numeric(10,2) DEFAULT 1.50');
    await p.query(`INSERT INTO gadgets VALUES (51, 'priced', 9.99)`);
    await p.query('CREATE INDEX gadgets_name ON gadgets (name)');
    await p.query(`UPDATE gadgets SET price = price * 2 WHERE id % 5 = 0`);
    await p.query('CREATE INDEX CONCURRENTLY gadgets_price ON gadgets (price)');
    // DDL and writes in one transaction, with a search_path.
    await p.query(`BEGIN;
      SET LOCAL search_path = shop;
      CREATE TABLE orders (id int PRIMARY KEY, gadget int, qty int);
      INSERT INTO orders VALUES (1, 1, 3), (2, 51, 1);
      ALTER TABLE orders RENAME COLUMN qty TO quantity;
      INSERT INTO orders VALUES (3, 2, 7);
      COMMIT;`);
    await p.query('CREATE TABLE scratch (id int PRIMARY KEY)');
    await p.query('INSERT INTO scratch VALUES (1)');
    await p.query('DROP TABLE scratch');
    await p.query('DROP INDEX gadgets_name');
    await p.query(`DELETE FROM gadgets WHERE id > 45`);
    await replication.converged();
    await sameSchema();
    await expectIdentical(p, replicas(), ['gadgets', 'shop.orders']);
    await noGidLeft();
  });

  it('runs nowhere a DDL message forged by an application role, nor a control event it may not write', async () => {
    replication.start();
    const app = new pg.Client({ connectionString: replication.primary.urlFor({ user: 'app' }) });
    await app.connect();
    try {
      const forged = JSON.stringify({
        searchPath: 'public',
        command: 'CREATE TABLE pwned AS SELECT current_user AS who',
        ordinal: 1,
        role: 'postgres',
        tag: 'CREATE TABLE AS',
      });
      await app.query('BEGIN');
      await app.query("SELECT pg_logical_emit_message(true, 'lockstep.ddl', $1)", [forged]);
      await app.query('INSERT INTO events VALUES (1, 10)');
      const { rows } = await app.query<{ xid: string }>(
        'SELECT pg_current_xact_id()::xid::text AS xid',
      );
      await app.query('COMMIT');
      // A control event only lockstep's role and its capture function may write.
      await expect(
        app.query(`INSERT INTO lockstep.control_events (kind, payload) VALUES ('ddl', $1)`, [
          forged,
        ]),
      ).rejects.toThrow(/permission denied/);
      await replication.converged();
      for (const node of [replication.primary, ...replicas()])
        expect(await tableExists(node, 'pwned')).toBe(false);
      // The forging transaction's row change is applied as any other's.
      await expectIdentical(replication.primary, replicas(), ['events']);
      const xid = rows[0]?.xid;
      await eventually(
        async () =>
          replication.coordinator
            .logLines()
            .some(
              (l) => l.prefix === 'lockstep.ddl' && l.reason === 'forged' && String(l.xid) === xid,
            ),
        'the forged event logged',
        15_000,
      );
    } finally {
      await app.end();
    }
  });

  it('holds DDL while a replica is down (the round aborts: none has it), then commits it on every replica', async () => {
    const [r1, r2] = replicas();
    replication.start();
    await replication.converged();
    await r2.stopServer('fast');
    try {
      await replication.primary.query('CREATE TABLE held (id int PRIMARY KEY)');
      await replication.primary.query('INSERT INTO held VALUES (1)');
      await replication.primary.query('INSERT INTO events VALUES (2, 20)');
      await eventually(
        async () => refusedBy(replication.coordinator, 'replica2') !== undefined,
        'the round to abort on replica2',
      );
      // All or none: the replica that could prepare rolled back, and the writes after wait.
      await eventually(async () => (await preparedGids([r1])).length === 0, 'r1 rolled back');
      expect(await tableExists(r1, 'held')).toBe(false);
      expect(await r1.query('SELECT 1 FROM events WHERE id = 2')).toEqual([]);
    } finally {
      await r2.startServer();
    }
    await replication.converged();
    await sameSchema();
    await expectIdentical(replication.primary, replicas(), ['held', 'events']);
    await noGidLeft();
  });
});
