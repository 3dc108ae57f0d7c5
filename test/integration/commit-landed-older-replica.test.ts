import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { MigrationSession } from '../../adapters/postgres/control/migration-session.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { makeMigrationGid } from '../../plugin/protocol/index.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);',
});

const replica = () => clusters.replicas[0] as PostgresCluster;

/**
 * A replica attached by a lockstep older than 011: on the bus only attach
 * migrates a replica's control schema (bus `migrate` upgrades the primary
 * alone), so after an upgrade its replicas stay like this.
 */
async function attachedBefore011(): Promise<void> {
  await replica().query(`DROP TABLE lockstep.migration_gids;
    DELETE FROM lockstep.kysely_migration WHERE name = '011-migration-gids'`);
}

describe('COMMIT PREPARED retry of a migration on a replica attached before 011', () => {
  it('counts a migration an earlier attempt committed (answer lost) as done', async () => {
    await attachedBefore011();
    const [row] = await replica().query<{ stream: string }>('SELECT stream FROM lockstep.applied');
    const stream = row?.stream ?? '';
    const gid = makeMigrationGid(stream, 1_700_000_000_003, 1);
    const step = async (c: { query(text: string): Promise<unknown> }) => {
      await c.query('CREATE TABLE ledger (id int PRIMARY KEY)');
    };
    await new MigrationSession('r1', replica().url, stream).prepare({
      gid,
      marker: false,
      lockTimeoutMs: 5_000,
      step,
      history: { op: 'insert', name: '001-ledger', checksum: 'c' },
    });
    // The first COMMIT PREPARED ran; its answer was lost.
    await replica().query(`COMMIT PREPARED '${gid}'`);
    const [table] = await replica().query<{ name: string | null }>(
      `SELECT to_regclass('public.ledger')::text AS name`,
    );
    expect(table?.name).toBe('ledger');

    const phaseTwo = new PreparedTransactions('r1', replica().url);
    try {
      // The migration is on r1: the retry must not report it rolled back (NotLandedError).
      await expect(phaseTwo.commit(gid)).resolves.toBeUndefined();
    } finally {
      await phaseTwo.close();
    }
  });
});
