import { sleep } from '../../plugin/support/sleep.js';
import type { NatsCluster } from './nats-cluster.js';
import type { FaultSet } from './nemesis-faults.js';
import { sampleRows } from './nemesis-workloads.js';

const nodes = (cluster: NatsCluster) => [...Array(cluster.size).keys()];

/**
 * Faults of the NATS cluster under the bus: one node killed and restarted
 * (the cluster keeps quorum), one node paused (SIGSTOP: it hangs, holding
 * its connections) and resumed, and less often the whole cluster killed and
 * restarted.
 */
export function natsFaults(cluster: NatsCluster): FaultSet {
  return {
    faults: [
      {
        kind: 'kill-nats-node',
        async inject({ pick, between }) {
          const index = pick(nodes(cluster));
          await cluster.kill(index);
          await sleep(between(200, 3_000));
          await cluster.restart(index);
          return `n${index + 1}`;
        },
      },
      {
        kind: 'pause-nats-node',
        async inject({ pick, between }) {
          const index = pick(nodes(cluster));
          cluster.signal(index, 'SIGSTOP');
          // Past 10 s clients and agents' consumers leave the hung server, shorter they wait it out.
          await sleep(between(1_000, 12_000));
          cluster.signal(index, 'SIGCONT');
          return `n${index + 1}`;
        },
      },
      {
        kind: 'restart-nats-cluster',
        weight: 0.3,
        async inject({ between }) {
          await cluster.killAll();
          await sleep(between(200, 2_000));
          await cluster.restartAll();
          return 'all';
        },
      },
    ],
    heal: async () => {
      for (const index of nodes(cluster)) cluster.signal(index, 'SIGCONT');
      for (const index of nodes(cluster)) await cluster.restart(index);
    },
  };
}

/**
 * How many sessions on the primary hold `stream`'s coordinator lock (null:
 * the primary does not answer now). The publishers serve no HTTP endpoint in
 * bus mode, so the lock itself is sampled.
 */
export async function coordinatorLocks(url: string, stream: string): Promise<number | null> {
  const rows = await sampleRows<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid::int = hashtext('lockstep.coordinator') AND l.objid::int = hashtext($1)`,
    [stream],
  );
  return rows ? (rows[0]?.n ?? 0) : null;
}
