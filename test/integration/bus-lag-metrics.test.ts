import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { type Get, getter, sample } from '../support/endpoint-client.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 2,
  schema: 'CREATE TABLE items (id serial PRIMARY KEY, v text);',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const running: LockstepProcess[] = [];
const metric = async (get: Get, name: string, labels: Record<string, string> = {}) =>
  sample((await get('/metrics')).text, name, labels);

afterAll(async () => {
  for (const p of running) {
    p.kill('SIGTERM');
    await p.exited;
  }
});

async function stop(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

describe('lockstep run with bus: per-replica lag in /metrics', () => {
  it("exports lag from the agents' reports, and no replica unreported as caught up", async () => {
    const port = await freePort();
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_HTTP_PORT: String(port),
    });
    running.push(publisher);
    const get = getter(port);
    const agent = startAgent(clusters.configFile, 'replica1');
    running.push(agent);
    const one = { replica: 'replica1' };
    const two = { replica: 'replica2' };

    // Caught up: the agent reports and has applied the head.
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('a')`);
    await eventually(async () => {
      const text = (await get('/metrics')).text;
      const head = sample(text, 'lockstep_primary_version') ?? 0;
      return (
        head > 0 &&
        sample(text, 'lockstep_bus_replica_reported', one) === 1 &&
        sample(text, 'lockstep_replica_version', one) === head &&
        sample(text, 'lockstep_replica_lag_versions', one) === 0
      );
    }, 'replica1 reported at the head, lag 0');
    // A standby publisher exports them too (the rules keep the active one's): ready at a takeover.
    const standbyPort = await freePort();
    const standby = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_HTTP_PORT: String(standbyPort),
    });
    running.push(standby);
    const getStandby = getter(standbyPort);
    await eventually(async () => {
      const text = (await getStandby('/metrics')).text;
      return (
        sample(text, 'lockstep_active') === 0 &&
        sample(text, 'lockstep_replica_lag_versions', one) === 0 &&
        sample(text, 'lockstep_bus_replica_reported', two) === 0
      );
    }, 'the standby publisher exporting the same lag');
    await stop(standby);
    const caughtUp = (await get('/metrics')).text;
    expect(sample(caughtUp, 'lockstep_replica_lag_seconds', one)).toBe(0);
    expect(sample(caughtUp, 'lockstep_replica_lag_bytes', one)).not.toBeNull();
    // No agent for replica2: unreported, and no lag that could read as caught up.
    expect(sample(caughtUp, 'lockstep_bus_replica_reported', two)).toBe(0);
    expect(sample(caughtUp, 'lockstep_replica_lag_versions', two)).toBeNull();
    expect(sample(caughtUp, 'lockstep_replica_lag_seconds', two)).toBeNull();
    expect(sample(caughtUp, 'lockstep_replica_version', two)).toBeNull();

    // replica1's apply hangs on a lock held here: its agent holds the packet, lag is timed from it.
    const blocker = new pg.Client({ connectionString: clusters.replicas[0]?.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      await clusters.primary.query(`INSERT INTO items (v) VALUES ('held')`);
      await eventually(async () => {
        const text = (await get('/metrics')).text;
        return (
          (sample(text, 'lockstep_replica_lag_versions', one) ?? 0) >= 1 &&
          (sample(text, 'lockstep_replica_lag_seconds', one) ?? 0) > 0
        );
      }, 'replica1 behind, its lag in seconds timed from the packet its agent holds');
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    await eventually(
      async () => (await metric(get, 'lockstep_replica_lag_seconds', one)) === 0,
      'replica1 caught up again',
    );

    // The agent stops, the primary goes on: its last report falls behind, then goes stale.
    const held = (await metric(get, 'lockstep_replica_version', one)) ?? 0;
    await stop(agent);
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('b')`);
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('c')`);
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('d')`);
    await eventually(
      async () => ((await metric(get, 'lockstep_replica_lag_versions', one)) ?? 0) >= 3,
      'replica1 three versions behind',
    );
    expect(await metric(get, 'lockstep_replica_version', one)).toBe(held);
    await eventually(
      async () => (await metric(get, 'lockstep_bus_replica_reported', one)) === 0,
      'replica1 unreported once its last report is stale',
    );
    expect(await metric(get, 'lockstep_replica_lag_versions', one)).toBeGreaterThanOrEqual(3);
    await stop(publisher);
  });
});
