import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { clusterProvider } from '../harness/clusters.js';
import { eventually } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';

let notLogical: PostgresCluster; // primary with wal_level=replica
let fullSlots: PostgresCluster; // primary whose only slot is taken
let noPrepared: PostgresCluster; // replica with max_prepared_transactions=0
let drifted: PostgresCluster; // replica whose tables differ
let risky: PostgresCluster; // primary that cannot prepare, with settings that hurt later
const configs: Array<{ remove(): void }> = [];

beforeAll(async () => {
  const provider = await clusterProvider();
  [notLogical, fullSlots, noPrepared, drifted, risky] = await Promise.all([
    provider.start({ role: 'primary', name: 'not-logical', settings: { wal_level: 'replica' } }),
    provider.start({
      role: 'primary',
      name: 'full-slots',
      settings: { max_replication_slots: 1, max_wal_senders: 1 },
    }),
    provider.start({
      role: 'replica',
      name: 'no-prepared',
      settings: { max_prepared_transactions: 0 },
    }),
    provider.start({ role: 'replica', name: 'drifted' }),
    provider.start({
      role: 'primary',
      name: 'risky',
      settings: {
        max_prepared_transactions: 0,
        wal_sender_timeout: '5s',
        idle_session_timeout: '1h',
        max_slot_wal_keep_size: -1,
      },
    }),
  ]);
  const primaryTables = `CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2), note text);
                         CREATE TABLE audit (at timestamptz, what text);
                         CREATE TABLE gone (id int PRIMARY KEY);`;
  await Promise.all([
    notLogical.query(primaryTables),
    fullSlots.query(primaryTables),
    noPrepared.query(primaryTables),
  ]);
  await drifted.query(`CREATE TABLE orders (id int PRIMARY KEY, total text, extra int NOT NULL);
                       CREATE TABLE audit (at timestamptz, what text);`);
  // The same table as the drifted replica's: only the primary's settings are at fault.
  await risky.query('CREATE TABLE orders (id int PRIMARY KEY, total text, extra int NOT NULL)');
  await fullSlots.query(`SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')`);
  await fullSlots.query('CREATE ROLE app_no_repl LOGIN');
});
afterAll(async () => {
  for (const c of configs) c.remove();
  await Promise.all([notLogical, fullSlots, noPrepared, drifted, risky].map((c) => c?.destroy()));
});

async function doctor(
  primaryUrl: PostgresCluster,
  replicas: PostgresCluster[],
  extra: Record<string, unknown> = {},
  flags: string[] = [],
) {
  const config = writeConfig(primaryUrl, replicas, extra);
  configs.push(config);
  return lockstep(['doctor', '--config', config.file, ...flags]);
}

/** `doctor --json`: its exit code, and each problem and warning as node and setting. */
async function doctorJson(primary: PostgresCluster, replicas: PostgresCluster[]) {
  const { code, stdout } = await doctor(primary, replicas, { tables: ['public.orders'] }, [
    '--json',
  ]);
  const report = JSON.parse(stdout) as {
    ok: boolean;
    problems: Array<{ node: string; setting: string | null; problem: string; fix: string }>;
    warnings: Array<{ node: string; setting: string | null; problem: string; fix: string }>;
    tables: string[];
  };
  const where = (list: typeof report.problems) => list.map((p) => [p.node, p.setting]);
  return { code, report, problems: where(report.problems), warnings: where(report.warnings) };
}

describe('lockstep doctor', () => {
  it('lists every problem of the primary and the replicas with its fix; an unreachable node makes it exit 3', async () => {
    const unreachable = {
      ...drifted,
      name: 'unreachable',
      url: 'postgres://postgres:hunter2@127.0.0.1:1/postgres',
    } as PostgresCluster;
    const { code, output } = await doctor(notLogical, [noPrepared, drifted, unreachable]);
    expect(code).toBe(3);
    // primary
    expect(output).toMatch(
      /\[primary\] wal_level is 'replica'; logical replication needs 'logical'\n\s+fix: run ALTER SYSTEM SET wal_level = 'logical'/,
    );
    expect(output).toMatch(
      /\[primary, table public\.audit\] the table has no primary key and no REPLICA IDENTITY FULL.*\n\s+fix: add a primary key, or run ALTER TABLE "public"\."audit" REPLICA IDENTITY FULL/,
    );
    // replicas
    expect(output).toMatch(
      /\[no-prepared\] max_prepared_transactions is 0.*\n\s+fix: set max_prepared_transactions = 64/,
    );
    expect(output).toMatch(
      /\[drifted, table public\.gone\] the table does not exist on the replica/,
    );
    expect(output).toMatch(
      /\[drifted, table public\.orders\] column "total" is text on the replica but numeric\(10,2\) on the primary\n\s+fix: .*ALTER COLUMN "total" TYPE numeric\(10,2\)/,
    );
    expect(output).toMatch(
      /\[drifted, table public\.orders\] column "note" \(text\) is missing on the replica/,
    );
    expect(output).toMatch(
      /\[drifted, table public\.orders\] column "extra" exists only on the replica and is NOT NULL without a default/,
    );
    expect(output).toMatch(
      /\[unreachable\] cannot connect to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/postgres.*\n\s+fix: check that the server is running/,
    );
    expect(output).not.toContain('hunter2');
  });

  it('names full slots, busy WAL senders and a role without REPLICATION', async () => {
    // Someone else's replication connection takes the only WAL sender.
    const walsender = new pg.Client({
      connectionString: fullSlots.url,
      replication: 'database',
    } as pg.ClientConfig);
    await walsender.connect();
    try {
      const asApp = {
        ...fullSlots,
        url: fullSlots.urlFor({ user: 'app_no_repl' }),
      } as PostgresCluster;
      const { code, output } = await doctor(asApp, [noPrepared], { tables: ['public.orders'] });
      expect(code).toBe(1);
      expect(output).toMatch(
        /all 1 replication slots are in use.*\n\s+fix: raise max_replication_slots/,
      );
      expect(output).toMatch(/all 1 WAL senders are busy.*\n\s+fix: raise max_wal_senders/);
      expect(output).toMatch(
        /role "app_no_repl" may not use replication slots.*\n\s+fix: as a superuser run: ALTER ROLE "app_no_repl" REPLICATION/,
      );
    } finally {
      await walsender.end();
    }
  });

  it('names the tables setting when no table matches', async () => {
    const { code, output } = await doctor(fullSlots, [noPrepared], { tables: ['nothing.*'] });
    expect(code).toBe(1);
    expect(output).toMatch(/no table matches the configured tables \["nothing\.\*"\]/);
  });

  it('warns about a primary that cannot prepare (migrate and exec need it) and settings that hurt later', async () => {
    const { code, report, problems, warnings } = await doctorJson(risky, [drifted]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(problems).toEqual([]);
    expect(warnings).toEqual([
      ['primary', 'max_prepared_transactions'],
      ['primary', 'idle_session_timeout'],
      ['primary', 'wal_sender_timeout'],
      ['primary', 'max_slot_wal_keep_size'],
    ]);
    expect(report.tables).toEqual(['public.orders']);
    // The same settings on a replica: only the session timeout matters there.
    await drifted.query(`ALTER SYSTEM SET idle_session_timeout = '1h'`);
    await drifted.query('SELECT pg_reload_conf()');
    try {
      await eventually(
        async () => (await doctorJson(risky, [drifted])).warnings.length === 5,
        'the reloaded setting',
      );
      expect((await doctorJson(risky, [drifted])).warnings).toContainEqual([
        'drifted',
        'idle_session_timeout',
      ]);
    } finally {
      await drifted.query('ALTER SYSTEM RESET idle_session_timeout');
      await drifted.query('SELECT pg_reload_conf()');
    }
  });

  it('says all is well when it is', async () => {
    await fullSlots.query(`SELECT pg_drop_replication_slot('someone_else')`);
    await noPrepared.query(`ALTER SYSTEM SET max_prepared_transactions = 10`);
    await noPrepared.stopServer();
    await noPrepared.startServer();
    const { code, output } = await doctor(fullSlots, [noPrepared], {
      tables: ['public.orders', 'public.gone'],
    });
    expect(output).toMatch(
      /✓ all nodes ready: primary and 1 replica\(s\), 2 table\(s\) to replicate/,
    );
    expect(code).toBe(0);

    // Warnings leave the exit code alone: an unbounded slot (the default), then one bounded too tightly.
    const unbounded = await doctorJson(fullSlots, [noPrepared]);
    expect(unbounded).toMatchObject({ code: 0, report: { ok: true }, problems: [] });
    expect(unbounded.warnings).toEqual([['primary', 'max_slot_wal_keep_size']]);
    const bounded = async (size: string) => {
      await fullSlots.query(`ALTER SYSTEM SET max_slot_wal_keep_size = '${size}'`);
      await fullSlots.query('SELECT pg_reload_conf()');
      await eventually(
        async () =>
          (
            await fullSlots.query<{ s: string }>(
              `SELECT current_setting('max_slot_wal_keep_size') AS s`,
            )
          )[0]?.s === size,
        `max_slot_wal_keep_size = ${size}`,
      );
      return doctorJson(fullSlots, [noPrepared]);
    };
    const tight = await bounded('100MB');
    expect(tight.code).toBe(0);
    expect(tight.warnings).toEqual([['primary', 'max_slot_wal_keep_size']]);
    expect(tight.report.warnings[0]?.problem).not.toBe(unbounded.report.warnings[0]?.problem);
    const enough = await bounded('4GB');
    expect(enough).toMatchObject({ code: 0, warnings: [] });
  });
});
