import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { type Get, getter, readyz, sample } from '../support/endpoint-client.js';
import { freePort } from '../support/free-port.js';
import { lockTable } from '../support/frozen-replica.js';
import {
  LockstepProcess,
  lockstep,
  rewriteConfig,
  writeConfig,
} from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE items (id serial PRIMARY KEY, v text);',
});

let configFile: { file: string; remove(): void } | null = null;
afterAll(() => configFile?.remove());

/** Runs `lockstep run` on the clusters until `body` is done, then stops it with SIGTERM (exit 0). */
async function withSidecar(
  role: 'active' | 'standby',
  body: (get: Get, config: string) => Promise<void>,
  env: Record<string, string> = {},
) {
  const port = await freePort();
  configFile ??= writeConfig(clusters.primary, clusters.replicas);
  const sidecar = new LockstepProcess(['run', '--config', configFile.file], {
    ...env,
    LOCKSTEP_HTTP_PORT: String(port),
  });
  const get = getter(port);
  try {
    await eventually(async () => (await readyz(get)).role === role, `/readyz to report ${role}`);
    await sidecar.untilEvent('endpoints', { host: '127.0.0.1' });
    await body(get, configFile.file);
  } finally {
    sidecar.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  }
}

describe('HTTP endpoints', () => {
  it('report health, readiness and metrics; readiness holds while a replica is down', async () => {
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    await withSidecar('active', async (get) => {
      expect(await readyz(get)).toEqual({ code: 200, ready: true, role: 'active', reasons: [] });
      expect(await get('/healthz')).toEqual({ code: 200, text: 'ok\n' });

      await clusters.primary.query(
        `INSERT INTO items (v) SELECT 'a' || g FROM generate_series(1, 10) g`,
      );
      await eventually(async () => {
        const m = (await get('/metrics')).text;
        return (
          (sample(m, 'lockstep_replica_version', { replica: 'replica2' }) ?? 0) >= 1 &&
          (sample(m, 'lockstep_replica_rows_applied_total', { replica: 'replica2' }) ?? 0) >= 10 &&
          sample(m, 'lockstep_replica_state', { replica: 'replica2', state: 'streaming' }) === 1 &&
          sample(m, 'lockstep_replica_lag_versions', { replica: 'replica2' }) === 0
        );
      }, 'metrics to count the applied rows, replica2 streaming at lag 0');
      const metrics = (await get('/metrics')).text;
      expect(sample(metrics, 'lockstep_active')).toBe(1);
      expect(sample(metrics, 'lockstep_stream_connected')).toBe(1);
      expect(sample(metrics, 'process_resident_memory_bytes')).toBeGreaterThan(0);
      expect(sample(metrics, 'lockstep_primary_version')).toBeGreaterThanOrEqual(1);
      // Histograms of apply time and commit-to-applied latency, per replica; the slot; the build.
      for (const histogram of ['lockstep_batch_apply_seconds', 'lockstep_replica_latency_seconds'])
        expect(
          sample(metrics, `${histogram}_count`, { replica: 'replica2' }) ?? 0,
        ).toBeGreaterThanOrEqual(1);
      await eventually(
        async () =>
          sample((await get('/metrics')).text, 'lockstep_slot_wal_status', {
            status: 'reserved',
          }) === 1,
        'the slot read as reserved',
      );
      expect(metrics).toMatch(
        /^lockstep_build_info\{version="\d+\.\d+\.\d+[^"]*",node="[^"]+"\} 1$/m,
      );
      const status = JSON.parse((await get('/status')).text) as {
        replicas: Array<{ name: string }>;
      };
      expect(status.replicas.map((r) => r.name)).toEqual(['replica1', 'replica2']);

      await r2.stopServer('immediate');
      await clusters.primary.query(`INSERT INTO items (v) VALUES ('while replica2 is down')`);
      await eventually(async () => {
        const m = (await get('/metrics')).text;
        return (
          sample(m, 'lockstep_replica_state', { replica: 'replica2', state: 'halted' }) === 1 &&
          (sample(m, 'lockstep_replica_apply_errors_total', { replica: 'replica2' }) ?? 0) >= 1 &&
          (sample(m, 'lockstep_replica_lag_versions', { replica: 'replica2' }) ?? 0) >= 1
        );
      }, 'metrics to show replica2 halted and behind');
      // A halted replica is alerted on from the metrics: the sidecar stays ready.
      expect(await readyz(get)).toEqual({ code: 200, ready: true, role: 'active', reasons: [] });
      // The other replica goes on: it holds everything.
      await eventually(
        async () =>
          sample((await get('/metrics')).text, 'lockstep_replica_lag_versions', {
            replica: 'replica1',
          }) === 0,
        'replica1 at lag 0 while replica2 is down',
      );

      await r2.startServer();
      await eventually(async () => {
        const m = (await get('/metrics')).text;
        return (
          sample(m, 'lockstep_replica_state', { replica: 'replica2', state: 'halted' }) === 0 &&
          sample(m, 'lockstep_replica_lag_versions', { replica: 'replica2' }) === 0
        );
      }, 'metrics to show replica2 caught up');
    });
  });

  it('report a pause in the metrics, the sidecar staying ready', async () => {
    await withSidecar('active', async (get, config) => {
      expect((await lockstep(['pause', '--config', config])).code).toBe(0);
      await eventually(
        async () => sample((await get('/metrics')).text, 'lockstep_paused') === 1,
        'lockstep_paused to be 1',
      );
      expect(await readyz(get)).toEqual({ code: 200, ready: true, role: 'active', reasons: [] });
      const pausedMetrics = (await get('/metrics')).text;
      expect(sample(pausedMetrics, 'lockstep_stream_connected')).toBe(0);
      expect(
        sample(pausedMetrics, 'lockstep_replica_state', { replica: 'replica1', state: 'paused' }),
      ).toBe(1);
      expect((await lockstep(['resume', '--config', config])).code).toBe(0);
      await eventually(
        async () => sample((await get('/metrics')).text, 'lockstep_paused') === 0,
        'lockstep_paused to be 0 once resumed',
      );
    });
  });

  it('report a second sidecar on the stream as a ready standby', async () => {
    await withSidecar('active', async (getActive) => {
      await withSidecar('standby', async (get) => {
        expect(await readyz(get)).toEqual({ code: 200, ready: true, role: 'standby', reasons: [] });
        expect(sample((await get('/metrics')).text, 'lockstep_active')).toBe(0);
        expect(sample((await getActive('/metrics')).text, 'lockstep_active')).toBe(1);
      });
    });
  });

  it('/status: concurrent requests share one read of the nodes (one status session at a time)', async () => {
    const [r1] = clusters.replicas as [PostgresCluster, PostgresCluster];
    /** status reads' sessions on replica1 now (on the primary the sidecar's status writer has that name too). */
    const statusSessions = async () => {
      const [row] = await r1.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'lockstep-status'",
      );
      return row?.n ?? 0;
    };
    // applyTimeoutMs 3 s: a read waiting on the lock below ends by itself within it.
    await withSidecar(
      'active',
      async (get) => {
        // replica1's position table locked: every status read waits there for seconds,
        // so all 20 requests arrive while a read is in flight.
        const release = await lockTable(r1);
        try {
          let done = false;
          const answers = Promise.all(Array.from({ length: 20 }, () => get('/status'))).finally(
            () => {
              done = true;
            },
          );
          let most = 0;
          while (!done) most = Math.max(most, await statusSessions());
          const replies = await answers;
          expect(most).toBe(1);
          for (const reply of replies) {
            expect(reply.code).toBe(200);
            const status = JSON.parse(reply.text) as {
              replicas: Array<{ name: string; version: number | null; error: string | null }>;
            };
            expect(status.replicas[0]).toMatchObject({ name: 'replica1', version: null });
            expect(status.replicas[0]?.error ?? '').toMatch(/lock/);
          }
        } finally {
          await release();
        }
        // The next request reads anew (the shared read found no position): nothing older is served.
        const after = JSON.parse((await get('/status')).text) as {
          replicas: Array<{ name: string; version: number | null }>;
        };
        expect(after.replicas[0]).toMatchObject({ name: 'replica1', version: expect.any(Number) });
      },
      { LOCKSTEP_APPLY_TIMEOUT_MS: '3000' },
    );
  }, 120_000);

  it('answer while the primary cannot be reached: alive, not ready, nothing active; SIGTERM exits 0', async () => {
    const [port, closedPort] = [await freePort(), await freePort()];
    const config = writeConfig(clusters.primary, clusters.replicas, { http: { port } });
    const sidecar = new LockstepProcess(['run', '--config', config.file], {
      LOCKSTEP_PRIMARY: `postgres://lockstep@127.0.0.1:${closedPort}/app`,
    });
    const get = getter(port);
    try {
      // Both happen at start-up, in either order: the endpoints bind while the primary is awaited.
      await eventually(
        async () =>
          sidecar.logEvent('primary-unreachable') !== undefined &&
          sidecar.logEvent('endpoints') !== undefined,
        'the sidecar to serve its endpoints while it waits for its primary',
      );
      expect(await get('/healthz')).toEqual({ code: 200, text: 'ok\n' });
      const ready = await readyz(get);
      expect(ready).toMatchObject({ code: 503, ready: false, role: 'starting' });
      expect(ready.reasons.join()).toMatch(/waiting to reach the primary/);
      expect(sample((await get('/metrics')).text, 'lockstep_active')).toBe(0);
      // A supervisor's stop while it waits is a clean exit, not a death by signal.
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited, sidecar.output).toBe(0);
    } finally {
      sidecar.kill('SIGKILL');
      await sidecar.exited;
      config.remove();
    }
  });

  it('/status: a request after a reload reads the reloaded replicas, not the read started before', async () => {
    const [r1] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const port = await freePort();
    const extra = { http: { port } };
    const config = writeConfig(clusters.primary, clusters.replicas, extra);
    // applyTimeoutMs 10 s: the read waiting on the lock below outlasts the reload by far.
    const sidecar = new LockstepProcess(['run', '--config', config.file], {
      LOCKSTEP_APPLY_TIMEOUT_MS: '10000',
    });
    const get = getter(port);
    const names = async (reply: Promise<{ text: string }>) =>
      (JSON.parse((await reply).text) as { replicas: Array<{ name: string }> }).replicas.map(
        (r) => r.name,
      );
    try {
      await eventually(async () => (await readyz(get)).role === 'active', '/readyz active');
      const release = await lockTable(r1);
      try {
        const before = get('/status');
        await eventually(
          async () =>
            (
              await r1.query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'lockstep-status'",
              )
            ).length > 0,
          "status's read waiting on replica1",
        );
        rewriteConfig(config.file, clusters.primary, [r1], extra);
        sidecar.kill('SIGHUP');
        await eventually(
          async () => sidecar.logEvent('config-reloaded', { removed: /^replica2$/ }) !== undefined,
          'the reload removing replica2',
        );
        const after = get('/status');
        await release();
        expect(await names(before)).toEqual(['replica1', 'replica2']);
        expect(await names(after)).toEqual(['replica1']);
      } finally {
        await release();
      }
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      config.remove();
    }
  }, 120_000);
});
