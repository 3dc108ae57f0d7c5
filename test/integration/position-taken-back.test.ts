import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { criticalSetup } from '../support/critical-setup.js';
import { withSidecar } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached(criticalSetup({ voteTimeoutMs: 3_000 }));

const account = async (node: PostgresCluster, id: number) =>
  (await node.query('SELECT 1 FROM accounts WHERE id = $1', [id])).length > 0;

// Attach takes a joined replica's position back when it cannot vouch for it (the slot moved past
// it, it went stale during its copy, the check could not be made). While a sidecar runs, that
// replica is then one waiting for attach: it takes no part in rounds. Kept as a participant with
// its old position, it voted no on every round, and no critical write reached any replica.
describe('a replica whose position was taken back while the sidecar runs', () => {
  it('leaves the two-phase rounds: a critical write reaches the other replica', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await withSidecar(clusters.configFile, async (sidecar) => {
      await clusters.primary.query('INSERT INTO accounts VALUES (1, 10)');
      await eventually(
        async () => (await account(r1, 1)) && (await account(r2, 1)),
        'a first round',
      );
      await r2.query('DELETE FROM lockstep.applied');
      // Its next packet finds no position row to move.
      await clusters.primary.query(`INSERT INTO events (note) VALUES ('after')`);
      await sidecar.untilEvent('replica-stopped', { replica: r2.name, kind: 'not-synced' }, 30_000);
      await clusters.primary.query('INSERT INTO accounts VALUES (2, 20)');
      await eventually(async () => account(r1, 2), 'the critical write on replica1');
      expect(await account(r2, 2)).toBe(false);
    });
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  });
});
