import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  rewriteConfig,
  writeConfig,
} from '../support/lockstep-process.js';
import { otherDatabase } from '../support/other-database.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const TABLES = ['items', 'marker'];

const clusters = useClusters({ replicas: 3 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
let sidecarConfig: ReturnType<typeof writeConfig>;
let sidecar: LockstepProcess | null = null;
let next = 1;

const writeItems = (n: number) =>
  clusters.primary
    .query(
      `INSERT INTO items SELECT g, md5(g::text) FROM generate_series(${next}, ${next + n - 1}) g`,
    )
    .then(() => {
      next += n;
    });

/** Locks `items` on a node until released: a copy into it waits there. */
async function lockItems(node: PostgresCluster): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: node.url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
  return async () => {
    await client.query('ROLLBACK');
    await client.end();
  };
}

type Hold = { replica: string; lsn: string; holderAlive: boolean };
async function joinHolds(config: string): Promise<Hold[]> {
  const { stdout } = await lockstep(['status', '--config', config, '--json']);
  return (JSON.parse(stdout) as { joinHolds: Hold[] }).joinHolds;
}

/** How far past `lsn` the slot is confirmed (a position `p` is confirmed as `p + 1`). */
const slotPast = async (lsn: string) =>
  Number(
    (
      await clusters.primary.query<{ past: string }>(
        `SELECT pg_wal_lsn_diff(confirmed_flush_lsn, $1::pg_lsn)::text AS past
           FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
        [lsn],
      )
    )[0]?.past,
  );

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  await writeItems(2_000);
  sidecarConfig = writeConfig(clusters.primary, [replica(0), replica(1)]);
  expect((await lockstep(['attach', '--config', sidecarConfig.file])).code).toBe(0);
});

afterAll(async () => {
  sidecar?.kill('SIGTERM');
  await sidecar?.exited;
  sidecarConfig?.remove();
});

describe('attach holds the slot durably while it copies a joining replica', () => {
  it('a sidecar started during the copy is active and applies to the others; the replica converges', async () => {
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    const full = writeConfig(clusters.primary, [r1, r2, r3]);
    const release = await lockItems(r3);
    let attach: LockstepProcess | null = null;
    try {
      attach = new LockstepProcess(['attach', '--config', full.file]);
      await eventually(
        async () => (await joinHolds(full.file)).some((h) => h.replica === r3.name),
        'the join hold of replica3',
      );
      const [hold] = await joinHolds(full.file);
      expect(hold).toMatchObject({ replica: r3.name, holderAlive: true });
      // Started without replica3: only the hold keeps the slot at replica3's starting point.
      sidecar = new LockstepProcess(['run', '--config', sidecarConfig.file]);
      for (let i = 0; i < 5; i++) {
        await writeItems(200);
        await waitForMarker(clusters.primary, [r1, r2], 60_000);
      }
      expect(attach.child.exitCode).toBeNull();
      expect(await slotPast((hold as Hold).lsn)).toBeLessThanOrEqual(1);
      rewriteConfig(sidecarConfig.file, clusters.primary, [r1, r2, r3]);
      await eventually(
        async () => sidecar?.logLines().some((l) => l.event === 'replica-added') === true,
        'the sidecar to add replica3',
      );
    } finally {
      await release();
    }
    expect(await attach.closed).toBe(0);
    await writeItems(200);
    await waitForMarker(clusters.primary, [r1, r2, r3]);
    await expectIdentical(clusters.primary, [r1, r2, r3], TABLES);
    expect(await joinHolds(full.file)).toEqual([]);
    full.remove();
  });

  it('a hold left by a killed attach shows in status and doctor; the next attach replaces it', async () => {
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    const late = { ...(await otherDatabase(r3, 'late')), name: 'replica4' };
    await late.query(SCHEMA);
    const all = [r1, r2, r3, late];
    rewriteConfig(sidecarConfig.file, clusters.primary, all);
    const release = await lockItems(late);
    try {
      const killed = new LockstepProcess(['attach', '--config', sidecarConfig.file]);
      await eventually(
        async () => (await joinHolds(sidecarConfig.file)).some((h) => h.holderAlive),
        'the join hold of replica4',
      );
      killed.kill('SIGKILL');
      await killed.exited;
      // Its session on the primary ended with it: the hold stays, shown as left behind.
      await eventually(
        async () =>
          JSON.stringify(
            (await joinHolds(sidecarConfig.file)).map((h) => [h.replica, h.holderAlive]),
          ) === JSON.stringify([[late.name, false]]),
        'the hold to be shown as left behind',
      );
      const doctor = await lockstep(['doctor', '--config', sidecarConfig.file, '--json']);
      const { warnings } = JSON.parse(doctor.stdout) as {
        warnings: Array<{ node: string; setting: string }>;
      };
      expect(warnings.filter((w) => w.setting === 'join hold').map((w) => w.node)).toEqual([
        late.name,
      ]);
    } finally {
      await release();
    }
    expect((await lockstep(['attach', '--config', sidecarConfig.file])).code).toBe(0);
    expect(await joinHolds(sidecarConfig.file)).toEqual([]);
    await writeItems(100);
    await waitForMarker(clusters.primary, all);
    await expectIdentical(clusters.primary, all, TABLES);
  });
});
