import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { busKeyFiles } from '../support/bus-keys.js';
import { appliedVersion, eventually, expectIdentical } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';

/**
 * `gate` takes a shared advisory lock per row: a session holding 4243 on
 * replica2 holds a copy of `gated` there where it is.
 */
const SCHEMA = `${NUMBERED_SCHEMA}
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4243); RETURN true; END $$;
  CREATE TABLE gated (id int PRIMARY KEY CHECK (gate(id)));`;
const TABLES = ['t', 'marker', 'gated'];
const replication = useReplication('bus', { replicas: 2, schema: SCHEMA });

function replica(index: number): PostgresCluster {
  return replication.replicas[index] as PostgresCluster;
}

const resync = () =>
  lockstep(['attach', '--config', replication.configFile, '--resync', 'replica2'], {}, 180_000);

async function headVersion(): Promise<number> {
  const [row] = await replication.primary.query<{ v: string }>(
    'SELECT version::text AS v FROM lockstep.streams',
  );
  return Number(row?.v);
}

/** Retention at work: the bus keeps only its newest packet. */
async function purgeAllButLast(): Promise<void> {
  const settings = busSettings({
    slot: 'lockstep',
    bus: { ...busKeyFiles(), url: replication.busUrl, replicas: 3, maxAge: '7d', maxBytes: '10GB' },
  }) as BusSettings;
  const nc = await connectBus(settings, 'test');
  try {
    await (await jetstreamManager(nc)).streams.purge(settings.stream, { keep: 1 });
  } finally {
    await nc.close();
  }
}

async function staleReplicas(): Promise<string[]> {
  const rows = await replication.primary.query<{ replica: string }>(
    'SELECT replica FROM lockstep.replica_status WHERE stale_since IS NOT NULL',
  );
  return rows.map((r) => r.replica);
}

/** Rows of `query` on replica2 (its locks, its sessions). */
const onReplica2 = (query: string) => replica(1).query(query);

async function replica2Status(): Promise<LockstepStatus['replicas'][number] | undefined> {
  const r = await lockstep(['status', '--config', replication.configFile, '--json'], {}, 60_000);
  return (JSON.parse(r.stdout) as LockstepStatus).replicas.find((x) => x.name === 'replica2');
}

describe('lockstep attach --resync NAME with bus', () => {
  it('refuses while the agent applies, copies a replica the bus lost anew, the agent catches up', async () => {
    const { primary } = replication;
    replication.start();
    await insertNumbered(primary, 1, 20);
    await replication.converged();

    // Its agent holds the replica: nothing is marked or emptied under it.
    const refused = await resync();
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toMatch(/\[replica2\] .*agent/);
    expect(refused.output).toMatch(/fix: stop the lockstep agent of replica2/);
    expect(
      await primary.query('SELECT 1 FROM lockstep.replica_status WHERE stale_since IS NOT NULL'),
    ).toEqual([]);

    await replication.kill('replica2');
    const left = await appliedVersion(replica(1));
    await insertNumbered(primary, 21, 20);
    // Every row on the bus and replica1, and the head recorded there (at most a second behind):
    // the purge below then leaves no packet replica2 needs next, whatever the machine's load.
    await eventually(async () => {
      const [row] = await replica(0).query<{ n: number }>('SELECT count(*)::int AS n FROM t');
      return row?.n === 40 && (await headVersion()) >= (await appliedVersion(replica(0)));
    }, 'replica1 with every row, at the recorded head');
    await purgeAllButLast();
    const stuck = await lockstep(
      ['agent', '--config', replication.configFile, '--replica', 'replica2'],
      {},
      60_000,
    );
    expect(stuck.code, stuck.output).toBe(1);
    expect(stuck.output).toMatch(/--resync replica2/);
    expect(await appliedVersion(replica(1))).toBe(left);

    // Writes go on during the resync, the publisher running: none may be lost or doubled.
    let next = 10_000;
    let writing = true;
    const writer = (async () => {
      while (writing) await primary.query('INSERT INTO t VALUES ($1, $1)', [next++]);
    })();
    const done = await resync().finally(() => {
      writing = false;
    });
    await writer;
    expect(done.code, done.output).toBe(0);
    expect(next).toBeGreaterThan(10_000);

    replication.start();
    await replication.converged();
    await expectIdentical(primary, replication.replicas, TABLES);
    await eventually(async () => {
      const status = await replica2Status();
      return status?.error === null && status.state === 'streaming';
    }, 'replica2 streaming without an error in status');
  });

  it('fails closed when its agent lock is lost during the copy: the replica stays stale', async () => {
    const { primary } = replication;
    replication.start();
    await primary.query('INSERT INTO gated SELECT generate_series(1, 10)');
    await replication.converged();
    await replication.kill('replica2');
    const gate = new pg.Client({ connectionString: replica(1).url });
    await gate.connect();
    try {
      await gate.query('SELECT pg_advisory_lock(4243)');
      const copying = new LockstepProcess([
        'attach',
        '--config',
        replication.configFile,
        '--resync',
        'replica2',
      ]);
      await eventually(
        async () =>
          (
            await onReplica2(
              "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243 AND NOT granted",
            )
          ).length > 0,
        'the copy of gated waiting at the gate on replica2',
      );
      // An agent could take the replica from here: the resync must not go on.
      const ended = await onReplica2(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lockstep-agent-lock'",
      );
      expect(ended).toHaveLength(1);
      await eventually(
        async () =>
          (
            await onReplica2(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
                AND classid::int = hashtext('lockstep.resync') AND granted`)
          ).length === 0,
        'the resync lock on replica2 let go',
      );
      await gate.query('SELECT pg_advisory_unlock(4243)');
      expect(await copying.closed, copying.output).toBe(1);
      expect(copying.output).toMatch(/\[replica2.*\] the resync lock was lost/);
      expect(await staleReplicas()).toEqual(['replica2']);
    } finally {
      await gate.end();
    }

    const again = await resync();
    expect(again.code, again.output).toBe(0);
    expect(await staleReplicas()).toEqual([]);
    replication.start();
    await replication.converged();
    await expectIdentical(primary, replication.replicas, TABLES);
  });
});
