import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useReplication } from '../support/lockstep-transport.js';
import { NUMBERED_SCHEMA } from '../support/numbered-table.js';

/** `gate` takes a shared advisory lock per row: a session holding 4243 on replica2 holds the copy of `gated`. */
const SCHEMA = `${NUMBERED_SCHEMA}
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4243); RETURN true; END $$;
  CREATE TABLE gated (id int PRIMARY KEY CHECK (gate(id)));`;
const replication = useReplication('bus', { replicas: 2, schema: SCHEMA });
const replica1 = () => replication.replicas[0] as PostgresCluster;
const replica2 = () => replication.replicas[1] as PostgresCluster;

const resync = () => ['attach', '--config', replication.configFile, '--resync', 'replica2'];

async function status(): Promise<{
  code: number | null;
  replica2?: LockstepStatus['replicas'][number];
}> {
  const r = await lockstep(['status', '--config', replication.configFile, '--json'], {}, 60_000);
  const parsed = JSON.parse(r.stdout) as LockstepStatus;
  return { code: r.code, replica2: parsed.replicas.find((x) => x.name === 'replica2') };
}

/** Kills a resync of replica2 while its copy of `gated` waits at the gate. */
async function killResyncMidCopy(): Promise<void> {
  const gate = new pg.Client({ connectionString: replica2().url });
  await gate.connect();
  try {
    await gate.query('SELECT pg_advisory_lock(4243)');
    const copying = new LockstepProcess(resync());
    await eventually(
      async () =>
        (
          await replica2().query(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243 AND NOT granted",
          )
        ).length > 0,
      'the copy of gated waiting at the gate on replica2',
    );
    copying.kill('SIGKILL');
    await copying.exited;
    await gate.query('SELECT pg_advisory_unlock(4243)');
  } finally {
    await gate.end();
  }
}

describe('a bus resync killed midway', () => {
  it('leaves the replica without a position: its agent applies nothing and says so', async () => {
    const { primary } = replication;
    replication.start();
    await primary.query('INSERT INTO gated SELECT generate_series(1, 10)');
    await replication.converged();
    await replication.kill('replica2');
    await killResyncMidCopy();

    // Emptied and not placed: no position for an agent to apply from.
    expect(await replica2().query('SELECT version FROM lockstep.applied')).toEqual([]);
    await primary.query('INSERT INTO t VALUES (500, 500)');
    replication.start();
    await eventually(async () => {
      const { replica2: r } = await status();
      return /no position in stream/.test(r?.error ?? '');
    }, 'replica2 reported without a position');
    const reported = await status();
    expect(reported.code).toBe(1);
    expect(['streaming', 'catching-up']).not.toContain(reported.replica2?.state);
    expect(reported.replica2?.error).toMatch(/--resync replica2/);
    expect(await replica2().query('SELECT id FROM t WHERE id = 500')).toEqual([]);

    // Resyncing another replica alone would leave replica2 half-copied: refused, nothing changed.
    await replication.kill('replica1');
    const before = await replica1().query('SELECT version, lsn FROM lockstep.applied');
    const other = await lockstep([
      'attach',
      '--config',
      replication.configFile,
      '--resync',
      'replica1',
    ]);
    expect(other.code, other.output).toBe(1);
    expect(other.output).toMatch(/replica2 has no position.*--resync replica1 replica2/s);
    expect(await replica1().query('SELECT version, lsn FROM lockstep.applied')).toEqual(before);

    // The fix the agent names: resync again with the agent stopped; it then catches up.
    await replication.kill('replica2');
    const again = await lockstep(resync(), {}, 180_000);
    expect(again.code, again.output).toBe(0);
    replication.start();
    await replication.converged();
    await expectIdentical(primary, replication.replicas, ['t', 'marker', 'gated']);
    expect(await replica2().query('SELECT id FROM t WHERE id = 500')).toEqual([{ id: 500 }]);
  });
});
