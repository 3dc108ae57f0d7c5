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
} from '../../adapters/postgres/replication-slot.js';
import type { ResyncGuard } from '../../adapters/postgres/resync-guard.js';
import { syncSequences } from '../../adapters/postgres/sequence-sync.js';
import { type CatalogTable, createTableStatement } from '../../adapters/postgres/table-catalog.js';
import { copyTable } from '../../adapters/postgres/table-copy.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig, ReplicaConfig } from '../config/config-schema.js';
import { LockstepError } from '../lockstep-error.js';
import { type Lsn, lsnToBigInt, wholeSchemas } from '../protocol/index.js';
import { type DoctorReport, runDoctor } from './doctor.js';
import { removeDumpedControlSchemas } from './dumped-schema.js';
import { type Join, refuseWhileStreaming, startJoin, unplacedReplicas } from './join.js';
import {
  clearStaleMarks,
  findResyncAnchor,
  markStaleBeforeResync,
  type ResyncHolder,
  requireHolder,
  withResyncGuards,
} from './resync.js';
import { prepareStartOver } from './start-over.js';
import { MISSING_TABLE_PROBLEM } from './table-compatibility.js';

/** Progress callbacks of an attach (a TTY view or plain log lines). */
export interface AttachProgress {
  /** A table copy moved on (`done` once it committed). */
  table(replica: string, table: string, rows: number, done: boolean): void;
  /** A free-text step ("creating slot", …). */
  step(message: string): void;
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
}

/** A manual resync while a sidecar streams could race the slot past the resync's starting point. */
const refuseResyncWhileStreaming = (config: LockstepConfig) =>
  refuseWhileStreaming(
    config,
    'stop lockstep run before a manual resync, or set resync: "auto" and let the sidecar do it',
  );

const isMissingTable = (problem: LockstepError) =>
  problem.table !== undefined && problem.message.includes(MISSING_TABLE_PROBLEM);

/** --create-schema: creates on each replica the replicated tables it lacks, from the primary's catalog. */
async function createMissingTables(
  config: LockstepConfig,
  report: DoctorReport,
  progress: AttachProgress,
): Promise<void> {
  for (const replica of config.replicas) {
    const missing = report.problems
      .filter((p) => p.node === replica.name && isMissingTable(p))
      .map((p) => p.table);
    if (missing.length === 0) continue;
    const client = await connectNode(replica.name, replica.url);
    try {
      for (const table of report.tables.filter((t) => missing.includes(`${t.schema}.${t.name}`))) {
        try {
          await client.query(createTableStatement(table));
        } catch (error) {
          throw new LockstepError({
            node: replica.name,
            table: `${table.schema}.${table.name}`,
            problem: `cannot create the table: ${(error as Error).message}`,
            fix: 'create what it depends on (types, schemas) on the replica, or create the table yourself (pg_dump --schema-only -t …)',
            cause: error,
          });
        }
        progress.step(`created ${table.schema}.${table.name} on ${replica.name}`);
      }
    } finally {
      await client.end();
    }
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
  const dumped = await removeDumpedControlSchemas(config, progress.step);
  if (dumped.length > 0) throw new AttachRefused(dumped);

  // The sidecar's epoch when its resync began: only under it may the stale mark end.
  const epoch = options.holder?.epoch();
  if (startOver) {
    await refuseResyncWhileStreaming(config);
    for (const name of options.resync ?? []) await markStaleBeforeResync(config, name);
    progress.step('starting over: finishing prepared rounds, dropping the old slot');
    await prepareStartOver(config);
  }
  for (const name of startOver ? [] : (options.resync ?? [])) {
    if (!options.sidecarRunsResync) {
      await refuseResyncWhileStreaming(config);
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
    if (!slot || !startLsn) {
      if (slot) {
        // A slot from an attach that died before recording it: nothing can depend on it yet.
        await dropReplicationSlot(primary, config.slot);
      }
      progress.step(`creating replication slot "${config.slot}"`);
      created = await createReplicationSlot(config.primary, config.slot, { exportSnapshot: true });
      startLsn = created.consistentPoint;
      await primary.query(
        `INSERT INTO lockstep.streams (stream, slot, publication, start_lsn) VALUES ($1, $2, $3, $4)
         ON CONFLICT (stream) DO UPDATE SET slot = excluded.slot, publication = excluded.publication,
           start_lsn = excluded.start_lsn, attached_at = now(), version = 0, lsn = NULL`,
        [stream, config.slot, config.publication, startLsn],
      );
      if (startOver) {
        progress.step(`emptying every replica's tables; the stream starts again at version 0`);
        for (const guard of guards)
          await guard.reset(stream, tables, { version: 0, lsn: startLsn });
      }
    }

    const { join, skip } = await planJoin(config, options, progress, created, startLsn);
    try {
      const replicas = config.replicas.filter((r) => !skip.has(r.name));
      const copied = await copyPending(config, replicas, tables, progress, {
        created,
        holder: options.holder,
        guards: [...guards, ...(join?.guards ?? [])],
      });
      await join?.place();
      const joined = new Set(join?.replicas);
      let newlyPositioned = joined.size;
      for (const replica of replicas)
        if (!joined.has(replica.name))
          newlyPositioned += await placeAtStart(replica, stream, startLsn);
      progress.step('copying sequence values');
      const sequences = await syncSequences(config.primary, config.publication, replicas);
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
      await join?.verify();
      return {
        alreadyAttached: copied.length === 0 && newlyPositioned === 0 && !created,
        startLsn,
        copied,
        seconds: (Date.now() - started) / 1000,
      };
    } finally {
      await join?.release();
    }
  } finally {
    await created?.release();
    await primary.end();
  }
}

/**
 * Which replicas join an attached stream now (see join.ts): those without a
 * position while others have one. None joins right after the slot was made,
 * or when no replica has a position yet (an interrupted first attach: every
 * replica starts at version 0, which the slot was never confirmed past). A
 * sidecar's own resync leaves replicas without a position to attach (`skip`).
 */
async function planJoin(
  config: LockstepConfig,
  options: AttachOptions,
  progress: AttachProgress,
  created: CreatedSlot | null,
  startLsn: Lsn,
): Promise<{ join: Join | null; skip: ReadonlySet<string> }> {
  const none = { join: null, skip: new Set<string>() };
  if (created) return none;
  const unplaced = await unplacedReplicas(config);
  if (unplaced.size === 0) return none;
  if (options.sidecarRunsResync) return { join: null, skip: unplaced };
  if (unplaced.size === config.replicas.length) {
    await refuseIfConsumed(config, startLsn);
    return none;
  }
  // A manual resync already holds the coordinator lock (no sidecar runs).
  const lockHeld = (options.resync?.length ?? 0) > 0;
  return { join: await startJoin(config, [...unplaced], progress.step, lockHeld), skip: new Set() };
}

/** No replica has a position, but the slot moved on: version 0 is gone, so none can start there. */
async function refuseIfConsumed(config: LockstepConfig, startLsn: Lsn): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  try {
    const confirmed = (await readSlot(primary, config.slot))?.confirmedFlushLsn;
    if (confirmed && lsnToBigInt(confirmed) > lsnToBigInt(startLsn) + 1n)
      throw new LockstepError({
        node: 'primary',
        problem: `no replica has a position in stream "${config.slot}", and its slot moved past the stream's start: no replica can start from a position the slot still has`,
        fix: 'lockstep attach --resync all (a new slot; every replica copied from its snapshot)',
      });
  } finally {
    await primary.end();
  }
}

/**
 * Copies the tables each replica has not had copied yet: from the slot's own
 * snapshot if it was just made, otherwise from a temporary slot's, whose
 * later start LSN tells the applier which of those tables' changes the copy
 * already holds.
 */
async function copyPending(
  config: LockstepConfig,
  replicas: readonly ReplicaConfig[],
  tables: readonly CatalogTable[],
  progress: AttachProgress,
  options: { created: CreatedSlot | null; holder?: ResyncHolder; guards: readonly ResyncGuard[] },
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
    });
  }
  const source = snapshotSource;
  try {
    const jobs = replicas.flatMap((replica, i) =>
      (pending[i] ?? []).map((table) => ({ replica, table })),
    );
    await runLimited(jobs, COPY_CONCURRENCY, async ({ replica, table }) => {
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
async function placeAtStart(
  replica: ReplicaConfig,
  stream: string,
  startLsn: Lsn,
): Promise<number> {
  const db = await controlDb(replica.url);
  try {
    const result = await db
      .insertInto('lockstep.applied' as never)
      .values({ stream, version: 0, lsn: startLsn } as never)
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0);
  } finally {
    await db.destroy();
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
