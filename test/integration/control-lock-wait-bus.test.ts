import { describe, it } from 'vitest';
import { runThroughHeldRow } from '../support/hold-stream-row.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE items (id int PRIMARY KEY, v text);',
  config: {
    controlTimeoutMs: 3_000,
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

describe('lockstep run with bus, a lock wait on the primary under a short controlTimeoutMs', () => {
  it('logs the lock wait with its fix, does not claim another publisher, and publishes once it ends', async () => {
    await runThroughHeldRow(clusters.primary, clusters.configFile, 'bus-publishing');
  });
});
