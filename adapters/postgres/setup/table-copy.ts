import type pg from 'pg';
import type {
  CopyReplica,
  TableCopyJob,
  TableCopyOutcome,
} from '../../../plugin/ports/cluster-setup.js';
import { within } from '../connection/backend-probe.js';
import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { dropClient, endClient } from '../connection/node-connection.js';
import { endWhenDropped } from '../connection/session-bounds.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql-identifier.js';
import { FanOutStalled, type FanOutTarget, fanOut } from './copy-fan-out.js';
import {
  type CopyFormat,
  type CopyFormatFacts,
  chooseCopyFormat,
  copyFormatFacts,
} from './copy-format.js';
import { CopyOutRelay } from './copy-out-relay.js';
import { copyFailed, copyStalled, ReplicaLoad } from './replica-load.js';
import { readFailed, readFrozen, watchSource } from './source-watch.js';

/** How often (rows) progress is reported while a table streams. */
const PROGRESS_EVERY = 50_000;

/**
 * Copies one table from the primary's snapshot to every replica of the job:
 * one COPY TO on the primary, its CopyData messages relayed as they are to
 * one COPY FROM per replica (nothing held in memory beyond a chunk), each in
 * its own replica transaction that also records the copy. A replica that
 * fails drops out with its error; the others commit their complete copies,
 * so a resume copies only what is missing. A failed primary read fails every
 * replica.
 */
export async function copyTable(job: TableCopyJob): Promise<TableCopyOutcome[]> {
  const [source, ...opened] = await Promise.allSettled([
    openSource(job),
    ...job.replicas.map((r) => ReplicaLoad.open(job, r)),
  ]);
  const outcomes = new Map<string, TableCopyOutcome>();
  const loads: ReplicaLoad[] = [];
  opened.forEach((result, i) => {
    const replica = job.replicas[i] as CopyReplica;
    if (result.status === 'fulfilled') loads.push(result.value);
    else outcomes.set(replica.name, { replica: replica.name, error: result.reason });
  });
  try {
    if (loads.length > 0) await streamAndCommit(job, source, loads, outcomes);
  } finally {
    // Bounded: a primary frozen after the read must not hold the copy at its session's end.
    if (source.status === 'fulfilled') await endClient(source.value.client);
    await Promise.all(loads.map((load) => load.close()));
  }
  return job.replicas.map((r) => outcomes.get(r.name) as TableCopyOutcome);
}

/** The primary's session on the snapshot, and what it says about the table's columns. */
interface Source {
  readonly client: pg.Client;
  readonly facts: CopyFormatFacts;
}

async function openSource(job: TableCopyJob): Promise<Source> {
  const client = new LibpqClient(clientConfig(job.primaryUrl, 'lockstep-copy'));
  client.on('error', () => undefined);
  try {
    // Bounded as the read is: a primary frozen between two tables must not hold the copy
    // before its read is watched (these statements wait on no lock).
    const facts = await within(beginOnSnapshot(client, job), job.stallTimeoutMs);
    if (facts === false) {
      dropClient(client);
      throw readFrozen(job, 'did not answer', job.stallTimeoutMs);
    }
    return { client, facts };
  } catch (error) {
    await endClient(client);
    throw error;
  }
}

/** Connects, joins the snapshot read-only, and reads the facts the copy format is chosen by. */
async function beginOnSnapshot(client: pg.Client, job: TableCopyJob): Promise<CopyFormatFacts> {
  await client.connect();
  // One round trip. A read the source watch dropped while it waited on a lock
  // ends then, not once the lock goes (endWhenDropped).
  await client.query(
    `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
     SET TRANSACTION SNAPSHOT ${quoteLiteral(job.snapshot)};
     SELECT ${endWhenDropped(true)}`,
  );
  const table = quoteQualified(job.table.schema, job.table.name);
  return copyFormatFacts(
    client,
    table,
    job.table.columns.map((c) => c.name),
  );
}

async function streamAndCommit(
  job: TableCopyJob,
  source: PromiseSettledResult<Source>,
  loads: readonly ReplicaLoad[],
  outcomes: Map<string, TableCopyOutcome>,
): Promise<void> {
  const format: CopyFormat =
    source.status === 'fulfilled'
      ? chooseCopyFormat(
          source.value.facts,
          loads.map((l) => l.formatFacts),
        )
      : 'text';
  const targets: Array<FanOutTarget & { load: ReplicaLoad }> = loads.map((load) => {
    const target = {
      load,
      stream: load.writer(format),
      failure: undefined as unknown,
      abort: () => load.abort(),
    };
    // From the start: a read that fails before the fan-out ends these COPYs with their sessions.
    target.stream.on('error', (error) => {
      target.failure ??= error;
    });
    return target;
  });
  let rows: number;
  try {
    if (source.status === 'rejected') throw source.reason;
    rows = await readOnce(job, source.value.client, format, targets, (sent) => {
      for (const t of targets)
        if (t.failure === undefined) job.onProgress?.(t.load.replica.name, sent);
    });
  } catch (error) {
    // The primary's read failed: no replica has the whole table. A COPY may
    // have been cut inside a message: its session is dropped, not ended.
    const failure = readFailed(job, error);
    for (const t of targets) {
      t.failure ??= failure;
      t.load.abort();
    }
    rows = 0;
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
        const committed = await load.commit(rows);
        job.onProgress?.(replica, committed.rows);
        outcomes.set(replica, { replica, ...committed });
      } catch (error) {
        outcomes.set(replica, { replica, error: copyFailed(job, load.replica, error) });
      }
    }),
  );
}

/** Reads the table once on the snapshot and feeds every target; the rows read. */
async function readOnce(
  job: TableCopyJob,
  source: pg.Client,
  format: CopyFormat,
  targets: readonly FanOutTarget[],
  onProgress: (rows: number) => void,
): Promise<number> {
  const columns = job.table.columns.map((c) => quoteIdent(c.name)).join(', ');
  const table = quoteQualified(job.table.schema, job.table.name);
  const options = format === 'binary' ? ' (FORMAT binary)' : '';
  // ONLY: an inheritance child's rows are its own table's copy, not its parent's.
  const relay = new CopyOutRelay(`COPY (SELECT ${columns} FROM ONLY ${table}) TO STDOUT${options}`);
  source.query(relay as unknown as pg.QueryConfig);
  const stopWatch = watchSource(job, relay, {
    url: job.primaryUrl,
    pid: () => (source as unknown as { processID?: number }).processID,
    boundMs: job.stallTimeoutMs,
    drop: () => dropClient(source),
  });
  let lastReport = 0;
  const onChunk = () => {
    if (relay.messages - lastReport >= PROGRESS_EVERY) {
      lastReport = relay.messages;
      onProgress(relay.messages);
    }
  };
  try {
    await fanOut(relay, targets, onChunk, job.stallTimeoutMs);
  } finally {
    stopWatch();
  }
  // Every target failed: the read was cut short, the session is closed by the caller.
  if (targets.every((t) => t.failure !== undefined)) return relay.messages;
  // No COMMIT: the snapshot's transaction is read-only, ending the session ends it. Only
  // the `COPY n` tag is wanted, which comes before the ReadyForQuery: a primary frozen
  // right after the last row gets applyTimeoutMs for it, as a read that stalls does.
  if ((await within(relay.answered, job.stallTimeoutMs)) === false) {
    dropClient(source);
    throw readFrozen(job, 'did not answer', job.stallTimeoutMs);
  }
  if (relay.rowCount === null) throw new Error('the primary ended the COPY without its row count');
  return relay.rowCount;
}
