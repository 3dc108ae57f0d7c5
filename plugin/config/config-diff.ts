import type { LockstepConfig, ReplicaConfig } from './config-schema.js';

/** What a reloaded configuration changes for a running sidecar. */
export interface ConfigChange {
  /** Replicas named now and not before: added live. */
  readonly added: readonly ReplicaConfig[];
  /** Names of replicas no longer named: removed live. */
  readonly removed: readonly string[];
  /**
   * Replicas still named whose URL changed: removed and added again live. The
   * URL may now reach another database; a sidecar kept on the old one would
   * apply there while attach copies into the new one.
   */
  readonly replaced: readonly ReplicaConfig[];
  /** Keys whose new value is not applied live (a restart applies it), e.g. `maxLagBytes`. */
  readonly needsRestart: readonly string[];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Paths (`a.b`) under which `before` and `after` differ; arrays compare as a whole. */
function changedPaths(before: unknown, after: unknown, path: string, out: string[]): void {
  if (isObject(before) && isObject(after)) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)]))
      changedPaths(before[key], after[key], path ? `${path}.${key}` : key, out);
    return;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push(path);
}

/**
 * Compares the configuration in force with a reloaded one. Replicas are
 * matched by name (their order does not matter): new names are added, missing
 * ones removed, and one whose URL changed is replaced (removed, then added).
 * Everything else is only named, never applied live: the stream, slot, credentials and tuning are
 * read once at start, and half-applying them could confirm the slot under
 * rules the replicas were not started with. Names keys only, never values (a
 * URL may hold a password).
 */
export function diffConfig(current: LockstepConfig, next: LockstepConfig): ConfigChange {
  const before = new Map(current.replicas.map((r) => [r.name, r]));
  const after = new Set(next.replicas.map((r) => r.name));
  const needsRestart: string[] = [];
  const { replicas: _was, ...restBefore } = current;
  const { replicas: _is, ...restAfter } = next;
  changedPaths(restBefore, restAfter, '', needsRestart);
  return {
    added: next.replicas.filter((r) => !before.has(r.name)),
    removed: current.replicas.filter((r) => !after.has(r.name)).map((r) => r.name),
    replaced: next.replicas.filter((r) => {
      const old = before.get(r.name);
      return old !== undefined && old.url !== r.url;
    }),
    needsRestart,
  };
}

/** The configuration in force once `change` is applied: only its replicas differ from `current`. */
export function adoptReplicas(current: LockstepConfig, change: ConfigChange): LockstepConfig {
  const removed = new Set(change.removed);
  const replaced = new Map(change.replaced.map((r) => [r.name, r]));
  return {
    ...current,
    replicas: [
      ...current.replicas.filter((r) => !removed.has(r.name)).map((r) => replaced.get(r.name) ?? r),
      ...change.added,
    ],
  };
}
