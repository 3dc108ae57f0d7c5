import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, rowCount } from '../support/compare-nodes.js';
import {
  endCoordinatorSessions,
  freezeInTransaction,
  sessionEnded,
} from '../support/frozen-session.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// A sidecar frozen (SIGSTOP, a VM pause) inside an apply transaction keeps the replica's position
// row locked; its successor's first batch locks that row before it applies anything.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)',
  // Also how long the replica lets a frozen applier's transaction hold its rows.
  config: { applyTimeoutMs: 10_000 },
});

const replica = () => {
  const node = clusters.replicas[0];
  if (!node) throw new Error('no replica');
  return node;
};

describe('a sidecar frozen inside an apply transaction', () => {
  it('does not fence its successor out: the replica ends the idle transaction and the successor applies every row once', async () => {
    const frozen = new LockstepProcess(['run', '--config', clusters.configFile]);
    let successor: LockstepProcess | null = null;
    try {
      await eventually(async () => !!frozen.logEvent('sidecar-active'), 'the first sidecar active');
      await clusters.primary.query('INSERT INTO t VALUES (0, 0)');
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 1,
        'the first row applied',
      );
      // Its apply of the update waits on the row, then goes on with its transaction left open.
      const frozenPid = await freezeInTransaction(frozen, {
        node: replica(),
        application: 'lockstep-apply-replica1',
        holdSql: 'SELECT 1 FROM t FOR UPDATE',
        holds: 'lockstep.applied',
        trigger: () => clusters.primary.query('UPDATE t SET v = 1 WHERE id = 0'),
      });
      // Its lock session and walsender end (a DBA, timeouts) while it is frozen.
      await endCoordinatorSessions(clusters.primary);
      const next = new LockstepProcess(['run', '--config', clusters.configFile]);
      successor = next;
      await eventually(async () => !!next.logEvent('sidecar-active'), 'the successor active');
      await clusters.primary.query('INSERT INTO t SELECT g, g FROM generate_series(1, 100) g');
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 101,
        'the successor applying',
      );
      // The replica ended the frozen transaction (idle past the apply deadline).
      await sessionEnded(replica(), 'lockstep-apply-replica1', frozenPid);
      // Thawed, the deposed one finds its lock gone: nothing doubled, nothing lost.
      frozen.kill('SIGCONT');
      await eventually(async () => !!frozen.logEvent('lock-lost'), 'the lock loss noticed');
      await clusters.primary.query('INSERT INTO t SELECT g, g FROM generate_series(101, 150) g');
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 151,
        'every row once',
      );
      const [row] = await replica().query<{ v: number }>('SELECT v FROM t WHERE id = 0');
      expect(row?.v).toBe(1);
    } finally {
      frozen.kill('SIGCONT');
      frozen.kill('SIGKILL');
      successor?.kill('SIGTERM');
      await successor?.exited;
    }
  });
});
