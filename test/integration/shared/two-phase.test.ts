import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../../support/compare-nodes.js';
import { criticalSetup, CRITICAL_TABLES as TABLES } from '../../support/critical-setup.js';
import { transports, useReplication } from '../../support/lockstep-transport.js';
import { refusedBy } from '../../support/round-log.js';

describe.each(transports)('two-phase rounds for a critical table (%s)', (transport) => {
  const replication = useReplication(transport, criticalSetup({ voteTimeoutMs: 3_000 }));
  const replicas = () => replication.replicas as [PostgresCluster, PostgresCluster];
  const has = async (node: PostgresCluster, id: number) =>
    (await node.query('SELECT 1 FROM accounts WHERE id = $1', [id])).length === 1;
  /** Every replica holds the critical row `id` (the round committed everywhere). */
  const committedEverywhere = async (id: number) =>
    (await has(replicas()[0], id)) && (await has(replicas()[1], id));
  const noGidLeft = () =>
    eventually(
      async () => (await preparedGids([replication.primary, ...replicas()])).length === 0,
      'no lockstep gid prepared anywhere',
    );

  it('commits a critical write on every replica, and the writes after it', async () => {
    replication.start();
    await replication.primary.query('INSERT INTO accounts VALUES (1, 10)');
    await replication.primary.query("INSERT INTO events (note) VALUES ('after')");
    await eventually(() => committedEverywhere(1), 'the round to commit on both replicas');
    await replication.converged();
    await expectIdentical(replication.primary, replicas(), TABLES);
    await noGidLeft();
  });

  it('commits on no replica while one refuses, and on every replica once the conflict is gone', async () => {
    const [r1, r2] = replicas();
    await r2.query('INSERT INTO accounts VALUES (2, 99)');
    replication.start();
    await replication.primary.query('INSERT INTO accounts VALUES (2, 10)');
    await eventually(
      async () => refusedBy(replication.coordinator, 'replica2', /duplicate key/) !== undefined,
      'replica2 to refuse the round',
    );
    // Aborted everywhere: the replica that voted yes rolled its PREPARE back.
    expect(await has(r1, 2)).toBe(false);
    await noGidLeft();
    expect(await has(r1, 2)).toBe(false);
    await r2.query('DELETE FROM accounts WHERE id = 2');
    await eventually(() => committedEverywhere(2), 'the retried round to commit');
    await replication.converged();
    await expectIdentical(replication.primary, replicas(), TABLES);
    await noGidLeft();
  });
});
