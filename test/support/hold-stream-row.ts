import { expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { holdInTransaction } from './frozen-replica.js';
import { LockstepProcess } from './lockstep-process.js';

/**
 * Holds the stream's row in lockstep.streams on `primary` (an open
 * transaction, as a frozen `lockstep pause` would) until the returned
 * function is called (again: nothing).
 */
export async function holdStreamRow(
  primary: PostgresCluster,
  stream = 'lockstep',
): Promise<() => Promise<void>> {
  const { rowCount, release } = await holdInTransaction(
    primary,
    'SELECT 1 FROM lockstep.streams WHERE stream = $1 FOR UPDATE',
    [stream],
  );
  if (rowCount !== 1) throw new Error(`no row of stream ${stream} in lockstep.streams`);
  return release;
}

/**
 * Runs `lockstep run` on `configFile` while the stream's row is held: it
 * logs the lock wait with its fix and never claims another process active,
 * then logs `active` once the row is free.
 */
export async function runThroughHeldRow(
  primary: PostgresCluster,
  configFile: string,
  active: string,
): Promise<void> {
  const release = await holdStreamRow(primary);
  const run = new LockstepProcess(['run', '--config', configFile]);
  try {
    await run.untilEvent('lock-unreadable', { fix: /lockstep\.streams/ }, 30_000);
    expect(run.events('standby')).toEqual([]);
    await release();
    await run.untilEvent(active, {}, 30_000);
    expect(run.events('standby')).toEqual([]);
  } finally {
    await release();
    run.kill('SIGTERM');
    expect(await run.closed).toBe(0);
  }
}
