import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { appliedVersion, eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 2,
  schema: NUMBERED_SCHEMA,
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

function replica(index: number): PostgresCluster {
  return clusters.replicas[index] as PostgresCluster;
}

/** A port free just now, for an agent's endpoints. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The configuration with every replica's URL pointing nowhere: in bus mode
 * status reads the agents' reports, never the replicas themselves.
 */
let blindConfig = '';
let metricsPort = 0;
let publisher: LockstepProcess;
let agents: LockstepProcess[] = [];
let next = 1;

const agent = (name: string, env: NodeJS.ProcessEnv = {}) =>
  startAgent(clusters.configFile, name, env);

async function status(): Promise<{ code: number | null; json: LockstepStatus; output: string }> {
  const r = await lockstep(['status', '--config', blindConfig, '--json'], {}, 60_000);
  return { code: r.code, json: JSON.parse(r.stdout) as LockstepStatus, output: r.output };
}

/** The states of a replica that follows the bus. */
const following = (state?: string) => state === 'streaming' || state === 'catching-up';
const entry = (s: LockstepStatus, name: string) => s.replicas.find((r) => r.name === name);

beforeAll(async () => {
  const config = JSON.parse(readFileSync(clusters.configFile, 'utf8')) as {
    replicas: Array<{ url: string }>;
  };
  for (const r of config.replicas) r.url = 'postgres://nobody@127.0.0.1:1/nothing';
  blindConfig = `${clusters.configFile}.blind.json`;
  writeFileSync(blindConfig, JSON.stringify(config));
  metricsPort = await freePort();
  publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
  agents = [
    agent('replica1', { LOCKSTEP_BUS_AGENT_HTTP_PORT: String(metricsPort) }),
    agent('replica2'),
  ];
});

afterAll(async () => {
  for (const p of [...agents, publisher]) {
    p?.kill('SIGTERM');
    await p?.exited;
  }
});

describe('status with bus', () => {
  it("shows each replica's version, lsn and state converging to the primary's, from the agents' reports", async () => {
    await insertNumbered(clusters.primary, next, 20);
    next += 20;
    let last: LockstepStatus | null = null;
    await eventually(async () => {
      const s = await status();
      last = s.json;
      return (
        s.code === 0 &&
        s.json.primary.version !== null &&
        s.json.replicas.every(
          (r) => following(r.state) && r.version === s.json.primary.version && r.lagVersions === 0,
        )
      );
    }, "every replica at the primary's version in status");
    const s = last as unknown as LockstepStatus;
    expect(s.bus).toMatchObject({ reachable: true });
    for (const r of s.replicas) {
      expect(r).toMatchObject({ source: 'bus', error: null, reachable: true });
      expect(r.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(r.version).toBe(await appliedVersion(replica(r.name === 'replica1' ? 0 : 1)));
    }
    // The agent's metrics: the sidecar's per-replica series, for its one replica.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain(`lockstep_replica_version{replica="replica1"} ${s.primary.version}`);
    expect(metrics).toMatch(
      /lockstep_replica_state\{replica="replica1",state="(streaming|catching-up)"\} 1/,
    );
  });

  it("reports an agent's apply error with its fix, and its recovery", async () => {
    await replica(1).query('INSERT INTO t VALUES ($1, -1)', [next]);
    await insertNumbered(clusters.primary, next, 1);
    const conflicting = next;
    next += 1;
    let halted: Awaited<ReturnType<typeof status>> | null = null;
    await eventually(async () => {
      halted = await status();
      return entry(halted.json, 'replica2')?.state === 'halted';
    }, 'replica2 halted in status');
    const h = halted as unknown as Awaited<ReturnType<typeof status>>;
    expect(entry(h.json, 'replica2')?.error).toMatch(
      /^\[replica2(, table [^\]]+)?\] applying version \d+ failed: .*\n {2}fix: /s,
    );
    expect(following(entry(h.json, 'replica1')?.state)).toBe(true);
    expect(h.code).toBe(1);
    await replica(1).query('DELETE FROM t WHERE id = $1', [conflicting]);
    await eventually(
      async () => following(entry((await status()).json, 'replica2')?.state),
      'replica2 streaming again in status',
    );
  });

  it('never shows a hung agent healthy: its entry turns unknown, then streaming once it runs again', async () => {
    await eventually(
      async () => following(entry((await status()).json, 'replica1')?.state),
      'replica1 reported following',
    );
    const hung = agents[0] as LockstepProcess;
    hung.child.kill('SIGSTOP');
    try {
      let seen: Awaited<ReturnType<typeof status>> | null = null;
      await eventually(async () => {
        seen = await status();
        return entry(seen.json, 'replica1')?.state === 'unknown';
      }, 'replica1 unknown in status');
      const s = seen as unknown as Awaited<ReturnType<typeof status>>;
      expect(entry(s.json, 'replica1')?.error).toMatch(
        /\[replica1\] the agent of replica1 \(.* pid \d+\) last reported \d+s ago.*\n {2}fix: check lockstep agent --replica replica1/s,
      );
      expect(entry(s.json, 'replica1')?.reachable).toBe(false);
      expect(s.code).toBe(3);
    } finally {
      hung.child.kill('SIGCONT');
    }
    await eventually(
      async () => following(entry((await status()).json, 'replica1')?.state),
      'replica1 streaming again',
    );
  });

  it('keeps applying what the agent holds with the bus down; status says the bus is unreachable (exit 3)', async () => {
    // One packet of 10 rows, the first conflicting on replica2: its agent halts holding the packet.
    await replica(1).query('INSERT INTO t VALUES ($1, -1)', [next]);
    const conflicting = next;
    await clusters.primary.query(
      'INSERT INTO t SELECT g, g FROM generate_series($1::int, $2::int) g',
      [next, next + 9],
    );
    next += 10;
    await eventually(async () => {
      const s = (await status()).json;
      return (
        entry(s, 'replica1')?.version === s.primary.version &&
        entry(s, 'replica2')?.state === 'halted'
      );
    }, 'replica1 to apply the packet and replica2 to halt at it');
    const published = await appliedVersion(replica(0));
    await nats.cluster.killAll();
    try {
      const down = await status();
      expect(down.code).toBe(3);
      expect(down.json.bus).toMatchObject({ reachable: false });
      expect(down.json.bus?.error).toMatch(/\[bus\] cannot connect to the bus/);
      expect(down.json.primary.version).toBe(published);
      expect(down.json.replicas.map((r) => r.state)).toEqual(['unknown', 'unknown']);
      await replica(1).query('DELETE FROM t WHERE id = $1', [conflicting]);
      await eventually(
        async () => (await appliedVersion(replica(1))) === published,
        'replica2 to apply what its agent holds, without the bus',
      );
    } finally {
      await nats.cluster.restartAll();
    }
  });
});
