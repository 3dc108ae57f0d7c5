import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster, NodeSession, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { isMigrationGid, parseGid } from '../protocol/index.js';
import { onReplica } from './attach-cluster.js';
import {
  lockNotTaken,
  nodeStepError,
  primaryCommandSession,
  primaryStepError,
} from './node-step.js';

/** What `detach` removed. */
export interface DetachResult {
  readonly slotDropped: boolean;
  readonly publicationDropped: boolean;
  /** Replicas whose position rows for the stream were removed. */
  readonly replicasReset: readonly string[];
}

/**
 * `lockstep detach`: drops the slot (so the primary keeps no more WAL for
 * lockstep), the publication and the DDL event trigger, and forgets the
 * stream's positions; all data, the decision log and migration history stay.
 * Refuses while a sidecar is active or a lockstep transaction is prepared
 * somewhere, unless `force` (which also ends the active sidecar's stream).
 */
export async function detach(
  cluster: LockstepCluster,
  config: LockstepConfig,
  force = false,
): Promise<DetachResult> {
  const lock = cluster.streamLock(config.primary, config.slot);
  const free = await lock.tryAcquire().catch((error: unknown) => {
    throw lockNotTaken(config.slot, error);
  });
  try {
    if (!free && !force) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep sidecar for stream "${config.slot}" is running (it holds the coordinator lock)`,
        fix: 'stop it first, or run lockstep detach --force (its stream ends with the slot)',
      });
    }
    const primary = await cluster.primary(
      config.primary,
      primaryCommandSession(config, 'lockstep-detach'),
    );
    try {
      if (!force) await refuseWhilePrepared(cluster, config, primary);
      const { slotDropped, publicationDropped } = await detachOnPrimary(primary, config, force);
      const replicasReset = await forgetPositions(cluster, config);
      return { slotDropped, publicationDropped, replicasReset };
    } finally {
      await primary.close();
    }
  } finally {
    await lock.release();
  }
}

/**
 * The primary's part of detach, step by step. Each step is idempotent, so a
 * step that fails (a primary that stops answering fails it after
 * applyTimeoutMs) ends detach with what was done and what is left, and
 * running detach again finishes the job.
 */
async function detachOnPrimary(primary: PrimarySession, config: LockstepConfig, force: boolean) {
  const done: string[] = [];
  const step = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    try {
      const result = await work();
      done.push(what);
      return result;
    } catch (error) {
      throw primaryStepError(
        `${what} (detach; done: ${done.join(', ') || 'nothing'}; left: ${PRIMARY_STEPS.slice(PRIMARY_STEPS.indexOf(what)).join(', ')}, the replicas' positions)`,
        config.applyTimeoutMs,
        error,
        'run lockstep detach again (it finishes what is left)',
      );
    }
  };
  // The running sidecar's walsender holds the slot: end it so the slot can go.
  if (force) await step(ENDING_STREAM, () => primary.slots.terminateConsumer(config.slot));
  const slotDropped = await step(DROPPING_SLOT, () => primary.slots.drop(config.slot));
  const publicationDropped = await step(DROPPING_PUBLICATION, async () => {
    const existed = await primary.setup.publicationExists(config.publication);
    await primary.setup.dropPublication(config.publication);
    return existed;
  });
  await step(REMOVING_CAPTURE, () => primary.setup.removeDdlCapture());
  await step(FORGETTING_STREAM, () => forgetStreamOnPrimary(primary, config.slot));
  return { slotDropped, publicationDropped };
}

const ENDING_STREAM = "ending the sidecar's stream";
const DROPPING_SLOT = 'dropping the slot';
const DROPPING_PUBLICATION = 'dropping the publication';
const REMOVING_CAPTURE = 'removing the DDL capture';
const FORGETTING_STREAM = "removing the stream's rows from the primary's control tables";
/** detach's steps on the primary, in order. */
const PRIMARY_STEPS = [
  ENDING_STREAM,
  DROPPING_SLOT,
  DROPPING_PUBLICATION,
  REMOVING_CAPTURE,
  FORGETTING_STREAM,
];

/** The stream's rows in the primary's control tables, where there is a control schema. */
async function forgetStreamOnPrimary(primary: PrimarySession, stream: string): Promise<void> {
  if (!(await primary.streams.exists())) return;
  await primary.replicaStatus.forget(stream);
  await primary.streams.forget(stream);
  // Holds left by a killed attach (a schema older than the table has none).
  if (await primary.joinHolds.exists()) await primary.joinHolds.drop(stream);
}

/** How `detach` opens a replica's session: bounded by applyTimeoutMs, so a frozen replica fails its step. */
const detachSession = (config: LockstepConfig) =>
  ({ applicationName: 'lockstep-detach', queryTimeoutMs: config.applyTimeoutMs }) as const;

/**
 * Positions in a stream that no longer exists, on every replica; a later
 * attach starts afresh. A replica that fails (unreachable, not answering)
 * does not keep the others' positions: each is tried, then the failures are
 * reported, naming each replica.
 */
async function forgetPositions(
  cluster: LockstepCluster,
  config: LockstepConfig,
): Promise<string[]> {
  const replicasReset: string[] = [];
  const failed: LockstepError[] = [];
  for (const replica of config.replicas) {
    try {
      await onReplica(
        cluster,
        replica,
        async (session) => {
          if (await session.positions.exists()) await session.forgetStream(config.slot);
        },
        detachSession(config),
      );
      replicasReset.push(replica.name);
    } catch (error) {
      failed.push(
        nodeStepError(
          replica.name,
          "removing the stream's position",
          config.applyTimeoutMs,
          error,
          'run lockstep detach again (it finishes what is left)',
        ),
      );
    }
  }
  const first = failed[0];
  if (!first) return replicasReset;
  throw new LockstepError({
    node: first.node,
    setting: first.setting,
    problem: `the slot and publication are gone, but not every replica's position could be removed (done: ${replicasReset.join(', ') || 'none'}): ${failed.map((e) => `[${e.node}] ${e.problem}`).join('; ')}`,
    fix: first.fix,
    cause: first,
  });
}

/**
 * Every node is asked for lockstep transactions still prepared (a replica can
 * hold one the primary does not); a node that cannot be asked refuses too,
 * since what it holds is unknown.
 */
async function refuseWhilePrepared(
  cluster: LockstepCluster,
  config: LockstepConfig,
  primary: PrimarySession,
): Promise<void> {
  // This stream's gids only: another stream sharing a node is none of this detach's business.
  const ours = async (session: NodeSession) =>
    (await session.preparedGids()).filter(
      (p) => parseGid(p.gid, config.slot) !== null || isMigrationGid(p.gid, config.slot),
    );
  const onPrimary = await ours(primary).catch((error: unknown) => {
    throw primaryStepError(
      'checking the primary for prepared lockstep transactions (detach; nothing dropped yet)',
      config.applyTimeoutMs,
      error,
      'run lockstep detach again',
    );
  });
  const held: string[] = onPrimary.map((p) => `primary: ${p.gid}`);
  for (const replica of config.replicas) {
    try {
      const gids = await onReplica(cluster, replica, ours, detachSession(config));
      for (const p of gids) held.push(`${replica.name}: ${p.gid}`);
    } catch (error) {
      throw nodeStepError(
        replica.name,
        'checking the replica for prepared lockstep transactions',
        config.applyTimeoutMs,
        error,
        'run lockstep detach once the replica answers (or detach --force)',
      );
    }
  }
  if (held.length > 0) {
    throw new LockstepError({
      node: held[0]?.split(':')[0] as string,
      problem: `lockstep transactions are still prepared: ${held.join(', ')}`,
      fix: 'run lockstep recover first (or detach --force and finish them by hand)',
    });
  }
}
