import { describe, expect, it } from 'vitest';
import {
  type Change,
  type InsertChange,
  isUnchangedToast,
  type Packet,
  rowValues,
  type UpdateChange,
} from '../../plugin/protocol/index.js';
import { readable } from '../support/rows.js';
import { createFeed, openStream, readPackets } from '../support/stream-session.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters();

/** Creates tables, a feed over them, and reads the packets produced by `work`. */
async function capture(
  setupSql: string,
  tables: { schema: string; name: string }[],
  work: string[],
  expected: number,
): Promise<Packet[]> {
  await clusters.primary.query(setupSql);
  const feed = await createFeed(clusters.primary.url, tables);
  const stream = await openStream(clusters.primary.url, feed, { version: 0, lsn: feed.start });
  try {
    for (const sql of work) await clusters.primary.query(sql);
    return await readPackets(stream, expected);
  } finally {
    await stream.stop();
    await feed.drop();
  }
}

const kinds = (p: Packet | undefined) => p?.changes.map((c) => c.kind);

describe('primary stream (real Postgres)', () => {
  it('emits insert, update, delete and truncate with old keys for DEFAULT, FULL and USING INDEX identities', async () => {
    const packets = await capture(
      `CREATE TABLE rid_default (id int PRIMARY KEY, v text);
       CREATE TABLE rid_full (id int, v text); ALTER TABLE rid_full REPLICA IDENTITY FULL;
       CREATE TABLE rid_index (id int NOT NULL, code text NOT NULL, v text);
       CREATE UNIQUE INDEX rid_index_code ON rid_index (code);
       ALTER TABLE rid_index REPLICA IDENTITY USING INDEX rid_index_code;`,
      [
        { schema: 'public', name: 'rid_default' },
        { schema: 'public', name: 'rid_full' },
        { schema: 'public', name: 'rid_index' },
      ],
      [
        `INSERT INTO rid_default VALUES (1, 'a')`,
        `UPDATE rid_default SET v = 'b' WHERE id = 1`,
        `UPDATE rid_default SET id = 2 WHERE id = 1`,
        `DELETE FROM rid_default WHERE id = 2`,
        `INSERT INTO rid_full VALUES (1, 'a'); UPDATE rid_full SET v = 'b'; DELETE FROM rid_full`,
        `INSERT INTO rid_index VALUES (1, 'x', 'a'); UPDATE rid_index SET code = 'y'; UPDATE rid_index SET v = 'c'; DELETE FROM rid_index`,
        `TRUNCATE rid_default, rid_full`,
      ],
      7,
    );
    expect(packets.map((p) => p.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const [ins, upd, updKey, del, full, index, truncate] = packets as Packet[];
    expect(readable(ins?.changes[0])).toMatchObject({ kind: 'insert', row: ['1', 'a'] });
    expect(ins?.changes[0]?.kind === 'insert' && ins.changes[0].relation).toMatchObject({
      schema: 'public',
      name: 'rid_default',
      replicaIdentity: 'default',
      keyIndexes: [0],
    });
    expect(readable(upd?.changes[0])).toMatchObject({ kind: 'update', row: ['1', 'b'], key: null });
    expect(readable(updKey?.changes[0])).toMatchObject({
      kind: 'update',
      row: ['2', 'b'],
      key: ['1'],
    });
    expect(readable(del?.changes[0])).toMatchObject({ kind: 'delete', key: ['2'] });
    expect(kinds(full)).toEqual(['insert', 'update', 'delete']);
    expect(readable(full?.changes[1])).toMatchObject({ row: ['1', 'b'], key: ['1', 'a'] });
    expect(readable(full?.changes[2])).toMatchObject({ key: ['1', 'b'] });
    expect(((full as Packet).changes[0] as InsertChange).relation).toMatchObject({
      replicaIdentity: 'full',
      keyIndexes: [0, 1],
    });
    expect(kinds(index)).toEqual(['insert', 'update', 'update', 'delete']);
    expect(((index as Packet).changes[0] as InsertChange).relation).toMatchObject({
      replicaIdentity: 'index',
      keyIndexes: [1],
    });
    expect(readable(index?.changes[1])).toMatchObject({ row: ['1', 'y', 'a'], key: ['x'] });
    expect(readable(index?.changes[2])).toMatchObject({ row: ['1', 'y', 'c'], key: null });
    expect(readable(index?.changes[3])).toMatchObject({ key: ['y'] });
    expect(truncate?.changes).toHaveLength(1);
    const t = truncate?.changes[0];
    expect(t?.kind === 'truncate' && t.relations.map((r) => r.name).sort()).toEqual([
      'rid_default',
      'rid_full',
    ]);
  });

  it('applies a new relation message after ALTER TABLE to later changes', async () => {
    const packets = await capture(
      'CREATE TABLE evolving (id int PRIMARY KEY, a text)',
      [{ schema: 'public', name: 'evolving' }],
      [
        `INSERT INTO evolving VALUES (1, 'x')`,
        `ALTER TABLE evolving ADD COLUMN b int DEFAULT 7`,
        `INSERT INTO evolving VALUES (2, 'y', 8)`,
        `ALTER TABLE evolving DROP COLUMN a`,
        `UPDATE evolving SET b = 9 WHERE id = 1`,
      ],
      3,
    );
    const columns = (c: Change | undefined) =>
      (c as InsertChange | UpdateChange).relation.columns.map((col) => col.name);
    expect(columns(packets[0]?.changes[0])).toEqual(['id', 'a']);
    expect(columns(packets[1]?.changes[0])).toEqual(['id', 'a', 'b']);
    expect(readable(packets[1]?.changes[0])).toMatchObject({ row: ['2', 'y', '8'] });
    expect(columns(packets[2]?.changes[0])).toEqual(['id', 'b']);
    expect(readable(packets[2]?.changes[0])).toMatchObject({ row: ['1', '9'] });
  });

  it('carries tables in any schema with identifiers that need quoting', async () => {
    const tables = [
      { schema: 'My Schema', name: 'Order' },
      { schema: 'public', name: 'drop table' },
      { schema: 'ünïcødé', name: 'zähler' },
    ];
    const packets = await capture(
      `CREATE SCHEMA "My Schema"; CREATE TABLE "My Schema"."Order" ("Id" int PRIMARY KEY, "select" text);
       CREATE TABLE "drop table" (id int PRIMARY KEY, "from" text);
       CREATE SCHEMA "ünïcødé"; CREATE TABLE "ünïcødé"."zähler" ("schlüssel" int PRIMARY KEY, "wert" text);`,
      tables,
      [
        `INSERT INTO "My Schema"."Order" VALUES (1, 'a'); INSERT INTO "drop table" VALUES (2, 'b'); INSERT INTO "ünïcødé"."zähler" VALUES (3, 'ç')`,
      ],
      1,
    );
    const changes = (packets[0] as Packet).changes as InsertChange[];
    expect(
      changes.map((c) => [
        c.relation.schema,
        c.relation.name,
        c.relation.columns.map((x) => x.name),
        rowValues(c.row),
      ]),
    ).toEqual([
      ['My Schema', 'Order', ['Id', 'select'], ['1', 'a']],
      ['public', 'drop table', ['id', 'from'], ['2', 'b']],
      ['ünïcødé', 'zähler', ['schlüssel', 'wert'], ['3', 'ç']],
    ]);
  });

  it('keeps an unchanged TOAST value distinct from NULL', async () => {
    const packets = await capture(
      `CREATE TABLE toasty (id int PRIMARY KEY, doc text, n int);
       ALTER TABLE toasty ALTER COLUMN doc SET STORAGE EXTERNAL;`,
      [{ schema: 'public', name: 'toasty' }],
      [
        `INSERT INTO toasty SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 400) g`,
        `UPDATE toasty SET n = 1 WHERE id = 1`,
        `UPDATE toasty SET doc = NULL, n = 2 WHERE id = 1`,
      ],
      3,
    );
    const row = (i: number) => rowValues(((packets[i] as Packet).changes[0] as UpdateChange).row);
    expect((row(0)[1] as string).length).toBe(400 * 32);
    expect(isUnchangedToast(row(1)[1])).toBe(true);
    expect(row(1)[2]).toBe('1');
    expect(row(2)[1]).toBeNull();
    expect(isUnchangedToast(row(2)[1])).toBe(false);
  });

  it('carries values losslessly in Postgres text form', async () => {
    const columns = ['n', 'ts', 'j', 'b', 'a', 'ta', 'u', 'e', 'd', 'i8', 'f8', 'iv', 'nul'];
    await clusters.primary.query(
      `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int CHECK (VALUE > 0);
       CREATE TABLE vals (id int PRIMARY KEY, n numeric, ts timestamptz, j jsonb, b bytea, a int[], ta text[],
                          u uuid, e mood, d posint, i8 bigint, f8 float8, iv interval, nul text)`,
    );
    const packets = await capture(
      'SELECT 1',
      [{ schema: 'public', name: 'vals' }],
      [
        `INSERT INTO vals VALUES (1, 123456789012345678901234567890.123456789012345, '2026-11-25 10:11:12.123456+00',
          '{"b": [1, 2.50, null], "a": "ü\\"x"}', '\\x00ff10', '{1,NULL,3}', '{"a b","c,d",NULL}',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 42, 9223372036854775807, 1.0000000000000002,
          '1 day 00:00:00.000001', NULL)`,
      ],
      1,
    );
    const change = (packets[0] as Packet).changes[0] as InsertChange;
    const [expected] = await clusters.primary.query<Record<string, string | null>>(
      `SELECT ${columns.map((c) => `${c}::text AS ${c}`).join(', ')} FROM vals WHERE id = 1`,
    );
    const byName = Object.fromEntries(
      change.relation.columns.map((c, i) => [c.name, change.row.at(i)]),
    );
    for (const c of columns) expect([c, byName[c]]).toEqual([c, expected?.[c]]);
    expect(byName.ts).toMatch(/\.123456/);
    const typeName = (name: string) =>
      change.relation.columns.find((c) => c.name === name)?.typeName;
    expect(typeName('e')).toBe('public.mood');
    expect(typeName('d')).toBe('pg_catalog.int4'); // pgoutput describes a domain by its base type
  });

  it('puts the open lockstep messages (tag, barrier) at their position, and drops every other message', async () => {
    const packets = await capture(
      'CREATE TABLE msgs (id int PRIMARY KEY)',
      [{ schema: 'public', name: 'msgs' }],
      [
        `BEGIN; INSERT INTO msgs VALUES (1);
         SELECT pg_logical_emit_message(true, 'lockstep.two_phase', '');
         SELECT pg_logical_emit_message(true, 'someone.else', 'x');
         INSERT INTO msgs VALUES (2);
         SELECT pg_logical_emit_message(true, 'lockstep.ddl', '{"command":"DROP TABLE msgs"}'); COMMIT;`,
        `SELECT pg_logical_emit_message(false, 'lockstep.outside', 'not transactional')`,
        `BEGIN; SELECT pg_logical_emit_message(true, 'lockstep.barrier', 'alone ü'); COMMIT;`,
      ],
      2,
    );
    expect(
      packets[0]?.changes.map((c) => (c.kind === 'message' ? `${c.prefix}:${c.content}` : c.kind)),
    ).toEqual(['insert', 'lockstep.two_phase:', 'insert']);
    expect(packets[1]).toMatchObject({
      version: 2,
      changes: [{ kind: 'message', prefix: 'lockstep.barrier', content: 'alone ü' }],
    });
  });

  it('answers keepalives: a stream idle for three times wal_sender_timeout stays up', async () => {
    const { primary } = clusters;
    await primary.query(`ALTER SYSTEM SET wal_sender_timeout = '1s'`);
    await primary.query('SELECT pg_reload_conf()');
    try {
      await primary.query('CREATE TABLE idle_stream (id int PRIMARY KEY)');
      const feed = await createFeed(primary.url, [{ schema: 'public', name: 'idle_stream' }]);
      // The periodic status update (every 10 s) is too slow to help: only keepalive answers keep it up.
      const stream = await openStream(primary.url, feed, { version: 0, lsn: feed.start });
      try {
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        await primary.query('INSERT INTO idle_stream VALUES (1)');
        const [packet] = await readPackets(stream, 1, 10_000);
        expect(readable(packet?.changes)).toMatchObject([{ kind: 'insert', row: ['1'] }]);
      } finally {
        await stream.stop();
        await feed.drop();
      }
    } finally {
      await primary.query('ALTER SYSTEM RESET wal_sender_timeout');
      await primary.query('SELECT pg_reload_conf()');
    }
  });

  it("never emits changes to lockstep's own schema", async () => {
    const packets = await capture(
      `CREATE SCHEMA lockstep; CREATE TABLE lockstep.replica_state (id int PRIMARY KEY);
       CREATE TABLE app (id int PRIMARY KEY);`,
      [
        { schema: 'lockstep', name: 'replica_state' },
        { schema: 'public', name: 'app' },
      ],
      [
        'INSERT INTO lockstep.replica_state VALUES (1)',
        'BEGIN; INSERT INTO lockstep.replica_state VALUES (2); INSERT INTO app VALUES (1); COMMIT;',
        'TRUNCATE lockstep.replica_state',
        'INSERT INTO app VALUES (2)',
      ],
      2,
    );
    expect(packets.map((p) => [p.version, kinds(p)])).toEqual([
      [1, ['insert']],
      [2, ['insert']],
    ]);
    for (const p of packets) {
      for (const c of p.changes) expect((c as InsertChange).relation.schema).toBe('public');
    }
  });
});
