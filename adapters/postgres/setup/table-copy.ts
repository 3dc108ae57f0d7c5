import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { TableCopyJob } from '../../../plugin/ports/cluster-setup.js';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { GUARD_HELD } from '../control/resync-guard.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';

/**
 * Copies one table from the primary's snapshot to a replica with COPY streamed
 * end to end (nothing held in memory), and records it in
 * `lockstep.synced_tables` in the same replica transaction: a table is either
 * copied and recorded, or neither (so an interrupted attach resumes exactly).
 */
export async function copyTable(job: TableCopyJob): Promise<number> {
  const { table } = job;
  const name = `${table.schema}.${table.name}`;
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ');
  const source = new LibpqClient(clientConfig(job.primaryUrl, 'lockstep-copy'));
  const target = new LibpqClient(clientConfig(job.replica.url, 'lockstep-copy'));
  source.on('error', () => undefined);
  target.on('error', () => undefined);
  await Promise.all([source.connect(), target.connect()]);
  try {
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`SET TRANSACTION SNAPSHOT '${job.snapshot.replace(/'/g, "''")}'`);
    await target.query('BEGIN');
    // As native logical replication does: no user triggers or FK checks while copying.
    await target.query('SET LOCAL session_replication_role = replica');
    const { rows } = await target.query(
      `SELECT EXISTS (SELECT 1 FROM ${quoteQualified(table.schema, table.name)}) AS has_rows`,
    );
    if (rows[0]?.has_rows) {
      throw new LockstepError({
        node: job.replica.name,
        table: name,
        problem: 'the table already has rows on the replica, and lockstep did not copy them',
        fix: `empty it on the replica (TRUNCATE ${quoteQualified(table.schema, table.name)}) and run lockstep attach again`,
      });
    }
    const reader = source.query(
      copyTo(`COPY (SELECT ${columns} FROM ${quoteQualified(table.schema, table.name)}) TO STDOUT`),
    );
    const writer = target.query(
      copyFrom(`COPY ${quoteQualified(table.schema, table.name)} (${columns}) FROM STDIN`),
    );
    let lines = 0;
    let lastReport = 0;
    reader.on('data', (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      if (job.onProgress && lines - lastReport >= 50_000) {
        lastReport = lines;
        job.onProgress(lines);
      }
    });
    await pipeline(reader, writer);
    const copied = Number(writer.rowCount ?? lines);
    await target.query(
      `INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
       VALUES ($1, $2, $3, $4, $5)`,
      [job.stream, table.schema, table.name, job.copyLsn, copied],
    );
    await checkStillCurrent(target, job);
    await target.query('COMMIT');
    await source.query('COMMIT');
    job.onProgress?.(copied);
    return copied;
  } catch (error) {
    await target.query('ROLLBACK').catch(() => undefined);
    if (error instanceof LockstepError) throw error;
    const e = error as { message?: string; code?: string };
    throw new LockstepError({
      node: job.replica.name,
      table: name,
      sqlState: e.code,
      problem: `copying the table failed: ${e.message ?? String(error)}`,
      fix: 'fix the cause and run lockstep attach again; tables already copied are not copied again',
      cause: error,
    });
  } finally {
    await Promise.all([source.end().catch(() => undefined), target.end().catch(() => undefined)]);
  }
}

/**
 * Refuses to commit a copy that another process's resync overtook: its guard
 * died, or the replica was repositioned past the copy's snapshot meanwhile
 * (the changes in between would never be applied to the table).
 */
async function checkStillCurrent(target: pg.Client, job: TableCopyJob): Promise<void> {
  const name = `${job.table.schema}.${job.table.name}`;
  if (job.guardPid !== undefined) {
    const { rows } = await target.query<{ held: boolean }>(GUARD_HELD, [job.guardPid, job.stream]);
    if (rows[0]?.held !== true)
      throw new LockstepError({
        node: job.replica.name,
        table: name,
        problem: 'the resync lock was lost during the copy: the copy is not kept',
        fix: 'the resync is repeated from the start; check the replica if this recurs',
      });
  }
  const { rows } = await target.query<{ ahead: boolean }>(
    'SELECT lsn > $2::pg_lsn AS ahead FROM lockstep.applied WHERE stream = $1 FOR SHARE',
    [job.stream, job.copyLsn],
  );
  if (rows[0]?.ahead)
    throw new LockstepError({
      node: job.replica.name,
      table: name,
      problem: "the replica's position moved past this copy's snapshot (a resync ran meanwhile)",
      fix: 'run lockstep attach again: it copies the table from a fresh snapshot',
    });
}
