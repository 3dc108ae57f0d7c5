import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { packetStreamName } from '../../plugin/protocol/packet-bus-names.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { getter, sample } from '../support/endpoint-client.js';
import { freePort } from '../support/free-port.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { expectContiguous, readBusMessages } from '../support/nats-packets.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { streamCommands } from '../support/stream-commands.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const STREAM = packetStreamName('lockstep');
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: NUMBERED_SCHEMA,
  config: {
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replica = () => clusters.replicas[0] as PostgresCluster;
const write = (from: number, n: number) => insertNumbered(clusters.primary, from, n);
const { command, status, slotActive } = streamCommands(clusters);

/** The packet stream's last sequence (what a publish would move). */
async function lastSequence(): Promise<number> {
  const nc = await connectBus({ servers: nats.cluster.url.split(',') }, 'test-sequence');
  try {
    return (await (await jetstreamManager(nc)).streams.info(STREAM)).state.last_seq;
  } finally {
    await nc.close();
  }
}

/** The publisher, its endpoints on `port`. */
const publisher = (port: number) =>
  new LockstepProcess(['run', '--config', clusters.configFile], {
    LOCKSTEP_HTTP_PORT: String(port),
  });

async function stop(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

describe('lockstep pause and resume with bus', () => {
  it('stops publishing and lets go of the slot, stays paused across a restart, and resumes with nothing lost or doubled', async () => {
    const port = await freePort();
    const metric = async (name: string) => sample((await getter(port)('/metrics')).text, name);
    const agentPort = await freePort();
    let run = publisher(port);
    const agent = startAgent(clusters.configFile, 'replica1', {
      LOCKSTEP_BUS_AGENT_HTTP_PORT: String(agentPort),
    });
    /** replica1's state in `status --json`, the publisher's /status and the agent's state metric. */
    const states = async () => {
      const served = JSON.parse((await getter(port)('/status')).text) as LockstepStatus;
      const metrics = (await getter(agentPort)('/metrics')).text;
      const metricState = ['paused', 'streaming', 'catching-up'].find(
        (state) => sample(metrics, 'lockstep_replica_state', { replica: 'replica1', state }) === 1,
      );
      return [(await status()).replicas[0]?.state, served.replicas[0]?.state, metricState];
    };
    try {
      await write(1, 5);
      await eventually(
        async () => (await appliedVersion(replica())) === 5,
        'replica1 at version 5',
      );

      const paused = await command('pause');
      expect(paused.output).toMatch(/^paused since \S+: the sidecar stopped streaming/);
      expect(paused.code).toBe(0);
      expect(await slotActive()).toBe(false);
      await run.untilEvent('replication-paused');
      const sequence = await lastSequence();
      await write(6, 10);
      await eventually(async () => (await metric('lockstep_paused')) === 1, 'lockstep_paused 1');
      expect(await metric('lockstep_active')).toBe(1);
      expect(await metric('lockstep_stream_connected')).toBe(0);
      await eventually(async () => {
        const s = await status();
        return s.paused && s.sidecar.running;
      }, 'status to show the stream paused, the publisher still holding the lock');
      expect((await command('status')).output).toMatch(
        /^replication: paused since \S+ \(lockstep resume/m,
      );
      // Its agent follows the stream: paused, as in process, in status, /status and the agent's metric.
      await eventually(
        async () => (await states()).every((s) => s === 'paused'),
        'replica1 shown paused everywhere',
      );
      expect((await command('status')).output).toMatch(/^\s*replica1\s+paused\s/m);
      // A round needs the replicas to catch up, which they cannot while paused: refused up front.
      const exec = await command('exec', '--sql', 'CREATE TABLE never (id int PRIMARY KEY)');
      expect(exec.output).toMatch(/is paused .*\n\s+fix: run lockstep resume/);
      expect(exec.code).toBe(1);
      expect(await lastSequence()).toBe(sequence);
      expect(await slotActive()).toBe(false);
      expect(await appliedVersion(replica())).toBe(5);

      // A publisher started while paused stays paused: it takes the lock and publishes nothing.
      await stop(run);
      run = publisher(port);
      await eventually(
        async () => run.logEvent('replication-paused') !== undefined,
        'the new publisher to find the stream paused',
      );
      await eventually(async () => run.logEvent('running') !== undefined, 'the new publisher');
      await write(16, 5);
      expect(await metric('lockstep_paused')).toBe(1);
      expect(run.logEvent('bus-publishing')).toBeUndefined();
      expect(await slotActive()).toBe(false);
      expect(await lastSequence()).toBe(sequence);
      expect(await appliedVersion(replica())).toBe(5);

      const resumed = await command('resume');
      expect(resumed.output).toMatch(/^resumed: the sidecar streams again/);
      expect(resumed.code).toBe(0);
      await eventually(async () => (await appliedVersion(replica())) === 20, 'replica1 at 20');
      await waitForMarker(clusters.primary, clusters.replicas);
      // Every row once, in order, on the bus as on the replica.
      const ids = expectContiguous(await readBusMessages(nats.cluster.url, STREAM), 't');
      expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
      expect(await preparedGids([clusters.primary, replica()])).toEqual([]);
      expect(await metric('lockstep_paused')).toBe(0);
      expect((await status()).paused).toBe(false);
      await eventually(
        async () => (await states()).every((s) => s === 'streaming'),
        'replica1 shown streaming again everywhere',
      );
    } finally {
      await stop(agent);
      await stop(run);
    }
  });

  it('a pause in the middle of a large transaction loses nothing and doubles nothing', async () => {
    const run = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = startAgent(clusters.configFile, 'replica1');
    try {
      await eventually(async () => run.logEvent('bus-publishing') !== undefined, 'publishing');
      await clusters.primary.query(
        'INSERT INTO t SELECT g, g FROM generate_series(1000000, 1099999) g',
      );
      // Paused while the 100,000 rows go to the bus in many messages.
      expect((await command('pause')).code).toBe(0);
      expect(await slotActive()).toBe(false);
      expect(await preparedGids([replica()])).toEqual([]);
      expect((await command('resume')).code).toBe(0);
      await waitForMarker(clusters.primary, clusters.replicas);
      const ids = expectContiguous(await readBusMessages(nats.cluster.url, STREAM), 't');
      expect(ids).toEqual([
        ...Array.from({ length: 20 }, (_, i) => i + 1),
        ...Array.from({ length: 100_000 }, (_, i) => 1_000_000 + i),
      ]);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
    } finally {
      await stop(agent);
      await stop(run);
    }
  });
});
