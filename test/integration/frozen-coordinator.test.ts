import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, rowCount } from '../support/compare-nodes.js';
import { insertIds } from '../support/frozen-session.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

// The active sidecar frozen (SIGSTOP, a paused VM) with nothing else failing: its lock session
// stays open, so only the server's idle bound on that session lets the standby take over.
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
  // Also how long the replica lets a frozen applier's transaction hold its rows.
  config: { applyTimeoutMs: 10_000 },
});

describe('the active sidecar frozen', () => {
  it('loses its lock to the standby, which applies every row; thawed, it stands by; nothing doubled', async () => {
    // The frozen process's walsender ends once it sends no feedback (as the doctor recommends).
    await clusters.primary.query("ALTER SYSTEM SET wal_sender_timeout = '5s'");
    await clusters.primary.query('SELECT pg_reload_conf()');
    const frozen = new LockstepProcess(['run', '--config', clusters.configFile]);
    let standby: LockstepProcess | null = null;
    try {
      await eventually(async () => !!frozen.logEvent('sidecar-active'), 'the first sidecar active');
      const next = new LockstepProcess(['run', '--config', clusters.configFile]);
      standby = next;
      await eventually(async () => !!next.logEvent('standby'), 'the second standing by');
      await insertIds(clusters.primary, 1, 50);
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 50,
        'the first applying',
      );
      frozen.kill('SIGSTOP');
      await insertIds(clusters.primary, 51, 150);
      await eventually(async () => !!next.logEvent('sidecar-active'), 'the standby taking over');
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 150,
        'the standby applying',
      );
      // Thawed, it finds its lock gone and stands by.
      frozen.kill('SIGCONT');
      await eventually(async () => !!frozen.logEvent('lock-lost'), 'the lock loss noticed');
      await insertIds(clusters.primary, 151, 200);
      await eventually(
        async () => (await rowCount(clusters.replicas[0] as PostgresCluster, 't')) === 200,
        'every row once',
      );
      const [active] = await clusters.primary.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'lockstep-coordinator'`,
      );
      expect(active?.n).toBe(1);
    } finally {
      frozen.kill('SIGCONT');
      for (const p of [frozen, standby]) {
        if (!p) continue;
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
      await clusters.primary.query('ALTER SYSTEM RESET wal_sender_timeout');
      await clusters.primary.query('SELECT pg_reload_conf()');
    }
  });
});
