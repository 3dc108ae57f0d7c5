import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, rewriteConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// Phase two on the frozen replica, and the removal's check of it, each wait out controlTimeoutMs.
const CONFIG = {
  twoPhase: { tables: ['public.accounts'], voteTimeoutMs: 2_000 },
  controlTimeoutMs: 5_000,
};
const clusters = useAttached({
  replicas: 2,
  schema: `
    CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
    CREATE TABLE marker (id serial PRIMARY KEY);`,
  seed: 'INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;',
  config: CONFIG,
});

describe('a replica frozen after it prepared a decided round, then removed from the configuration', () => {
  it('leaves the round: the removal ends, the others commit this round and the next ones', async () => {
    const { primary } = clusters;
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    const blocker = new pg.Client({ connectionString: primary.url });
    let frozen = false;
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await waitForMarker(primary, clusters.replicas);
      // Holds the commit decision back until both replicas have prepared the round.
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE lockstep.decisions IN EXCLUSIVE MODE');
      await primary.query('UPDATE accounts SET balance = balance - 1 WHERE id = 1');
      await eventually(
        async () => (await preparedGids(clusters.replicas)).length === 2,
        'both replicas to prepare the round',
      );
      const [gid] = (await preparedGids([r2])).map((g) => g.split(':')[1]);
      await r2.freezeServer();
      frozen = true;
      // The decision is recorded now: phase two cannot finish on the frozen replica.
      await blocker.query('COMMIT');
      await eventually(
        async () =>
          Number(
            (await r1.query<{ b: number }>('SELECT balance AS b FROM accounts WHERE id = 1'))[0]?.b,
          ) === 99,
        'replica1 to commit the round',
      );

      rewriteConfig(clusters.configFile, primary, [r1], CONFIG);
      await eventually(
        async () =>
          sidecar.logLines().some((l) => l.event === 'replica-removed' && l.replica === r2.name),
        'replica2 to be removed while frozen',
        150_000,
      );
      // The next two-phase rounds commit without it.
      await primary.query('UPDATE accounts SET balance = balance + 5 WHERE id = 2');
      await waitForMarker(primary, [r1]);
      await expectIdentical(primary, [r1], ['accounts', 'marker']);
      expect(await preparedGids([r1])).toEqual([]);
      // Nobody could reach it to finish the gid: the removal said so, with the fix.
      const unchecked = sidecar
        .logLines()
        .find((l) => l.event === 'removed-replica-unchecked' && l.replica === r2.name);
      expect(unchecked?.fix).toEqual(expect.stringContaining('lockstep recover'));
      await r2.thawServer();
      frozen = false;
      // A COMMIT PREPARED the round had in flight may land after the thaw; otherwise the fix applies.
      const decided = await primary.query<{ decision: string }>(
        'SELECT decision FROM lockstep.decisions WHERE gid = $1',
        [gid],
      );
      expect(decided.map((d) => d.decision)).toEqual(['commit']);
      if ((await preparedGids([r2])).length > 0) await r2.query(`COMMIT PREPARED '${gid}'`);
      // Never rolled back after the commit decision.
      expect(await r2.query('SELECT balance FROM accounts WHERE id = 1')).toEqual([
        { balance: 99 },
      ]);
    } finally {
      if (frozen) await r2.thawServer();
      await blocker.end().catch(() => undefined);
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
