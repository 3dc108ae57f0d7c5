import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually } from '../support/compare-nodes.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE items (id serial PRIMARY KEY, v text);',
});

/** One sample of a metric from Prometheus text, by its labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return null;
}

let configFile: { file: string; remove(): void } | null = null;
afterAll(() => configFile?.remove());

describe('HTTP endpoints', () => {
  it('report health, readiness and metrics, and follow a replica going down and coming back, and a pause', async () => {
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const port = await freePort();
    configFile = writeConfig(clusters.primary, clusters.replicas, { http: { port } });
    const sidecar = new LockstepProcess(['run', '--config', configFile.file]);
    const base = `http://127.0.0.1:${port}`;
    const get = async (path: string) => {
      const response = await fetch(`${base}${path}`);
      return { code: response.status, text: await response.text() };
    };
    try {
      await eventually(async () => (await get('/readyz')).code === 200, '/readyz to be 200');
      expect(sidecar.logged(/^endpoints on http:\/\/127\.0\.0\.1:/)).toBeDefined();
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
      const status = JSON.parse((await get('/status')).text) as {
        replicas: Array<{ name: string }>;
      };
      expect(status.replicas.map((r) => r.name)).toEqual(['replica1', 'replica2']);

      await r2.stopServer('immediate');
      await clusters.primary.query(`INSERT INTO items (v) VALUES ('while replica2 is down')`);
      await eventually(async () => (await get('/readyz')).code === 503, '/readyz to turn 503');
      const notReady = JSON.parse((await get('/readyz')).text) as { reasons: string[] };
      expect(notReady.reasons.join('\n')).toMatch(/replica replica2 is halted: .*unreachable/);
      await eventually(async () => {
        const m = (await get('/metrics')).text;
        return (
          sample(m, 'lockstep_replica_state', { replica: 'replica2', state: 'halted' }) === 1 &&
          (sample(m, 'lockstep_replica_apply_errors_total', { replica: 'replica2' }) ?? 0) >= 1 &&
          (sample(m, 'lockstep_replica_lag_versions', { replica: 'replica2' }) ?? 0) >= 1
        );
      }, 'metrics to show replica2 halted and behind');
      // The other replica goes on: it holds everything.
      await eventually(
        async () =>
          sample((await get('/metrics')).text, 'lockstep_replica_lag_versions', {
            replica: 'replica1',
          }) === 0,
        'replica1 at lag 0 while replica2 is down',
      );

      await r2.startServer();
      await eventually(async () => (await get('/readyz')).code === 200, '/readyz to be 200 again');
      await eventually(async () => {
        const m = (await get('/metrics')).text;
        return (
          sample(m, 'lockstep_replica_state', { replica: 'replica2', state: 'halted' }) === 0 &&
          sample(m, 'lockstep_replica_lag_versions', { replica: 'replica2' }) === 0
        );
      }, 'metrics to show replica2 caught up');

      // Paused, the sidecar is not ready and says why; resumed, it is ready again.
      expect((await lockstep(['pause', '--config', configFile.file])).code).toBe(0);
      await eventually(async () => (await get('/readyz')).code === 503, '/readyz 503 while paused');
      const paused = JSON.parse((await get('/readyz')).text) as { reasons: string[] };
      expect(paused.reasons).toContain('replication is paused (lockstep resume continues it)');
      const pausedMetrics = (await get('/metrics')).text;
      expect(sample(pausedMetrics, 'lockstep_paused')).toBe(1);
      expect(sample(pausedMetrics, 'lockstep_stream_connected')).toBe(0);
      expect(
        sample(pausedMetrics, 'lockstep_replica_state', { replica: 'replica1', state: 'paused' }),
      ).toBe(1);
      expect((await lockstep(['resume', '--config', configFile.file])).code).toBe(0);
      await eventually(async () => (await get('/readyz')).code === 200, '/readyz 200 once resumed');
      expect(sample((await get('/metrics')).text, 'lockstep_paused')).toBe(0);
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
