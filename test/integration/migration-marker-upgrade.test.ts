import { expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE items (id int PRIMARY KEY, v text);
           CREATE TABLE marker (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());`,
  seed: `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g`,
});

const TABLE_BOOKKEEPING = `UPDATE lockstep.kysely_migration SET timestamp = $1
  WHERE name = '011-migration-gids'`;

/**
 * Runs `exec` of `sql`, committed on every node but with the stream stopped
 * before the primary's marker reaches a replica (the sidecar is stopped
 * while recovery commits the round). The round's gid.
 */
async function execWithStreamStopped(sidecar: LockstepProcess, sql: string): Promise<string> {
  const args = ['exec', '--config', clusters.configFile, '--sql', sql];
  const killed = new LockstepProcess(args, { LOCKSTEP_FAULT: 'after-decision' });
  expect(await killed.exited, killed.output).toBeNull();
  const [prepared] = await preparedGids([clusters.primary]);
  expect(prepared).toBeDefined();
  sidecar.kill('SIGTERM');
  expect(await sidecar.exited).toBe(0);
  const recovered = await lockstep(['recover', '--config', clusters.configFile]);
  expect(await preparedGids([clusters.primary, ...clusters.replicas]), recovered.output).toEqual(
    [],
  );
  return (prepared as string).slice((prepared as string).indexOf(':') + 1);
}

/** Whether replica1 got past the marker (a row written after it) or halted at it. */
async function passedOrHalted(sidecar: LockstepProcess, r1: PostgresCluster): Promise<void> {
  const [row] = await clusters.primary.query<{ id: string }>(
    'INSERT INTO marker DEFAULT VALUES RETURNING id',
  );
  await eventually(
    async () =>
      (await r1.query('SELECT 1 FROM marker WHERE id = $1', [row?.id])).length > 0 ||
      sidecar.logEvent('replica-stopped', { replica: 'replica1' }) !== undefined,
    'replica1 past the marker or halted at it',
  );
}

it("passes a marker of a round run before its gid table existed, halts at a later one's", async () => {
  const [r1] = clusters.replicas as [PostgresCluster, PostgresCluster];
  let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
  try {
    // The upgrade race: replica1 committed the round without a gid table, then (still
    // lagging behind the marker) had its control schema upgraded: no row, a younger table.
    const early = await execWithStreamStopped(
      sidecar,
      "UPDATE items SET v = 'early' WHERE id <= 10",
    );
    await r1.query('DELETE FROM lockstep.migration_gids WHERE gid = $1', [early]);
    await r1.query(TABLE_BOOKKEEPING, [new Date().toISOString()]);
    sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    await passedOrHalted(sidecar, r1);
    expect(sidecar.events('replica-stopped', { replica: 'replica1' })).toEqual([]);
    await expectIdentical(clusters.primary, clusters.replicas, ['items', 'marker']);

    // A round run long after an upgrade made the table (its bookkeeping row rewritten, an hour
    // before the round: past the clock-skew margin), and missing here: the backstop still halts.
    await r1.query(TABLE_BOOKKEEPING, [new Date(Date.now() - 3_600_000).toISOString()]);
    const late = await execWithStreamStopped(sidecar, "UPDATE items SET v = 'late' WHERE id > 90");
    await r1.query('DELETE FROM lockstep.migration_gids WHERE gid = $1', [late]);
    sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    await passedOrHalted(sidecar, r1);
    expect(sidecar.logEvent('replica-stopped', { replica: 'replica1' })).toMatchObject({
      kind: 'migration-missing',
      migration: late,
      state: 'halted',
    });
  } finally {
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  }
}, 180_000);
