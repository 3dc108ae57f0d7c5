import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { deposeCoordinator } from '../support/depose-coordinator.js';
import { getter, readyz, sample } from '../support/endpoint-client.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// The in-doubt gauges say what the publisher knows now: absent when it cannot know.
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE t (id int PRIMARY KEY)',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const GAUGES = ['lockstep_two_phase_in_doubt', 'lockstep_two_phase_in_doubt_oldest_seconds'];

async function stop(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

describe('lockstep run with bus: the in-doubt gauges', () => {
  it('are absent while the gids cannot be listed or another coordinator lists them, never a count kept from before', async () => {
    const port = await freePort();
    const get = getter(port);
    const gauges = async () => {
      const text = (await get('/metrics')).text;
      return GAUGES.map((name) => sample(text, name));
    };
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_HTTP_PORT: String(port),
    });
    let agent = startAgent(clusters.configFile, 'replica1');
    let lock: pg.Client | null = null;
    try {
      await eventually(async () => (await readyz(get)).role === 'active', 'the publisher active');
      await eventually(
        async () => (await gauges()).every((v) => v === 0),
        'the agent listed nothing in doubt',
      );
      // Without its agent the replica's gids cannot be listed: the last count is no longer true.
      await stop(agent);
      await eventually(
        async () => (await gauges()).every((v) => v === null),
        'the gauges absent while the replica cannot be listed',
      );
      agent = startAgent(clusters.configFile, 'replica1');
      await eventually(
        async () => (await gauges()).every((v) => v === 0),
        'the gauges back once the agent answers',
      );
      // Deposed, the publisher stands by: the coordinator that lists the gids is elsewhere.
      lock = await deposeCoordinator(clusters.primary);
      await eventually(async () => (await readyz(get)).role === 'standby', 'standing by');
      await eventually(
        async () => (await gauges()).every((v) => v === null),
        'the gauges absent on a standby',
      );
    } finally {
      await lock?.end();
      await stop(agent);
      await stop(publisher);
    }
  }, 300_000);
});
