import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { freezeInTransaction, sessionEnded } from '../support/frozen-session.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 1_000),
  config: {
    twoPhase: { tag: false },
    // Also how long the replica lets a frozen agent's transaction hold its rows.
    applyTimeoutMs: 10_000,
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replica = () => clusters.replicas[0] as PostgresCluster;
const agent = () => startAgent(clusters.configFile, 'replica1');

/** Ends the replica session that holds the agent lock (a replica restart does the same to it). */
async function terminateLockHolder(): Promise<number> {
  const rows = await replica().query<{ pid: number }>(
    `SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
      WHERE a.application_name = 'lockstep-agent-lock' AND l.locktype = 'advisory' AND l.granted`,
  );
  for (const { pid } of rows) await replica().query('SELECT pg_terminate_backend($1)', [pid]);
  return rows.length;
}

async function moves(by: number, what: string): Promise<void> {
  const from = await appliedVersion(replica());
  await eventually(async () => (await appliedVersion(replica())) > from + by, what);
}

describe('lockstep agent when its lock is lost', () => {
  it('a paused agent keeps the replica; once its lock session ends the standby applies past its open transaction, and the paused one stands by when resumed; nothing doubled', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const first = agent();
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 1_000,
    });
    let second: LockstepProcess | null = null;
    try {
      await eventually(async () => first.logEvent('agent-active') !== undefined, 'agent 1 active');
      second = agent();
      await eventually(
        async () => second?.logEvent('agent-standby') !== undefined,
        'agent 2 to stand by',
      );
      await moves(50, 'agent 1 to apply');
      // Frozen inside an open apply transaction: it keeps the replica's position row locked.
      const frozenPid = await freezeInTransaction(first, {
        node: replica(),
        application: 'lockstep-apply-replica1',
        holdSql: 'SELECT 1 FROM accounts FOR UPDATE',
        holds: 'lockstep.applied',
      });
      const paused = await appliedVersion(replica());
      expect(await terminateLockHolder()).toBe(1);
      await eventually(
        async () => second?.logEvent('agent-active') !== undefined,
        'agent 2 to take over',
      );
      await eventually(
        async () => (await appliedVersion(replica())) > paused + 50,
        'agent 2 to apply',
      );
      // The replica ended the frozen transaction (idle past the apply deadline).
      await sessionEnded(replica(), 'lockstep-apply-replica1', frozenPid);
      first.kill('SIGCONT');
      await eventually(
        async () => first.logEvent('agent-lock-lost') !== undefined,
        'agent 1 to notice its lock is gone',
      );
      await moves(50, 'agent 2 to apply on');
      // Now the lock of a live agent: both are awake and may race for it.
      expect(await terminateLockHolder()).toBe(1);
      await eventually(
        async () => second?.logEvent('agent-lock-lost') !== undefined,
        'agent 2 to notice its lock is gone',
      );
      await moves(50, 'an agent to apply again');
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      // history has no key: a packet applied twice would leave its rows twice.
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      await workload.stop();
      first.kill('SIGCONT');
      for (const p of [first, second, publisher]) {
        if (!p) continue;
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  });
});
