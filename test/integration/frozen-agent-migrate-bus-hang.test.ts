import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { packetStreamName } from '../../plugin/protocol/packet-bus-names.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, startAgent } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

// The agent is alive and busy; what hangs is the NATS server the migrating process is connected
// to. Its client leaves that server once pings run out and its `migrate` reply reaches it through
// another: the agent must not be declared frozen because the coordinator's own server hung.
const { nats, clusters } = useBusCritical({ voteTimeoutMs: 5_000 });
const STREAM = packetStreamName('lockstep');
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-frozen-agent-bus-hang-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const replicas = () => clusters.replicas as [PostgresCluster, PostgresCluster];
const nodes = () => [clusters.primary, ...replicas()];
const history = async (node: PostgresCluster) =>
  (await node.query<{ name: string }>('SELECT name FROM lockstep.migrations')).map((r) => r.name);

/** Whether the agent's migration session on `node` sits in the migration's pg_sleep. */
async function sleeping(node: PostgresCluster): Promise<boolean> {
  const rows = await node.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE application_name = 'lockstep-migrate-session' AND wait_event = 'PgSleep'`,
  );
  return Number(rows[0]?.n) > 0;
}

/**
 * Waits until both agents' migration sessions sleep (the primary runs its part first), and fails
 * at once, with what each process printed, when the migrate ends before that.
 */
async function bothSleeping(migrate: LockstepProcess, agents: LockstepProcess[]): Promise<void> {
  let ended = false;
  void migrate.exited.then(() => {
    ended = true;
  });
  const deadline = Date.now() + 120_000;
  while (!((await sleeping(replicas()[0])) && (await sleeping(replicas()[1])))) {
    if (ended || Date.now() > deadline)
      throw new Error(
        `${ended ? 'the migrate ended' : 'timed out'} before both agents' migrations ran:\n` +
          [migrate, ...agents].map((p) => p.output.slice(-4_000)).join('\n---\n'),
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Whose NATS server hangs: each client leaves it only once its pings ran out. */
const CLIENTS = {
  'the migrating process': 'lockstep-migrate-lockstep',
  "replica1's agent": 'lockstep-agent-replica1',
};

describe('a bus migration while a NATS server hangs', () => {
  it.each(Object.entries(CLIENTS))(
    'waits for live agents when %s hangs, and commits',
    async (_, client) => {
      // Long enough that the agents answer after the client left the hung server (pings: 10–15 s).
      const name = `00${readdirSync(dir).length + 1}-slow`;
      writeFileSync(
        path.join(dir, `${name}.sql`),
        // Only replicas hold a position row: the primary's part runs at once.
        'ALTER TABLE events ADD COLUMN IF NOT EXISTS e int; SELECT pg_sleep(20) FROM lockstep.applied; UPDATE events SET e = 3;',
      );
      const coordinator = new LockstepProcess(['run', '--config', clusters.configFile]);
      const agents = ['replica1', 'replica2'].map((r) => startAgent(clusters.configFile, r));
      let paused = -1;
      let migrate = null as LockstepProcess | null;
      try {
        // The previous case's hung server is back: its copy of the stream caught up first.
        await nats.cluster.caughtUp({ streams: [STREAM], restartStuck: true });
        await eventually(
          async () =>
            coordinator.logEvent('running') !== undefined &&
            agents.every((a) => a.logEvent('agent-active') !== undefined),
          'the sidecar and both agents running',
        );
        const up = ['migrate', 'up', '--config', clusters.configFile, '--dir', dir];
        migrate = new LockstepProcess(up);
        // Both agents got their `migrate` and run it: the requests are out, only the replies remain.
        await bothSleeping(migrate, agents);
        paused = await nats.cluster.clientNode(client);
        expect(paused).toBeGreaterThanOrEqual(0);
        nats.cluster.signal(paused, 'SIGSTOP');
        const code = await migrate.closed;
        expect(migrate.logEvent('agent-unresponsive'), migrate.output).toBeUndefined();
        expect(code, migrate.output).toBe(0);
        nats.cluster.signal(paused, 'SIGCONT');
        for (const node of nodes())
          expect({
            node: node.name,
            history: (await history(node)).filter((n) => n === name),
          }).toEqual({
            node: node.name,
            history: [name],
          });
        await eventually(
          async () => (await preparedGids(nodes())).length === 0,
          'nothing left prepared',
        );
      } finally {
        if (paused >= 0) nats.cluster.signal(paused, 'SIGCONT');
        (migrate as LockstepProcess | null)?.kill('SIGKILL');
        for (const p of [...agents, coordinator]) {
          p.kill('SIGTERM');
          await p.exited;
        }
      }
    },
    300_000,
  );
});
