import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { runTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useClusters } from '../support/use-clusters.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const clusters = useClusters({ replicas: 2 });
let config: ReturnType<typeof writeConfig>;

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(TPCB_SCHEMA)));
  await clusters.primary.query(tpcbSeed(2, 5_000));
  config = writeConfig(clusters.primary, clusters.replicas);
});
afterAll(() => config?.remove());

describe('one-phase replication end to end (1 primary, 2 replica clusters)', () => {
  it('attaches with an initial copy, then keeps every table identical under a TPC-B workload', async () => {
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.output).toMatch(/attached: 10 table copies, 20,044 rows, to 2 replica\(s\)/);
    expect(attached.code).toBe(0);
    await expectIdentical(clusters.primary, clusters.replicas, TABLES);

    const again = await lockstep(['attach', '--config', config.file]);
    expect(again.output).toMatch(/already attached/);
    expect(again.code).toBe(0);

    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      const work = await runTpcb(clusters.primary.url, {
        clients: 4,
        ms: 4_000,
        branches: 2,
        accountsPerBranch: 5_000,
      });
      expect(work.transactions).toBeGreaterThan(100);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);

      // The sidecar records the stream's head a moment after applying: wait for it.
      const cfg = loadConfig(config.file);
      await eventually(
        async () =>
          ((await readStatus(postgresCluster(), cfg)).primary.version ?? 0) >= work.transactions,
        'status to show the head',
      );
      const status = await readStatus(postgresCluster(), cfg);
      for (const replica of status.replicas) {
        expect(replica).toMatchObject({ lagVersions: 0, error: null });
        expect(['streaming', 'catching-up']).toContain(replica.state);
      }
      const json = await lockstep(['status', '--config', config.file, '--json']);
      expect(JSON.parse(json.output)).toMatchObject({
        replicas: [{ name: 'replica1' }, { name: 'replica2' }],
        inDoubt: [],
      });
    } finally {
      sidecar.kill('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    }
  });
});
