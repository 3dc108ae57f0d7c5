import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDirectory } from '../../adapters/local-postgres/run-directory.js';
import { eventually, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { monitor } from '../support/nats-monitor.js';
import { NatsNode } from '../support/nats-node.js';
import { releasePorts, reservePorts } from '../support/nats-ports.js';
import { NATS_DIR_PREFIX } from '../support/nats-sweep.js';
import { useAttached } from '../support/use-attached.js';

const USER = 'lockstep';
const PASSWORD = 'S3cret-bus-pw';
const ROTATED = 'Other-bus-pw';

/** One JetStream server that admits only USER with the password it is started with. */
let dir = '';
let ports: number[] = [];
let node: NatsNode;

async function startServer(password: string): Promise<void> {
  node.writeConfig([]);
  appendFileSync(
    path.join(node.dir, 'server.conf'),
    `authorization { user: "${USER}", password: "${password}" }\n`,
  );
  node.start();
  await eventually(async () => {
    node.check();
    await monitor(node, 'healthz?js-enabled-only=true');
    return true;
  }, 'the NATS server to answer');
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(runDirectory(), NATS_DIR_PREFIX));
  ports = reservePorts(3);
  const [port, clusterPort, httpPort] = ports as [number, number, number];
  node = new NatsNode('n1', path.join(dir, 'n1'), port, clusterPort, httpPort);
  await startServer(PASSWORD);
});
afterAll(async () => {
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
  releasePorts(ports);
});

const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE marker (id bigserial PRIMARY KEY)',
  config: {
    get bus() {
      return { url: `nats://${USER}:${PASSWORD}@127.0.0.1:${node.port}`, replicas: 1 };
    },
  },
});

/** Authorization errors the server logged so far (one per refused connection attempt). */
const refusals = () =>
  node.logTail.match(/authorization violation|authentication error/gi)?.length ?? 0;

describe('a bus that refuses lockstep for a while', () => {
  it('is connected to again once it accepts the credentials, without restarting lockstep', async () => {
    const run = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = startAgent(clusters.configFile, clusters.replicas[0]?.name ?? '');
    try {
      await waitForMarker(clusters.primary, clusters.replicas, 30_000);
      await node.stop();
      await startServer(ROTATED);
      // Refused long enough that the old client had given up (two refusals per connection:
      // the publisher's, its rounds', its sequences', the agent's); the marker below is the proof.
      await eventually(async () => refusals() >= 8, '8 refused connection attempts', 20_000);
      for (const p of [run, agent])
        await eventually(
          async () => p.logEvent('bus-unauthorized', { node: 'bus' }) !== undefined,
          'a bus-unauthorized warning',
          10_000,
        );
      await node.stop();
      await startServer(PASSWORD);
      await waitForMarker(clusters.primary, clusters.replicas, 30_000);
      for (const p of [run, agent]) await p.untilEvent('bus-authorized', { node: 'bus' });
    } finally {
      run.kill('SIGTERM');
      agent.kill('SIGTERM');
      await Promise.all([run.exited, agent.exited]);
    }
    // After the finally, so that a failure above is reported as itself.
    expect({ run: await run.closed, agent: await agent.closed }).toEqual({ run: 0, agent: 0 });
    expect(run.output + agent.output).not.toContain(PASSWORD);
    expect(run.output + agent.output).not.toContain(ROTATED);
  });
});
