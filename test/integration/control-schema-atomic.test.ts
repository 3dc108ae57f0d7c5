import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;

const clusters = useClusters({ replicas: 2 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
const configs: Array<ReturnType<typeof writeConfig>> = [];
const attachWith = async (replicas: readonly PostgresCluster[]) => {
  const config = writeConfig(clusters.primary, replicas);
  configs.push(config);
  return lockstep(['attach', '--config', config.file]);
};
const hasControlSchema = async (node: PostgresCluster) =>
  (
    await node.query<{ found: boolean }>(`SELECT to_regnamespace('lockstep') IS NOT NULL AS found`)
  )[0]?.found;

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  await clusters.primary.query(`INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g`);
});

afterAll(() => {
  for (const config of configs) config.remove();
});

describe('creating the control schema on a replica', () => {
  it('leaves nothing when it fails midway, and the next attach completes it', async () => {
    const r1 = replica(0);
    // A statement of a later migration fails on the replica (a conflicting event trigger).
    await r1.query(`CREATE FUNCTION refuse_decisions() RETURNS event_trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                    WHERE object_identity = 'lockstep.decisions') THEN
          RAISE EXCEPTION 'refused by the test';
        END IF;
      END $$`);
    await r1.query(
      'CREATE EVENT TRIGGER refuse_decisions ON ddl_command_end EXECUTE FUNCTION refuse_decisions()',
    );
    const failed = await attachWith([r1]);
    expect(failed.code).toBe(1);
    expect(await hasControlSchema(r1)).toBe(false);
    await r1.query('DROP EVENT TRIGGER refuse_decisions');
    const again = await attachWith([r1]);
    expect(again.code).toBe(0);
    expect(await r1.query('SELECT version::int FROM lockstep.applied')).toEqual([{ version: 0 }]);
    // Version 0 stands one byte before the slot's consistent point (its confirmed point while
    // nothing has streamed): a transaction whose commit starts at that point is still numbered.
    const [placed] = await r1.query<{ lsn: string }>('SELECT lsn::text FROM lockstep.applied');
    const gaps = await clusters.primary.query(
      `SELECT (confirmed_flush_lsn - $1::pg_lsn)::int AS gap FROM pg_replication_slots
        WHERE database = current_database() AND slot_type = 'logical'`,
      [placed?.lsn],
    );
    expect(gaps).toEqual([{ gap: 1 }]);
  });

  it('completes the migration bookkeeping an older lockstep left alone, instead of refusing it', async () => {
    const [r1, r2] = [replica(0), replica(1)];
    // What an older lockstep created before its migrations, in transactions of their own.
    await r2.query(`CREATE SCHEMA lockstep;
      CREATE TABLE lockstep.kysely_migration (name varchar(255) NOT NULL PRIMARY KEY,
                                              timestamp varchar(255) NOT NULL);
      CREATE TABLE lockstep.kysely_migration_lock (id varchar(255) NOT NULL PRIMARY KEY,
                                                   is_locked integer NOT NULL DEFAULT 0);
      INSERT INTO lockstep.kysely_migration_lock VALUES ('migration_lock', 0)`);
    const joined = await attachWith([r1, r2]);
    expect(joined.code).toBe(0);
    expect(await r2.query('SELECT count(*)::int AS n FROM items')).toEqual([{ n: 100 }]);
  });
});
