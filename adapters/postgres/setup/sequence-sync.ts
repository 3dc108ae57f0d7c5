import type { SequenceValue } from '../../../plugin/protocol/sequence-values.js';
import {
  CONTROL_QUERY_TIMEOUT_MS,
  clientConfig,
  scrubbedError,
} from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { endClient } from '../connection/node-connection.js';

/** The publication's tables' sequences: owned by (serial) or backing (identity) columns. */
const PUBLISHED_SEQUENCES = `
  SELECT DISTINCT sn.nspname AS schema, seq.relname AS name
    FROM pg_publication_tables pt
    JOIN pg_namespace tn ON tn.nspname = pt.schemaname
    JOIN pg_class t ON t.relnamespace = tn.oid AND t.relname = pt.tablename
    JOIN pg_depend d ON d.refobjid = t.oid AND d.refclassid = 'pg_class'::regclass
                    AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class seq ON seq.oid = d.objid AND seq.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = seq.relnamespace
   WHERE pt.pubname = $1 AND pt.schemaname <> 'lockstep'`;

/** Those sequences with the primary's last value (each read locks its sequence). */
const PRIMARY_SEQUENCES = `
  SELECT p.schema, p.name, s.last_value::text AS "lastValue"
    FROM (${PUBLISHED_SEQUENCES}) p
    JOIN pg_sequences s ON s.schemaname = p.schema AND s.sequencename = p.name
   WHERE s.last_value IS NOT NULL
   ORDER BY 1, 2`;

/** One sequence's last value (null: never used). */
const LAST_VALUE = `
  SELECT last_value::text AS "lastValue" FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2`;

/**
 * How long reading or setting one sequence waits for its lock. An open or
 * prepared `TRUNCATE … RESTART IDENTITY` holds its table's sequences until it
 * ends: that one is skipped this period, and the others still pass.
 */
export const SEQUENCE_LOCK_WAIT_MS = 500;

const LOCK_NOT_AVAILABLE = '55P03';

function lockedOut(error: unknown): boolean {
  return (error as { code?: string }).code === LOCK_NOT_AVAILABLE;
}

/** Moves a replica's sequence forward to the primary's value; never backwards. */
const ADVANCE = `
  SELECT setval(format('%I.%I', $1::text, $2::text)::regclass, $3::bigint, true)
   WHERE $3::bigint > coalesce(
     (SELECT last_value FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2),
     (SELECT min_value - 1 FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2))`;

/**
 * The primary's values of the sequences of the publication's tables; one
 * whose lock is held (see {@link SEQUENCE_LOCK_WAIT_MS}) is left out this time.
 */
export async function primarySequences(
  primaryUrl: string,
  publication: string,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<SequenceValue[]> {
  // Bounded: a primary that stops answering fails the read instead of hanging attach.
  const primary = new LibpqClient(clientConfig(primaryUrl, 'lockstep-sequences', queryTimeoutMs));
  primary.on('error', () => undefined);
  try {
    await primary.connect();
    await primary.query(`SET lock_timeout = ${SEQUENCE_LOCK_WAIT_MS}`);
    try {
      return (await primary.query<SequenceValue>(PRIMARY_SEQUENCES, [publication])).rows;
    } catch (error) {
      if (!lockedOut(error)) throw error;
      return await eachUnlocked(primary, publication);
    }
  } catch (error) {
    throw scrubbedError(error, primaryUrl);
  } finally {
    await endClient(primary);
  }
}

/** The values read one sequence at a time, leaving out those whose lock is held. */
async function eachUnlocked(client: LibpqClient, publication: string): Promise<SequenceValue[]> {
  const sequences = await client.query<{ schema: string; name: string }>(
    `${PUBLISHED_SEQUENCES} ORDER BY 1, 2`,
    [publication],
  );
  const values: SequenceValue[] = [];
  for (const { schema, name } of sequences.rows) {
    try {
      const { rows } = await client.query<{ lastValue: string | null }>(LAST_VALUE, [schema, name]);
      const lastValue = rows[0]?.lastValue;
      if (lastValue) values.push({ schema, name, lastValue });
    } catch (error) {
      if (!lockedOut(error)) throw error;
    }
  }
  return values;
}

/**
 * Moves the replica's sequences up to `values`, never backwards; returns how
 * many moved. A sequence the replica lacks fails the call (scrubbed of
 * credentials); one whose lock is held fails it too, after every other moved.
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
      try {
        const { rowCount } = await client.query(ADVANCE, [v.schema, v.name, v.lastValue]);
        moved += rowCount ?? 0;
      } catch (error) {
        if (!lockedOut(error)) throw error;
        locked.push(`${v.schema}.${v.name}`);
      }
    }
    if (locked.length > 0)
      throw new Error(
        `sequences locked on the replica (an open or prepared transaction holds them): ${locked.join(', ')}; the others moved`,
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
 * replica that cannot be reached is reported, not thrown.
 */
export async function syncSequences(
  primaryUrl: string,
  publication: string,
  replicas: ReadonlyArray<{ name: string; url: string }>,
  queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
): Promise<{ advanced: Record<string, number>; failed: Record<string, string> }> {
  const values = await primarySequences(primaryUrl, publication, queryTimeoutMs);
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
  return { advanced, failed };
}
