import { describe, expect, it } from 'vitest';
import { holdStreamRow } from '../support/hold-stream-row.js';
import { LockstepProcess } from '../support/lockstep-process.js';
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
    const release = await holdStreamRow(clusters.primary);
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await publisher.untilEvent('lock-unreadable', { fix: /lockstep\.streams/ }, 30_000);
      expect(publisher.events('standby')).toEqual([]);
      await release();
      await publisher.untilEvent('bus-publishing', {}, 30_000);
      expect(publisher.events('standby')).toEqual([]);
    } finally {
      await release();
      publisher.kill('SIGTERM');
      expect(await publisher.closed).toBe(0);
    }
  });
});
