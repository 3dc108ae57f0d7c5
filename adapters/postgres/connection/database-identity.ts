import type pg from 'pg';

/**
 * SQL giving the identity of the database a session is connected to: the
 * cluster's system identifier and the database's oid. A database dropped and
 * created again, or one on another server, has another; a name or a URL says
 * nothing of that (the same URL may reach a recreated database, two URLs the
 * same one). pg_control_system() may be run by any role.
 */
export const DATABASE_ID_SQL = `SELECT c.system_identifier::text || '/' || d.oid::text AS id
  FROM pg_control_system() c, pg_database d WHERE d.datname = current_database()`;

/** The identity of the database `client` is connected to (see {@link DATABASE_ID_SQL}). */
export async function readDatabaseId(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ id: string }>(DATABASE_ID_SQL);
  return rows[0]?.id as string;
}
