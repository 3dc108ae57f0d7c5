import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { markedUnresponsive } from '../support/frozen-replica.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `
    CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
    CREATE TABLE events (id serial PRIMARY KEY, note text NOT NULL);
    CREATE TABLE marker (id serial PRIMARY KEY);`,
  seed: 'INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;',
  // Small batches and window: the stream may run only 2 × 100 changes ahead of the replica waiting
  // at the gate, and the frozen replica's packets leave memory once 300 changes are held.
  config: {
    applyTimeoutMs: 2_000,
    windowChanges: 300,
    batch: { maxRows: 100 },
    twoPhase: { tables: ['public.accounts'], voteTimeoutMs: 1_000 },
  },
});

/** One-phase transactions of `rows` rows each. */
async function writeEvents(primary: PostgresCluster, transactions: number, rows: number) {
  for (let i = 0; i < transactions; i++)
    await primary.query(
      `INSERT INTO events (note) SELECT 'n' || g FROM generate_series(1, ${rows}) g`,
    );
}

describe('a frozen replica behind a two-phase packet, the other waiting at its gate with the window full', () => {
  it('is re-read from the slot after the thaw: the round commits and both replicas converge', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const { primary } = clusters;
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let frozen = false;
    let exitCode: number | null = null;
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await waitForMarker(primary, clusters.replicas);
      await r2.freezeServer();
      frozen = true;
      await writeEvents(primary, 5, 50);
      await markedUnresponsive(sidecar, 'replica2');
      // replica1 moves past replica2 (whose packets then leave the window), then stops at the gate.
      await waitForMarker(primary, [r1], 30_000);
      const beforeGate = await appliedVersion(r1);
      await primary.query('UPDATE accounts SET balance = balance - 1 WHERE id = 1');
      // Far more than the window's lead behind the gate: the stream has to wait for room.
      await writeEvents(primary, 20, 50);
      await eventually(
        async () =>
          sidecar
            .logLines()
            .some(
              (l) => (l.refusals as Record<string, string> | undefined)?.replica2 !== undefined,
            ),
        'a round refused for the frozen replica',
      );
      // replica1 is held at the gate meanwhile.
      expect(await appliedVersion(r1)).toBe(beforeGate);
      await r2.thawServer();
      frozen = false;
      await waitForMarker(primary, clusters.replicas, 90_000);
      await expectIdentical(primary, clusters.replicas, ['accounts', 'events', 'marker']);
      expect(await preparedGids(clusters.replicas)).toEqual([]);
    } finally {
      if (frozen) await r2.thawServer();
      sidecar.kill('SIGTERM');
      exitCode = await sidecar.exited;
    }
    expect(exitCode).toBe(0);
  });
});
