import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, rowCount } from '../support/compare-nodes.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { definitionsOf, recordedCopies } from '../support/table-definitions.js';
import { twoReplicas, type UsedClusters, useClusters } from '../support/use-clusters.js';

/** Far beyond applyTimeoutMs plus a probe: a run still going then hangs (and is stopped). */
const HANG_MS = 90_000;

/**
 * `gate` takes a shared advisory lock: while a test session holds that lock
 * on a replica, whatever calls it there waits (a session that neither fails
 * nor answers). IMMUTABLE so an index may be built on it.
 */
const GATE = `
  CREATE FUNCTION gate(key int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(key); RETURN true; END $$;`;

/** The gate and `sql` on the primary and every replica. */
async function onEveryNode(clusters: UsedClusters, sql: string): Promise<void> {
  for (const node of [clusters.primary, ...clusters.replicas]) await node.query(`${GATE} ${sql}`);
}

/**
 * Table `small`, whose COPY on replica2 waits at COMMIT while key 4251 is
 * held there: a deferred constraint trigger runs at COMMIT; ALWAYS, so the
 * load's replica role fires it too.
 */
async function gateCommit(clusters: UsedClusters): Promise<void> {
  // The key as replica identity: the load keeps that index, so no ALTER TABLE meets the trigger's events.
  await onEveryNode(
    clusters,
    `CREATE TABLE small (id int PRIMARY KEY);
       ALTER TABLE small REPLICA IDENTITY USING INDEX small_pkey;`,
  );
  await twoReplicas(clusters.replicas)[1].query(`
      CREATE FUNCTION gate_row() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM gate(4251); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER small_gate AFTER INSERT ON small
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gate_row();
      ALTER TABLE small ENABLE ALWAYS TRIGGER small_gate;`);
  await clusters.primary.query('INSERT INTO small SELECT generate_series(1, 10)');
}

/** Holds the advisory lock `key` on `node` until the returned function releases it. */
async function holdGate(node: PostgresCluster, key: number): Promise<() => Promise<void>> {
  const holder = new pg.Client({ connectionString: node.url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1)', [key]);
  return () => holder.end();
}

/** The sessions of `application` on `node`. */
const sessionsOn = (node: PostgresCluster, application: string) =>
  node.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [application]);

/** The copy sessions lockstep left on `node` are gone (a dropped one ends its transaction). */
const copySessionsGone = (node: PostgresCluster) =>
  eventually(
    async () => (await sessionsOn(node, 'lockstep-copy')).length === 0,
    'the dropped copy session to end',
  );

/**
 * Attach, run while replica2's copy session waits on the gate; with
 * `freeze`, replica2's whole server is then frozen (SIGSTOP) until attach
 * ended, so nothing there answers.
 */
async function attachHeldBack(
  r2: PostgresCluster,
  config: string,
  freeze: boolean,
): Promise<Awaited<ReturnType<typeof lockstep>>> {
  const run = lockstep(['attach', '--config', config], {}, HANG_MS);
  if (!freeze) return run;
  await eventually(
    async () =>
      (
        await r2.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'lockstep-copy' AND wait_event_type = 'Lock'",
        )
      ).length > 0,
    'the copy session waiting at the gate',
  );
  await r2.freezeServer();
  try {
    return await run;
  } finally {
    await r2.thawServer();
  }
}

/**
 * Runs attach while a test session holds `key` on replica2 (and, with
 * `freeze`, its server frozen): replica2 must drop out (`expectDropOut`
 * checks how, once its session ended) while replica1 gets `table`, keep
 * nothing of it, and have it copied by a second attach.
 */
async function dropsOutThenResumes(
  clusters: UsedClusters,
  {
    table,
    key,
    freeze = false,
    applyTimeoutMs = 3_000,
  }: { table: string; key: number; freeze?: boolean; applyTimeoutMs?: number },
  expectDropOut: (output: string) => Promise<void>,
): Promise<void> {
  const { primary } = clusters;
  const [r1, r2] = twoReplicas(clusters.replicas);
  const release = await holdGate(r2, key);
  const config = writeConfig(primary, clusters.replicas, { applyTimeoutMs });
  try {
    const frozen = await attachHeldBack(r2, config.file, freeze);
    expect(frozen.code, frozen.output).toBe(1);
    expect(await recordedCopies(r1)).toContain(`${table}:true`);
    expect(await rowCount(r1, table)).toBe(await rowCount(primary, table));
    // Its session dropped, the replica ended the waiting transaction: nothing kept, nothing recorded.
    await copySessionsGone(r2);
    await release();
    await expectDropOut(frozen.output);
    expect(await recordedCopies(r2)).not.toContain(`${table}:true`);
    expect(await rowCount(r2, table)).toBe(0);

    const resumed = await lockstep(['attach', '--config', config.file], {}, HANG_MS);
    expect(resumed.code, resumed.output).toBe(0);
    await expectIdentical(primary, clusters.replicas, [table]);
  } finally {
    await release().catch(() => undefined);
    config.remove();
  }
}

describe('a replica that stops answering at the COMMIT of its copy', () => {
  const clusters = useClusters({ replicas: 2 });

  it('drops out after applyTimeoutMs, naming the phase; attach again copies it', async () => {
    await gateCommit(clusters);
    await dropsOutThenResumes(clusters, { table: 'small', key: 4251 }, async (output) => {
      expect(output).toMatch(
        /\[replica2, table public\.small\] the replica waited on a lock for 3000 ms at the COMMIT of the copy/,
      );
      expect(output).toMatch(/commit together, so it copies the table again only if/);
    });
  }, 180_000);
});

describe('a replica that stops answering while it rebuilds the indexes of its copy', () => {
  const clusters = useClusters({ replicas: 2 });

  it('drops out, its table as it was; attach again copies it', async () => {
    const { primary, replicas } = clusters;
    await onEveryNode(
      clusters,
      `CREATE TABLE wide (id int PRIMARY KEY, payload text NOT NULL);
       CREATE INDEX wide_gated ON wide (gate(4252 + 0 * id));`,
    );
    await primary.query('INSERT INTO wide SELECT g, md5(g::text) FROM generate_series(1, 1000) g');
    const r2 = twoReplicas(replicas)[1];
    const before = await definitionsOf(r2);
    await dropsOutThenResumes(clusters, { table: 'wide', key: 4252 }, async (output) => {
      expect(output).toMatch(
        /\[replica2, table public\.wide\] the replica waited on a lock for 3000 ms in the index rebuild phase of the copy/,
      );
      // The drop of its indexes ended with the transaction: every index in place.
      expect(await definitionsOf(r2)).toEqual(before);
    });
    expect(await definitionsOf(r2)).toEqual(await definitionsOf(primary));
  }, 180_000);
});

describe('a replica server frozen (SIGSTOP) at the COMMIT of its copy', () => {
  const clusters = useClusters({ replicas: 2 });

  it('drops out after applyTimeoutMs as not answering; attach again copies it', async () => {
    await gateCommit(clusters);
    // The freeze must land before the watchdog's first look (applyTimeoutMs after the COMMIT was
    // sent), or it sees a lock wait: 10 s leaves room for a loaded machine.
    await dropsOutThenResumes(
      clusters,
      { table: 'small', key: 4251, freeze: true, applyTimeoutMs: 10_000 },
      async (output) => {
        expect(output).toMatch(
          /\[replica2, table public\.small\] the replica did not answer for 10000 ms at the COMMIT of the copy/,
        );
      },
    );
  }, 180_000);
});

describe('a replica that stops answering while the keys of its copy are checked', () => {
  const clusters = useClusters({ replicas: 2 });

  it('drops out with the table kept unchecked; attach again checks it', async () => {
    await onEveryNode(
      clusters,
      `CREATE TABLE parent (id int PRIMARY KEY);
       CREATE TABLE child (id int PRIMARY KEY, parent int NOT NULL REFERENCES parent);`,
    );
    // The check re-adds each key by ALTER TABLE on a session named 'lockstep' (the control
    // schema's migrations run on 'lockstep-control'; the load's ALTERs as replica role, no event trigger).
    await twoReplicas(clusters.replicas)[1].query(`
      CREATE FUNCTION gate_ddl() RETURNS event_trigger LANGUAGE plpgsql AS
        $$ BEGIN
             IF current_setting('application_name') = 'lockstep' THEN PERFORM gate(4253); END IF;
           END $$;
      CREATE EVENT TRIGGER child_gate ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
        EXECUTE FUNCTION gate_ddl();`);
    await clusters.primary.query(`
      INSERT INTO parent SELECT generate_series(1, 10);
      INSERT INTO child SELECT g, g FROM generate_series(1, 10) g;`);
    const [r1, r2] = twoReplicas(clusters.replicas);
    const release = await holdGate(r2, 4253);
    const config = writeConfig(clusters.primary, clusters.replicas, { applyTimeoutMs: 3_000 });
    try {
      const frozen = await lockstep(['attach', '--config', config.file], {}, HANG_MS);
      expect(frozen.code, frozen.output).toBe(1);
      expect(frozen.output).toMatch(
        /\[replica2, table public\.child\] the replica waited on a lock for 3000 ms while its foreign keys were checked/,
      );
      expect(await recordedCopies(r1)).toEqual(['child:true', 'parent:true']);
      await eventually(
        async () => (await sessionsOn(r2, 'lockstep')).length === 0,
        'the dropped check session to end',
      );
      await release();
      // Copied, its keys not checked yet: recorded so.
      expect(await recordedCopies(r2)).toEqual(['child:false', 'parent:true']);

      const resumed = await lockstep(['attach', '--config', config.file], {}, HANG_MS);
      expect(resumed.code, resumed.output).toBe(0);
      expect(await recordedCopies(r2)).toEqual(['child:true', 'parent:true']);
      await expectIdentical(clusters.primary, clusters.replicas, ['parent', 'child']);
    } finally {
      await release().catch(() => undefined);
      config.remove();
    }
  }, 180_000);
});
