import {
  type HistoryChange,
  MigrationSession,
} from '../../adapters/postgres/control/migration-session.js';
import type { PrepareRequest, RoundParticipant, Vote } from '../coordinator/round-participant.js';
import { type RoundRun, runRound } from '../coordinator/run-round.js';
import { compareLsn, type Lsn, makeMigrationGid, type TablePattern } from '../protocol/index.js';
import type { MigrationStep } from './migration-files.js';

/** Everything a migration round needs, for one configuration (phase two, decisions and retries as any round's). */
export interface MigrationContext
  extends Pick<
    RoundRun,
    'nodes' | 'decisions' | 'log' | 'retryInitialMs' | 'retryMaxMs' | 'fault'
  > {
  readonly stream: string;
  readonly primaryUrl: string;
  readonly replicas: ReadonlyArray<{ name: string; url: string }>;
  /** The publication and the replicated-table patterns, kept current by each migration on the primary. */
  readonly publication: {
    readonly name: string;
    readonly patterns: readonly TablePattern[];
    readonly schemas: readonly string[];
  };
  /** lock_timeout of the migration's statements on every node (ms). */
  readonly lockTimeoutMs: number;
  /** How long each node may take to prepare (the migration's own run time included) (ms). */
  readonly voteTimeoutMs: number;
  /** How long a replica may take to apply the stream up to the migration (ms). */
  readonly barrierTimeoutMs: number;
}

/** How one node ended a migration round. */
export interface NodeOutcome {
  readonly node: string;
  /** The participant's last state: committed, rolled-back, refused, … */
  readonly state: string;
  readonly reason: string | null;
}

/** A migration round's result. */
export interface MigrationRoundResult {
  readonly gid: string;
  readonly outcome: 'committed' | 'aborted' | 'interrupted';
  readonly nodes: readonly NodeOutcome[];
  /** Why the coordinator aborted, when no node refused (e.g. a vote timeout). */
  readonly coordinator: string | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs one migration (or `exec` statement) as a two-phase round with the
 * primary as a participant (DESIGN.md, "Migrations with the primary in the
 * round"): the primary runs it first behind a transactional marker and
 * prepares; a barrier committed after that prepare tells when a replica has
 * everything that committed before it (until then it votes needs-update);
 * each replica then runs it and prepares; the decision is recorded; COMMIT
 * PREPARED runs on the replicas, then on the primary. Refused anywhere:
 * rolled back everywhere.
 */
export async function runMigrationRound(
  context: MigrationContext,
  work: { step: MigrationStep; history: HistoryChange | null; dryRun: boolean },
): Promise<MigrationRoundResult> {
  const id = Date.now();
  const gid = makeMigrationGid(context.stream, id, 1);
  const request: PrepareRequest = { gid, round: 0, from: 0, to: 0, toLsn: '0/0' as Lsn };
  let barrierResolve: (lsn: Lsn) => void = () => undefined;
  let barrierReject: (error: Error) => void = () => undefined;
  const barrier = new Promise<Lsn>((resolve, reject) => {
    barrierResolve = resolve;
    barrierReject = reject;
  });
  barrier.catch(() => undefined);
  // Set once the round has ended: a replica still waiting for the barrier stops polling then.
  let ended = false;

  const primarySession = new MigrationSession('primary', context.primaryUrl, context.stream);
  const primary: RoundParticipant = {
    name: 'primary',
    heldVersion: null,
    async prepare() {
      try {
        await primarySession.prepare({
          gid,
          marker: true,
          lockTimeoutMs: context.lockTimeoutMs,
          step: work.step,
          history: work.history,
          publication: context.publication,
        });
        barrierResolve(await primarySession.commitBarrier(gid));
        return { vote: 'yes' };
      } catch (error) {
        barrierReject(error as Error);
        return { vote: 'no', reason: (error as Error).message };
      }
    },
    delta: async () => undefined,
    decided: () => undefined,
  };

  const replicas = context.replicas.map((replica): RoundParticipant => {
    const session = new MigrationSession(replica.name, replica.url, context.stream);
    let reached = false;
    let gaveUp = false;
    const caughtUp = async () => {
      const lsn = await barrier;
      const applied = await session.appliedLsn();
      return applied !== null && compareLsn(applied, lsn) >= 0;
    };
    return {
      name: replica.name,
      heldVersion: null,
      async prepare(): Promise<Vote> {
        try {
          await barrier;
        } catch {
          return { vote: 'no', reason: 'not asked: the primary did not prepare' };
        }
        if (!reached) reached = await caughtUp();
        if (!reached) {
          if (gaveUp) {
            return {
              vote: 'no',
              reason: `[${replica.name}] did not apply the stream up to the migration within ${context.barrierTimeoutMs} ms\n  fix: start lockstep run for this stream (it applies the stream), or fix what halts ${replica.name} (lockstep status)`,
            };
          }
          return { vote: 'needs-update', at: 0 };
        }
        await session.prepare({
          gid,
          marker: false,
          lockTimeoutMs: context.lockTimeoutMs,
          step: work.step,
          history: work.history,
          adoptTables: context.publication.patterns,
        });
        return { vote: 'yes' };
      },
      async delta() {
        const deadline = Date.now() + context.barrierTimeoutMs;
        while (!ended) {
          reached = await caughtUp();
          if (reached) return;
          if (Date.now() > deadline) {
            gaveUp = true;
            throw new Error('barrier not reached');
          }
          await sleep(50);
        }
      },
      decided: () => undefined,
    };
  });

  // COMMIT PREPARED runs in participant order: the replicas first, the primary last, so the
  // migration's marker reaches the stream only once every replica has the migration.
  const participants = [...replicas, primary];
  const { outcome, state, lateRollbacks } = await runRound({
    request,
    participants,
    nodes: context.nodes,
    decisions: context.decisions,
    log: context.log,
    timeoutMs: context.voteTimeoutMs,
    deltaTimeoutMs: context.voteTimeoutMs,
    retryInitialMs: context.retryInitialMs,
    retryMaxMs: context.retryMaxMs,
    fault: context.fault,
    dryRun: work.dryRun,
    stopping: () => false,
  });
  ended = true;
  // The caller closes every node's connection next: a replica's late prepare is rolled back first.
  await lateRollbacks;
  return {
    gid,
    outcome,
    nodes: participants.map((p) => ({
      node: p.name,
      state: state.participants[p.name] ?? 'unknown',
      reason: state.reasons[p.name] ?? null,
    })),
    coordinator: work.dryRun ? null : (state.reasons.coordinator ?? null),
  };
}
