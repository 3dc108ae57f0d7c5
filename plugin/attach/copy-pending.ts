import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { CatalogTable } from '../ports/catalog-table.js';
import type { TableSize } from '../ports/cluster-setup.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import type { LockstepError } from '../ports/lockstep-error.js';
import type { CreatedSlot } from '../ports/replication-slots.js';
import type { ResyncGuardPort } from '../ports/resync-guard.js';
import type { Lsn } from '../protocol/index.js';
import { onPrimary, onPrimaryStep, onReplica } from './attach-cluster.js';
import type { AttachProgress } from './attach-progress.js';
import { awaitMigrationInFlight } from './migration-gate.js';
import { primaryCommandSession } from './node-step.js';
import { type ResyncHolder, requireHolder } from './resync.js';

type TableJob = { table: CatalogTable; replicas: ReplicaConfig[] };

/**
 * The jobs largest first, by table size on the primary (TOAST included), as
 * pg_restore's parallel mode and pgcopydb order their work: the copy that
 * takes longest starts at once instead of after the small ones. Tells the
 * progress view each copy's size (for bytes, rates and ETAs).
 */
async function planCopies(
  cluster: LockstepCluster,
  config: LockstepConfig,
  jobs: readonly TableJob[],
  progress: AttachProgress,
): Promise<TableJob[]> {
  const sizes = await onPrimaryStep(
    cluster,
    config,
    {
      name: 'reading the sizes of the tables to copy',
      fix: 'run lockstep attach again (it resumes)',
    },
    (primary) => primary.setup.tableSizes(jobs.map((j) => j.table)),
  );
  const size = ({ table }: TableJob): TableSize =>
    sizes.get(`${table.schema}.${table.name}`) ?? { bytes: 0, rows: 1 };
  progress.plan?.(
    jobs.flatMap((job) =>
      job.replicas.map((replica) => ({
        replica: replica.name,
        table: `${job.table.schema}.${job.table.name}`,
        ...size(job),
      })),
    ),
  );
  return [...jobs].sort((a, b) => size(b).bytes - size(a).bytes);
}

/**
 * Copies the tables each replica has not had copied yet: from the slot's own
 * snapshot if it was just made, otherwise from a temporary slot's, whose
 * later start LSN tells the applier which of those tables' changes the copy
 * already holds. Each table is read once and fed to every replica that needs
 * it; a replica whose copy fails gets no further tables (the others go on),
 * and the first failure is thrown at the end. Then each replica that had no
 * failure has its copied tables' foreign keys checked.
 */
export async function copyPending(
  cluster: LockstepCluster,
  config: LockstepConfig,
  replicas: readonly ReplicaConfig[],
  tables: readonly CatalogTable[],
  progress: AttachProgress,
  options: {
    created: CreatedSlot | null;
    holder?: ResyncHolder;
    guards: readonly ResyncGuardPort[];
    /** Tables copied at once (each read once, fed to every replica that needs it). */
    concurrency: number;
  },
): Promise<Array<{ replica: string; table: string; rows: number }>> {
  const pending = await Promise.all(
    replicas.map((r) => pendingTables(cluster, r, config.slot, tables)),
  );
  const copied: { replica: string; table: string; rows: number }[] = [];
  const failed = new Map<string, LockstepError>();
  if (pending.some((p) => p.length > 0))
    await copyFromSnapshot(cluster, config, progress, options, {
      jobs: tableJobs(replicas, pending, tables),
      copied,
      failed,
    });
  for (const replica of replicas)
    if (!failed.has(replica.name))
      await onReplica(
        cluster,
        replica,
        (session) => session.setup.checkCopiedForeignKeys(config.slot, config.applyTimeoutMs),
        // Validating a key may take long: watched by the check, not timed by the session.
        { bounded: false },
      );
  const first = failed.values().next();
  if (!first.done) throw first.value;
  return copied;
}

/** Per table (in catalog order), the replicas still needing it. */
function tableJobs(
  replicas: readonly ReplicaConfig[],
  pending: readonly CatalogTable[][],
  tables: readonly CatalogTable[],
): TableJob[] {
  return tables
    .map((table) => ({
      table,
      replicas: replicas.filter((_, i) => pending[i]?.includes(table)),
    }))
    .filter((job) => job.replicas.length > 0);
}

/** What the copies of one attach share. */
interface CopyRun {
  readonly cluster: LockstepCluster;
  readonly config: LockstepConfig;
  readonly progress: AttachProgress;
  readonly options: Parameters<typeof copyPending>[5];
  readonly source: CreatedSlot;
  readonly copied: Array<{ replica: string; table: string; rows: number }>;
  readonly failed: Map<string, LockstepError>;
}

async function copyFromSnapshot(
  cluster: LockstepCluster,
  config: LockstepConfig,
  progress: AttachProgress,
  options: Parameters<typeof copyPending>[5],
  run: {
    jobs: readonly TableJob[];
    copied: Array<{ replica: string; table: string; rows: number }>;
    failed: Map<string, LockstepError>;
  },
): Promise<void> {
  let source = options.created;
  let tempSlot: string | null = null;
  if (!source) {
    tempSlot = `${config.slot}_sync_${process.pid}`;
    progress.step('resuming: taking a fresh snapshot for the tables not copied yet');
    await awaitMigrationInFlight(cluster, config, progress.step);
    source = await cluster.createSlot(config.primary, tempSlot, {
      exportSnapshot: true,
      temporary: true,
      boundMs: config.applyTimeoutMs,
    });
  }
  const copyRun: CopyRun = { cluster, config, progress, options, source, ...run };
  try {
    const jobs = await planCopies(cluster, config, run.jobs, progress);
    await runLimited(jobs, options.concurrency, (job) => copyJob(copyRun, job));
  } finally {
    await source.release();
    const temporary = tempSlot;
    // Bounded, and failing quietly: the slot is temporary, gone with the session ended above.
    if (temporary)
      await onPrimary(
        cluster,
        config.primary,
        (primary) => primary.slots.drop(temporary),
        primaryCommandSession(config, 'lockstep'),
      ).catch(() => undefined);
  }
}

/** One table to the replicas of its job that have not failed yet. */
async function copyJob(run: CopyRun, { table, replicas }: TableJob): Promise<void> {
  const { config, progress, options, source } = run;
  const label = `${table.schema}.${table.name}`;
  const targets = replicas.filter((r) => !run.failed.has(r.name));
  if (targets.length === 0) return;
  // A deposed sidecar stops copying at once: its copy would be thrown away.
  await requireHolder(options.holder);
  // Started now: a table with fewer rows than a progress step would seem to take no time.
  for (const replica of targets) progress.table(replica.name, label, 0, false);
  const outcomes = await run.cluster.copyTable({
    stream: config.slot,
    table,
    primaryUrl: config.primary,
    stallTimeoutMs: config.applyTimeoutMs,
    snapshot: source.snapshotName as string,
    copyLsn: source.consistentPoint,
    replicas: targets.map((r) => ({
      name: r.name,
      url: r.url,
      guardPid: options.guards.find((g) => g.replica === r.name)?.pid,
    })),
    onProgress: (replica, n) => progress.table(replica, label, n, false),
  });
  for (const outcome of outcomes) {
    if (outcome.error) {
      if (!run.failed.has(outcome.replica)) run.failed.set(outcome.replica, outcome.error);
      continue;
    }
    progress.table(outcome.replica, label, outcome.rows, true);
    for (const { phase, problem } of outcome.warnings ?? [])
      (progress.warn ?? progress.step)('a step after the copy failed; the copy is kept', {
        replica: outcome.replica,
        table: label,
        phase,
        problem,
      });
    run.copied.push({ replica: outcome.replica, table: label, rows: outcome.rows });
  }
}

/** Version 0 at the stream's start, for a replica without a position (a first attach); 1 if placed now. */
export async function placeAtStart(
  cluster: LockstepCluster,
  replica: ReplicaConfig,
  stream: string,
  startLsn: Lsn,
): Promise<number> {
  return onReplica(
    cluster,
    replica,
    (session) => session.positions.placeAtStart(stream, startLsn),
    // Named as lockstep's control sessions are (fault tests cut them by this name).
    { applicationName: 'lockstep-control' },
  );
}

/** The replicated tables this replica has not had copied yet. */
async function pendingTables(
  cluster: LockstepCluster,
  replica: ReplicaConfig,
  stream: string,
  tables: readonly CatalogTable[],
): Promise<CatalogTable[]> {
  const copied = await onReplica(cluster, replica, (session) => session.syncedTables.list(stream));
  const done = new Set(copied.map((t) => `${t.schema}\u0000${t.name}`));
  return tables.filter((t) => !done.has(`${t.schema}\u0000${t.name}`));
}

async function runLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && failures.length === 0) {
        const item = items[next++] as T;
        try {
          await work(item);
        } catch (error) {
          failures.push(error);
        }
      }
    }),
  );
  if (failures.length > 0) throw failures[0];
}
