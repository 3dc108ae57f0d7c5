import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { packetStreamName } from '../../plugin/protocol/packet-bus-names.js';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { backgroundTpcb, TPCB_SCHEMA, tpcbSeed } from '../support/tpcb-workload.js';
import { useAttached } from '../support/use-attached.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const TABLES = ['branches', 'tellers', 'accounts', 'history', 'marker'];
const STREAM = packetStreamName('lockstep');
const nats = useNatsCluster();
const clusters = useAttached({
  replicas: 1,
  schema: TPCB_SCHEMA,
  seed: tpcbSeed(1, 1_000),
  config: {
    twoPhase: { tag: false },
    get bus() {
      return { url: nats.cluster.url, replicas: 3 };
    },
  },
});

const replica = () => clusters.replicas[0] as PostgresCluster;

async function historyRows(): Promise<number> {
  const [row] = await clusters.primary.query<{ n: string }>('SELECT count(*) AS n FROM history');
  return Number(row?.n);
}

/**
 * The node each part of the path from publisher to agent runs on: each is
 * paused in turn. Once resumed, a paused stream leader's node may hold a
 * replica that stops applying (nats-server 2.9): a consumer placed there
 * heartbeats but delivers nothing, which the agent must see and leave.
 */
const ROLES = {
  "the agent's consumer": async () => (await nats.cluster.consumerNodes(STREAM))[0] ?? -1,
  "the agent's connection": () => nats.cluster.clientNode('lockstep-agent-replica1'),
  "the publisher's connection": () => nats.cluster.clientNode('lockstep-publisher-lockstep'),
  'the stream leader': () => nats.cluster.streamLeader(STREAM),
};

describe('lockstep agent on a bus that hangs', () => {
  it('goes on while a NATS node is paused, whichever it is, and after the whole cluster was', async () => {
    const publisher = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agent = startAgent(clusters.configFile, 'replica1');
    /** Runs pgbench-like transactions until the primary committed 2,000 more, then stops them. */
    const traffic = async () => {
      const rows = await historyRows();
      const workload = backgroundTpcb(clusters.primary.url, {
        branches: 1,
        accountsPerBranch: 1_000,
      });
      try {
        await eventually(async () => (await historyRows()) > rows + 2_000, 'the primary to go on');
      } finally {
        await workload.stop();
      }
    };
    /** Waits for a marker committed now: it must travel publisher, stream and agent while `what`. */
    const flows = async (what: string, ms = 180_000) => {
      try {
        await waitForMarker(clusters.primary, clusters.replicas, ms);
      } catch (error) {
        const tails = `agent:\n${agent.output.slice(-3_000)}\npublisher:\n${publisher.output.slice(-3_000)}`;
        throw new Error(`${(error as Error).message} ${what}\n${tails}`);
      }
    };
    /**
     * The publisher's reports that the stream's leader ends before what
     * JetStream acknowledged: `bus-leader-behind` (end below the sequence this
     * process saw acknowledged), or, when its bus session starts over,
     * `bus-unavailable` with the stream ending before the slot's confirmed
     * point (the slot is confirmed only once JetStream acknowledged).
     */
    const behindReports = () => [
      ...publisher.events('bus-leader-behind'),
      ...publisher
        .events('bus-unavailable')
        .filter((l) => /before the slot's confirmed point/.test(String(l.err))),
    ];
    /**
     * As {@link flows} while node `index` is paused, with one exception, the
     * server's: nats-server 2.9 may then elect a stream leader whose store ends
     * before messages JetStream acknowledged (its replica stopped applying
     * after an earlier pause), and keep it. Lockstep must build nothing on it
     * (reported as above, still when the wait ends) and go on once the paused
     * node, which holds those messages, is back.
     */
    const flowsWhilePaused = async (role: string, index: number, since: number) => {
      try {
        await flows(`with the node of ${role} paused`, 120_000);
      } catch (error) {
        const time = (l: Record<string, unknown>) => Date.parse(String(l.time));
        const reports = behindReports().filter((l) => time(l) >= since);
        const last = Math.max(...reports.map(time));
        if (reports.length === 0 || Date.now() - last > 60_000) throw error;
        for (const report of reports.filter((r) => r.event === 'bus-leader-behind'))
          expect(Number(report.end)).toBeLessThan(Number(report.acknowledged));
        nats.cluster.signal(index, 'SIGCONT');
        await flows(`once the node of ${role} was back, its stream leader having been behind`);
      }
    };
    try {
      await traffic();
      await eventually(async () => (await appliedVersion(replica())) > 50, 'the agent to apply');
      for (const [role, find] of Object.entries(ROLES)) {
        // A hung server accepts TCP and answers nothing; the cluster keeps quorum without it.
        const index = await find();
        expect(index, role).toBeGreaterThanOrEqual(0);
        const pausedAt = Date.now();
        nats.cluster.signal(index, 'SIGSTOP');
        // Traffic while the node hangs; the marker then checks nothing waits on it.
        await traffic();
        await flowsWhilePaused(role, index, pausedAt);
        nats.cluster.signal(index, 'SIGCONT');
        // One node away at a time: the next pause waits until this one's copy of the stream caught up
        // (restarted if nats-server left its replica stuck: the server's fault, not lockstep's).
        await nats.cluster.caughtUp({ streams: [STREAM], restartStuck: true });
      }
      // The whole cluster hangs while the primary goes on.
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGSTOP');
      await traffic();
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      await flows('after the whole cluster was paused');
      // history has no key: a packet applied twice would leave its rows twice.
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      for (const i of [0, 1, 2]) nats.cluster.signal(i, 'SIGCONT');
      for (const p of [agent, publisher]) {
        p.kill('SIGTERM');
        expect(await p.exited).toBe(0);
      }
    }
  }, 900_000);
});
