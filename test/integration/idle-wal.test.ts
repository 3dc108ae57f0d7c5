import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { expectRetainedBelow, walLsn, writeNoise } from '../support/retained-wal.js';
import { useAttached } from '../support/use-attached.js';

const MB = 1024 * 1024;

// Only `quiet` is replicated; `noise` is a busy table of the primary's own.
const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE quiet (id serial PRIMARY KEY, note text NOT NULL);',
  config: { tables: ['public.quiet'] },
});

/** About `mb` MB of WAL on a table lockstep does not replicate, in 20 MB transactions. */
function writeNoiseMb(primary: PostgresCluster, mb: number): Promise<void> {
  return writeNoise(primary, mb * MB, { rows: 20_000, width: 30 });
}

async function insertQuiet(primary: PostgresCluster, note: string): Promise<number> {
  const [row] = await primary.query<{ id: number }>(
    'INSERT INTO quiet (note) VALUES ($1) RETURNING id',
    [note],
  );
  return row?.id as number;
}

async function onEveryReplica(id: number): Promise<void> {
  await eventually(async () => {
    for (const replica of clusters.replicas)
      if ((await replica.query('SELECT 1 FROM quiet WHERE id = $1', [id])).length === 0)
        return false;
    return true;
  }, `quiet row ${id} on every replica`);
}

describe('WAL of tables lockstep does not replicate', () => {
  it('is released while the replicated tables are quiet, and never past what a replica still needs', async () => {
    const { primary } = clusters;
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await onEveryReplica(await insertQuiet(primary, 'before'));

      // 200 MB of other tables' WAL: the slot keeps little of it.
      await writeNoiseMb(primary, 200);
      await expectRetainedBelow(primary, 64 * MB);

      // A replica that is down holds the slot: its WAL is kept until it is back.
      await r2.stopServer();
      const down = await insertQuiet(primary, 'while replica2 is down');
      const held = await walLsn(primary);
      await writeNoiseMb(primary, 100);
      await primary.query('CHECKPOINT');
      const [slot] = await primary.query<{ held: boolean }>(
        `SELECT restart_lsn <= $1::pg_lsn AS held FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
        [held],
      );
      expect(slot?.held).toBe(true);
      await r2.startServer();
      await onEveryReplica(down);

      // Positions moved to idle points survive a restart: nothing is marked stale, nothing lost.
      await writeNoiseMb(primary, 40);
      await expectRetainedBelow(primary, 64 * MB);
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(
        async () => sidecar.logEvent('sidecar-active') !== undefined,
        'the sidecar again',
      );
      await onEveryReplica(await insertQuiet(primary, 'after the restart'));
      expect(sidecar.logEvent('replica-stale')).toBeUndefined();
      await expectIdentical(primary, clusters.replicas, ['quiet']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
