import type { PrepareRequest, RoundParticipant, Vote } from '../coordinator/round-participant.js';
import { type RoundRun, runRound } from '../coordinator/run-round.js';
import { LockstepError } from '../ports/lockstep-error.js';
import type { HistoryChange, MigrationNodeSession } from '../ports/migration-session.js';
import {
  compareLsn,
  type Lsn,
  makeMigrationGid,
  type MigrationWork as ProtocolWork,
  type TablePattern,
} from '../protocol/index.js';
import { sleep } from '../support/sleep.js';
import type { MigrationStep } from './migration-files.js';
import { barrierUnanswered, notAnswered, positionUnanswered } from './unanswered-node.js';

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
  /** applyTimeoutMs: how long the barrier and a replica's position read may go unanswered (ms). */
  readonly answerTimeoutMs: number;
  /** A node's side of the migration (its own connection for each call). */
  session(node: string, url: string): MigrationNodeSession;
  /** With `bus`: the work is committed with the barrier, the only thing the agents run. */
  readonly vouchWork?: boolean;
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
  /** A replica whose position read was not answered, named: the command ends with it after the votes (exit 3). */
  readonly unanswered: LockstepError | null;
}

/** What the round's participants share: its gid, the work, and the barrier's LSN once known. */
interface RoundShared {
  readonly context: MigrationContext;
  readonly gid: string;
  readonly work: MigrationWork;
  readonly barrier: Promise<Lsn>;
  /** Set once the round has ended: a replica still waiting for the barrier stops polling then. */
  ended: boolean;
  /** The primary did not answer the barrier after it prepared: the command ends with this. */
  barrierUnanswered: LockstepError | null;
  /** The first replica whose position read was not answered. */
  unanswered: LockstepError | null;
}

/** One migration round's work: the step, the history change, and whether only to ask. */
interface MigrationWork {
  readonly step: MigrationStep;
  readonly history: HistoryChange | null;
  readonly dryRun: boolean;
}

/** The barrier's LSN, settled by the primary's participant; nobody waiting is no rejection. */
function barrierSettlers() {
  let resolve: (lsn: Lsn) => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const barrier = new Promise<Lsn>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  barrier.catch(() => undefined);
  return { barrier, resolve, reject };
}

/** The work an agent may run: plain SQL only (a Kysely module's code cannot travel). */
function vouchedWork(gid: string, work: MigrationWork): ProtocolWork {
  return { gid, sql: work.step.sql ?? '', history: work.history };
}

/** With `bus`, a step without SQL text is refused before any node is touched. */
export function requireSqlSteps(steps: ReadonlyArray<MigrationStep | null>, name: string): void {
  if (steps.every((s) => s === null || s.sql !== undefined)) return;
  throw new LockstepError({
    node: 'bus',
    problem: `${name} is a Kysely module: with bus, the agents run only plain SQL migrations`,
    fix: 'write it as a .sql file (a "-- lockstep:down" line starts its down part), or remove bus',
  });
}

/**
 * The barrier, bounded by the session (applyTimeoutMs): a primary that does
 * not answer it after its PREPARE is named, for the command to end with.
 */
async function committedBarrier(
  round: RoundShared,
  session: MigrationNodeSession,
  work: ProtocolWork | undefined,
): Promise<Lsn> {
  try {
    return await session.commitBarrier(round.gid, work);
  } catch (error) {
    if (!notAnswered(error)) throw error;
    round.barrierUnanswered = barrierUnanswered(round.gid, round.context.answerTimeoutMs, error);
    throw round.barrierUnanswered;
  }
}

/** The primary: runs the migration first and prepares, then commits the barrier (or fails it). */
function primaryParticipant(
  round: RoundShared,
  barrier: { resolve(lsn: Lsn): void; reject(error: Error): void },
): RoundParticipant {
  const { context, gid, work } = round;
  const session = context.session('primary', context.primaryUrl);
  return {
    name: 'primary',
    heldVersion: null,
    async prepare() {
      try {
        await session.prepare({
          gid,
          marker: true,
          lockTimeoutMs: context.lockTimeoutMs,
          step: work.step,
          history: work.history,
          publication: context.publication,
        });
        const vouched = context.vouchWork ? vouchedWork(gid, work) : undefined;
        barrier.resolve(await committedBarrier(round, session, vouched));
        return { vote: 'yes' };
      } catch (error) {
        barrier.reject(error as Error);
        return { vote: 'no', reason: (error as Error).message };
      }
    },
    delta: async () => undefined,
    decided: () => undefined,
  };
}

/** A replica: votes needs-update until it has applied the stream up to the barrier, then prepares. */
function replicaParticipant(
  round: RoundShared,
  replica: { readonly name: string; readonly url: string },
): RoundParticipant {
  const { context, gid, work } = round;
  const session = context.session(replica.name, replica.url);
  let reached = false;
  let gaveUp = false;
  let unanswered: LockstepError | null = null;
  const caughtUp = async () => {
    const lsn = await round.barrier;
    const applied = await session.appliedLsn().catch((error: unknown) => {
      if (!notAnswered(error)) throw error;
      unanswered = positionUnanswered(replica.name, context.answerTimeoutMs, error);
      round.unanswered ??= unanswered;
      throw unanswered;
    });
    return applied !== null && compareLsn(applied, lsn) >= 0;
  };
  return {
    name: replica.name,
    heldVersion: null,
    async prepare(): Promise<Vote> {
      try {
        await round.barrier;
      } catch {
        return { vote: 'no', reason: 'not asked: the primary did not prepare' };
      }
      // Its position read (in the delta) got no answer: refused, named.
      if (unanswered) return { vote: 'no', reason: unanswered.message };
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
      while (!round.ended) {
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
}

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
  work: MigrationWork,
): Promise<MigrationRoundResult> {
  const gid = makeMigrationGid(context.stream, Date.now(), 1);
  const request: PrepareRequest = { gid, round: 0, from: 0, to: 0, toLsn: '0/0' as Lsn };
  const settle = barrierSettlers();
  const round: RoundShared = {
    context,
    gid,
    work,
    barrier: settle.barrier,
    ended: false,
    barrierUnanswered: null,
    unanswered: null,
  };
  const primary = primaryParticipant(round, settle);
  // COMMIT PREPARED runs in participant order: the replicas first, the primary last, so the
  // migration's marker reaches the stream only once every replica has the migration.
  const participants = [...context.replicas.map((r) => replicaParticipant(round, r)), primary];
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
  round.ended = true;
  // The caller closes every node's connection next: a replica's late prepare is rolled back first.
  await lateRollbacks;
  if (round.barrierUnanswered) throw round.barrierUnanswered;
  return {
    gid,
    outcome,
    nodes: participants.map((p) => ({
      node: p.name,
      state: state.participants[p.name] ?? 'unknown',
      reason: state.reasons[p.name] ?? null,
    })),
    coordinator: work.dryRun ? null : (state.reasons.coordinator ?? null),
    unanswered: round.unanswered,
  };
}
