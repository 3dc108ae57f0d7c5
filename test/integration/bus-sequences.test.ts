import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();
/** Long enough that the agent's repeat of unchanged values (every sixth period) cannot pass for a copy after applying. */
const PERIOD_MS = 2_000;
// `ahead` sorts before the others: a round that moved them had read it first.
const clusters = useAttached({
  replicas: 1,
  schema: `
    CREATE TABLE ahead (id bigserial PRIMARY KEY);
    CREATE TABLE serials (id serial PRIMARY KEY, v text);
    CREATE TABLE idents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);`,
  config: {
    sequenceSyncMs: PERIOD_MS,
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

async function lastValues(node: PostgresCluster): Promise<Record<string, number>> {
  const rows = await node.query<{ name: string; v: string | null }>(
    `SELECT sequencename AS name, last_value::text AS v FROM pg_sequences
      WHERE schemaname = 'public' ORDER BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.v ?? 0)]));
}

async function stopped(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

/** Waits until the replica's serial and identity sequences reach the primary's values. */
async function caughtUp(replica: PostgresCluster): Promise<Record<string, number>> {
  const primary = await lastValues(clusters.primary);
  await eventually(async () => {
    const values = await lastValues(replica);
    return (
      (values.serials_id_seq ?? 0) >= (primary.serials_id_seq ?? 0) &&
      (values.idents_id_seq ?? 0) >= (primary.idents_id_seq ?? 0)
    );
  }, 'replica sequences at the primary values');
  return primary;
}

describe('sequences over the bus', () => {
  it('move the agent replica sequences up to the primary values, never back', async () => {
    const { primary } = clusters;
    const replica = clusters.replicas[0] as PostgresCluster;
    await replica.query(`SELECT setval('ahead_id_seq', 1000)`);
    await primary.query(`INSERT INTO ahead SELECT FROM generate_series(1, 5)`);
    await primary.query(`INSERT INTO serials (v) SELECT 'x' FROM generate_series(1, 25)`);
    await primary.query(`INSERT INTO idents (v) SELECT 'y' FROM generate_series(1, 40)`);
    // Drawn without a row: only the sequence knows.
    await primary.query(`SELECT nextval('serials_id_seq') FROM generate_series(1, 7)`);
    const run = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = startAgent(clusters.configFile, 'replica1');
    try {
      const first = await caughtUp(replica);
      expect(first).toMatchObject({ serials_id_seq: 32, idents_id_seq: 40, ahead_id_seq: 5 });
      // Further draws follow, while a sequence ahead on the replica stays where it is.
      await primary.query(`SELECT nextval('idents_id_seq') FROM generate_series(1, 100)`);
      await caughtUp(replica);
      const values = await lastValues(replica);
      expect(values.ahead_id_seq).toBe(1000);
      expect(values.idents_id_seq).toBeGreaterThanOrEqual(140);

      // A copy just happened (new values): the agent skips these values for five periods.
      await primary.query(`SELECT nextval('idents_id_seq') FROM generate_series(1, 10)`);
      await caughtUp(replica);
      // Emptied and reloaded with as many rows in one transaction: the primary's value ends
      // where it was (nothing new on the bus), while the replicated TRUNCATE restarted the
      // replica's sequence. The agent copies again at its next period after applying it,
      // not five periods later.
      await primary.query(`BEGIN;
        TRUNCATE serials RESTART IDENTITY;
        INSERT INTO serials (v) SELECT 'z' FROM generate_series(1, 32);
        COMMIT`);
      expect((await lastValues(primary)).serials_id_seq).toBe(32);
      await eventually(async () => {
        const [row] = await replica.query<{ n: string }>(
          `SELECT count(*) FILTER (WHERE v = 'z')::text AS n FROM serials`,
        );
        return row?.n === '32';
      }, 'the reload on the replica');
      await eventually(
        async () => (await lastValues(replica)).serials_id_seq === 32,
        'the replica sequence copied again after the TRUNCATE',
        3.5 * PERIOD_MS,
      );
      const [next] = await replica.query<{ id: string }>(
        `SELECT nextval('serials_id_seq')::text AS id`,
      );
      expect(Number(next?.id)).toBeGreaterThan(32);
    } finally {
      await stopped(agent);
      await stopped(run);
    }
  });
});
