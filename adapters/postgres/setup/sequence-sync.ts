import type { SequenceSyncResult } from '../../../plugin/ports/cluster-setup.js';
import type { SequenceValue } from '../../../plugin/protocol/sequence-values.js';
import { sleep } from '../../../plugin/support/sleep.js';
import {
  CONTROL_QUERY_TIMEOUT_MS,
  clientConfig,
  scrubbedError,
} from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { isLockNotAvailable } from '../connection/lock-wait.js';
import { endClient } from '../connection/node-connection.js';

/**
 * The publication's tables from the catalogs, not from pg_publication_tables:
 * from PostgreSQL 16 that view opens every table it lists, and so waits on a
 * table a `TRUNCATE` in progress holds. Schemas published whole
 * (pg_publication_namespace) exist from PostgreSQL 15. With their ancestors
 * and descendants (pg_inherits): the rows of a published partition take
 * their keys from a serial of its partitioned parent, which is not published.
 */
function publishedTables(serverVersion: number): string {
  const schemas =
    serverVersion >= 150000
      ? `UNION SELECT c.oid FROM pub JOIN pg_publication_namespace pn ON pn.pnpubid = pub.oid
           JOIN pg_class c ON c.relnamespace = pn.pnnspid AND c.relkind IN ('r', 'p')`
      : '';
  return `
    WITH RECURSIVE pub AS (SELECT oid, puballtables FROM pg_publication WHERE pubname = $1),
    listed AS (
      SELECT c.oid FROM pub JOIN pg_class c ON pub.puballtables AND c.relkind IN ('r', 'p')
      UNION SELECT pr.prrelid FROM pub JOIN pg_publication_rel pr ON pr.prpubid = pub.oid
      ${schemas}),
    up AS (SELECT oid FROM listed
           UNION SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.oid),
    down AS (SELECT oid FROM listed
             UNION SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.oid)
    SELECT oid FROM up UNION SELECT oid FROM down`;
}

/** The sequences owned by (serial) or backing (identity) columns of those tables, with their oid. */
function publishedSequences(serverVersion: number): string {
  return `
    SELECT DISTINCT sn.nspname AS schema, seq.relname AS name, seq.oid
      FROM (${publishedTables(serverVersion)}) t
      JOIN pg_class tc ON tc.oid = t.oid
      JOIN pg_namespace tn ON tn.oid = tc.relnamespace
      JOIN pg_depend d ON d.refobjid = t.oid AND d.refclassid = 'pg_class'::regclass
                      AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
      JOIN pg_class seq ON seq.oid = d.objid AND seq.relkind = 'S'
      JOIN pg_namespace sn ON sn.oid = seq.relnamespace
     WHERE tc.relpersistence = 'p' AND tn.nspname NOT IN ('lockstep', 'information_schema')
       AND left(tn.nspname, 3) <> 'pg_'`;
}

/** A sequence's last value, as pg_sequences shows it (null: never used, or not readable). Locks it. */
const LAST_VALUE_OF = (oid: string) =>
  `CASE WHEN has_sequence_privilege(${oid}, 'SELECT,USAGE')
        THEN pg_sequence_last_value(${oid}::regclass)::text END`;

/** Those sequences with the primary's last values: only theirs are read (and locked). */
const primaryValues = (serverVersion: number) => `
  SELECT schema, name, "lastValue" FROM (
    SELECT s.schema, s.name, ${LAST_VALUE_OF('s.oid')} AS "lastValue"
      FROM (${publishedSequences(serverVersion)}) s) v
   WHERE "lastValue" IS NOT NULL
   ORDER BY 1, 2`;

/**
 * How long reading or setting one sequence waits for its lock. Only a
 * sequence's rewrite conflicts with the lock (nextval does not): an open or
 * prepared `TRUNCATE … RESTART IDENTITY` or `ALTER SEQUENCE` holds it until
 * it ends, so that one is skipped this period at once, and the others pass.
 */
export const SEQUENCE_LOCK_WAIT_MS = 50;

/**
 * Moves a replica's sequence forward to the primary's value; never backwards.
 * Touches only that sequence; one the replica lacks (a table made by
 * `--create-schema` has no serial default), or that is not a sequence there,
 * is passed over. The comparison and the setval run under a transaction
 * advisory lock of the sequence, taken first (a CTE that calls a volatile
 * function is never inlined, so its row is made before the WHERE reads it): two
 * copies at once (attach's and the sidecar's; a process and its successor) would
 * otherwise both compare with the old value, and the one that read the
 * primary earlier could set its smaller value last.
 */
export const ADVANCE_SEQUENCE_SQL = `
  WITH locked AS (
    SELECT r.seq, pg_advisory_xact_lock(hashtext('lockstep.sequence'),
                                        hashtext(format('%I.%I', $1::text, $2::text)))
      FROM (SELECT (SELECT oid FROM pg_class
                     WHERE oid = to_regclass(format('%I.%I', $1::text, $2::text)) AND relkind = 'S') AS seq) r
     WHERE r.seq IS NOT NULL)
  SELECT setval(seq, $3::bigint, true) FROM locked
   WHERE $3::bigint > coalesce(
     pg_sequence_last_value(seq),
     (SELECT seqmin - 1 FROM pg_sequence WHERE seqrelid = seq))`;

/** The primary's values, and the sequences left out because their lock is held (`schema.name`). */
export interface PrimarySequences {
  readonly values: SequenceValue[];
  readonly held: string[];
}

/**
 * The primary's values of the sequences of the publication's tables; one
 * whose lock is held (see {@link SEQUENCE_LOCK_WAIT_MS}) is left out this time.
 */
export async function primarySequences(
  primaryUrl: string,
  publication: string,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<PrimarySequences> {
  // Bounded: a primary that stops answering fails the read instead of hanging attach.
  const primary = new LibpqClient(clientConfig(primaryUrl, 'lockstep-sequences', queryTimeoutMs));
  primary.on('error', () => undefined);
  try {
    await primary.connect();
    const { rows } = await primary.query<{ v: string }>(
      `SELECT current_setting('server_version_num') AS v`,
    );
    const version = Number(rows[0]?.v);
    await primary.query(`SET lock_timeout = ${SEQUENCE_LOCK_WAIT_MS}`);
    try {
      const { rows } = await primary.query<SequenceValue>(primaryValues(version), [publication]);
      return { values: rows, held: [] };
    } catch (error) {
      if (!isLockNotAvailable(error)) throw error;
      return await eachUnlocked(primary, publication, version);
    }
  } catch (error) {
    throw scrubbedError(error, primaryUrl);
  } finally {
    await endClient(primary);
  }
}

/** The values read one sequence at a time, leaving out those whose lock is held. */
async function eachUnlocked(
  client: LibpqClient,
  publication: string,
  serverVersion: number,
): Promise<PrimarySequences> {
  const sequences = await client.query<{ schema: string; name: string; oid: string | number }>(
    `${publishedSequences(serverVersion)} ORDER BY 1, 2`,
    [publication],
  );
  const values: SequenceValue[] = [];
  const held: string[] = [];
  for (const { schema, name, oid } of sequences.rows) {
    try {
      const { rows } = await client.query<{ lastValue: string | null }>(
        `SELECT ${LAST_VALUE_OF('$1::oid')} AS "lastValue"`,
        [String(oid)],
      );
      const lastValue = rows[0]?.lastValue;
      if (lastValue) values.push({ schema, name, lastValue });
    } catch (error) {
      if (!isLockNotAvailable(error)) throw error;
      held.push(`${schema}.${name}`);
    }
  }
  return { values, held };
}

/** How long a sequence found locked is left before its one more try. */
const RETRY_LOCKED_MS = 100;

/**
 * Advances one sequence: 1 when it moved, 0 when it was there already, null
 * when its lock stayed held. Tried once more after a moment: the key another
 * lockstep copy holds is held for one statement only (a sequence's own lock,
 * held by a TRUNCATE or ALTER in progress, usually stays held).
 */
async function advanceOne(client: LibpqClient, v: SequenceValue): Promise<number | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { rowCount } = await client.query(ADVANCE_SEQUENCE_SQL, [
        v.schema,
        v.name,
        v.lastValue,
      ]);
      return rowCount ?? 0;
    } catch (error) {
      if (!isLockNotAvailable(error)) throw error;
      if (attempt === 2) return null;
      await sleep(RETRY_LOCKED_MS);
    }
  }
}

/**
 * Moves the replica's sequences up to `values`, never backwards; returns how
 * many moved. One whose lock is held fails the call (scrubbed of
 * credentials), after every other moved.
 */
export async function advanceSequences(
  replicaUrl: string,
  values: readonly SequenceValue[],
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<number> {
  // Bounded: a replica that stops answering is reported, not waited on.
  const client = new LibpqClient(clientConfig(replicaUrl, 'lockstep-sequences', queryTimeoutMs));
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(`SET lock_timeout = ${SEQUENCE_LOCK_WAIT_MS}`);
    let moved = 0;
    const locked: string[] = [];
    for (const v of values) {
      const advanced = await advanceOne(client, v);
      if (advanced === null) locked.push(`${v.schema}.${v.name}`);
      else moved += advanced;
    }
    if (locked.length > 0)
      throw new Error(
        `sequences locked on the replica (an open or prepared transaction holds them, or another lockstep process is copying them at this moment): ${locked.join(', ')}; the others moved`,
      );
    return moved;
  } catch (error) {
    throw scrubbedError(error, replicaUrl);
  } finally {
    await endClient(client);
  }
}

/**
 * Copies the sequence values of replicated tables from the primary to each
 * replica (logical replication does not carry them), never moving a replica's
 * sequence backwards, so a replica promoted to primary does not hand out keys
 * that are already used. Returns how many sequences moved, per replica; a
 * replica that cannot be reached is reported, not thrown, and so are the
 * primary's sequences whose lock is held.
 */
export async function syncSequences(
  primaryUrl: string,
  publication: string,
  replicas: ReadonlyArray<{ name: string; url: string }>,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<SequenceSyncResult> {
  const { values, held } = await primarySequences(primaryUrl, publication, queryTimeoutMs);
  const advanced: Record<string, number> = {};
  const failed: Record<string, string> = {};
  await Promise.all(
    replicas.map(async (replica) => {
      try {
        advanced[replica.name] = await advanceSequences(replica.url, values, queryTimeoutMs);
      } catch (error) {
        failed[replica.name] = (error as Error).message;
      }
    }),
  );
  return { advanced, failed, held };
}
