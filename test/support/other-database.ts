import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';

/**
 * Another database of `cluster` (created now, empty) seen as a node of the
 * same name: what a replica's URL reaches once it points elsewhere, or once
 * its database was replaced.
 */
export async function otherDatabase(
  cluster: PostgresCluster,
  database: string,
): Promise<PostgresCluster> {
  await cluster.query(`CREATE DATABASE ${database}`);
  return databaseNode(cluster, database, cluster.name);
}

/** Database `database` of `cluster` as a node named `name`: its URL, and queries on a client of their own. */
export function databaseNode(
  cluster: PostgresCluster,
  database: string,
  name: string,
): PostgresCluster {
  const url = cluster.urlFor({ database });
  return {
    ...cluster,
    name,
    url,
    async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
  };
}
