import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical } from '../support/compare-nodes.js';
import { lockTable } from '../support/frozen-replica.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';
import { twoReplicas, type UsedClusters, useClusters } from '../support/use-clusters.js';

/** Far beyond applyTimeoutMs and a session's close: a run still going then hangs (and is stopped). */
const HANG_MS = 90_000;

/**
 * `gate` takes a shared advisory lock for each row checked: while a test
 * session holds that lock on replica2, its COPY of `t` cannot finish, so the
 * copy waits there with the primary's read already done.
 */
const SCHEMA = `
  CREATE FUNCTION gate(v int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4261); RETURN true; END $$;
  CREATE TABLE t (id int PRIMARY KEY CHECK (gate(id)), v text NOT NULL);
  CREATE SEQUENCE t_seq OWNED BY t.id;`;

/** A session of `application` on `node` whose state matches `where`. */
const sessionWhere = async (node: PostgresCluster, application: string, where: string) =>
  (
    await node.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND ${where}`, [
      application,
    ])
  ).length > 0;

/**
 * Runs attach with replica2's copy of `t` held at the gate until the
 * primary's read is done; `freezeAt` then brings attach to the step to
 * freeze the primary in (the gate released) and returns what to undo after
 * the thaw. Attach must end naming the primary, no replica; thawed, attach
 * again must leave every replica with exactly the primary's rows.
 */
async function frozenPrimaryResumes(
  clusters: UsedClusters,
  freezeAt: (openGate: () => Promise<void>) => Promise<() => Promise<void>>,
): Promise<void> {
  const { primary } = clusters;
  const r2 = twoReplicas(clusters.replicas)[1];
  for (const node of [primary, ...clusters.replicas]) await node.query(SCHEMA);
  await primary.query(`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
    SELECT setval('t_seq', 1000);`);
  const holder = new pg.Client({ connectionString: r2.url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock(4261)');
  // Long: replica2's watchdog must not look before the gate opens.
  const config = writeConfig(primary, clusters.replicas, { applyTimeoutMs: 10_000 });
  try {
    const run = lockstep(['attach', '--config', config.file], {}, HANG_MS);
    // The primary's read is done (its session idles in the snapshot's
    // transaction); replica2's COPY waits at the gate.
    await eventually(
      async () =>
        (await sessionWhere(r2, 'lockstep-copy', "wait_event_type = 'Lock'")) &&
        (await sessionWhere(primary, 'lockstep-copy', "state = 'idle in transaction'")),
      'the read done and the copy to replica2 held at the gate',
    );
    const undo = await freezeAt(async () => {
      await holder.query('SELECT pg_advisory_unlock(4261)');
    });
    let frozen: Awaited<typeof run>;
    try {
      frozen = await run;
    } finally {
      await primary.thawServer();
      await undo();
    }
    expect(frozen.output).not.toMatch(/still running after/);
    // 1, or 3 when the step says the primary did not answer (unreachable).
    expect([1, 3], frozen.output).toContain(frozen.code);
    // The error's node field (its `[node, …]` prefix) is the primary, no replica.
    expect(frozen.output).toMatch(/^\[primary[,\]]/m);
    expect(frozen.output).not.toMatch(/\[replica[12][,\]]/);

    const resumed = await lockstep(['attach', '--config', config.file], {}, HANG_MS);
    expect(resumed.code, resumed.output).toBe(0);
    await expectIdentical(primary, clusters.replicas, ['t']);
  } finally {
    await holder.end();
    config.remove();
  }
}

describe('the primary frozen (SIGSTOP) once it sent the whole table', () => {
  const clusters = useClusters({ replicas: 2 });

  it('attach ends naming it; thawed, attach again copies exactly its rows', async () => {
    await frozenPrimaryResumes(clusters, async (openGate) => {
      await clusters.primary.freezeServer();
      await openGate();
      return async () => undefined;
    });
  }, 300_000);
});

describe('the primary frozen (SIGSTOP) while attach reads its migration history', () => {
  const clusters = useClusters({ replicas: 2 });

  it('attach ends naming it; thawed, attach again finishes with exactly its rows', async () => {
    const { primary } = clusters;
    await frozenPrimaryResumes(clusters, async (openGate) => {
      const release = await lockTable(primary, 'lockstep.migrations');
      await openGate();
      await eventually(
        async () => sessionWhere(primary, 'lockstep', "wait_event_type = 'Lock'"),
        'attach waiting on the migration history',
      );
      await primary.freezeServer();
      return release;
    });
  }, 300_000);
});

/** The slot's creation waiting for a running transaction. */
const SLOT_WAITING = "backend_type = 'walsender' AND wait_event_type = 'Lock'";

/** Where attach is held (rightly, by the application) for the primary to be frozen there. */
interface HeldStep {
  /** Takes what holds attach at the step; returns how to let go. */
  hold(primary: PostgresCluster): Promise<() => Promise<void>>;
  /** The pg_stat_activity condition of attach's session held there. */
  readonly waiting: string;
  readonly what: string;
}

/**
 * One replica and `t` of 100 rows; attach held at `step` while the primary
 * freezes. Attach must end naming the primary; held on attach's own
 * (`watched`) session, as not answering (exit 3), that session's backend
 * ending once thawed. Let go, attach again must copy exactly its rows.
 */
async function frozenWhileHeld(clusters: UsedClusters, step: HeldStep, watched: boolean) {
  const { primary, replicas } = clusters;
  for (const node of [primary, ...replicas])
    await node.query('CREATE TABLE t (id int PRIMARY KEY)');
  await primary.query('INSERT INTO t SELECT generate_series(1, 100)');
  const release = await step.hold(primary);
  const config = writeConfig(primary, replicas, { applyTimeoutMs: 3_000 });
  try {
    const run = lockstep(['attach', '--config', config.file], {}, HANG_MS);
    await eventually(() => sessionWhere(primary, 'lockstep', step.waiting), step.what);
    await primary.freezeServer();
    let frozen: Awaited<typeof run>;
    try {
      frozen = await run;
    } finally {
      await primary.thawServer();
    }
    // Attach's own session, dropped: its backend ends while still held (it does nothing late).
    if (watched)
      await eventually(
        async () => !(await sessionWhere(primary, 'lockstep', step.waiting)),
        "attach's dropped session ended on the primary",
      );
    await release();
    expect(frozen.output).not.toMatch(/still running after/);
    expect(watched ? [3] : [1, 3], frozen.output).toContain(frozen.code);
    expect(frozen.output).toMatch(/^\[primary[,\]]/m);
    if (watched) expect(frozen.output).toMatch(/did not answer/);

    const resumed = await lockstep(['attach', '--config', config.file], {}, HANG_MS);
    expect(resumed.code, resumed.output).toBe(0);
    await expectIdentical(primary, replicas, ['t']);
  } finally {
    await release();
    config.remove();
  }
}

/** A session on `primary` (frozen with it: a failed test may leave it to the teardown). */
async function session(primary: PostgresCluster): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: primary.url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** An application's transaction with an xid: a slot's creation waits for it. */
async function appTransaction(primary: PostgresCluster): Promise<pg.Client> {
  const app = await session(primary);
  await app.query('BEGIN');
  await app.query('INSERT INTO t VALUES (0)');
  return app;
}

describe('the primary frozen (SIGSTOP) while attach creates its slot', () => {
  const clusters = useClusters({ replicas: 1 });

  it('attach ends naming it; thawed, attach again copies exactly its rows', async () => {
    const step: HeldStep = {
      hold: async (primary) => {
        const app = await appTransaction(primary);
        let done = false;
        return async () => {
          if (done) return;
          done = true;
          await app.query('ROLLBACK');
          await app.end();
        };
      },
      waiting: SLOT_WAITING,
      what: 'the slot creation waiting for the transaction',
    };
    await frozenWhileHeld(clusters, step, false);
  }, 300_000);
});

describe('the primary frozen (SIGSTOP) while attach creates its publication', () => {
  const clusters = useClusters({ replicas: 1 });

  it('attach ends naming it (unreachable); thawed, attach again copies exactly its rows', async () => {
    const step: HeldStep = {
      // Held by an application: the publication's creation waits for it (rightly, with no deadline).
      hold: (primary) => lockTable(primary, 't'),
      waiting: "wait_event_type = 'Lock' AND query ~* 'CREATE PUBLICATION'",
      what: 'the publication waiting for the lock',
    };
    await frozenWhileHeld(clusters, step, true);
  }, 300_000);
});

describe('the primary frozen (SIGSTOP) while attach records its stream', () => {
  const clusters = useClusters({ replicas: 1 });

  it('attach ends naming it (unreachable); thawed, attach again copies exactly its rows', async () => {
    const step: HeldStep = {
      // Once the slot's creation waits on an application's transaction, the stream's table is
      // locked by another; that transaction ends and attach's record waits on the lock.
      hold: async (primary) => {
        const app = await appTransaction(primary);
        const locker = await session(primary);
        const held = (async () => {
          await eventually(
            () => sessionWhere(primary, 'lockstep', SLOT_WAITING),
            'the slot creation waiting for the transaction',
          );
          await locker.query('BEGIN');
          await locker.query('LOCK TABLE lockstep.streams IN EXCLUSIVE MODE');
          await app.query('ROLLBACK');
        })();
        return async () => {
          await held.catch(() => undefined);
          await locker.end().catch(() => undefined);
          await app.end().catch(() => undefined);
        };
      },
      waiting: `wait_event_type = 'Lock' AND query ~* 'into "lockstep"."streams"'`,
      what: "the stream's record waiting for the lock",
    };
    await frozenWhileHeld(clusters, step, true);
  }, 300_000);
});
