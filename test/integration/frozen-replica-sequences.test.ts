import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { sleep } from '../../plugin/support/sleep.js';
import { appliedVersion, eventually, waitForMarker } from '../support/compare-nodes.js';
import { APPLY_TIMEOUT_MS, markedUnresponsive } from '../support/frozen-replica.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

/**
 * The sequence copy's and the in-doubt listing's connections to a frozen
 * replica wait as long as the control deadline allows (here ten minutes, its
 * connect_timeout too): far past the test, so a read the sidecar's
 * housekeeping waited for would stop what it does after it.
 */
const CONTROL_TIMEOUT_MS = 600_000;

const clusters = useAttached({
  replicas: 2,
  schema:
    'CREATE TABLE items (id serial PRIMARY KEY, v text); CREATE TABLE marker (id bigserial PRIMARY KEY);',
  config: {
    sequenceSyncMs: 300,
    controlTimeoutMs: CONTROL_TIMEOUT_MS,
    applyTimeoutMs: APPLY_TIMEOUT_MS,
    get replicas() {
      return clusters.replicas.map((r, i) => ({
        name: `replica${i + 1}`,
        url: `${r.url}?connect_timeout=${CONTROL_TIMEOUT_MS / 1000}`,
      }));
    },
  },
});

async function recordedVersion(replica: string): Promise<number> {
  const [row] = await clusters.primary.query<{ v: string | null }>(
    `SELECT version::text AS v FROM lockstep.replica_status WHERE replica = $1`,
    [replica],
  );
  return Number(row?.v ?? -1);
}

describe('a replica frozen while the sidecar copies sequence values to it', () => {
  it('delays only that copy: the other replica is applied, recorded and copied, the sidecar stops', async () => {
    const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    let frozen = false;
    try {
      await eventually(async () => sidecar.logEvent('sidecar-active') !== undefined, 'the sidecar');
      await waitForMarker(clusters.primary, clusters.replicas);
      await r2.freezeServer();
      frozen = true;
      // Writes reach the frozen replica's applier: it is marked unresponsive within
      // applyTimeoutMs, by when several copies (every 300 ms) have started waiting on it.
      await clusters.primary.query(`INSERT INTO items (v) SELECT 'x' FROM generate_series(1, 5)`);
      await markedUnresponsive(sidecar, 'replica2');
      // Housekeeping also lists in-doubt gids on every node every 5 s: one such listing has
      // started against the frozen replica too.
      await sleep(5_500);
      await waitForMarker(clusters.primary, [r1]);
      const applied = await appliedVersion(r1);
      // Status is recorded on the primary by the loop that also starts the copies.
      await eventually(
        async () => (await recordedVersion('replica1')) >= applied,
        'replica1 recorded at its applied version',
      );
      // And the other replica's sequence is still copied, period after period.
      await clusters.primary.query(`INSERT INTO items (v) SELECT 'y' FROM generate_series(1, 20)`);
      const [primaryItems] = await clusters.primary.query<{ v: string }>(
        `SELECT last_value::text AS v FROM pg_sequences WHERE sequencename = 'items_id_seq'`,
      );
      await eventually(async () => {
        const [r1Items] = await r1.query<{ v: string | null }>(
          `SELECT last_value::text AS v FROM pg_sequences WHERE sequencename = 'items_id_seq'`,
        );
        return Number(r1Items?.v ?? 0) >= Number(primaryItems?.v);
      }, 'replica1 sequence copied while replica2 does not answer');
      await r2.thawServer();
      frozen = false;
      await waitForMarker(clusters.primary, clusters.replicas);
    } finally {
      if (frozen) await r2.thawServer();
      sidecar.kill('SIGTERM');
    }
    expect(await sidecar.exited).toBe(0);
  });
});
