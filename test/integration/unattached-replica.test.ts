import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import {
  LockstepProcess,
  lockstep,
  rewriteConfig,
  writeConfig,
} from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const SCHEMA = `CREATE TABLE parent (id int PRIMARY KEY, v text);
                CREATE TABLE critical (id int PRIMARY KEY, v int);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
// A tiny bound: a replica that is never attached passes it at once.
const EXTRA = { maxLagBytes: 256 * 1024, twoPhase: { tables: ['public.critical'] } };

const clusters = useClusters({ replicas: 2 });
// replica2 is in no configuration yet.
const [replica1, newcomer] = [0, 1].map((i) => () => clusters.replicas[i] as PostgresCluster) as [
  () => PostgresCluster,
  () => PostgresCluster,
];
let config: ReturnType<typeof writeConfig>;
let sidecar: LockstepProcess;

let next = 1;
async function writeLots(): Promise<void> {
  const from = next;
  next += 2_000;
  await clusters.primary.query(
    `INSERT INTO parent SELECT g, repeat(md5(g::text), 8) FROM generate_series(${from}, ${next - 1}) g`,
  );
}

beforeAll(async () => {
  await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(SCHEMA)));
  config = writeConfig(clusters.primary, [replica1()], EXTRA);
  expect((await lockstep(['attach', '--config', config.file])).code).toBe(0);
  sidecar = new LockstepProcess(['run', '--config', config.file]);
});

afterAll(async () => {
  sidecar?.kill('SIGTERM');
  await sidecar?.exited;
  config?.remove();
});

const slotConfirmed = async () =>
  (
    await clusters.primary.query<{ lsn: string }>(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
    )
  )[0]?.lsn;

const events = (event: string) => sidecar.logLines().filter((l) => l.event === event);

const otherSlots = async () =>
  (
    await clusters.primary.query<{ slot_name: string }>(
      `SELECT slot_name FROM pg_replication_slots WHERE slot_name <> 'lockstep'`,
    )
  ).map((r) => r.slot_name);

/**
 * Kills an attach while it copies into `into` (its COPY waits on a lock the
 * test holds there): the snapshot slot it copies from must go with it, never
 * hold the primary's WAL.
 */
async function killAttachMidCopy(into: PostgresCluster): Promise<void> {
  const holder = new pg.Client({ connectionString: into.url });
  await holder.connect();
  const attach = new LockstepProcess(['attach', '--config', config.file]);
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE parent IN ACCESS EXCLUSIVE MODE');
    await eventually(async () => (await otherSlots()).length > 0, 'attach to take its snapshot');
    attach.kill('SIGKILL');
    await attach.exited;
  } finally {
    await holder.end();
  }
  await eventually(async () => (await otherSlots()).length === 0, 'the snapshot slot to go');
}

describe('configuration reloads', () => {
  it('SIGHUP reloads; keys that need a restart are named, not applied', async () => {
    const r1 = replica1();
    await waitForMarker(clusters.primary, [r1]);
    sidecar.kill('SIGHUP');
    await eventually(
      async () => events('config-reloaded').some((l) => l.reason === 'SIGHUP'),
      'a reload on SIGHUP',
    );
    rewriteConfig(config.file, clusters.primary, [r1], { ...EXTRA, batch: { maxRows: 500 } });
    await eventually(
      async () => events('config-needs-restart').length > 0,
      'the changed key named',
    );
    expect(events('config-needs-restart').map((l) => l.keys)).toEqual([['batch.maxRows']]);
    // Still running, and still applying.
    await writeLots();
    await waitForMarker(clusters.primary, [r1]);
  });

  it('attach refuses, copying nothing, while the running sidecar does not have the replica', async () => {
    const [r1, r2] = [replica1(), newcomer()];
    // attach reads a configuration naming replica2; the sidecar's file never does here.
    const ahead = writeConfig(clusters.primary, [r1, r2], { ...EXTRA, sidecarWaitMs: 2_000 });
    try {
      const refused = await lockstep(['attach', '--config', ahead.file]);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(
        /\[replica2\] the running lockstep sidecar \(.+:\d+\) did not take replica2 into its configuration within 2 s \(sidecarWaitMs\)/,
      );
      expect(refused.output).toMatch(/fix: .*send it SIGHUP \(kill -HUP \d+ on its host\)/);
    } finally {
      ahead.remove();
    }
    expect(await r2.query('SELECT 1 FROM lockstep.applied')).toEqual([]);
    expect(await r2.query('SELECT 1 FROM parent')).toEqual([]);
    expect(events('replica-added')).toEqual([]);
  });

  it('migrate refuses at once, naming a replica never attached and lockstep attach', async () => {
    const [r1, r2] = [replica1(), newcomer()];
    const ahead = writeConfig(clusters.primary, [r1, r2], EXTRA);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrations-'));
    try {
      writeFileSync(path.join(dir, '001-note.sql'), 'ALTER TABLE parent ADD COLUMN note text;');
      const refused = await lockstep(['migrate', 'up', '--config', ahead.file, '--dir', dir]);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(/\[replica2\] the replica has no position in stream/);
      expect(refused.output).toMatch(/fix: run lockstep attach/);
    } finally {
      ahead.remove();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(
      await clusters.primary.query(`SELECT 1 FROM pg_attribute WHERE attname = 'note'`),
    ).toEqual([]);
  });

  it('a replica never attached holds WAL only up to maxLagBytes, and attach still joins it', async () => {
    const r1 = replica1();
    const r2 = newcomer();
    // Added while down: it cannot be reached to learn it has no position.
    await r2.stopServer();
    try {
      rewriteConfig(config.file, clusters.primary, [r1, r2], EXTRA);
      await eventually(async () => events('replica-added').length > 0, 'the sidecar to add it');
      // Not placed in the stream, it takes no part in two-phase rounds: they commit without it.
      await clusters.primary.query('INSERT INTO critical VALUES (1, 1)');
      await eventually(
        async () => (await r1.query('SELECT 1 FROM critical WHERE id = 1')).length === 1,
        'a two-phase round to commit on replica1 alone',
      );
    } finally {
      await r2.startServer();
    }
    const held = await slotConfirmed();
    for (let i = 0; i < 3; i++) await writeLots();
    await eventually(
      async () => events('replica-stale').some((l) => l.replica === r2.name),
      'the unattached replica marked stale',
    );
    // It no longer holds WAL: the slot moves on with replica1.
    await writeLots();
    await eventually(async () => (await slotConfirmed()) !== held, 'the slot to move on');

    await killAttachMidCopy(r2);
    // attach ends its mark, the sidecar holds the slot for it again, then it is copied and placed.
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.output).toMatch(/joining: .* replicas=replica2 version=\d+/);
    expect(attached.code).toBe(0);
    await eventually(async () => events('replica-unmarked').length > 0, 'replica-unmarked', 15_000);
    expect(events('replica-unmarked').map((l) => l.replica)).toEqual([r2.name]);
    // Fewer bytes than maxLagBytes: a replica catching up slowly is not marked stale again.
    await clusters.primary.query(
      `INSERT INTO parent SELECT g, 'joined' FROM generate_series(${next}, ${next + 9}) g`,
    );
    next += 10;
    await waitForMarker(clusters.primary, [r1, r2]);
    await expectIdentical(clusters.primary, [r1, r2], ['parent', 'critical', 'marker']);
    const rows = await clusters.primary.query<{ stale: boolean }>(
      'SELECT stale_since IS NOT NULL AS stale FROM lockstep.replica_status WHERE replica = $1',
      [r2.name],
    );
    expect(rows).toEqual([{ stale: false }]);
  });
});
