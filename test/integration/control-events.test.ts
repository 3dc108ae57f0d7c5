import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { refreshControlEvents } from '../../adapters/postgres/setup/ddl-capture.js';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// An ordinary application role on every node, allowed what applications usually are.
const SCHEMA = `CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE TABLE events (id int PRIMARY KEY, amount int NOT NULL);
  CREATE TABLE load (id bigserial PRIMARY KEY, v int NOT NULL);
  CREATE ROLE app LOGIN;
  GRANT ALL ON events TO app;
  GRANT CREATE, USAGE ON SCHEMA public TO app;`;
const clusters = useAttached({
  replicas: 2,
  schema: SCHEMA,
  config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
});

let app: pg.Client;
let sidecar: LockstepProcess;
// A workload of its own runs throughout: forging happens while lockstep is busy.
let loading = true;
let load: Promise<void> = Promise.resolve();
beforeAll(async () => {
  app = new pg.Client({ connectionString: clusters.primary.urlFor({ user: 'app' }) });
  await app.connect();
  sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
  load = (async () => {
    while (loading)
      await clusters.primary.query('INSERT INTO load (v) SELECT g FROM generate_series(1, 50) g');
  })();
});
afterAll(async () => {
  loading = false;
  await load;
  await app.end();
  sidecar.kill('SIGTERM');
  await sidecar.exited;
});

const forgedDdl = (command: string) =>
  JSON.stringify({ searchPath: 'public', command, ordinal: 1 });
const tableExists = async (node: PostgresCluster, name: string) =>
  (await node.query('SELECT to_regclass($1) IS NOT NULL AS found', [name]))[0]?.found === true;

describe('control events: only what Postgres vouches lockstep wrote steers the replicas', () => {
  it('a forged DDL message from an application role runs nowhere, and is logged with its xid', async () => {
    await app.query('BEGIN');
    await app.query("SELECT pg_logical_emit_message(true, 'lockstep.ddl', $1)", [
      forgedDdl('CREATE TABLE pwned AS SELECT current_user AS who'),
    ]);
    await app.query('INSERT INTO events VALUES (1, 10)');
    const { rows } = await app.query<{ xid: string }>(
      'SELECT pg_current_xact_id()::xid::text AS xid',
    );
    await app.query('COMMIT');
    const xid = rows[0]?.xid;
    await waitForMarker(clusters.primary, clusters.replicas);
    for (const replica of clusters.replicas)
      expect(await tableExists(replica, 'pwned')).toBe(false);
    // The row change of the forging transaction is applied as any other.
    await expectIdentical(clusters.primary, clusters.replicas, ['events']);
    await eventually(
      async () =>
        sidecar
          .logLines()
          .some(
            (l) => l.prefix === 'lockstep.ddl' && l.reason === 'forged' && String(l.xid) === xid,
          ),
      'the forged message logged with its xid',
    );
  });

  it("a forged migration marker does not hide the transaction's row changes", async () => {
    await app.query(`BEGIN;
      SELECT pg_logical_emit_message(true, 'lockstep.migration', 'lockstep_lockstep_m1_1');
      INSERT INTO events VALUES (2, -5), (3, -7);
      UPDATE events SET amount = 0 WHERE id = 1;
      COMMIT;`);
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['events']);
    await eventually(
      async () =>
        sidecar.logLines().some((l) => l.prefix === 'lockstep.migration' && l.reason === 'forged'),
      'the forged marker logged',
      15_000,
    );
  });

  it('captured DDL runs on the replicas as the role that ran it on the primary, and an application cannot opt out of capture', async () => {
    await app.query(`SET lockstep.migrating = 'on'`);
    await app.query('CREATE TABLE app_owned (id int PRIMARY KEY)');
    await app.query(`RESET lockstep.migrating`);
    await app.query('INSERT INTO app_owned VALUES (1), (2)');
    await waitForMarker(clusters.primary, clusters.replicas);
    for (const replica of clusters.replicas) {
      const [owner] = await replica.query<{ owner: string }>(
        "SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'app_owned'",
      );
      expect(owner?.owner).toBe('app');
    }
    await expectIdentical(clusters.primary, clusters.replicas, ['app_owned']);
  });

  it('temporary objects are not captured, and the stream goes on', async () => {
    // Kept for the session: a later permanent table holding all its columns would look LIKE it.
    await app.query('CREATE TEMP TABLE scratch (id int, note text)');
    await app.query('INSERT INTO scratch VALUES (1)');
    await app.query('INSERT INTO events VALUES (4, 4)');
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['events']);
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  });

  it('the workload that ran through the forging is identical everywhere', async () => {
    loading = false;
    await load;
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['load', 'events']);
  });

  it('the control-event table stays empty and no application role may write it', async () => {
    expect(await clusters.primary.query('SELECT * FROM lockstep.control_events')).toEqual([]);
    await expect(
      app.query(`INSERT INTO lockstep.control_events (kind, payload) VALUES ('ddl', '{}')`),
    ).rejects.toThrow(/permission denied/);
  });

  it('a trigger or rule enabled ALWAYS is refused for an application role (it would fire on replicas as lockstep)', async () => {
    await app.query('CREATE TABLE app_notes (id int PRIMARY KEY)');
    await app.query(`CREATE FUNCTION app_note() RETURNS trigger LANGUAGE plpgsql
                     AS $$ BEGIN RETURN NEW; END $$`);
    await app.query(
      'CREATE TRIGGER note BEFORE INSERT ON app_notes FOR EACH ROW EXECUTE FUNCTION app_note()',
    );
    await expect(app.query('ALTER TABLE app_notes ENABLE ALWAYS TRIGGER note')).rejects.toThrow(
      /enabled ALWAYS or REPLICA would fire on the replicas/,
    );
    await expect(app.query('ALTER TABLE app_notes ENABLE REPLICA TRIGGER note')).rejects.toThrow(
      /enabled ALWAYS or REPLICA/,
    );
  });

  it('captured DDL runs in a context it cannot leave: a function that tries to become the apply role fails on the replica', async () => {
    // On the primary the branch is never taken; on a replica session_user is lockstep's role.
    await app.query(`CREATE FUNCTION escape(x int) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN
        IF session_user <> current_user THEN
          RESET ROLE;
          EXECUTE 'ALTER ROLE app SUPERUSER';
        END IF;
        RETURN x;
      END $$`);
    await app.query('INSERT INTO app_notes VALUES (1), (2)');
    // Creating the view calls the function for every row, on every node (a materialised view is
    // not published, so the capture lets it through: the runner is what must hold).
    await app.query('CREATE MATERIALIZED VIEW escaped AS SELECT escape(id) AS id FROM app_notes');
    await eventually(
      async () =>
        sidecar.logLines().some((l) => /within security-definer function/.test(JSON.stringify(l))),
      'the replicas to refuse the escape',
    );
    for (const replica of clusters.replicas) {
      const [row] = await replica.query<{ rolsuper: boolean }>(
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'",
      );
      expect(row?.rolsuper).toBe(false);
      // A DBA replaces the function on the replicas: the held DDL then goes through.
      await replica.query(`CREATE OR REPLACE FUNCTION escape(x int) RETURNS int
                           LANGUAGE sql AS 'SELECT x'`);
    }
    await waitForMarker(clusters.primary, clusters.replicas);
    await expectIdentical(clusters.primary, clusters.replicas, ['app_notes']);
  });

  it("refuses a replicated table's constraint over a function the application can change (it would run as lockstep on replicas)", async () => {
    await app.query(`CREATE FUNCTION pwn() RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN
        IF session_user <> current_user OR current_setting('is_superuser') = 'on' THEN
          EXECUTE 'ALTER ROLE app SUPERUSER';
        END IF;
        RETURN true;
      END $$`);
    await expect(
      app.query('CREATE TABLE victim (id int PRIMARY KEY, CHECK (pwn()))'),
    ).rejects.toThrow(/which role app can change/);
    expect(await clusters.primary.query("SELECT to_regclass('victim') AS t")).toEqual([
      { t: null },
    ]);
  });

  it('refuses to stream when the control-event table belongs to a role that could forge', async () => {
    await clusters.primary.query('ALTER TABLE lockstep.control_events OWNER TO app');
    try {
      const refused = await refreshControlEvents(clusters.primary.url, 'lockstep', true).then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(LockstepError);
      expect((refused as LockstepError).message).toMatch(/owned by role app/);
    } finally {
      await clusters.primary.query('ALTER TABLE lockstep.control_events OWNER TO postgres');
    }
  });

  it('lockstep run puts back a capture left by an older lockstep (it would send DDL as plain messages)', async () => {
    await clusters.primary.query(`CREATE OR REPLACE FUNCTION lockstep.capture_ddl() RETURNS event_trigger
      LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_logical_emit_message(true, 'lockstep.ddl', current_query()); END $$`);
    await refreshControlEvents(clusters.primary.url, 'lockstep', true);
    const [fn] = await clusters.primary.query<{ definer: boolean; src: string }>(
      "SELECT prosecdef AS definer, prosrc AS src FROM pg_proc WHERE oid = 'lockstep.capture_ddl()'::regprocedure",
    );
    expect(fn?.definer).toBe(true);
    expect(fn?.src).toMatch(/control_events/);
  });

  it('lockstep run upgrades a capture 6 install: the statistics note gives way to the command-start note', async () => {
    // Capture 6's statistics note in place of the command-start note, and its capture version.
    await clusters.primary.query(`CREATE OR REPLACE FUNCTION lockstep.capture_ddl() RETURNS event_trigger
      LANGUAGE plpgsql SECURITY DEFINER AS $$ -- lockstep capture 6
      BEGIN END $$;
      DROP EVENT TRIGGER lockstep_note_command_start;
      DROP FUNCTION lockstep.note_command_start(), lockstep.grant_reach(), lockstep.own_xid(xid),
        lockstep.refuse_temporary_dependents(text), lockstep.refuse_temporary_names(text);
      CREATE FUNCTION lockstep.note_temporary_statistics() RETURNS event_trigger
      LANGUAGE plpgsql AS $$ BEGIN END $$;
      CREATE EVENT TRIGGER lockstep_note_temporary_statistics ON ddl_command_start
        EXECUTE FUNCTION lockstep.note_temporary_statistics()`);
    await refreshControlEvents(clusters.primary.url, 'lockstep', true);
    expect(
      await clusters.primary.query(
        `SELECT evtname, evtevent, evtenabled FROM pg_event_trigger WHERE evtname LIKE 'lockstep%' ORDER BY 1`,
      ),
    ).toEqual([
      { evtname: 'lockstep_capture_ddl', evtevent: 'ddl_command_end', evtenabled: 'O' },
      { evtname: 'lockstep_note_command_start', evtevent: 'ddl_command_start', evtenabled: 'O' },
      { evtname: 'lockstep_note_temporary_drop', evtevent: 'sql_drop', evtenabled: 'O' },
      { evtname: 'lockstep_refuse_volatile_rewrite', evtevent: 'table_rewrite', evtenabled: 'O' },
    ]);
    const [fn] = await clusters.primary.query<{ src: string; retired: boolean }>(
      `SELECT prosrc AS src, to_regprocedure('lockstep.note_temporary_statistics()') IS NULL AS retired
         FROM pg_proc WHERE oid = 'lockstep.capture_ddl()'::regprocedure`,
    );
    expect(fn).toMatchObject({ src: expect.stringMatching(/lockstep capture 8/), retired: true });
    // A GRANT on a temporary table, in a savepoint too, stays local again; the retired
    // function's DROP reached no replica.
    await app.query('CREATE TEMP TABLE upgraded (x int)');
    await app.query('BEGIN; SAVEPOINT s; GRANT SELECT ON upgraded TO PUBLIC; COMMIT');
    await waitForMarker(clusters.primary, clusters.replicas);
  });
});
