import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, startAgent } from '../support/lockstep-process.js';
import { useBusCritical } from '../support/use-bus-critical.js';

const { clusters } = useBusCritical();
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-bus-older-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The sidecar's file without replica2: what a job kept from before replica2 was added. */
function olderConfig(): string {
  const config = JSON.parse(readFileSync(clusters.configFile, 'utf8')) as {
    replicas: Array<{ name: string }>;
  };
  config.replicas = config.replicas.filter((r) => r.name !== 'replica2');
  const file = path.join(dir, 'older.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const balances = async (node: PostgresCluster) =>
  (await node.query<{ n: string }>('SELECT count(*)::text AS n FROM accounts')).map((r) => r.n);

/** Whether status reads `name`'s agent report from the bus. */
async function reported(name: string): Promise<boolean> {
  const status = await lockstep(['status', '--config', clusters.configFile, '--json']);
  const { replicas } = JSON.parse(status.stdout) as {
    replicas: Array<{ name: string; state: string }>;
  };
  return replicas.some((r) => r.name === name && r.state !== 'unknown');
}

describe('lockstep exec over the bus with a configuration lacking a replica whose agent runs', () => {
  it('is refused, naming the replica, and changes no node', async () => {
    const nodes = [clusters.primary, ...clusters.replicas];
    const coordinator = new LockstepProcess(['run', '--config', clusters.configFile]);
    const agents = [
      startAgent(clusters.configFile, 'replica1'),
      startAgent(clusters.configFile, 'replica2'),
    ];
    try {
      await eventually(
        async () =>
          coordinator.logEvent('running') !== undefined &&
          agents.every((a) => a.logEvent('agent-active') !== undefined) &&
          (await reported('replica2')),
        'the sidecar and both agents to run, replica2 reported on the bus',
      );
      const exec = await lockstep(
        ['exec', '--config', olderConfig(), '--sql', 'INSERT INTO accounts VALUES (1, 100)'],
        {},
        120_000,
      );
      expect(exec.code, exec.output).toBe(1);
      expect(exec.output).toMatch(/\[replica2\].*serves replica2/);
      for (const node of nodes) expect(await balances(node)).toEqual(['0']);
      expect(await preparedGids(nodes)).toEqual([]);
    } finally {
      for (const p of [...agents, coordinator]) {
        p.kill('SIGTERM');
        await p.exited;
      }
    }
  });
});
