import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });

/** Inserts rows from `from` on, one per transaction, reconnecting through a restart of the primary. */
function writer(url: string, from: number): { stop(): Promise<number> } {
  let stopped = false;
  let next = from;
  const running = (async () => {
    while (!stopped) {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        while (!stopped) {
          await client.query('INSERT INTO t VALUES ($1, $1)', [next]);
          next++;
        }
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return next;
    },
  };
}

describe('a fast restart of the primary while lockstep streams', () => {
  it('never waits for lockstep — idle, under writes, or with a replica behind — and the sidecar rides it out', async () => {
    const { primary } = clusters;
    const [, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let exitCode: number | null = null;
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await insertNumbered(primary, 1, 20);
      await waitForMarker(primary, clusters.replicas);

      // Idle and caught up. pg_ctl stop -m fast gives up after 60 s (and rejects) if the
      // walsender waits for lockstep to confirm the shutdown checkpoint.
      await primary.stopServer('fast');
      await primary.startServer();
      await insertNumbered(primary, 21, 20);
      await waitForMarker(primary, clusters.replicas);

      // Under writes.
      const load = writer(primary.url, 1_000);
      await new Promise((r) => setTimeout(r, 1_000));
      await primary.stopServer('fast');
      await primary.startServer();
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await load.stop()).toBeGreaterThan(1_000);

      // A replica down: lockstep cannot confirm what the primary sent, and must not hold it either.
      await r2.stopServer('fast');
      await insertNumbered(primary, 41, 20);
      await primary.stopServer('fast');
      await primary.startServer();
      await r2.startServer();

      await insertNumbered(primary, 61, 20);
      await waitForMarker(primary, clusters.replicas);
      await expectIdentical(primary, clusters.replicas, ['t', 'marker']);
      expect(await preparedGids([primary, ...clusters.replicas])).toEqual([]);
      expect(sidecar.logEvent('lock-lost')).toBeDefined();
    } finally {
      sidecar.kill('SIGTERM');
      exitCode = await sidecar.exited;
    }
    expect(exitCode).toBe(0);
  });
});
