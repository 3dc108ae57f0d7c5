import type pg from 'pg';
import { connectNode } from '../../adapters/postgres/connection/node-connection.js';
import { migrateControlSchemas } from '../../adapters/postgres/control/control-schema.js';
import { dropJoinHolds } from '../../adapters/postgres/control/join-holds.js';
import type { ResyncGuard } from '../../adapters/postgres/control/resync-guard.js';
import { syncSequences } from '../../adapters/postgres/setup/sequence-sync.js';
import {
  type CreatedSlot,
  createReplicationSlot,
  dropReplicationSlot,
  readSlot,
  readSlotHealth,
} from '../../adapters/postgres/source/replication-slot.js';
import { describeSlotBlockers } from '../../adapters/postgres/source/slot-blockers.js';
import { configNodes } from '../config/config-nodes.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { slotLoss } from '../ports/slot-health.js';
import { type Lsn, lsnToBigInt } from '../protocol/index.js';
import { copyPending, placeAtStart } from './copy-pending.js';
import { createMissingTables, isMissingTable } from './create-missing-tables.js';
import { runDoctor } from './doctor.js';
import { removeDumpedControlSchemas } from './dumped-schema.js';
import {
  dropPlacedHolds,
  type Join,
  refuseWhileStreaming,
  startJoin,
  unplacedReplicas,
} from './join.js';
import { recordStream, setUpPublication, streamTables } from './replicated-set.js';
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
const refuseResyncWhileStreaming = (config: LockstepConfig) =>
  refuseWhileStreaming(
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
  const copying = new Set(startOver ? config.replicas.map((r) => r.name) : (options.resync ?? []));
  let report = await runDoctor(config, copying);
  if (options.createSchema && report.problems.some(isMissingTable)) {
    await createMissingTables(config, report, progress);
    report = await runDoctor(config, copying);
  }
  if (report.problems.length > 0) throw new AttachRefused(report.problems);
  const dumped = await removeDumpedControlSchemas(config, progress.step);
  if (dumped.length > 0) throw new AttachRefused(dumped);
  progress.step('creating the control schema');
  await migrateControlSchemas(configNodes(config));
  // Attached: the stream's replicated set is fixed (a different one is refused here).
  const { attached, tables } = await streamTables(config, report.tables, startOver);

  // The sidecar's epoch when its resync began: only under it may the stale mark end.
  const epoch = options.holder?.epoch();
  if (startOver) {
    await refuseResyncWhileStreaming(config);
    progress.step('starting over: finishing prepared rounds, then a new slot');
    await checkStartOver(config);
    // Stale before the old slot goes: an interrupted start-over leaves nothing that looks healthy.
    for (const name of options.resync ?? []) await markStaleBeforeResync(config, name);
    await dropOldSlot(config);
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
    await recordResets(config, [name], anchor);
  }

  const primary = await connectNode('primary', config.primary);
  let created: CreatedSlot | null = null;
  try {
    if (!attached) await setUpPublication(primary, config, tables, progress.step);
    let startLsn = await recordedStart(primary, stream);
    const slot = await readSlot(primary, config.slot);
    // Attached once, its slot gone or invalidated: only a start-over brings the replicas back.
    const health = startLsn && !startOver ? await readSlotHealth(primary, stream) : null;
    const loss = health ? slotLoss(health) : null;
    if (loss)
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
      await recordStream(primary, config, startLsn);
      // Holds of an earlier slot's stream mean nothing in this one (and would pin it).
      await dropJoinHolds(primary, stream);
      if (startOver) {
        progress.step(`emptying every replica's tables; the stream starts again at version 0`);
        const start = { version: 0, lsn: startLsn };
        for (const guard of guards) await guard.reset(stream, tables, start);
        await recordResetPositions(primary, stream, options.resync ?? [], start);
      }
    }

    const { join, skip } = await planJoin(config, options, progress, created, startLsn);
    try {
      const replicas = config.replicas.filter((r) => !skip.has(r.name));
      const copied = await copyPending(config, replicas, tables, progress, {
        created,
        holder: options.holder,
        guards: [...guards, ...(join?.guards ?? [])],
        concurrency: options.copyConcurrency ?? COPY_CONCURRENCY,
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
  // A killed attach may have placed its replica but left its hold: placed, it needs none.
  await dropPlacedHolds(config, unplaced);
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

async function recordedStart(primary: pg.ClientBase, stream: string): Promise<Lsn | null> {
  const { rows } = await primary.query<{ lsn: Lsn }>(
    'SELECT start_lsn::text AS lsn FROM lockstep.streams WHERE stream = $1',
    [stream],
  );
  return rows[0]?.lsn ?? null;
}

/** Records reset replicas' new position on the primary (see recordResetPositions). */
async function recordResets(
  config: LockstepConfig,
  names: readonly string[],
  anchor: { version: number; lsn: Lsn },
): Promise<void> {
  const primary = await connectNode('primary', config.primary);
  try {
    await recordResetPositions(primary, config.slot, names, anchor);
  } finally {
    await primary.end();
  }
}
