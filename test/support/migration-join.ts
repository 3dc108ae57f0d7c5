import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from './compare-nodes.js';
import { lockstep, writeConfig } from './lockstep-process.js';
import { type UsedClusters, useClusters } from './use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;

/** A stream of two replicas with a third to join, and a migration (`dir`) run by an older file. */
export interface MigrationJoin {
  readonly clusters: UsedClusters;
  replica(i: number): PostgresCluster;
  /** The sidecar's file (replica1 and replica2 until a test adds replica3). */
  config(): string;
  /** What the job running migrate read before replica3 was added. */
  older(): string;
  /** The migrations folder: 001-renew rewrites items and adds a row. */
  readonly dir: string;
  /** Whether migrate's primary transaction waits on a lock of items (a gate the test holds). */
  migrateGated(): Promise<boolean>;
  /**
   * Holds a gate on items, then runs `migrate up` with the older file until it
   * has passed its checks and waits there; the test commits `gate` to let it go.
   */
  migrateAtGate(): Promise<{ gate: pg.Client; migrate: ReturnType<typeof lockstep> }>;
}

/** Three replicas, the first two attached, and a migration for a join to race. */
export function useMigrationJoin(name: string): MigrationJoin {
  const clusters = useClusters({ replicas: 3 });
  const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
  const dir = mkdtempSync(path.join(os.tmpdir(), `lockstep-${name}-`));
  let config: ReturnType<typeof writeConfig> | undefined;
  let older: ReturnType<typeof writeConfig> | undefined;
  beforeAll(async () => {
    await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
    await clusters.primary.query(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 10) g`);
    config = writeConfig(clusters.primary, [replica(0), replica(1)]);
    // Its primary transaction waits at a test's gate longer than the default lock_timeout.
    older = writeConfig(clusters.primary, [replica(0), replica(1)], {
      twoPhase: { voteTimeoutMs: 120_000 },
    });
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.code, attached.output).toBe(0);
    writeFileSync(
      path.join(dir, '001-renew.sql'),
      `UPDATE items SET v = 'new'; INSERT INTO items VALUES (11, 'added');`,
    );
  });
  afterAll(() => {
    config?.remove();
    older?.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const migrateGated = async () =>
    (
      await clusters.primary.query(
        `SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'items'::regclass`,
      )
    ).length > 0;
  const olderFile = () => (older as { file: string }).file;
  return {
    clusters,
    replica,
    config: () => (config as { file: string }).file,
    older: olderFile,
    dir,
    migrateGated,
    migrateAtGate: async () => {
      // Neither the gate nor migrate's waiting transaction has a transaction id (ROW EXCLUSIVE
      // is not WAL-logged), so a snapshot taken meanwhile does not wait for them.
      const gate = new pg.Client({ connectionString: clusters.primary.url });
      await gate.connect();
      await gate.query('BEGIN');
      await gate.query('LOCK TABLE items IN ROW EXCLUSIVE MODE');
      const migrate = lockstep(
        ['migrate', 'up', '--config', olderFile(), '--dir', dir],
        {},
        180_000,
      );
      await eventually(migrateGated, 'migrate to pass its checks and wait at the gate');
      return { gate, migrate };
    },
  };
}
