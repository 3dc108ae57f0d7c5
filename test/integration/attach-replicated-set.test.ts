import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { attach } from '../../plugin/attach/attach.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import type { LockstepError } from '../../plugin/ports/lockstep-error.js';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
const quiet = { table: () => undefined, step: () => undefined };

const clusters = useClusters({ replicas: 2 });
const configs: Array<ReturnType<typeof writeConfig>> = [];

/** Runs attach in-process with `r1` and `r2` and these configuration keys; its error, or null. */
async function attachWith(extra: Record<string, unknown>): Promise<LockstepError | null> {
  const config = writeConfig(clusters.primary, clusters.replicas, extra);
  configs.push(config);
  return attach(postgresCluster(), loadConfig(config.file), quiet).then(
    () => null,
    (error: LockstepError) => error,
  );
}

/** The stream as the primary has it: published tables and event triggers. */
async function streamSetup(): Promise<{ published: string[]; triggers: string[] }> {
  const published = await clusters.primary.query<{ t: string }>(
    `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = 'lockstep' ORDER BY 1`,
  );
  const triggers = await clusters.primary.query<{ evtname: string }>(
    'SELECT evtname FROM pg_event_trigger ORDER BY 1',
  );
  return { published: published.map((r) => r.t), triggers: triggers.map((r) => r.evtname) };
}

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  await clusters.primary.query(`INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g`);
  const first = writeConfig(clusters.primary, [clusters.replicas[0] as PostgresCluster]);
  configs.push(first);
  expect((await lockstep(['attach', '--config', first.file])).code).toBe(0);
  // Created after attach, without captured DDL: it matches public.* but is not streamed.
  for (const node of [clusters.primary, ...clusters.replicas])
    await node.query('CREATE TABLE extra (id int PRIMARY KEY)');
  await clusters.primary.query('INSERT INTO extra VALUES (1)');
});

afterAll(() => {
  for (const config of configs) config.remove();
});

describe('attach on an attached stream keeps its replicated set', () => {
  it('refuses other tables or captureDdl, changing nothing, and adds a replica with the same', async () => {
    const r2 = clusters.replicas[1] as PostgresCluster;
    const before = await streamSetup();
    expect(before.published).toEqual(['lockstep.control_events', 'public.items', 'public.marker']);

    const tables = await attachWith({ tables: ['public.items', 'public.marker'] });
    expect({ node: tables?.node, setting: tables?.setting }).toEqual({
      node: 'primary',
      setting: 'tables',
    });
    const capture = await attachWith({ twoPhase: { captureDdl: true } });
    expect({ node: capture?.node, setting: capture?.setting }).toEqual({
      node: 'primary',
      setting: 'twoPhase.captureDdl',
    });
    expect(await streamSetup()).toEqual(before);
    expect(await r2.query('SELECT 1 FROM items LIMIT 1')).toEqual([]);

    // The same set: replica2 joins; the publication stays as it was (extra is not added or copied).
    expect(await attachWith({})).toBeNull();
    expect(await streamSetup()).toEqual(before);
    expect(await r2.query('SELECT count(*)::int AS n FROM items')).toEqual([{ n: 100 }]);
    expect(await r2.query('SELECT 1 FROM extra')).toEqual([]);
  });

  it('compares a stream attached before the set was recorded by its publication and capture', async () => {
    await clusters.primary.query('UPDATE lockstep.streams SET tables = NULL, capture_ddl = NULL');
    // extra matches public.* now but is not published: the publication differs from the configuration.
    const extra = await attachWith({});
    expect(extra?.setting).toBe('tables');
    const exact = ['public.items', 'public.marker'];
    const capture = await attachWith({ tables: exact, twoPhase: { captureDdl: true } });
    expect(capture?.setting).toBe('twoPhase.captureDdl');
    expect((await streamSetup()).triggers).toEqual([]);
    expect(await attachWith({ tables: ['public.items', 'public.marker'] })).toBeNull();
    expect(
      await clusters.primary.query('SELECT tables, capture_ddl FROM lockstep.streams'),
    ).toEqual([{ tables: ['public.items', 'public.marker'], capture_ddl: false }]);
  });

  it('lockstep run with another captureDdl than the stream was attached with streams nothing, installs nothing', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, {
      tables: ['public.items', 'public.marker'],
      twoPhase: { captureDdl: true },
    });
    configs.push(config);
    const sidecar = new LockstepProcess(['run', '--config', config.file]);
    try {
      await eventually(
        async () =>
          sidecar
            .logLines()
            .some((l) => l.event === 'stream-refused' && /captureDdl: false/.test(String(l.fix))),
        'the sidecar to refuse to stream',
      );
      expect((await streamSetup()).triggers).toEqual([]);
      expect(sidecar.logEvent('stream-started')).toBeUndefined();
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
