import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { sleep } from '../support/sleep.js';
import { isLockWait, isUnanswered, primaryCommandSession, primaryStepError } from './node-step.js';

/** How long `pause` waits for a running sidecar to let go of the slot. */
const RELEASE_WAIT_MS = 10_000;

/** What `pause` or `resume` found and did. */
export interface PauseResult {
  /** Whether the stream was paused before this command. */
  readonly wasPaused: boolean;
  /** Since when it is paused now (null once resumed). */
  readonly pausedSince: Date | null;
  /** A sidecar runs for the stream (holds the coordinator lock). */
  readonly sidecarRunning: boolean;
  /** `pause`: the slot is no longer streamed (false: a running sidecar did not let go in time). */
  readonly released: boolean;
}

const notAttached = (stream: string) =>
  new LockstepError({
    node: 'primary',
    problem: `not attached: no stream "${stream}" on the primary`,
    fix: 'run lockstep attach first',
  });

/**
 * `lockstep pause` (`paused` true) and `lockstep resume`: records on the
 * primary whether the stream is paused and tells a running sidecar at once.
 * Paused, the sidecar ends its stream and keeps its replica connections; the
 * slot keeps the WAL from the lowest replica position, as a disabled
 * subscription's slot does. A sidecar started while paused waits for resume.
 * `pause` returns once no one streams the slot any more. A control schema
 * older than pause is upgraded first (`upgradeControlSchema`).
 */
export async function setReplicationPaused(
  cluster: LockstepCluster,
  config: LockstepConfig,
  paused: boolean,
  upgradeControlSchema: () => Promise<void>,
): Promise<PauseResult> {
  const stream = config.slot;
  const command = paused ? 'pause' : 'resume';
  // Named 'lockstep' as before (what a DBA or a test looks for: the sidecar's LISTEN is lockstep-pause).
  const primary = await cluster.primary(config.primary, primaryCommandSession(config, 'lockstep'));
  try {
    return await changeOn(primary, stream, paused, upgradeControlSchema);
  } catch (error) {
    if (!isUnanswered(error) && !isLockWait(error)) throw error;
    // A lock wait the server ended rolled the write back; a query with no answer may have committed.
    const outcome = isLockWait(error) ? 'not recorded' : 'whether it was recorded is unknown';
    throw primaryStepError(
      `recording the ${command} of stream "${stream}" in lockstep.streams (${outcome})`,
      config.applyTimeoutMs,
      error,
      `run lockstep ${command} again (it only sets what is already set)`,
    );
  } finally {
    await primary.close();
  }
}

/** The pause's write and reads on the primary's session. */
async function changeOn(
  primary: PrimarySession,
  stream: string,
  paused: boolean,
  upgradeControlSchema: () => Promise<void>,
): Promise<PauseResult> {
  const write = () => primary.streams.writePause(stream, paused);
  const change = await write().catch(async (error: { code?: string; message?: string }) => {
    // 42703: a control schema from before pause (no paused_at yet); 42P01: none at all.
    if (error.code === '42703') {
      await upgradeControlSchema();
      return write();
    }
    if (error.code === '42P01') return undefined;
    // Not answering, or a lock held by another session, is not a missing privilege: the caller names it.
    if (isUnanswered(error) || isLockWait(error)) throw error;
    throw new LockstepError({
      node: 'primary',
      sqlState: error.code,
      problem: `cannot record the pause of stream "${stream}": ${error.message}`,
      fix: 'connect as the role lockstep was attached with (it may write to the lockstep schema)',
      cause: error,
    });
  });
  if (change === undefined) throw notAttached(stream);
  const sidecarRunning = await primary.streamLockHeld(stream);
  return {
    wasPaused: change.before !== null,
    pausedSince: change.after,
    sidecarRunning,
    released: paused ? await slotReleased(primary, stream) : true,
  };
}

/** Waits (up to RELEASE_WAIT_MS) until no one streams the slot; whether it came to that. */
async function slotReleased(primary: PrimarySession, slot: string): Promise<boolean> {
  const deadline = Date.now() + RELEASE_WAIT_MS;
  for (;;) {
    const released = (await primary.slots.read(slot))?.active !== true;
    if (released || Date.now() > deadline) return released;
    await sleep(50);
  }
}
