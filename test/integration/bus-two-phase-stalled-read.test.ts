import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { criticalSetup } from '../support/critical-setup.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { NatsStallProxy } from '../support/nats-stall-proxy.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

/** Rows of each critical transaction: with 64 KB messages, a packet of many messages. */
const ROWS = 20_000;
const setup = criticalSetup({ voteTimeoutMs: 1_000 });
/**
 * The stalled agent's open transaction is touched (a keepalive, `SELECT 1`)
 * every third of this: several times within the round's deadline (1 s per
 * 10,000 rows), so a keepalive taken for progress would hold the round.
 */
const APPLY_TIMEOUT_MS = 1_500;
const nats = useNatsCluster({ maxPayload: 64 * 1024 });
const clusters = useAttached({
  ...setup,
  schema: `${setup.schema} CREATE TABLE marker (id bigserial PRIMARY KEY);`,
  config: {
    ...setup.config,
    applyTimeoutMs: APPLY_TIMEOUT_MS,
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const rowsOn = async (node: PostgresCluster) =>
  Number((await node.query<{ n: string }>('SELECT count(*) AS n FROM accounts'))[0]?.n);
const time = (l: Record<string, unknown> | undefined) => Date.parse(String(l?.time));

/** The rounds the coordinator aborted with `replica` among the refusals, from `since` (ms) on. */
const abortedFor = (coordinator: LockstepProcess, replica: string, since = 0) =>
  coordinator
    .events('round-aborted')
    .filter((l) => Object.hasOwn((l.refusals ?? {}) as object, replica) && time(l) >= since);

/** Whether any of `nodes` holds one of the rounds `aborted` prepared. */
async function holdsPrepared(
  nodes: readonly PostgresCluster[],
  aborted: readonly Record<string, unknown>[],
): Promise<boolean> {
  const gids = new Set(aborted.map((l) => String(l.gid)));
  return (await preparedGids(nodes)).some((g) => gids.has(g.slice(g.indexOf(':') + 1)));
}

interface Stalled {
  readonly proxy: NatsStallProxy;
  readonly coordinator: LockstepProcess;
  readonly agent: LockstepProcess;
  /** The rows replica1 held before the round. */
  readonly before: number;
}

/**
 * Runs `body` once replica2's agent applied the first messages of a large
 * two-phase packet (rows `from`.. `from + ROWS - 1`) into its open
 * transaction and receives no more: it reads NATS through a proxy that holds
 * its packet messages only, so it keeps its connection and answers the
 * coordinator's requests and probes. Then checks every replica ends with
 * everything, identical, and nothing prepared anywhere.
 */
async function withStalledAgent(from: number, body: (s: Stalled) => Promise<void>) {
  const proxy = await NatsStallProxy.start(nats.cluster.nodeUrl(0));
  const coordinator = new LockstepProcess(['run', '--config', clusters.configFile]);
  const agents = [
    startAgent(clusters.configFile, 'replica1'),
    startAgent(clusters.configFile, 'replica2', { LOCKSTEP_BUS_URL: proxy.url }),
  ];
  try {
    await eventually(
      async () => agents.every((a) => a.logEvent('bus-reading') !== undefined),
      'agents to read the bus',
    );
    const before = await rowsOn(replicas()[0]);
    proxy.arm();
    await clusters.primary.query(
      `INSERT INTO accounts SELECT g, 10 FROM generate_series(${from}, ${from + ROWS - 1}) g`,
    );
    await eventually(async () => proxy.stalledAfterPart !== null, 'the stall mid-packet');
    await body({ proxy, coordinator, agent: agents[1] as LockstepProcess, before });
    proxy.release();
    await waitForMarker(clusters.primary, replicas(), 120_000);
    const total = await rowsOn(clusters.primary);
    await eventually(
      async () =>
        (await rowsOn(replicas()[0])) === total && (await rowsOn(replicas()[1])) === total,
      'the round to commit on both replicas',
    );
    await eventually(
      async () => (await preparedGids([clusters.primary, ...replicas()])).length === 0,
      'no lockstep gid prepared anywhere',
    );
    await expectIdentical(clusters.primary, replicas(), ['accounts', 'events']);
  } finally {
    proxy.release();
    for (const p of [...agents, coordinator]) {
      p.kill('SIGTERM');
      await p.exited;
    }
    await proxy.close();
  }
}

describe('a two-phase round over the bus whose packet stops reaching one agent mid-packet', () => {
  it('aborts at its deadline, retried, with nothing left prepared, and commits everywhere once the read goes on', async () => {
    await withStalledAgent(1, async ({ proxy, coordinator, agent, before }) => {
      await eventually(
        async () => abortedFor(coordinator, 'replica2').length >= 2,
        'the round and its retry to abort at their deadline, replica2 having voted nothing',
      );
      const aborted = abortedFor(coordinator, 'replica2');
      // Still stalled, the agent alive: the aborts did not wait for the read to go on.
      expect(proxy.heldParts.length).toBeGreaterThan(0);
      expect(agent.child.exitCode).toBeNull();
      // The first abort came at the deadline, while the agent still held the parts in its open
      // transaction and waited on its first read: not once it gave that read up (its own bound
      // on a silent bus), which rolls the packet back and leaves it on no packet.
      const gaveUp = agent.events('bus-failed').map(time);
      const stalledAt = proxy.stalledAt ?? 0;
      expect(gaveUp.filter((t) => t >= stalledAt && t <= time(aborted[0]))).toEqual([]);
      await eventually(
        async () => !(await holdsPrepared([clusters.primary, ...replicas()], aborted)),
        'no node to hold an aborted round prepared',
      );
      expect(await rowsOn(replicas()[0])).toBe(before);
      expect(await rowsOn(replicas()[1])).toBe(before);
    });
  });

  it('aborts at its deadline when the stalled part then hangs on a frozen replica server', async () => {
    await withStalledAgent(ROWS + 1, async ({ proxy, coordinator, agent, before }) => {
      // The next part goes to a replica server that answers nothing (SIGSTOP): the apply hangs
      // mid-packet on the replica connection instead of the bus.
      await replicas()[1].freezeServer();
      try {
        const frozenAt = Date.now();
        proxy.release();
        await eventually(
          async () => abortedFor(coordinator, 'replica2', frozenAt).length > 0,
          'a round to abort at its deadline while replica2 is frozen',
        );
        // The apply of the part that hung gave up on the replica: the stall was on its connection.
        await eventually(
          async () =>
            agent.logLines().some((l) => l.state === 'unresponsive' && time(l) >= frozenAt),
          'replica2 counted unresponsive while frozen',
        );
        const aborted = abortedFor(coordinator, 'replica2', frozenAt);
        await eventually(
          async () => !(await holdsPrepared([clusters.primary, replicas()[0]], aborted)),
          'neither the primary nor replica1 to hold an aborted round prepared',
        );
        expect(await rowsOn(replicas()[0])).toBe(before);
      } finally {
        await replicas()[1].thawServer();
      }
    });
  });
});
