import type { Writable } from 'node:stream';
import type pg from 'pg';
import type {
  CopyReplica,
  TableCopyJob,
  TableCopyWarning,
} from '../../../plugin/ports/cluster-setup.js';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { dropClient, endClient } from '../connection/node-connection.js';
import { endWhenDropped } from '../connection/session-bounds.js';
import { GUARD_HELD } from '../control/resync-guard.js';
import { quoteIdent, quoteQualified } from '../sql-identifier.js';
import { type CopyFormat, type CopyFormatFacts, copyFormatFacts } from './copy-format.js';
import { copyFromFramed } from './copy-in-framed.js';
import { LoadPhaseFrozen, type LoadWatch, watchPhase } from './load-watchdog.js';
import { type PreparedLoad, prepareLoad } from './load-without-indexes.js';
import { warmTable } from './warm-up.js';

/** Index builds of the load get at least this much (the server's value when higher). */
const MAINTENANCE_WORK_MEM = '256MB';

/**
 * One replica's side of a table copy, in one replica transaction: the table
 * emptied of its droppable indexes, the rows, the indexes rebuilt, and the
 * `lockstep.synced_tables` row. A table is copied and recorded, or neither,
 * so an interrupted attach resumes exactly. After the COMMIT, on the same
 * session: the warm-up (warm-up.ts), then ANALYZE.
 */
export class ReplicaLoad {
  private constructor(
    readonly replica: CopyReplica,
    private readonly job: TableCopyJob,
    private readonly client: pg.Client,
    private readonly prepared: PreparedTable,
    private readonly watch: LoadWatch,
    /** The replica's server_version_num. */
    private readonly version: number,
  ) {}

  /** Opens the transaction and prepares the empty table; refuses a table with rows. */
  static async open(job: TableCopyJob, replica: CopyReplica): Promise<ReplicaLoad> {
    const client = new LibpqClient(clientConfig(replica.url, 'lockstep-copy'));
    client.on('error', () => undefined);
    let pid: number | undefined;
    let version = 0;
    const watch: LoadWatch = {
      url: replica.url,
      pid: () => pid,
      boundMs: job.stallTimeoutMs,
      drop: () => dropClient(client),
    };
    try {
      await client.connect();
      const prepare = async () => {
        await client.query('BEGIN');
        ({ pid, version } = await startLoad(client));
        return prepareTable(client, job, replica);
      };
      const prepared = await watchPhase('prepare', watch, prepare());
      return new ReplicaLoad(replica, job, client, prepared, watch, version);
    } catch (error) {
      // A phase the watchdog gave up on has its session dropped already.
      if (!(error instanceof LoadPhaseFrozen)) await endClient(client);
      throw copyFailed(job, replica, error);
    }
  }

  /** What the replica says about the copied columns' types (copy-format). */
  get formatFacts(): CopyFormatFacts {
    return this.prepared.formatFacts;
  }

  /** The COPY FROM stream the rows go into, as CopyData messages framed by the primary. */
  writer(format: CopyFormat): Writable {
    const columns = this.job.table.columns.map((c) => quoteIdent(c.name)).join(', ');
    const options = [
      ...(format === 'binary' ? ['FORMAT binary'] : []),
      ...(this.prepared.freeze ? ['FREEZE'] : []),
    ];
    const using = options.length > 0 ? ` WITH (${options.join(', ')})` : '';
    return this.client.query(
      copyFromFramed(`COPY ${qualified(this.job)} (${columns}) FROM STDIN${using}`),
    );
  }

  /**
   * Rebuilds, records the copy and commits, then warms and analyzes the
   * table: the rows copied, and what went wrong after the COMMIT. Each phase
   * is watched (load-watchdog): a replica that stops answering in one is
   * dropped, and its transaction ends on the server unless the COMMIT itself
   * went through (the table and its record commit together).
   */
  async commit(copied: number): Promise<{ rows: number; warnings: TableCopyWarning[] }> {
    const { job, client } = this;
    try {
      await this.phase('index rebuild', this.prepared.rebuild());
      await this.phase('record', this.record(copied));
      await this.phase('commit', client.query('COMMIT'));
    } catch (error) {
      throw copyFailed(job, this.replica, error);
    }
    return { rows: copied, warnings: await this.settle() };
  }

  private phase<T>(name: string, work: Promise<T>): Promise<T> {
    return watchPhase(name, { ...this.watch, drop: () => this.abort() }, work);
  }

  /**
   * Best effort once the copy is committed (a failure is a warning, the copy
   * stays): the warm-up, then ANALYZE, which the first apply after attach
   * plans its joins on and which then reads the warmed blocks from shared
   * buffers. ANALYZE runs after the COMMIT, the load's row counts flushed
   * (record), so it leaves n_mod_since_analyze at 0: run inside the load's
   * transaction, the counts arrived after it and autovacuum analyzed every
   * copied table again within a minute.
   */
  private async settle(): Promise<TableCopyWarning[]> {
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['warm-up', () => warmTable(this.client, this.job)],
      ['analyze', () => this.client.query(`ANALYZE ${qualified(this.job)}`)],
    ];
    const warnings: TableCopyWarning[] = [];
    for (const [phase, step] of steps) {
      try {
        await this.phase(phase, step());
      } catch (error) {
        warnings.push({ phase, problem: (error as Error).message ?? String(error) });
        if (this.aborted) break;
      }
    }
    return warnings;
  }

  /** The copy's `lockstep.synced_tables` row, once the copy is known to be current. */
  private async record(copied: number): Promise<void> {
    const { job } = this;
    await this.client.query(
      `INSERT INTO lockstep.synced_tables
         (stream, schema_name, table_name, copy_lsn, rows, foreign_keys_checked)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        job.stream,
        job.table.schema,
        job.table.name,
        job.copyLsn,
        copied,
        !this.prepared.checkForeignKeys,
      ],
    );
    await checkStillCurrent(this.client, job, this.replica);
    // From PostgreSQL 15: the load's row counts reach the statistics once the COMMIT
    // returns, before the ANALYZE after it (else they could arrive after, and count
    // every row as modified since that ANALYZE).
    if (this.version >= 150000) await this.client.query('SELECT pg_stat_force_next_flush()');
  }

  /**
   * Closes the session; a transaction not committed ends with it, so the
   * replica keeps the table as it was. Never a ROLLBACK: a COPY the read
   * never fed would hold it queued forever.
   */
  async close(): Promise<void> {
    if (this.aborted) return;
    // A frozen host never acknowledges the end: its socket is dropped after a while.
    await endClient(this.client);
  }

  private aborted = false;

  /** Drops the session at once (the replica stalled): the server ends the transaction. */
  abort(): void {
    this.aborted = true;
    dropClient(this.client);
  }
}

const qualified = (job: TableCopyJob) => quoteQualified(job.table.schema, job.table.name);
/** The table as errors name it: schema.name. */
export const label = (job: TableCopyJob) => `${job.table.schema}.${job.table.name}`;

/**
 * The load's settings for its transaction, in one round trip; the backend's
 * pid (for the watchdog) and the server's version. As native logical
 * replication does: no user triggers or FK checks while copying. Index
 * builds get at least MAINTENANCE_WORK_MEM. From PostgreSQL 14 a backend
 * whose session lockstep dropped (a phase that did not finish) ends within a
 * second, even in a lock wait, instead of committing later: for the whole
 * session, as the phases after the COMMIT are watched too.
 *
 * Values stored out of line are compressed with lz4 where the server has it
 * and the replica's default_toast_compression was left at its default:
 * pglz trying every value (and giving up on incompressible ones) was 60 % of
 * a TOAST-heavy table's load. A default the operator set (configuration
 * file, ALTER DATABASE or ROLE) and a column's own COMPRESSION are kept.
 */
async function startLoad(client: pg.Client): Promise<{ pid: number; version: number }> {
  const { rows } = await client.query<{ pid: number; version: number }>(
    `SELECT set_config('session_replication_role', 'replica', true),
            CASE WHEN pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes($1)
                 THEN set_config('maintenance_work_mem', $1, true) END,
            (SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings
              WHERE name = 'default_toast_compression' AND source = 'default'
                AND 'lz4' = ANY (enumvals)),
            ${endWhenDropped(false)},
            pg_backend_pid() AS pid, current_setting('server_version_num')::int AS version`,
    [MAINTENANCE_WORK_MEM],
  );
  return { pid: rows[0]?.pid as number, version: rows[0]?.version as number };
}

/** A replica table ready for its rows. */
type PreparedTable = PreparedLoad & {
  readonly checkForeignKeys: boolean;
  readonly formatFacts: CopyFormatFacts;
};

/** Locks the table, refuses it with rows, and empties it of its droppable indexes. */
async function prepareTable(
  client: pg.Client,
  job: TableCopyJob,
  replica: CopyReplica,
): Promise<PreparedTable> {
  const table = qualified(job);
  // Nothing may slip in between the check for rows and the load.
  await client.query(`LOCK TABLE ONLY ${table} IN ACCESS EXCLUSIVE MODE`);
  const { rows } = await client.query(
    `SELECT EXISTS (SELECT 1 FROM ONLY ${table}) AS has_rows,
            EXISTS (SELECT 1 FROM pg_constraint
                     WHERE conrelid = $1::regclass AND contype = 'f' AND convalidated) AS has_fks`,
    [table],
  );
  if (rows[0]?.has_rows)
    throw new LockstepError({
      node: replica.name,
      table: label(job),
      problem: 'the table already has rows on the replica, and lockstep did not copy them',
      fix: `empty it on the replica (TRUNCATE ${table}) and run lockstep attach again`,
    });
  const formatFacts = await copyFormatFacts(
    client,
    table,
    job.table.columns.map((c) => c.name),
  );
  const prepared = await prepareLoad(client, table);
  return { ...prepared, checkForeignKeys: rows[0]?.has_fks === true, formatFacts };
}

/** The replica's failure as a LockstepError naming it and the table. */
export function copyFailed(job: TableCopyJob, replica: CopyReplica, error: unknown): LockstepError {
  if (error instanceof LockstepError) return error;
  if (error instanceof LoadPhaseFrozen) return phaseFrozen(job, replica, error);
  const e = error as { message?: string; code?: string };
  return new LockstepError({
    node: replica.name,
    table: label(job),
    sqlState: e.code,
    problem: `copying the table failed: ${e.message ?? String(error)}`,
    fix: 'fix the cause and run lockstep attach again; tables already copied are not copied again',
    cause: error,
  });
}

/** A replica that took no rows for `stallMs`: it drops out so the others go on. */
export function copyStalled(
  job: TableCopyJob,
  replica: CopyReplica,
  stallMs: number,
): LockstepError {
  return new LockstepError({
    node: replica.name,
    table: label(job),
    problem: `the replica took no rows for ${stallMs} ms (a stopped or frozen server, or a lock held on the table there); its copy was dropped`,
    fix: `check the replica (pg_locks on the table, the server's state), then run lockstep attach again; applyTimeoutMs sets how long a replica may take nothing`,
  });
}

/** A replica that did not finish a phase of its load (load-watchdog): it dropped out. */
function phaseFrozen(
  job: TableCopyJob,
  replica: CopyReplica,
  frozen: LoadPhaseFrozen,
): LockstepError {
  const { phase, reason, boundMs } = frozen;
  if (phase === 'commit')
    return new LockstepError({
      node: replica.name,
      table: label(job),
      problem: `the replica ${reason} for ${boundMs} ms at the COMMIT of the copy (a stopped or frozen server, or a lock held there): whether it committed is unknown until the replica answers again`,
      fix: 'once the replica answers, run lockstep attach again: the table and its record in lockstep.synced_tables commit together, so it copies the table again only if this commit did not happen',
    });
  return new LockstepError({
    node: replica.name,
    table: label(job),
    problem: `the replica ${reason} for ${boundMs} ms in the ${phase} phase of the copy (a stopped or frozen server, or a lock held there); its copy was dropped, nothing of it kept`,
    fix: "check the replica (pg_stat_activity and pg_locks there, the server's state), then run lockstep attach again; applyTimeoutMs sets how long a replica may not answer",
  });
}

/**
 * Refuses to commit a copy that another process's resync overtook: its guard
 * died, or the replica was repositioned past the copy's snapshot meanwhile
 * (the changes in between would never be applied to the table).
 */
async function checkStillCurrent(
  target: pg.Client,
  job: TableCopyJob,
  replica: CopyReplica,
): Promise<void> {
  if (replica.guardPid !== undefined) {
    const { rows } = await target.query<{ held: boolean }>(GUARD_HELD, [
      replica.guardPid,
      job.stream,
    ]);
    if (rows[0]?.held !== true)
      throw new LockstepError({
        node: replica.name,
        table: label(job),
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
      node: replica.name,
      table: label(job),
      problem: "the replica's position moved past this copy's snapshot (a resync ran meanwhile)",
      fix: 'run lockstep attach again: it copies the table from a fresh snapshot',
    });
}
