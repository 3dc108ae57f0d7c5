import { isUnanswered, nodeStepError } from '../attach/node-step.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import type { MigrationNodeSession } from '../ports/migration-session.js';
import { readMigrationFiles } from './migration-files.js';

/** One node in `migrate status --json` (`name` as in `status --json`). */
export interface NodeMigrations {
  name: string;
  /** Its history, in order (empty when it could not be read). */
  applied: Array<{ name: string; checksum: string; appliedAt: string }>;
  /** Migrations of the folder not in its history. */
  pending: string[];
  /** Its history is not the primary's (a replica only). */
  differs: boolean;
  /** Why its history could not be read (unreachable, not attached), else null. */
  error: string | null;
  reachable: boolean;
}

/** `lockstep migrate status`: every node's history against the folder. */
export interface MigrationStatus {
  /** The folder's migrations, in order. */
  files: string[];
  nodes: NodeMigrations[];
  /** Every node's history could be read and is the primary's. */
  consistent: boolean;
}

/** Reads every node's migration history and compares it with the folder and with the primary's. */
export async function readMigrationStatus(
  config: LockstepConfig,
  dir: string,
  /** A node's migration session (the composition root's adapter). */
  session: (node: string, url: string) => MigrationNodeSession,
): Promise<MigrationStatus> {
  const files = await readMigrationFiles(dir);
  const sessions = [
    session('primary', config.primary),
    ...config.replicas.map((r) => session(r.name, r.url)),
  ];
  const read = await Promise.all(
    sessions.map(async (s) => {
      try {
        return { name: s.node, history: await s.history(), error: null };
      } catch (error) {
        // A node that did not answer within its read's deadline counts as unreachable (exit 3), named.
        const named = isUnanswered(error)
          ? nodeStepError(
              s.node,
              'reading the migration history',
              config.applyTimeoutMs,
              error,
              'run lockstep migrate status again',
            )
          : error;
        return { name: s.node, history: null, error: named };
      }
    }),
  );
  const key = (h: ReadonlyArray<{ name: string; checksum: string }>) =>
    h.map((x) => `${x.name}:${x.checksum}`).join(',');
  const primary = key(read[0]?.history ?? []);
  const nodes = read.map(({ name, history, error }): NodeMigrations => {
    const applied = history ?? [];
    const names = new Set(applied.map((h) => h.name));
    return {
      name,
      applied,
      pending: files.filter((f) => !names.has(f.name)).map((f) => f.name),
      differs: history !== null && name !== 'primary' && key(applied) !== primary,
      error: error === null ? null : ((error as Error).message ?? String(error)),
      reachable: !isConnectionFailure(error),
    };
  });
  return {
    files: files.map((f) => f.name),
    nodes,
    consistent: nodes.every((n) => n.error === null && !n.differs),
  };
}

/** `migrate status` for people: a line per node. */
export function formatMigrationStatus(status: MigrationStatus): string[] {
  return status.nodes.map((n) => {
    if (n.error !== null)
      return `${n.name}: ${n.reachable ? 'history not readable (not attached?)' : 'unreachable'}: ${n.error.split('\n')[0]}`;
    const last = n.applied[n.applied.length - 1];
    return `${n.name}: ${n.applied.length} applied${last ? ` (last ${last.name})` : ''}, ${n.pending.length} pending${n.pending.length ? `: ${n.pending.join(', ')}` : ''}${n.differs ? "  — DIFFERS from the primary's history" : ''}`;
  });
}
