import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { useAppSidecar } from '../support/use-app-sidecar.js';
import { useAttached } from '../support/use-attached.js';

// Query strings a replica cannot count or cut as the primary did: it must halt with the
// reason, never run a statement the primary did not. Each halts its stream: one cluster each.
const SCHEMA = `
  CREATE TABLE marker (id bigserial PRIMARY KEY);
  CREATE ROLE app LOGIN;
  GRANT CREATE ON SCHEMA public TO app;
  CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0);
  ALTER TABLE accounts OWNER TO app;
  CREATE FUNCTION evil_fn() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
  CREATE TRIGGER evil BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION evil_fn();`;

const STATE = `SELECT (SELECT tgenabled FROM pg_trigger WHERE tgname = 'evil') AS evil,
  to_regclass('accounts')::text AS accounts, to_regclass('victim')::text AS victim`;

function haltsOn(name: string, send: (app: pg.Client) => Promise<void>, why: RegExp): void {
  describe(name, () => {
    const clusters = useAttached({
      replicas: 1,
      schema: SCHEMA,
      // A row, so the USING expression runs (and flips the setting).
      seed: 'INSERT INTO accounts VALUES (1, 10)',
      config: { twoPhase: { captureDdl: true }, tables: ['public.*'] },
    });
    const running = useAppSidecar(clusters);

    it('halts the replica with the reason, having run nothing the primary did not', async () => {
      await running.app.query('CREATE TABLE victim (x int)');
      await waitForMarker(clusters.primary, clusters.replicas);
      const [replica] = clusters.replicas;
      const before = await replica?.query(STATE);
      await send(running.app);
      let error: string | null = null;
      await eventually(async () => {
        const status = await readStatus(postgresCluster(), loadConfig(clusters.configFile));
        error = status.replicas[0]?.error ?? null;
        return error !== null;
      }, 'the replica to refuse');
      expect(error).toMatch(why);
      expect(await replica?.query(STATE)).toEqual(before);
    });
  });
}

haltsOn(
  'a statement that turns standard_conforming_strings on while it runs',
  async (app) => {
    await app.query('SET standard_conforming_strings = off');
    await app.query(
      "ALTER TABLE accounts ALTER COLUMN balance TYPE int USING balance + 0 * length(set_config('standard_conforming' || '_strings', 'on', false) || '\\'), ENABLE ALWAYS TRIGGER evil, ALTER COLUMN balance SET DEFAULT length('); SELECT length(' || ' -- '\n)",
    );
  },
  /standard_conforming_strings on and off/,
);

haltsOn(
  'DDL after a ROLLBACK in its query string',
  async (app) => {
    await app.query('BEGIN; DROP TABLE accounts; ROLLBACK; DROP TABLE victim');
  },
  /restarts the count/,
);
