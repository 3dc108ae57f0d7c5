import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { CatalogTable } from '../ports/catalog-table.js';
import type { LockstepCluster } from '../ports/lockstep-cluster.js';
import type { CreatedSlot } from '../ports/replication-slots.js';
import type { ResyncGuardPort } from '../ports/resync-guard.js';
import type { Lsn } from '../protocol/index.js';
import { onPrimary, onReplica } from './attach-cluster.js';
import type { AttachProgress } from './attach-progress.js';
import { type ResyncHolder, requireHolder } from './resync.js';

/** Tells the progress view each copy's table size on the primary (for bytes, rates and ETAs). */
async function planCopies(
  cluster: LockstepCluster,
  config: LockstepConfig,
  jobs: ReadonlyArray<{ replica: ReplicaConfig; table: CatalogTable }>,
  progress: AttachProgress,
): Promise<void> {
  if (!progress.plan) return;
  const sizes = await onPrimary(cluster, config.primary, (primary) =>
    primary.setup.tableSizes(jobs.map((j) => j.table)),
  );
  progress.plan(
    jobs.map(({ replica, table }) => {
      const label = `${table.schema}.${table.name}`;
      const size = sizes.get(label);
      return {
        replica: replica.name,
        table: label,
        bytes: size?.bytes ?? 0,
        rows: size?.rows ?? 1,
      };
    }),
  );
}

/**
 * Copies the tables each replica has not had copied yet: from the slot's own
 * snapshot if it was just made, otherwise from a temporary slot's, whose
 * later start LSN tells the applier which of those tables' changes the copy
 * already holds.
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
    /** Table copies at once. */
    concurrency: number;
  },
): Promise<Array<{ replica: string; table: string; rows: number }>> {
  const stream = config.slot;
  const pending = await Promise.all(replicas.map((r) => pendingTables(cluster, r, stream, tables)));
  const copied: { replica: string; table: string; rows: number }[] = [];
  if (!pending.some((p) => p.length > 0)) return copied;
  let snapshotSource = options.created;
  let tempSlot: string | null = null;
  if (!snapshotSource) {
    tempSlot = `${config.slot}_sync_${process.pid}`;
    progress.step('resuming: taking a fresh snapshot for the tables not copied yet');
    snapshotSource = await cluster.createSlot(config.primary, tempSlot, {
      exportSnapshot: true,
      temporary: true,
    });
  }
  const source = snapshotSource;
  try {
    const jobs = replicas.flatMap((replica, i) =>
      (pending[i] ?? []).map((table) => ({ replica, table })),
    );
    await planCopies(cluster, config, jobs, progress);
    await runLimited(jobs, options.concurrency, async ({ replica, table }) => {
      const label = `${table.schema}.${table.name}`;
      // A deposed sidecar stops copying at once: its copy would be thrown away.
      await requireHolder(options.holder);
      const rows = await cluster.copyTable({
        guardPid: options.guards.find((g) => g.replica === replica.name)?.pid,
        stream,
        table,
        primaryUrl: config.primary,
        snapshot: source.snapshotName as string,
        copyLsn: source.consistentPoint,
        replica,
        onProgress: (n) => progress.table(replica.name, label, n, false),
      });
      progress.table(replica.name, label, rows, true);
      copied.push({ replica: replica.name, table: label, rows });
    });
  } finally {
    await source.release();
    const temporary = tempSlot;
    if (temporary)
      await onPrimary(cluster, config.primary, (primary) => primary.slots.drop(temporary));
  }
  return copied;
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
