import { to as copyTo } from 'pg-copy-streams';
import type {
  CopyReplica,
  TableCopyJob,
  TableCopyOutcome,
} from '../../../plugin/ports/cluster-setup.js';
import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql-identifier.js';
import { FanOutStalled, type FanOutTarget, fanOut } from './copy-fan-out.js';
import { copyFailed, copyStalled, ReplicaLoad } from './replica-load.js';

/** How often (rows) progress is reported while a table streams. */
const PROGRESS_EVERY = 50_000;

/**
 * Copies one table from the primary's snapshot to every replica of the job:
 * one COPY TO on the primary, streamed to one COPY FROM per replica (nothing
 * held in memory beyond a chunk), each in its own replica transaction that
 * also records the copy. A replica that fails drops out with its error; the
 * others commit their complete copies, so a resume copies only what is
 * missing. A failed primary read fails every replica.
 */
export async function copyTable(job: TableCopyJob): Promise<TableCopyOutcome[]> {
  const opened = await Promise.allSettled(job.replicas.map((r) => ReplicaLoad.open(job, r)));
  const outcomes = new Map<string, TableCopyOutcome>();
  const loads: ReplicaLoad[] = [];
  opened.forEach((result, i) => {
    const replica = job.replicas[i] as CopyReplica;
    if (result.status === 'fulfilled') loads.push(result.value);
    else outcomes.set(replica.name, { replica: replica.name, error: result.reason });
  });
  try {
    if (loads.length > 0) await streamAndCommit(job, loads, outcomes);
  } finally {
    await Promise.all(loads.map((load) => load.close()));
  }
  return job.replicas.map((r) => outcomes.get(r.name) as TableCopyOutcome);
}

async function streamAndCommit(
  job: TableCopyJob,
  loads: readonly ReplicaLoad[],
  outcomes: Map<string, TableCopyOutcome>,
): Promise<void> {
  const targets: Array<FanOutTarget & { load: ReplicaLoad }> = loads.map((load) => {
    const target = {
      load,
      stream: load.writer(),
      failure: undefined as unknown,
      abort: () => load.abort(),
    };
    // From the start: a read that fails before the fan-out ends these COPYs with their sessions.
    target.stream.on('error', (error) => {
      target.failure ??= error;
    });
    return target;
  });
  let lines: number;
  try {
    lines = await readOnce(job, targets, (rows) => {
      for (const t of targets)
        if (t.failure === undefined) job.onProgress?.(t.load.replica.name, rows);
    });
  } catch (error) {
    // The primary's read failed: no replica has the whole table.
    for (const t of targets) t.failure ??= error;
    lines = 0;
  }
  await Promise.all(
    targets.map(async ({ load, failure }) => {
      const replica = load.replica.name;
      if (failure !== undefined) {
        const error =
          failure instanceof FanOutStalled
            ? copyStalled(job, load.replica, failure.stallMs)
            : copyFailed(job, load.replica, failure);
        outcomes.set(replica, { replica, error });
        return;
      }
      try {
        const { rows, warnings } = await load.commit(lines);
        job.onProgress?.(replica, rows);
        outcomes.set(replica, { replica, rows, warnings });
      } catch (error) {
        outcomes.set(replica, { replica, error: copyFailed(job, load.replica, error) });
      }
    }),
  );
}

/** Reads the table once on the snapshot and feeds every target; the rows read. */
async function readOnce(
  job: TableCopyJob,
  targets: readonly FanOutTarget[],
  onProgress: (rows: number) => void,
): Promise<number> {
  const source = new LibpqClient(clientConfig(job.primaryUrl, 'lockstep-copy'));
  source.on('error', () => undefined);
  try {
    await source.connect();
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(job.snapshot)}`);
    const columns = job.table.columns.map((c) => quoteIdent(c.name)).join(', ');
    const table = quoteQualified(job.table.schema, job.table.name);
    // ONLY: an inheritance child's rows are its own table's copy, not its parent's.
    const reader = source.query(copyTo(`COPY (SELECT ${columns} FROM ONLY ${table}) TO STDOUT`));
    let lines = 0;
    let lastReport = 0;
    const onChunk = (chunk: Buffer) => {
      // COPY text escapes newlines inside values: one line is one row.
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      if (lines - lastReport >= PROGRESS_EVERY) {
        lastReport = lines;
        onProgress(lines);
      }
    };
    await fanOut(reader, targets, onChunk, job.stallTimeoutMs);
    // Every target failed: the read was cut short, the session is closed below.
    if (targets.every((t) => t.failure !== undefined)) return lines;
    await source.query('COMMIT');
    return lines;
  } finally {
    await source.end().catch(() => undefined);
  }
}
