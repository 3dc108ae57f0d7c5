import { isLockWait, isNodeLost, nodeStepError } from '../attach/node-step.js';
import type { Decision } from '../ports/decision-store.js';
import { isConnectionFailure } from '../ports/lockstep-error.js';
import { parseGid, recoverRound } from '../protocol/index.js';
import type { DecisionStore, PhaseTwoNode } from './round-participant.js';

/** What one recovery pass did. */
export interface RecoveryReport {
  /** Each prepared transaction finished, per node. */
  readonly resolved: ReadonlyArray<{
    gid: string;
    node: string;
    action: 'committed' | 'rolled-back';
    ageSeconds: number;
  }>;
  /** Nodes that could not be read or finished now (a later pass retries); `unreachable` when not connected. */
  readonly failed: ReadonlyArray<{ node: string; error: string; unreachable: boolean }>;
  /**
   * Why forgetting old decisions on the primary failed, if it did: housekeeping
   * only, retried next pass; it leaves nothing prepared and refuses nothing.
   */
  readonly pruneFailed?: string;
}

/**
 * A node that could not be read or finished: one that did not answer or
 * whose session ended counts as unreachable, named with the step and fix
 * (a ROLLBACK/COMMIT PREPARED on a live node may wait on SyncRep); a lock
 * wait the node ended is named too, as what it is.
 */
function failure(node: string, error: unknown) {
  const lost = isNodeLost(error);
  const named =
    lost || isLockWait(error)
      ? recoveryStepError(node, 'finishing lockstep transactions prepared there (recovery)', error)
      : error;
  return { node, error: (named as Error).message, unreachable: lost || isConnectionFailure(error) };
}

/** Why forgetting old decisions failed on the primary, named as a recovery step there. */
function pruneFailure(error: unknown): string {
  const step = 'forgetting decisions older than an hour (housekeeping; retried next pass)';
  if (isNodeLost(error) || isLockWait(error))
    return recoveryStepError('primary', step, error).message;
  return `${step} failed: ${(error as Error).message}`;
}

/**
 * A recovery step on `node` that got no answer or lost its session, named
 * (exit 3): it ends in a commit (COMMIT/ROLLBACK PREPARED, a decision or an
 * epoch written), which may wait on SyncRep; recover can simply run again.
 */
export function recoveryStepError(node: string, step: string, error: unknown) {
  return nodeStepError(
    node,
    step,
    'within its control query deadline',
    error,
    'run lockstep recover again',
    { commits: true },
  );
}

/**
 * Presumed abort for a gid without a decision: writes `abort` unless a
 * decision is recorded meanwhile, and returns the one that holds (a
 * coordinator still deciding it can then never commit it).
 */
export function presumeAbort(
  stream: string,
  gid: string,
  participants: readonly string[],
  decisions: DecisionStore,
): Promise<Decision> {
  const parts = parseGid(gid, stream); // null for a migration's gid
  return decisions.decide(
    {
      gid,
      round: parts?.round ?? 0,
      versionFrom: parts?.version ?? 0,
      versionTo: parts?.version ?? 0,
      participants,
    },
    'abort',
  );
}

/** Decisions older than this, for gids prepared nowhere, are forgotten. */
const DECISION_RETENTION_SECONDS = 3600;

/**
 * Finishes every lockstep gid of `stream` left prepared on any node, by the
 * decision log: commit where a commit decision is recorded, roll back
 * otherwise (presumed abort). An undecided gid first gets a durable `abort`
 * decision, so a coordinator that is somehow still deciding it can never commit
 * it afterwards. The caller holds the coordinator lock and passes the gid of
 * any round it is itself running in `skip`.
 */
export async function recoverPrepared(
  stream: string,
  nodes: readonly PhaseTwoNode[],
  decisions: DecisionStore,
  options: {
    /** Gids of rounds the caller itself is running. */
    skip?: ReadonlySet<string>;
    /**
     * Which gids: stream rounds' (for the coordinator lock's holder) and/or
     * migrations' (for the migrate lock's holder); both by default.
     */
    kinds?: ReadonlyArray<'stream' | 'migration'>;
  } = {},
): Promise<RecoveryReport> {
  const skip = options.skip ?? new Set<string>();
  const resolved: Array<RecoveryReport['resolved'][number]> = [];
  const failed: Array<RecoveryReport['failed'][number]> = [];
  const holders = new Map<string, Array<{ node: PhaseTwoNode; ageSeconds: number }>>();
  const listed = new Set<string>();
  const listedNodes: string[] = [];
  await Promise.all(
    nodes.map(async (node) => {
      try {
        const here = await node.list(stream);
        listedNodes.push(node.node);
        for (const prepared of here) {
          listed.add(prepared.gid);
          if (skip.has(prepared.gid)) continue;
          if (!(options.kinds ?? ['stream', 'migration']).includes(prepared.kind)) continue;
          const list = holders.get(prepared.gid) ?? [];
          list.push({ node, ageSeconds: prepared.ageSeconds });
          holders.set(prepared.gid, list);
        }
      } catch (error) {
        failed.push(failure(node.node, error));
      }
    }),
  );
  const known = await decisions.read([...holders.keys()]);
  for (const [gid, held] of holders) {
    const decision =
      known.get(gid) ??
      (await presumeAbort(
        stream,
        gid,
        held.map((h) => h.node.node),
        decisions,
      ));
    const names = held.map((h) => h.node.node);
    const { actions } = recoverRound(gid, names, new Set(names), decision === 'commit');
    for (const action of actions) {
      if (action.type !== 'commit-prepared' && action.type !== 'rollback-prepared') continue;
      const holder = held.find((h) => h.node.node === action.participant);
      if (!holder) continue;
      try {
        if (action.type === 'commit-prepared') await holder.node.commit(gid);
        else await holder.node.rollback(gid);
        resolved.push({
          gid,
          node: holder.node.node,
          action: action.type === 'commit-prepared' ? 'committed' : 'rolled-back',
          ageSeconds: holder.ageSeconds,
        });
      } catch (error) {
        failed.push(failure(holder.node.node, error));
      }
    }
  }
  // Only what this pass listed is known: a commit naming another node (or one that could not be
  // listed) stays, as it may be prepared there; one node down does not keep the rest for ever.
  // Housekeeping: a prune that fails (a session holding old rows) is retried next pass; it must
  // not undo this pass nor keep a sidecar from becoming active.
  const pruneFailed = await decisions
    .prune({ nodes: listedNodes, gids: [...listed] }, DECISION_RETENTION_SECONDS)
    .then(() => undefined, pruneFailure);
  return { resolved, failed, ...(pruneFailed ? { pruneFailed } : {}) };
}
