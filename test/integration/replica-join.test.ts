import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  rewriteConfig,
  writeConfig,
} from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useClusters } from '../support/use-clusters.js';

const SIZE = { branches: 2, accountsPerBranch: 20_000 };
const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
// Only a removal may finish the gid prepared on a replica below, not the periodic recovery.
const EXTRA = { twoPhase: { recoveryIntervalMs: 600_000 } };

const clusters = useClusters({ replicas: 4 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
let config: ReturnType<typeof writeConfig>;
let sidecar: LockstepProcess;

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(TPCB_SCHEMA)));
  await clusters.primary.query(tpcbSeed(SIZE.branches, SIZE.accountsPerBranch));
  config = writeConfig(clusters.primary, [replica(0), replica(1)], EXTRA);
  const attached = await lockstep(['attach', '--config', config.file]);
  expect(attached.code).toBe(0);
  sidecar = new LockstepProcess(['run', '--config', config.file]);
});

afterAll(async () => {
  sidecar?.kill('SIGTERM');
  await sidecar?.exited;
  config?.remove();
});

const logged = (event: string, name: string) =>
  sidecar.logLines().some((l) => l.event === event && l.replica === name);

/**
 * Runs `work` while sampling the applied versions of `nodes` every 3 s (at
 * least three samples), and checks every node applied more between each two
 * samples: none of them stopped meanwhile.
 */
async function whileApplying<T>(nodes: readonly PostgresCluster[], work: () => Promise<T>) {
  const samples: number[][] = [];
  let done = false;
  const sampler = (async () => {
    while (!done || samples.length < 3) {
      samples.push(await Promise.all(nodes.map(appliedVersion)));
      await new Promise((r) => setTimeout(r, 3_000));
    }
    samples.push(await Promise.all(nodes.map(appliedVersion)));
  })();
  let result: T;
  try {
    result = await work();
  } finally {
    done = true;
    await sampler;
  }
  const stalls: string[] = [];
  for (let i = 1; i < samples.length; i++)
    for (const [n, node] of nodes.entries()) {
      const [was, is] = [samples[i - 1]?.[n] ?? 0, samples[i]?.[n] ?? 0];
      if (is <= was)
        stalls.push(`${node.name}: version ${was} then ${is} (samples ${i - 1}, ${i})`);
    }
  expect(stalls).toEqual([]);
  return result;
}

/** Waits until `node` has applied at least what `reference` had applied when this was called. */
async function caughtUp(node: PostgresCluster, reference: PostgresCluster): Promise<void> {
  const target = await appliedVersion(reference);
  await eventually(
    async () => (await appliedVersion(node)) >= target,
    `${node.name} to reach version ${target}`,
    120_000,
  );
}

const slotConfirmed = async () =>
  (
    await clusters.primary.query<{ lsn: string }>(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
    )
  )[0]?.lsn;

const statusRow = async (name: string) =>
  (
    await clusters.primary.query<{ state: string; stale: boolean }>(
      'SELECT state, stale_since IS NOT NULL AS stale FROM lockstep.replica_status WHERE replica = $1',
      [name],
    )
  )[0];

describe('replicas come and go while the sidecar runs, under a TPC-B workload', () => {
  it('a replica added to the configuration, then attached, joins without a resync', async () => {
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    const workload = backgroundTpcb(clusters.primary.url, SIZE);
    try {
      await waitForMarker(clusters.primary, [r1, r2]);
      rewriteConfig(config.file, clusters.primary, [r1, r2, r3], EXTRA);
      await eventually(async () => logged('replica-added', r3.name), 'the sidecar to add replica3');
      await eventually(
        async () => (await statusRow(r3.name))?.state === 'not-attached',
        'replica3 reported as not attached',
      );
      // It holds the slot while it has no position: the others apply, the slot stays.
      const held = await slotConfirmed();
      const before = await appliedVersion(r1);
      await eventually(async () => (await appliedVersion(r1)) > before + 20, 'replica1 to apply');
      expect(await slotConfirmed()).toBe(held);

      const attached = await whileApplying([r1, r2], async () => {
        const result = await lockstep(['attach', '--config', config.file]);
        await caughtUp(r3, r1);
        return result;
      });
      expect(attached.output).toMatch(/joining: .* replicas=replica3 version=\d+/);
      expect(attached.code).toBe(0);
    } finally {
      await workload.stop();
    }
    await waitForMarker(clusters.primary, [r1, r2, r3]);
    await expectIdentical(clusters.primary, [r1, r2, r3], TABLES);
    expect(sidecar.logLines().filter((l) => l.event === 'replica-stale')).toEqual([]);
    expect(await statusRow(r3.name)).toEqual({ state: 'streaming', stale: false });
  });

  it('an attach started before the sidecar noticed the change waits for it, then joins', async () => {
    const [r1, r2, r3, r4] = [replica(0), replica(1), replica(2), replica(3)];
    // attach reads a configuration naming replica4 while the sidecar's file does not yet.
    const ahead = writeConfig(clusters.primary, [r1, r2, r3, r4], EXTRA);
    const workload = backgroundTpcb(clusters.primary.url, SIZE);
    try {
      await waitForMarker(clusters.primary, [r1, r2, r3]);
      const attach = new LockstepProcess(['attach', '--config', ahead.file]);
      const code = await whileApplying([r1, r2, r3], async () => {
        await eventually(
          async () => /waiting for the running sidecar .*replicas=replica4/.test(attach.output),
          'attach to wait for the sidecar',
        );
        expect(logged('replica-added', r4.name)).toBe(false);
        rewriteConfig(config.file, clusters.primary, [r1, r2, r3, r4], EXTRA);
        const exited = await attach.closed;
        await caughtUp(r4, r1);
        return exited;
      });
      expect(attach.output).toMatch(/joining: .* replicas=replica4 version=\d+/);
      expect(code).toBe(0);
    } finally {
      await workload.stop();
      ahead.remove();
    }
    await waitForMarker(clusters.primary, [r1, r2, r3, r4]);
    await expectIdentical(clusters.primary, [r1, r2, r3, r4], TABLES);
    expect(sidecar.logLines().filter((l) => l.event === 'replica-stale')).toEqual([]);
  });

  it('a replica removed from the configuration stops at once, its prepared gid is finished, its data is left', async () => {
    const [r1, r2, r3, r4] = [replica(0), replica(1), replica(2), replica(3)];
    // A round's transaction a crash left prepared there, with no decision: presumed abort.
    const gid = 'lockstep_lockstep_999999_1e1';
    const session = new pg.Client({ connectionString: r3.url });
    await session.connect();
    try {
      await session.query('BEGIN');
      await session.query(`PREPARE TRANSACTION '${gid}'`);
    } finally {
      await session.end();
    }
    const workload = backgroundTpcb(clusters.primary.url, SIZE);
    let left: number;
    try {
      await waitForMarker(clusters.primary, [r1, r2, r3, r4]);
      await whileApplying([r1, r2, r4], async () => {
        rewriteConfig(config.file, clusters.primary, [r1, r2, r4], EXTRA);
        await eventually(async () => logged('replica-removed', r3.name), 'replica3 removed');
      });
      left = await appliedVersion(r3);
      // The slot no longer waits for it: it moves past replica3's position.
      const [{ lsn }] = (await r3.query<{ lsn: string }>(
        'SELECT lsn::text AS lsn FROM lockstep.applied',
      )) as [{ lsn: string }];
      await eventually(
        async () =>
          (
            await clusters.primary.query<{ past: boolean }>(
              `SELECT confirmed_flush_lsn > $1::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
              [lsn],
            )
          )[0]?.past === true,
        'the slot to move past replica3',
      );
    } finally {
      await workload.stop();
    }
    await waitForMarker(clusters.primary, [r1, r2, r4]);
    await expectIdentical(clusters.primary, [r1, r2, r4], TABLES);
    expect(
      sidecar
        .logLines()
        .filter((l) => l.event === 'removed-replica-recovered')
        .map((l) => [l.replica, l.gid, l.action]),
    ).toEqual([[r3.name, gid, 'rolled-back']]);
    expect(await r3.query('SELECT gid FROM pg_prepared_xacts')).toEqual([]);
    expect(await statusRow(r3.name)).toBeUndefined();
    // Its own data stays as it was when it left.
    expect(await appliedVersion(r3)).toBe(left);
    expect(
      Number((await r3.query<{ n: string }>('SELECT count(*) AS n FROM accounts'))[0]?.n),
    ).toBe(SIZE.branches * SIZE.accountsPerBranch);
    expect(sidecar.logLines().filter((l) => l.event === 'replica-stale')).toEqual([]);
  });
});
