import type { LockstepConfig } from '../config/config-schema.js';
import type { LockstepCluster, PrimarySession } from '../ports/lockstep-cluster.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { StreamLockPort } from '../ports/stream-lock.js';
import { sleep } from '../support/sleep.js';
import { onReplica } from './attach-cluster.js';
import type { StepReporter } from './attach-progress.js';
import {
  isLockWait,
  isUnanswered,
  lockNotTaken,
  primaryCommandSession,
  primaryStepError,
} from './node-step.js';

/**
 * Takes the coordinator lock (true), or, when a sidecar holds it, waits until
 * that sidecar reports every joining replica, connected to the very database
 * attach copies into (false). A sidecar applying to another database under
 * that name (its URL differs, or the database was replaced) would never apply
 * to the copy: refused at once. A stale mark on a replica that never had a
 * position only meant it stopped holding WAL: it is ended, and the sidecar
 * holds WAL for it again.
 */
export async function awaitCoordinator(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
  lock: StreamLockPort,
  step: StepReporter,
): Promise<boolean> {
  const tryLock = () =>
    lock.tryAcquire().catch((error: unknown) => {
      throw lockNotTaken(
        config.slot,
        error,
        'attach; nothing copied yet',
        'run lockstep attach again',
      );
    });
  if (await tryLock()) return true;
  const databases = await joiningDatabases(cluster, config, names);
  // Bounded as every command's primary session: a primary frozen now fails the wait, named (exit 3).
  const primary = await cluster.primary(
    config.primary,
    primaryCommandSession(config, 'lockstep-join'),
  );
  try {
    const { since, owner } = (await primary.streams.activity(config.slot)) ?? {
      since: 'now',
      owner: null,
    };
    // It reloads on SIGHUP and within seconds of its file changing.
    step('waiting for the running sidecar to take the replicas', {
      sidecar: owner ?? 'unknown',
      replicas: names,
    });
    for (const deadline = Date.now() + config.sidecarWaitMs; ; ) {
      if (await sidecarKnows(primary, config.slot, databases, since, owner)) return false;
      if (await tryLock()) return true;
      if (Date.now() > deadline) throw sidecarUnaware(names, owner, config.sidecarWaitMs);
      await sleep(500);
    }
  } catch (error) {
    if (!isUnanswered(error) && !isLockWait(error)) throw error;
    throw primaryStepError(
      `waiting for the running sidecar to take ${names.join(', ')} (lockstep.replica_status; nothing copied yet)`,
      config.applyTimeoutMs,
      error,
      'run lockstep attach again',
    );
  } finally {
    await primary.close();
  }
}

/** The identity of each joining replica's database: the one this attach copies into. */
async function joiningDatabases(
  cluster: LockstepCluster,
  config: LockstepConfig,
  names: readonly string[],
): Promise<Map<string, string>> {
  const databases = new Map<string, string>();
  for (const replica of config.replicas.filter((r) => names.includes(r.name)))
    databases.set(
      replica.name,
      await onReplica(cluster, replica, (session) => session.setup.databaseId()),
    );
  return databases;
}

/**
 * Whether the active sidecar reported every replica of `databases` since
 * `since`, holding WAL for each (not stale) and connected to that database.
 * Throws when it reported one connected to another database.
 */
async function sidecarKnows(
  primary: PrimarySession,
  stream: string,
  databases: ReadonlyMap<string, string>,
  since: string,
  owner: string | null,
): Promise<boolean> {
  const names = [...databases.keys()];
  await primary.replicaStatus.clearStale(stream, names);
  const rows = await primary.replicaStatus.reportsSince(stream, names, since);
  const elsewhere = rows.find(
    (r) => r.database !== null && r.database !== databases.get(r.replica),
  );
  if (elsewhere) throw sidecarElsewhere(elsewhere.replica, owner);
  return rows.filter((r) => r.ok && r.database !== null).length === names.length;
}

function sidecarElsewhere(name: string, owner: string | null): LockstepError {
  return new LockstepError({
    node: name,
    setting: 'url',
    problem: `the running lockstep sidecar (${owner ?? 'unknown'}) applies to another database under the name "${name}" than the one this configuration names (a different URL, or the database was replaced): a copy made here would never receive its changes`,
    fix: `run lockstep attach with the configuration that sidecar runs with; or give the sidecar this configuration (edit its file or send it SIGHUP: a changed URL replaces the replica there), then run lockstep attach again (nothing was copied)`,
  });
}

function sidecarUnaware(
  names: readonly string[],
  owner: string | null,
  waitedMs: number,
): LockstepError {
  const pid = owner?.split(':').pop();
  return new LockstepError({
    node: names[0] as string,
    problem: `the running lockstep sidecar (${owner ?? 'unknown'}) did not take ${names.join(', ')} into its configuration within ${waitedMs / 1000} s (sidecarWaitMs): it runs with a configuration that does not name ${names.length > 1 ? 'them' : 'it'}`,
    fix: `give that sidecar the configuration naming ${names.length > 1 ? 'them' : 'it'}: edit the file it was started with, or send it SIGHUP${pid ? ` (kill -HUP ${pid} on its host)` : ''}, or restart it; then run lockstep attach again (nothing was copied)`,
  });
}
