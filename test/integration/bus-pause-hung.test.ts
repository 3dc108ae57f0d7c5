import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { packetStreamName } from '../../plugin/protocol/packet-bus-names.js';
import { appliedVersion, eventually, waitForMarker } from '../support/compare-nodes.js';
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
const { command, slotActive } = streamCommands(clusters);

/** The publisher, its endpoints on `port`. */
const publisher = (port: number) =>
  new LockstepProcess(['run', '--config', clusters.configFile], {
    LOCKSTEP_HTTP_PORT: String(port),
  });

async function stop(p: LockstepProcess): Promise<void> {
  p.kill('SIGTERM');
  expect(await p.exited).toBe(0);
}

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lockstep pause while the bus hangs', () => {
  it('returns with the slot released though messages in flight wait on the hung bus', async () => {
    const run = publisher(await freePort());
    const agent = startAgent(clusters.configFile, 'replica1');
    let stopped = false;
    try {
      await eventually(async () => run.logEvent('bus-publishing') !== undefined, 'publishing');
      await write(1, 5);
      await eventually(async () => (await appliedVersion(replica())) === 5, 'replica1 at 5');
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGSTOP');
      stopped = true;
      let next = 6;
      const writing = (async () => {
        const until = Date.now() + 3_000;
        while (Date.now() < until) {
          await write(next, 1);
          next++;
          await sleepMs(20);
        }
      })();
      await sleepMs(1_500);
      // Within its wait for the slot (10 s), though acknowledgements time out only after 10 s.
      const paused = await command('pause');
      await writing;
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      stopped = false;
      await eventually(async () => (await slotActive()) === false, 'slot released');
      expect((await command('resume')).code).toBe(0);
      await eventually(async () => (await appliedVersion(replica())) >= next - 1, 'caught up');
      await waitForMarker(clusters.primary, clusters.replicas);
      const all = expectContiguous(await readBusMessages(nats.cluster.url, STREAM), 't');
      expect(all).toEqual(Array.from({ length: next - 1 }, (_, i) => i + 1));
      expect(paused.code, paused.output).toBe(0);
    } finally {
      if (stopped) for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      await stop(agent);
      await stop(run);
    }
  });
});
