import type pg from 'pg';

/** Which session must hold the lock: the asking one, a given backend, or any of this database. */
export type AdvisoryLockHolder = 'this-session' | 'any-session' | { readonly pid: number };

/** Whether the two-key advisory lock `(hashtext($1), hashtext($2))` is granted to the holder. */
const HELD_SQL = `SELECT EXISTS (SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND l.classid::int = hashtext($1) AND l.objid::int = hashtext($2)
                     AND ($3::int IS NULL OR l.pid = $3::int)
                     AND (NOT $4::bool OR l.pid = pg_backend_pid())) AS held`;

/** Asks `client`'s server whether the lock keyed `(kind, name)` is held by `holder`. */
export async function advisoryLockHeld(
  client: pg.ClientBase,
  kind: string,
  name: string,
  holder: AdvisoryLockHolder,
): Promise<boolean> {
  const pid = typeof holder === 'object' ? holder.pid : null;
  const { rows } = await client.query<{ held: boolean }>(HELD_SQL, [
    kind,
    name,
    pid,
    holder === 'this-session',
  ]);
  return rows[0]?.held === true;
}
