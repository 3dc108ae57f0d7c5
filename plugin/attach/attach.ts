import type pg from 'pg';
import { controlDb, migrateControlSchemas } from '../../adapters/postgres/control-schema.js';
import { installDdlCapture, removeDdlCapture } from '../../adapters/postgres/ddl-capture.js';
import { connectNode } from '../../adapters/postgres/node-connection.js';
import {
  type CreatedSlot,
  createReplicationSlot,
  dropReplicationSlot,
  ensurePublication,
  readSlot,
  readSlotHealth,
} from '../../adapters/postgres/replication-slot.js';
import type { ResyncGuard } from '../../adapters/postgres/resync-guard.js';
import { syncSequences } from '../../adapters/postgres/sequence-sync.js';
import { describeSlotBlockers } from '../../adapters/postgres/slot-blockers.js';
import type { CatalogTable } from '../../adapters/postgres/table-catalog.js';
import { copyTable } from '../../adapters/postgres/table-copy.js';
import { tableSizes } from '../../adapters/postgres/table-sizes.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { LockstepError } from '../lockstep-error.js';
import { slotLoss } from '../primary/slot-health.js';
import type { Lsn } from '../protocol/index.js';
import { wholeSchemas } from '../protocol/index.js';
import { createMissingTables, isMissingTable } from './create-missing-tables.js';
import { runDoctor } from './doctor.js';
import {
  clearStaleMarks,
  findResyncAnchor,
  markStaleBeforeResync,
  type ResyncHolder,
  recordResetPositions,
  requireHolder,
  withResyncGuards,
} from './resync.js';
import { checkStartOver, dropOldSlot } from './start-over.js';

/** Progress callbacks of an attach (a TTY view or plain log lines). */
export interface AttachProgress {
  /** A table copy moved on (`done` once it committed). */
  table(replica: string, table: string, rows: number, done: boolean): void;
  /** A free-text step ("creating slot", …). */
  step(message: string): void;
  /** The copies about to run, with each table's size on the primary (for rates and ETAs). */
  plan?(
    copies: ReadonlyArray<{ replica: string; table: string; bytes: number; rows: number }>,
  ): void;
}

/** What an attach did. */
export interface AttachResult {
  readonly alreadyAttached: boolean;
  readonly startLsn: Lsn;
  /** Tables copied now, per replica (tables copied by an earlier run are not counted). */
  readonly copied: ReadonlyArray<{ replica: string; table: string; rows: number }>;
  readonly seconds: number;
}

/** Options of attach. */
export interface AttachOptions {
  /**
   * Replicas to copy anew (stale ones): their tables are emptied and copied
   * from a fresh snapshot. `all`: every replica, from a new slot at version 0
   * (the way back from a lost slot).
   */
  readonly resync?: readonly string[];
  /** Set by the sidecar itself (resync: auto), which holds the slot while it resyncs. */
  readonly sidecarRunsResync?: boolean;
  /** The sidecar running the resync: it must still hold the coordinator lock (fencing). */
  readonly holder?: ResyncHolder;
  /** Replicas known to be stale (not usable as a resync's starting point). */
  readonly stale?: ReadonlySet<string>;
  /** Create replicated tables missing on replicas from the primary's definitions. */
  readonly createSchema?: boolean;
  /** Table copies run at once (default 4). */
  readonly copyConcurrency?: number;
}

/** A manual resync while a sidecar streams could race the slot past the resync's starting point. */
async function refuseWhileStreaming(config: LockstepConfig): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  try {
    if ((await readSlot(primary, config.slot))?.active) {
      throw new LockstepError({
        node: 'primary',
        setting: 'replication slot',
        problem: `the slot "${config.slot}" is in use: a lockstep run is streaming`,
        fix: 'stop lockstep run before a manual resync, or set resync: "auto" and let the sidecar do it',
      });
    }
  } finally {
    await primary.end();
  }
}

/** Thrown when doctor finds problems: attach changes nothing then. */
export class AttachRefused extends Error {
  constructor(readonly problems: readonly LockstepError[]) {
    super(`attach refused: ${problems.length} problem(s) found by doctor`);
    this.name = 'AttachRefused';
  }
}

const COPY_CONCURRENCY = 4;

/**
 * Attaches lockstep to the configured nodes: doctor, control schema,
 * publication, slot with an exported snapshot, a copy of every table to every
 * replica from that snapshot, and version 0 at the slot's start on each
 * replica. Safe to run again: an interrupted attach resumes (copied tables are
 * not copied again) and a completed one is a no-op.
 */
export async function attach(
  config: LockstepConfig,
  progress: AttachProgress,
  options: AttachOptions = {},
): Promise<AttachResult> {
  const all = options.resync?.includes('all') === true;
  const resync = all ? config.replicas.map((r) => r.name) : options.resync;
  // A resync holds each resynced replica's resync lock from before its reset to the end.
  return withResyncGuards(config, resync ?? [], !options.sidecarRunsResync, (guards) =>
    attachGuarded(config, progress, { ...options, resync }, guards, all),
  );
}

async function attachGuarded(
  config: LockstepConfig,
  progress: AttachProgress,
  options: AttachOptions,
  guards: readonly ResyncGuard[],
  /** Every replica anew from a new slot (`--resync all`). */
  startOver = false,
): Promise<AttachResult> {
  const started = Date.now();
  const stream = config.slot;
  progress.step('checking nodes (doctor)');
  let report = await runDoctor(config);
  if (options.createSchema && report.problems.some(isMissingTable)) {
    await createMissingTables(config, report, progress);
    report = await runDoctor(config);
  }
  if (report.problems.length > 0) throw new AttachRefused(report.problems);
  const tables = report.tables;

  // The sidecar's epoch when its resync began: only under it may the stale mark end.
  const epoch = options.holder?.epoch();
  if (startOver) {
    await refuseWhileStreaming(config);
    progress.step('starting over: finishing prepared rounds, then a new slot');
    await checkStartOver(config);
    // Stale before the old slot goes: an interrupted start-over leaves nothing that looks healthy.
    for (const name of options.resync ?? []) await markStaleBeforeResync(config, name);
    await dropOldSlot(config);
  }
  for (const name of startOver ? [] : (options.resync ?? [])) {
    if (!options.sidecarRunsResync) {
      await refuseWhileStreaming(config);
      await markStaleBeforeResync(config, name);
    }
    await requireHolder(options.holder);
    const anchor = await findResyncAnchor(
      config,
      name,
      new Set([...(options.resync ?? []), ...(options.stale ?? [])]),
    );
    progress.step(
      `resync ${name}: emptying its tables; it restarts from version ${anchor.version}`,
    );
    await guards.find((g) => g.replica === name)?.reset(stream, tables, anchor);
    const primary = await connectNode('primary', config.primary);
    try {
      await recordResetPositions(primary, stream, [name], anchor);
    } finally {
      await primary.end();
    }
  }

  progress.step('creating the control schema');
  await migrateControlSchemas(configNodes(config));

  const primary = await connectNode('primary', config.primary);
  let created: CreatedSlot | null = null;
  try {
    // Captured DDL: whole-schema patterns publish their schemas, so tables created later stream at once.
    const schemas = config.twoPhase.captureDdl ? wholeSchemas(config.tables) : [];
    await ensurePublication(primary, config.publication, tables, schemas);
    if (config.twoPhase.captureDdl) {
      progress.step('installing the DDL capture (event trigger lockstep_capture_ddl)');
      await installDdlCapture(primary);
    } else {
      await removeDdlCapture(primary);
    }
    let startLsn = await recordedStart(primary, stream);
    const slot = await readSlot(primary, config.slot);
    // Attached once, its slot gone or invalidated: only a start-over brings the replicas back.
    const health = startLsn ? await readSlotHealth(primary, stream) : null;
    const loss = health ? slotLoss(health) : null;
    if (loss && !startOver)
      throw new LockstepError({
        node: 'primary',
        setting: 'replication slot',
        problem: loss.reason,
        fix: loss.fix,
      });
    if (!slot || !startLsn) {
      if (slot) {
        // A slot from an attach that died before recording it: nothing can depend on it yet.
        await dropReplicationSlot(primary, config.slot);
      }
      progress.step(`creating replication slot "${config.slot}"`);
      created = await createReplicationSlot(config.primary, config.slot, {
        exportSnapshot: true,
        onBlocked: (blockers) => progress.step(describeSlotBlockers(blockers)),
      });
      startLsn = created.consistentPoint;
      await primary.query(
        `INSERT INTO lockstep.streams (stream, slot, publication, start_lsn) VALUES ($1, $2, $3, $4)
         ON CONFLICT (stream) DO UPDATE SET slot = excluded.slot, publication = excluded.publication,
           start_lsn = excluded.start_lsn, attached_at = now(), version = 0, lsn = NULL`,
        [stream, config.slot, config.publication, startLsn],
      );
      if (startOver) {
        progress.step(`emptying every replica's tables; the stream starts again at version 0`);
        const start = { version: 0, lsn: startLsn };
        for (const guard of guards) await guard.reset(stream, tables, start);
        await recordResetPositions(primary, stream, options.resync ?? [], start);
      }
    }

    const pending = await Promise.all(config.replicas.map((r) => pendingTables(r, stream, tables)));
    const copied: { replica: string; table: string; rows: number }[] = [];
    if (pending.some((p) => p.length > 0)) {
      // The slot's own snapshot if we just made it; otherwise a temporary slot's, whose
      // later start LSN tells the applier which of those tables' changes the copy already holds.
      let snapshotSource = created;
      let tempSlot: string | null = null;
      if (!snapshotSource) {
        tempSlot = `${config.slot}_sync_${process.pid}`;
        progress.step('resuming: taking a fresh snapshot for the tables not copied yet');
        snapshotSource = await createReplicationSlot(config.primary, tempSlot, {
          exportSnapshot: true,
        });
      }
      try {
        const jobs = config.replicas.flatMap((replica, i) =>
          (pending[i] ?? []).map((table) => ({ replica, table })),
        );
        const sizes = await tableSizes(primary, tables);
        progress.plan?.(
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
        const concurrency = options.copyConcurrency ?? COPY_CONCURRENCY;
        await runLimited(jobs, concurrency, async ({ replica, table }) => {
          const label = `${table.schema}.${table.name}`;
          // A deposed sidecar stops copying at once: its copy would be thrown away.
          await requireHolder(options.holder);
          const rows = await copyTable({
            guardPid: guards.find((g) => g.replica === replica.name)?.pid,
            stream,
            table,
            primaryUrl: config.primary,
            snapshot: snapshotSource.snapshotName as string,
            copyLsn: snapshotSource.consistentPoint,
            replica,
            onProgress: (n) => progress.table(replica.name, label, n, false),
          });
          progress.table(replica.name, label, rows, true);
          copied.push({ replica: replica.name, table: label, rows });
        });
      } finally {
        await snapshotSource.release();
        if (tempSlot) await dropReplicationSlot(primary, tempSlot);
      }
    }

    let newlyPositioned = 0;
    for (const replica of config.replicas) {
      const db = await controlDb(replica.url);
      try {
        const result = await db
          .insertInto('lockstep.applied' as never)
          .values({ stream, version: 0, lsn: startLsn } as never)
          .onConflict((oc) => oc.doNothing())
          .executeTakeFirst();
        newlyPositioned += Number(result.numInsertedOrUpdatedRows ?? 0);
      } finally {
        await db.destroy();
      }
    }
    progress.step('copying sequence values');
    const sequences = await syncSequences(config.primary, config.publication, config.replicas);
    const unreached = Object.entries(sequences.failed);
    if (unreached.length > 0) {
      throw new LockstepError({
        node: unreached[0]?.[0] as string,
        problem: `cannot copy sequence values: ${unreached[0]?.[1]}`,
        fix: 'check the replica and run lockstep attach again (it resumes)',
      });
    }
    if (options.resync?.length) {
      // Copied anew: the durable stale mark ends here, not before (a failed copy leaves it stale).
      await clearStaleMarks(primary, stream, options.resync, guards, options.holder, epoch);
    }
    return {
      alreadyAttached: copied.length === 0 && newlyPositioned === 0 && !created,
      startLsn,
      copied,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await created?.release();
    await primary.end();
  }
}

async function recordedStart(primary: pg.ClientBase, stream: string): Promise<Lsn | null> {
  const { rows } = await primary.query<{ lsn: Lsn }>(
    'SELECT start_lsn::text AS lsn FROM lockstep.streams WHERE stream = $1',
    [stream],
  );
  return rows[0]?.lsn ?? null;
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
