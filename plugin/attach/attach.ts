import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig } from '../config/config-schema.js';
import type { CatalogTable } from '../ports/catalog-table.js';
import type { PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { CreatedSlot } from '../ports/replication-slots.js';
import type { ResyncGuardPort } from '../ports/resync-guard.js';
import { slotLoss } from '../ports/slot-health.js';
import { type Lsn, versionZeroLsn } from '../protocol/index.js';
import type { AttachCluster } from './attach-cluster.js';
import type { AttachProgress } from './attach-progress.js';
import {
  busResyncAnchor,
  othersUnplaced,
  refuseBusStartOver,
  refuseOthersUnplaced,
} from './bus-resync.js';
import { copyMigrationHistory } from './copy-migration-history.js';
import { copyPending, placeAtStart } from './copy-pending.js';
import { copySequences } from './copy-sequences.js';
import { createMissingTables, isMissingTable } from './create-missing-tables.js';
import { type DoctorReport, runDoctor } from './doctor.js';
import { removeDumpedControlSchemas } from './dumped-schema.js';
import {
  dropPlacedHolds,
  type Join,
  refuseIfConsumed,
  refuseWhileStreaming,
  startJoin,
  unplacedReplicas,
} from './join.js';
import { watchedPrimarySession } from './node-step.js';
import { recordStream, setUpPublication, streamTables } from './replicated-set.js';
import {
  clearStaleMarks,
  findResyncAnchor,
  markStaleBeforeResync,
  onResyncPrimary,
  type ResyncAnchor,
  type ResyncHolder,
  recordResetPositions,
  requireHolder,
  withResyncGuards,
} from './resync.js';
import { slotBlockersStep } from './slot-blockers-step.js';
import { checkStartOver, dropOldSlot } from './start-over.js';

export type { AttachProgress, StepFields } from './attach-progress.js';

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
const refuseResyncWhileStreaming = (cluster: AttachCluster, config: LockstepConfig) =>
  refuseWhileStreaming(
    cluster,
    config,
    'stop lockstep run before a manual resync, or set resync: "auto" and let the sidecar do it',
  );

/** Thrown when doctor finds problems: attach changes nothing then. */
export class AttachRefused extends Error {
  constructor(readonly problems: readonly LockstepError[]) {
    super(`attach refused: ${problems.length} problem(s) found by doctor`);
    this.name = 'AttachRefused';
  }
}

const COPY_CONCURRENCY = 4;

/** What the phases of one attach share. */
interface AttachRun {
  readonly cluster: AttachCluster;
  readonly config: LockstepConfig;
  readonly progress: AttachProgress;
  readonly options: AttachOptions;
  readonly guards: readonly ResyncGuardPort[];
  /** Every replica anew from a new slot (`--resync all`). */
  readonly startOver: boolean;
  /**
   * With `bus`, resynced replicas left without a position by their reset and
   * their anchors: each is placed only once all its tables are copied (its
   * agent applies nothing to a half-copied replica), as a join is.
   */
  readonly placeAfterCopy: Map<string, ResyncAnchor>;
}

/**
 * Attaches lockstep to the configured nodes: doctor, control schema,
 * publication, slot with an exported snapshot, a copy of every table to every
 * replica from that snapshot, and version 0 at the slot's start on each
 * replica. Safe to run again: an interrupted attach resumes (copied tables are
 * not copied again) and a completed one is a no-op.
 */
export async function attach(
  cluster: AttachCluster,
  config: LockstepConfig,
  progress: AttachProgress,
  options: AttachOptions = {},
): Promise<AttachResult> {
  const all = options.resync?.includes('all') === true;
  // Before any lock, mark or reset: nothing is changed.
  if (all && config.bus) throw refuseBusStartOver(config);
  const resync = all ? config.replicas.map((r) => r.name) : options.resync;
  if (config.bus && resync?.length) await refuseOthersUnplaced(cluster, config, resync);
  // A resync holds each resynced replica's resync lock from before its reset to the end.
  const run = { manual: !options.sidecarRunsResync, startOver: all };
  return withResyncGuards(cluster, config, resync ?? [], run, (guards) =>
    attachGuarded({
      cluster,
      config,
      progress,
      options: { ...options, resync },
      guards,
      startOver: all,
      placeAfterCopy: new Map(),
    }),
  );
}

async function attachGuarded(run: AttachRun): Promise<AttachResult> {
  const started = Date.now();
  const { cluster, config, options } = run;
  const report = await checkNodes(run);
  run.progress.step('creating the control schema');
  await cluster.migrateControlSchemas(configNodes(config));
  // Attached: the stream's replicated set is fixed (a different one is refused here).
  const { attached, tables } = await streamTables(cluster, config, report.tables, run.startOver);
  // The sidecar's epoch when its resync began: only under it may the stale mark end.
  const epoch = options.holder?.epoch();
  await resetResynced(run, tables);
  const primary = await cluster.primary(config.primary, watchedPrimarySession(config));
  let created: CreatedSlot | null = null;
  try {
    if (!attached) await setUpPublication(primary, config, tables, run.progress.step);
    const slot = await ensureSlot(run, primary, tables);
    created = slot.created;
    const { alreadyAttached, copied } = await copyAndPlace(run, primary, tables, slot, epoch);
    const seconds = (Date.now() - started) / 1000;
    return { alreadyAttached, startLsn: slot.startLsn, copied, seconds };
  } finally {
    await created?.release();
    await primary.close();
  }
}

/** Doctor (creating missing tables first with --create-schema), and no dumped control schema left. */
async function checkNodes(run: AttachRun): Promise<DoctorReport> {
  const { cluster, config, options, progress } = run;
  progress.step('checking nodes (doctor)');
  const copying = new Set(
    run.startOver ? config.replicas.map((r) => r.name) : (options.resync ?? []),
  );
  let report = await runDoctor(cluster, config, copying);
  if (options.createSchema && report.problems.some(isMissingTable)) {
    await createMissingTables(cluster, config, report, progress);
    report = await runDoctor(cluster, config, copying);
  }
  if (report.problems.length > 0) throw new AttachRefused(report.problems);
  const dumped = await removeDumpedControlSchemas(cluster, config, progress.step);
  if (dumped.length > 0) throw new AttachRefused(dumped);
  return report;
}

/** A start-over's old slot goes; each resynced replica is emptied and placed at its anchor. */
async function resetResynced(run: AttachRun, tables: readonly CatalogTable[]): Promise<void> {
  const { cluster, config, options, progress } = run;
  if (run.startOver) {
    await refuseResyncWhileStreaming(cluster, config);
    progress.step('starting over: finishing prepared rounds, then a new slot');
    await checkStartOver(cluster, config);
    // Stale before the old slot goes: an interrupted start-over leaves nothing that looks healthy.
    for (const name of options.resync ?? []) await markStaleBeforeResync(cluster, config, name);
    await dropOldSlot(cluster, config);
  }
  for (const name of run.startOver ? [] : (options.resync ?? [])) {
    // With bus the publisher may stream on: the anchor is its head, not WAL the slot keeps.
    if (!options.sidecarRunsResync) {
      if (!config.bus) await refuseResyncWhileStreaming(cluster, config);
      await markStaleBeforeResync(cluster, config, name);
    }
    await requireHolder(options.holder);
    const anchor = await resyncAnchor(run, name);
    progress.step('resync: emptying the replica', { replica: name, version: anchor.version });
    // With bus its agent does not honour the primary's stale mark: no position until copied.
    const placed = config.bus ? null : anchor;
    await run.guards.find((g) => g.replica === name)?.reset(config.slot, tables, placed);
    if (!placed) run.placeAfterCopy.set(name, anchor);
    // The sidecar's last-known position must not stay the old one.
    await onResyncPrimary(
      cluster,
      config,
      `recording ${name}'s new position (it is emptied; it stays stale until attach ends)`,
      (primary) => recordResetPositions(primary, config.slot, [name], anchor),
    );
  }
}

/** Where a resynced replica restarts: see findResyncAnchor, and busResyncAnchor with `bus`. */
function resyncAnchor(run: AttachRun, name: string): Promise<ResyncAnchor> {
  const { cluster, config, options } = run;
  if (config.bus)
    return onResyncPrimary(
      cluster,
      config,
      `reading the stream's recorded head (where ${name} restarts; nothing emptied yet)`,
      (primary) => busResyncAnchor(primary, config.slot),
    );
  const excluded = new Set([...(options.resync ?? []), ...(options.stale ?? [])]);
  return findResyncAnchor(cluster, config, name, excluded);
}

/**
 * The stream's slot: the recorded one when it is still usable, else a new one
 * (with an exported snapshot) recorded as the stream's start.
 */
async function ensureSlot(
  run: AttachRun,
  primary: PrimarySession,
  tables: readonly CatalogTable[],
): Promise<{ created: CreatedSlot | null; startLsn: Lsn }> {
  const { cluster, config, options, progress } = run;
  const stream = config.slot;
  const startLsn = await primary.streams.startLsn(stream);
  const slot = await primary.slots.read(config.slot);
  // Attached once, its slot gone or invalidated: only a start-over brings the replicas back.
  const health = startLsn && !run.startOver ? await primary.slots.health(stream) : null;
  const loss = health ? slotLoss(health) : null;
  if (loss)
    throw new LockstepError({
      node: 'primary',
      setting: 'replication slot',
      problem: loss.reason,
      fix: loss.fix,
    });
  if (slot && startLsn) return { created: null, startLsn };
  // A slot from an attach that died before recording it: nothing can depend on it yet.
  if (slot) await primary.slots.drop(config.slot);
  progress.step('creating the replication slot', { slot: config.slot });
  const created = await cluster.createSlot(config.primary, config.slot, {
    exportSnapshot: true,
    onBlocked: (blockers) => progress.step(...slotBlockersStep(blockers)),
    boundMs: config.applyTimeoutMs,
  });
  try {
    const start = versionZeroLsn(created.consistentPoint);
    await recordStream(primary, config, start);
    // Holds of an earlier slot's stream mean nothing in this one (and would pin it).
    await primary.joinHolds.drop(stream);
    if (run.startOver) {
      progress.step('starting over: emptying every replica', { version: 0 });
      const position = { version: 0, lsn: start };
      for (const guard of run.guards) await guard.reset(stream, tables, position);
      await recordResetPositions(primary, stream, options.resync ?? [], position);
    }
    return { created, startLsn: start };
  } catch (error) {
    await created.release();
    throw error;
  }
}

/**
 * The copies (joining replicas placed at their anchor, the others at the
 * stream's start), the sequence values, and the end of resynced replicas'
 * stale marks.
 */
async function copyAndPlace(
  run: AttachRun,
  primary: PrimarySession,
  tables: readonly CatalogTable[],
  { created, startLsn }: { created: CreatedSlot | null; startLsn: Lsn },
  epoch: number | null | undefined,
): Promise<Omit<AttachResult, 'startLsn' | 'seconds'>> {
  const { cluster, config, options, progress } = run;
  const { join, skip } = await planJoin(run, created, startLsn);
  try {
    const replicas = config.replicas.filter((r) => !skip.has(r.name));
    const copied = await copyPending(cluster, config, replicas, tables, progress, {
      created,
      holder: options.holder,
      guards: [...run.guards, ...(join?.guards ?? [])],
      concurrency: options.copyConcurrency ?? COPY_CONCURRENCY,
    });
    await join?.place();
    for (const [name, anchor] of run.placeAfterCopy)
      await run.guards.find((g) => g.replica === name)?.place(config.slot, anchor);
    const joined = new Set([...(join?.replicas ?? []), ...run.placeAfterCopy.keys()]);
    let newlyPositioned = joined.size;
    for (const replica of replicas)
      if (!joined.has(replica.name))
        newlyPositioned += await placeAtStart(cluster, replica, config.slot, startLsn);
    await copySequences(cluster, config, progress, replicas);
    const copiedNow = new Set([...copied.map((c) => c.replica), ...(options.resync ?? [])]);
    await copyMigrationHistory(cluster, config, copiedNow, progress);
    if (options.resync?.length) {
      // Copied anew: the durable stale mark ends here, not before (a failed copy leaves it stale).
      await clearStaleMarks(
        primary,
        config.slot,
        options.resync,
        run.guards,
        options.holder,
        epoch,
      );
    }
    await join?.verify();
    return {
      alreadyAttached: copied.length === 0 && newlyPositioned === 0 && !created,
      copied,
    };
  } finally {
    await join?.release();
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
  run: AttachRun,
  created: CreatedSlot | null,
  startLsn: Lsn,
): Promise<{ join: Join | null; skip: ReadonlySet<string> }> {
  const { cluster, config, options, progress } = run;
  const none = { join: null, skip: new Set<string>() };
  if (created) return none;
  const unplaced = await unplacedReplicas(cluster, config);
  // A killed attach may have placed its replica but left its hold: placed, it needs none.
  await dropPlacedHolds(cluster, config, unplaced);
  // A bus resync's own replicas: copied and placed by it, not joined.
  for (const name of run.placeAfterCopy.keys()) unplaced.delete(name);
  if (unplaced.size === 0) return none;
  if (options.sidecarRunsResync) return { join: null, skip: unplaced };
  // With bus no coordinator lock is held to join under (another resync ran at the same time).
  if (config.bus && options.resync?.length)
    throw othersUnplaced(config, options.resync, [...unplaced]);
  if (unplaced.size === config.replicas.length) {
    await refuseIfConsumed(cluster, config, startLsn);
    return none;
  }
  // A manual resync already holds the coordinator lock (no sidecar runs).
  const lockHeld = (options.resync?.length ?? 0) > 0;
  const join = await startJoin(cluster, config, [...unplaced], progress.step, lockHeld);
  return { join, skip: new Set() };
}
