import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { holdInTransaction } from '../support/frozen-replica.js';
import { lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { waitingOnLock } from '../support/waiting-sessions.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE t (id int PRIMARY KEY, v text);',
  seed: 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;',
  config: { controlTimeoutMs: 5_000 },
});

const replica1 = (): PostgresCluster => {
  const [node] = clusters.replicas;
  if (!node) throw new Error('no replica1');
  return node;
};

const rows = async (node: PostgresCluster) =>
  Number((await node.query<{ n: string }>('SELECT count(*)::text AS n FROM t'))[0]?.n);

// Emptying a replica for its resync (TRUNCATE) waits behind a long read there. The wait must end
// on the replica, named, and no backend may go on waiting to empty it after attach gave up.
describe('attach --resync while an application read holds a replicated table on the replica', () => {
  it('names the replica, the step and the fix, empties nothing, and resyncs once the read ends', async () => {
    const reader = await holdInTransaction(replica1(), 'SELECT count(*) FROM t');
    try {
      const refused = await lockstep([
        'attach',
        '--resync',
        'replica1',
        '--config',
        clusters.configFile,
      ]);
      expect(refused.code, refused.output).toBe(1);
      expect(refused.output).toMatch(
        /\[replica1\] emptying the replica for its copy failed: a lock it needs was not granted within lock_timeout/,
      );
      expect(refused.output).toMatch(/fix: find the session on the replica .*pg_locks/);
      expect(await waitingOnLock(replica1(), 'lockstep-resync')).toEqual([]);
    } finally {
      await reader.release();
    }
    // The TRUNCATE that waited never ran: replica1 still holds its rows.
    expect(await rows(replica1())).toBe(500);

    const resynced = await lockstep([
      'attach',
      '--resync',
      'replica1',
      '--config',
      clusters.configFile,
    ]);
    expect(resynced.code, resynced.output).toBe(0);
    await eventually(async () => (await rows(replica1())) === 500, 'replica1 copied again');
    await expectIdentical(clusters.primary, clusters.replicas, ['t']);
  });
});
