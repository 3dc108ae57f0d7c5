import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, preparedGids } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const clusters = useClusters({ replicas: 3 });
const replica = (i: number) => clusters.replicas[i] as PostgresCluster;
let config: ReturnType<typeof writeConfig>;
let older: ReturnType<typeof writeConfig>;

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  await clusters.primary.query(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 10) g`);
  older = writeConfig(clusters.primary, [replica(0), replica(1)]);
  const attached = await lockstep(['attach', '--config', older.file]);
  expect(attached.code, attached.output).toBe(0);
  config = writeConfig(clusters.primary, [replica(0), replica(1), replica(2)]);
});

afterAll(() => {
  config?.remove();
  older?.remove();
});

const held = async (name: string) =>
  (await clusters.primary.query('SELECT 1 FROM lockstep.join_holds WHERE replica = $1', [name]))
    .length > 0;

describe('lockstep exec while attach joins a replica and no sidecar runs', () => {
  it('is refused for a configuration lacking the joining replica (none reports it yet)', async () => {
    const { primary } = clusters;
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    // An open write: the join's snapshot waits for it, its hold on the slot written.
    const gate = new pg.Client({ connectionString: primary.url });
    let attach: LockstepProcess | null = null;
    try {
      await gate.connect();
      await gate.query('BEGIN');
      await gate.query('INSERT INTO marker DEFAULT VALUES');
      attach = new LockstepProcess(['attach', '--config', config.file]);
      await eventually(async () => held(r3.name), 'attach to hold the slot for replica3', 120_000);

      const exec = await lockstep(
        ['exec', '--config', older.file, '--sql', "UPDATE items SET v = 'new'"],
        {},
        180_000,
      );
      expect(exec.code, exec.output).toBe(1);
      expect(exec.output).toMatch(/\[replica3\].*serves replica3.*attach is joining/);
      await gate.query('COMMIT');
      expect(await attach.exited, attach.output).toBe(0);
      for (const node of [primary, r1, r2, r3])
        expect(await node.query(`SELECT 1 FROM items WHERE v <> 'old'`)).toEqual([]);
      expect(await preparedGids([primary, r1, r2, r3])).toEqual([]);
    } finally {
      await gate.end().catch(() => undefined);
      attach?.kill('SIGTERM');
      await attach?.exited;
    }
  }, 300_000);
});
