import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { PreparedTransactions } from '../../adapters/postgres/control/prepared-transactions.js';
import { NotLandedError } from '../../plugin/ports/lockstep-error.js';
import { makeGid, makeMigrationGid } from '../../plugin/protocol/index.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 1,
  schema: 'CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);',
});

const replica = () => clusters.replicas[0] as PostgresCluster;

async function position(): Promise<{ stream: string; version: number }> {
  const [row] = await replica().query<{ stream: string; version: string }>(
    'SELECT stream, version::text FROM lockstep.applied',
  );
  return { stream: row?.stream ?? '', version: Number(row?.version) };
}

/** What a stream round's prepared transaction writes: a row, and the position moved to `to`. */
async function prepareRound(gid: string, id: number, to: number): Promise<void> {
  await replica().query(`BEGIN;
    INSERT INTO accounts VALUES (${id}, 1);
    UPDATE lockstep.applied SET version = ${to};
    PREPARE TRANSACTION '${gid}'`);
}

/** What a migration's prepared transaction writes: its DDL and its gid's record. */
async function prepareMigration(gid: string, stream: string, table: string): Promise<void> {
  await replica().query(`BEGIN;
    CREATE TABLE ${table} (id int);
    INSERT INTO lockstep.migration_gids (gid, stream) VALUES ('${gid}', '${stream}');
    PREPARE TRANSACTION '${gid}'`);
}

describe('COMMIT PREPARED of a gid that is no longer prepared', () => {
  it('fails on a replica where the round was rolled back by hand, and counts a lost answer as done', async () => {
    const phaseTwo = new PreparedTransactions('r1', replica().url);
    try {
      const { stream, version } = await position();
      const rolledBack = makeGid({ stream, version: version + 1, round: 900, epoch: 7 });
      await prepareRound(rolledBack, 1, version + 1);
      await replica().query(`ROLLBACK PREPARED '${rolledBack}'`);
      const refused = await phaseTwo.commit(rolledBack).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(NotLandedError);
      expect(refused).toMatchObject({ node: 'r1', gid: rolledBack });

      // The first COMMIT PREPARED ran, its answer was lost: the retry finds the position moved.
      const landed = makeGid({ stream, version: version + 1, round: 901, epoch: 7 });
      await prepareRound(landed, 2, version + 1);
      await phaseTwo.commit(landed);
      await phaseTwo.commit(landed);
      expect(await position()).toEqual({ stream, version: version + 1 });

      const migration = makeMigrationGid(stream, 1_700_000_000_001, 1);
      await prepareMigration(migration, stream, 'gone');
      await replica().query(`ROLLBACK PREPARED '${migration}'`);
      await expect(phaseTwo.commit(migration)).rejects.toBeInstanceOf(NotLandedError);

      const migrated = makeMigrationGid(stream, 1_700_000_000_002, 1);
      await prepareMigration(migrated, stream, 'kept');
      await replica().query(`COMMIT PREPARED '${migrated}'`);
      await phaseTwo.commit(migrated);
      // A ROLLBACK of a gid not prepared still needs nothing.
      await phaseTwo.rollback(migration);
    } finally {
      await phaseTwo.close();
    }
  });
});
