import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { controlDb } from '../../adapters/postgres/control/control-schema.js';
import type { ResyncGuard } from '../../adapters/postgres/control/resync-guard.js';
import type { CatalogTable } from '../../adapters/postgres/setup/table-catalog.js';
import { copyTable } from '../../adapters/postgres/setup/table-copy.js';
import { tableSizes } from '../../adapters/postgres/setup/table-sizes.js';
import {
  type CreatedSlot,
  createReplicationSlot,
  dropReplicationSlot,
} from '../../adapters/postgres/source/replication-slot.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import type { Lsn } from '../protocol/index.js';
import type { AttachProgress } from './attach.js';
import { type ResyncHolder, requireHolder } from './resync.js';

/** Tells the progress view each copy's table size on the primary (for bytes, rates and ETAs). */
async function planCopies(
  config: LockstepConfig,
  jobs: ReadonlyArray<{ replica: ReplicaConfig; table: CatalogTable }>,
  progress: AttachProgress,
): Promise<void> {
  if (!progress.plan) return;
  const primary = await connectNode('primary', config.primary);
  let sizes: Awaited<ReturnType<typeof tableSizes>>;
  try {
    sizes = await tableSizes(
      primary,
      jobs.map((j) => j.table),
    );
  } finally {
    await primary.end();
  }
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
  config: LockstepConfig,
  replicas: readonly ReplicaConfig[],
  tables: readonly CatalogTable[],
  progress: AttachProgress,
  options: {
    created: CreatedSlot | null;
    holder?: ResyncHolder;
    guards: readonly ResyncGuard[];
    /** Table copies at once. */
    concurrency: number;
  },
): Promise<Array<{ replica: string; table: string; rows: number }>> {
  const stream = config.slot;
  const pending = await Promise.all(replicas.map((r) => pendingTables(r, stream, tables)));
  const copied: { replica: string; table: string; rows: number }[] = [];
  if (!pending.some((p) => p.length > 0)) return copied;
  let snapshotSource = options.created;
  let tempSlot: string | null = null;
  if (!snapshotSource) {
    tempSlot = `${config.slot}_sync_${process.pid}`;
    progress.step('resuming: taking a fresh snapshot for the tables not copied yet');
    snapshotSource = await createReplicationSlot(config.primary, tempSlot, {
      exportSnapshot: true,
      temporary: true,
    });
  }
  const source = snapshotSource;
  try {
    const jobs = replicas.flatMap((replica, i) =>
      (pending[i] ?? []).map((table) => ({ replica, table })),
    );
    await planCopies(config, jobs, progress);
    await runLimited(jobs, options.concurrency, async ({ replica, table }) => {
      const label = `${table.schema}.${table.name}`;
      // A deposed sidecar stops copying at once: its copy would be thrown away.
      await requireHolder(options.holder);
      const rows = await copyTable({
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
    if (tempSlot) {
      const primary = await connectNode('primary', config.primary);
      try {
        await dropReplicationSlot(primary, tempSlot);
      } finally {
        await primary.end();
      }
    }
  }
  return copied;
}

/** Version 0 at the stream's start, for a replica without a position (a first attach); 1 if placed now. */
export async function placeAtStart(
  replica: ReplicaConfig,
  stream: string,
  startLsn: Lsn,
): Promise<number> {
  const db = await controlDb(replica.url);
  try {
    const result = await db
      .insertInto('lockstep.applied')
      .values({ stream, version: 0, lsn: startLsn })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0);
  } finally {
    await db.destroy();
  }
}

/** The replicated tables this replica has not had copied yet. */
async function pendingTables(
  replica: ReplicaConfig,
  stream: string,
  tables: readonly CatalogTable[],
): Promise<CatalogTable[]> {
  const client = await connectNode(replica.name, replica.url);
  try {
    const { rows } = await client.query<{ schema_name: string; table_name: string }>(
      'SELECT schema_name, table_name FROM lockstep.synced_tables WHERE stream = $1',
      [stream],
    );
    const done = new Set(rows.map((r) => `${r.schema_name}\u0000${r.table_name}`));
    return tables.filter((t) => !done.has(`${t.schema}\u0000${t.name}`));
  } finally {
    await client.end();
  }
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
