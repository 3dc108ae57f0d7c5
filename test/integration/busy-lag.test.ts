import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, rowCount } from '../support/compare-nodes.js';
import { useReplication } from '../support/lockstep-transport.js';

const MAX_LAG_BYTES = 256 * 1024;
const WRITES = 3;
const ROWS_PER_WRITE = 2_000;

/** A trigger body that never ends and never waits: CPU between NOTICEs, as a wedged loop. */
const SPIN = `LOOP RAISE NOTICE 'still here'; PERFORM count(*) FROM generate_series(1, 200000); END LOOP;`;

// In process only: with bus, the publisher confirms the slot once JetStream has a packet.
describe.each(['manual', 'auto'])(
  'a replica busy for ever, further behind than maxLagBytes (resync: %s)',
  (resync) => {
    const replication = useReplication('inProcess', {
      replicas: 2,
      schema: `CREATE TABLE noisy (id int PRIMARY KEY); CREATE TABLE plain (id int PRIMARY KEY, pad text);`,
      config: { applyTimeoutMs: 1_000, maxLagBytes: MAX_LAG_BYTES, resync },
    });

    const slot = async () =>
      (
        await replication.primary.query<{ restart: string; confirmed: string }>(
          `SELECT restart_lsn::text AS restart, confirmed_flush_lsn::text AS confirmed
           FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
        )
      )[0];
    /** Whether `a` is past `b` (pg_lsn compared by the primary). */
    const past = async (a: string, b: string) =>
      (
        await replication.primary.query<{ p: boolean }>('SELECT $1::pg_lsn > $2::pg_lsn AS p', [
          a,
          b,
        ])
      )[0]?.p === true;

    /** Ends the loop, should the dropped connection not have: a body that returns, then a cancel. */
    const release = async (spinning: PostgresCluster) => {
      await spinning.query(
        `CREATE OR REPLACE FUNCTION noisy_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
      );
      await spinning.query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lockstep-apply-%'`,
      );
    };

    it('is marked stale, stops holding WAL, and the other replica keeps applying', async () => {
      const [spinning, other] = replication.replicas as [PostgresCluster, PostgresCluster];
      await spinning.query(`
      CREATE FUNCTION noisy_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${SPIN} RETURN NEW; END $$;
      CREATE TRIGGER noisy_rows BEFORE INSERT ON noisy FOR EACH ROW EXECUTE FUNCTION noisy_row();
      ALTER TABLE noisy ENABLE ALWAYS TRIGGER noisy_rows;`);
      replication.start();
      await replication.converged();
      await replication.primary.query('INSERT INTO noisy VALUES (1)');
      const sidecar = replication.coordinator;
      try {
        await eventually(
          async () => sidecar.events('replica-busy', { node: spinning.name }).length > 0,
          `${spinning.name} found busy`,
        );
        const [held] = await spinning.query<{ lsn: string }>(
          'SELECT lsn::text AS lsn FROM lockstep.applied',
        );
        for (let i = 0; i < WRITES; i++)
          await replication.primary.query(
            `INSERT INTO plain SELECT g, repeat('x', 200)
             FROM generate_series(${i * ROWS_PER_WRITE + 1}, ${(i + 1) * ROWS_PER_WRITE}) g`,
          );
        await eventually(
          async () => sidecar.events('replica-stale', { replica: spinning.name }).length > 0,
          `${spinning.name} marked stale`,
          30_000,
        );
        expect(sidecar.logEvent('replica-stale', { replica: spinning.name })).toMatchObject({
          reason: expect.stringMatching(/busy/),
          lagBytes: expect.any(Number),
          maxLagBytes: MAX_LAG_BYTES,
        });
        // It no longer holds WAL: the slot moves on past its position.
        await eventually(async () => {
          const now = await slot();
          return (
            now !== undefined &&
            (await past(now.confirmed, held?.lsn ?? '0/0')) &&
            (await past(now.restart, held?.lsn ?? '0/0'))
          );
        }, `the slot past ${spinning.name}'s position`);
        await eventually(
          async () => (await rowCount(other, 'plain')) === WRITES * ROWS_PER_WRITE,
          `every new row on ${other.name}`,
        );
        expect(sidecar.events('replica-stale', { replica: other.name })).toEqual([]);
      } finally {
        await release(spinning);
      }
      if (resync === 'manual') return;
      await eventually(
        async () => sidecar.events('replica-resynced', { replica: spinning.name }).length > 0,
        `${spinning.name} resynced`,
        60_000,
      );
      await replication.converged();
      await expectIdentical(replication.primary, replication.replicas, ['noisy', 'plain']);
    });
  },
);
