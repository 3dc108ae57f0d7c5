import { describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const clusters = useAttached({
  replicas: 2,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 2_000),
  // Branch updates are critical: the takeover also meets two-phase rounds in flight.
  config: { twoPhase: { tables: ['public.branches'] } },
});

describe('two sidecars on one configuration', () => {
  it('one is active, the other stands by and takes over when the active one is SIGKILLed under load; nothing lost or doubled', async () => {
    const config = loadConfig(clusters.configFile);
    const first = new LockstepProcess(['run', '--config', clusters.configFile]);
    await eventually(
      async () => first.logEvent('sidecar-active') !== undefined,
      'the first to be active',
    );
    const second = new LockstepProcess(['run', '--config', clusters.configFile]);
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    try {
      await eventually(
        async () => second.logEvent('standby') !== undefined,
        'the second to stand by',
      );
      const status = await readStatus(postgresCluster(), config);
      expect(status.sidecar).toMatchObject({
        running: true,
        active: expect.stringMatching(new RegExp(`:${first.child.pid}$`)),
      });
      await new Promise((r) => setTimeout(r, 2_000));
      first.kill('SIGKILL');
      const killedAt = Date.now();
      await eventually(
        async () => second.logEvent('sidecar-active') !== undefined,
        'the standby to take over',
        20_000,
      );
      const tookOver = Date.now() - killedAt;
      expect(tookOver).toBeGreaterThanOrEqual(0);
      await new Promise((r) => setTimeout(r, 2_000));
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      const after = await readStatus(postgresCluster(), config);
      expect(after.sidecar.active).toMatch(new RegExp(`:${second.child.pid}$`));
      expect(after.inDoubt).toEqual([]);
      const text = await lockstep(['status', '--config', clusters.configFile]);
      expect(text.output).toMatch(new RegExp(`sidecar: \\S+:${second.child.pid} is active`));
    } finally {
      await workload.stop();
      first.kill('SIGKILL');
      second.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });

  it('a sidecar whose lock session is terminated while it lives on stops and stands by; a successor takes over under load; nothing lost, doubled or left prepared', async () => {
    const config = loadConfig(clusters.configFile);
    const first = new LockstepProcess(['run', '--config', clusters.configFile]);
    const active = (p: LockstepProcess) => p.logEvent('sidecar-active');
    await eventually(async () => active(first) !== undefined, 'the first to be active');
    const second = new LockstepProcess(['run', '--config', clusters.configFile]);
    const workload = backgroundTpcb(clusters.primary.url, {
      branches: 1,
      accountsPerBranch: 2_000,
    });
    let codes: Array<number | null> = [];
    try {
      await eventually(
        async () => second.logEvent('standby') !== undefined,
        'the second to stand by',
      );
      await new Promise((r) => setTimeout(r, 2_000));
      // A DBA's pg_terminate_backend (or idle_session_timeout, a network blip): the process lives on.
      const [terminated] = await clusters.primary.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(l.pid))::int AS n
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'lockstep-coordinator'`,
      );
      expect(terminated?.n).toBe(1);
      await eventually(
        async () => first.logEvent('lock-lost') !== undefined,
        'the deposed sidecar to notice',
        20_000,
      );
      // Whoever holds the lock next (usually the standby) does so under a newer epoch.
      const deposed = Number(active(first)?.epoch);
      const successor = () =>
        [first, second].find((p) =>
          p.events('sidecar-active').some((l) => Number(l.epoch) > deposed),
        );
      await eventually(async () => successor() !== undefined, 'a successor to take over', 20_000);
      await new Promise((r) => setTimeout(r, 2_000));
      await workload.stop();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      const after = await readStatus(postgresCluster(), config);
      expect(after.sidecar.active).toMatch(new RegExp(`:${successor()?.child.pid}$`));
      expect(after.inDoubt).toEqual([]);
    } finally {
      await workload.stop();
      first.kill('SIGTERM');
      second.kill('SIGTERM');
      codes = await Promise.all([first.exited, second.exited]);
    }
    expect(codes).toEqual([0, 0]);
  });
});
