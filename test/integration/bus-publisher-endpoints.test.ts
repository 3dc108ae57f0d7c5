import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { eventually } from '../support/compare-nodes.js';
import { type Get, getter, readyz, sample } from '../support/endpoint-client.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Local clusters trust every login: the password is not checked, only carried in the URL.
const PASSWORD = 'Pub-s3cr3t-Qx7';
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE items (id serial PRIMARY KEY, v text);',
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const metric = async (get: Get, name: string, labels: Record<string, string> = {}) =>
  sample((await get('/metrics')).text, name, labels);

/** The attached configuration, its primary's URL carrying a password. */
let configFile = '';
const running: LockstepProcess[] = [];

/** `lockstep run` on the configuration, its endpoints on `port`. */
function publisher(port: number): LockstepProcess {
  const p = new LockstepProcess(['run', '--config', configFile], {
    LOCKSTEP_HTTP_PORT: String(port),
  });
  running.push(p);
  return p;
}

async function stop(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

beforeAll(() => {
  const config = JSON.parse(readFileSync(clusters.configFile, 'utf8')) as { primary: string };
  config.primary = clusters.primary.urlFor({ password: PASSWORD });
  configFile = `${clusters.configFile}.password.json`;
  writeFileSync(configFile, JSON.stringify(config));
});

afterAll(async () => {
  for (const p of running) {
    p.kill('SIGTERM');
    await p.exited;
  }
});

describe('lockstep run with bus: its HTTP endpoints', () => {
  it('serve health, readiness with the role, metrics and bus status', async () => {
    const [firstPort, secondPort] = [await freePort(), await freePort()];
    const first = publisher(firstPort);
    const one = getter(firstPort);
    await eventually(async () => (await readyz(one)).role === 'active', 'the first to be active');
    expect(await readyz(one)).toEqual({ code: 200, ready: true, role: 'active', reasons: [] });
    expect(await one('/healthz')).toEqual({ code: 200, text: 'ok\n' });
    // Loopback unless configured otherwise.
    await first.untilEvent('endpoints', { host: '127.0.0.1', port: firstPort });

    // A second publisher on the same configuration stands by: ready as a standby, as in process.
    const second = publisher(secondPort);
    const two = getter(secondPort);
    await eventually(async () => (await readyz(two)).role === 'standby', 'the second standing by');
    expect(await two('/healthz')).toEqual({ code: 200, text: 'ok\n' });
    expect(await readyz(two)).toEqual({ code: 200, ready: true, role: 'standby', reasons: [] });
    expect(await metric(two, 'lockstep_active')).toBe(0);
    expect((await readyz(one)).code).toBe(200);
    expect(await metric(one, 'lockstep_active')).toBe(1);

    // The head moves with writes on the primary, as JetStream acknowledges them.
    const before = (await metric(one, 'lockstep_primary_version')) ?? -1;
    expect(before).toBeGreaterThanOrEqual(0);
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('a'), ('b')`);
    await clusters.primary.query(`INSERT INTO items (v) VALUES ('c')`);
    await eventually(
      async () => ((await metric(one, 'lockstep_primary_version')) ?? 0) >= before + 2,
      'the head version to move by the two transactions',
    );
    await eventually(
      async () => ((await metric(one, 'lockstep_bus_confirmed_version')) ?? 0) >= before + 2,
      'the slot confirmed to the head',
    );
    await eventually(
      async () => (await metric(one, 'lockstep_slot_wal_status', { status: 'reserved' })) === 1,
      'the slot read as reserved',
    );
    const metrics = (await one('/metrics')).text;
    expect(sample(metrics, 'lockstep_bus_acknowledged_version')).toBeGreaterThanOrEqual(before + 2);
    expect(sample(metrics, 'lockstep_stream_connected')).toBe(1);
    expect(sample(metrics, 'lockstep_bus_packets_published_total')).toBeGreaterThanOrEqual(2);
    expect(
      sample(metrics, 'lockstep_bus_publish_failures_total', { event: 'bus-unavailable' }),
    ).not.toBeNull();
    // No agent answers yet: what is in doubt on its replica is unknown, so not shown.
    expect(sample(metrics, 'lockstep_two_phase_in_doubt')).toBeNull();
    expect(metrics).toMatch(/^lockstep_build_info\{version="[^"]+",node="[^"]+"\} 1$/m);
    expect(metrics).not.toContain(PASSWORD);
    expect(metrics).not.toContain('postgres://');

    // /status is `status --json` with bus: the replica as its agent reports it.
    const agent = startAgent(configFile, 'replica1');
    running.push(agent);
    await eventually(async () => {
      const status = JSON.parse((await one('/status')).text) as LockstepStatus;
      const entry = status.replicas.find((r) => r.name === 'replica1');
      return entry?.source === 'bus' && entry.state === 'streaming';
    }, '/status to show replica1 streaming, from the bus');
    // Listed every few seconds while active, once the agent answers.
    await eventually(
      async () => (await metric(one, 'lockstep_two_phase_in_doubt')) === 0,
      'the in-doubt gids listed',
    );
    const status = await one('/status');
    expect((JSON.parse(status.text) as LockstepStatus).replicas.map((r) => r.name)).toEqual([
      'replica1',
    ]);
    expect(status.text).not.toContain(PASSWORD);

    // The active one stops: the standby takes the lock and becomes ready.
    await stop(first);
    await eventually(async () => (await readyz(two)).role === 'active', 'the second active');
    expect(await readyz(two)).toEqual({ code: 200, ready: true, role: 'active', reasons: [] });
    expect(await metric(two, 'lockstep_active')).toBe(1);
    await stop(second);
    await stop(agent);
  });
});
