import type { Logger } from 'pino';
import { DeposedError } from '../ports/lockstep-error.js';
import {
  type RoundAction,
  type RoundEvent,
  type RoundState,
  roundTransition,
  startRound,
} from '../protocol/index.js';
import type { FaultHook } from './fault-point.js';
import type {
  DecisionStore,
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from './round-participant.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One round to run: who takes part, where phase two happens, and how patient to be. */
export interface RoundRun {
  readonly request: PrepareRequest;
  /** In the order COMMIT PREPARED runs (one after another). */
  readonly participants: readonly RoundParticipant[];
  /** Phase two per participant name. */
  readonly nodes: ReadonlyMap<string, PhaseTwoNode>;
  readonly decisions: DecisionStore;
  readonly log: Logger;
  /** How long a participant may take to vote after each prepare (ms). */
  readonly timeoutMs: number;
  /** How long a participant that voted needs-update may take to reach the round's first version (ms). */
  readonly deltaTimeoutMs: number;
  /** Delay before a phase-two retry, and the backoff bounds of settling a decision (ms). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly fault?: FaultHook;
  /** Prepare everywhere, then roll back everywhere instead of deciding (`migrate --dry-run`). */
  readonly dryRun?: boolean;
  /** True once the caller is stopping: a round still voting aborts; a decided one gets 5 s more. */
  stopping(): boolean;
  /** Every state the round passes through. */
  onState?(state: RoundState): void;
  /** A decision write was refused: another process holds the coordinator lock now. */
  onDeposed?(): void;
  /** Receives, once at the start, the way to tell the round a participant left (after its decision). */
  control?(round: { leave(participant: string): void }): void;
}

/** How a round ended. `interrupted`: stopped while decided but unfinished (recovery finishes it). */
export interface RoundResult {
  readonly outcome: 'committed' | 'aborted' | 'interrupted';
  readonly state: RoundState;
  /**
   * Settles once prepares still in flight when the round ended have landed and
   * been rolled back; a caller that closes the nodes' connections waits for it.
   */
  readonly lateRollbacks: Promise<void>;
}

/**
 * Runs one two-phase round to its end, driving the pure state machine of
 * `protocol/two-phase-round.ts`: prepares (with the needs-update → delta →
 * prepare-again loop and a vote timeout), the durable decision before any
 * COMMIT PREPARED, then phase two on every node, retried until done. A
 * prepare that lands after the round ended is rolled back.
 */
export async function runRound(run: RoundRun): Promise<RoundResult> {
  const { participants } = run;
  const byName = new Map(participants.map((p) => [p.name, p]));
  const { log, request } = run;
  const events: RoundEvent[] = [];
  let signal: (() => void) | null = null;
  const push = (event: RoundEvent) => {
    events.push(event);
    signal?.();
  };
  const deadlines = new Map<string, number>();
  const outstanding = new Map<string, Promise<Vote>>();
  let prepared = 0;
  let commits = 0;
  let outcome: 'committed' | 'aborted' | null = null;
  /** The decision's outcome is unknown and this process was deposed: its successor settles it. */
  let unsettled = false;
  let commitChain: Promise<void> = Promise.resolve();
  let step = startRound(request.gid, [...byName.keys()]);
  const note = () => run.onState?.(step.state);
  note();
  run.control?.({ leave: (participant) => push({ type: 'left', participant }) });

  const retryLater = (event: RoundEvent) => setTimeout(() => push(event), run.retryInitialMs);
  const node = (name: string) => run.nodes.get(name) as PhaseTwoNode;

  const perform = (action: RoundAction) => {
    const p = 'participant' in action ? action.participant : '';
    const participant = byName.get(p) as RoundParticipant;
    switch (action.type) {
      case 'prepare': {
        deadlines.set(p, Date.now() + run.timeoutMs);
        const vote = participant
          .prepare(request)
          .catch((error: Error): Vote => ({ vote: 'no', reason: error.message }));
        outstanding.set(p, vote);
        void vote.then((v) => {
          deadlines.delete(p);
          if (outstanding.get(p) === vote) outstanding.delete(p);
          if (v.vote === 'yes') run.fault?.('after-prepare', ++prepared);
          if (v.vote === 'no') {
            push({ type: 'vote', participant: p, vote: 'no', reason: v.reason });
          } else push({ type: 'vote', participant: p, vote: v.vote });
        });
        return;
      }
      case 'send-delta': {
        const at = participant.heldVersion;
        log.info(
          { replica: p, gid: request.gid, at, version: request.from },
          request.from > 0
            ? `replica ${p} votes needs-update for ${request.gid} (holds version ${at}, the round starts at ${request.from}): sending the delta ${(at ?? 0) + 1}..${request.from - 1}`
            : `replica ${p} votes needs-update for ${request.gid} (holds version ${at}): waiting until it has applied everything before the migration`,
        );
        // A participant that cannot catch up now is asked again and answers no with its reason;
        // one that does not get there in time aborts the round (it is retried), never holds it.
        deadlines.set(p, Date.now() + run.deltaTimeoutMs);
        const caughtUp = () => {
          deadlines.delete(p);
          push({ type: 'delta-applied', participant: p });
        };
        void participant.delta(request).then(caughtUp, caughtUp);
        return;
      }
      case 'record-commit-decision':
        if (run.dryRun) {
          // Every participant prepared: that was the question; roll back everywhere.
          push({ type: 'decision-failed' });
          return;
        }
        void recordCommit(run, [...byName.keys()]).then((decision) => {
          if (decision === 'deposed') {
            unsettled = true;
            signal?.();
            return;
          }
          if (decision === 'commit') run.fault?.('after-decision', 1);
          push({ type: decision === 'commit' ? 'decision-recorded' : 'decision-failed' });
        });
        return;
      case 'commit-prepared':
        // One node after another: a crash between two commits leaves a definite prefix committed
        // (the fault point "after k of n commits"), and recovery finishes the rest.
        commitChain = commitChain
          .then(() => node(p).commit(request.gid))
          .then(
            () => {
              run.fault?.('after-commit', ++commits);
              participant.decided(request, 'committed');
              push({ type: 'committed', participant: p });
            },
            (error: Error) => {
              log.warn(
                { replica: p, gid: request.gid, err: error.message },
                `COMMIT PREPARED ${request.gid} on ${p} failed: ${error.message}; retrying (the commit decision is recorded: it will be committed)`,
              );
              retryLater({ type: 'phase-two-failed', participant: p });
            },
          );
        return;
      case 'rollback-prepared':
        node(p)
          .rollback(request.gid)
          .then(
            () => {
              participant.decided(request, 'rolled-back');
              push({ type: 'rolled-back', participant: p });
            },
            (error: Error) => {
              log.warn(
                { replica: p, gid: request.gid, err: error.message },
                `ROLLBACK PREPARED ${request.gid} on ${p} failed: ${error.message}; retrying`,
              );
              retryLater({ type: 'phase-two-failed', participant: p });
            },
          );
        return;
      case 'finished':
        outcome = action.outcome;
        return;
    }
  };

  for (const action of step.actions) perform(action);
  let stopDeadline: number | null = null;
  while (outcome === null) {
    if (unsettled) {
      log.warn(
        { gid: request.gid, phase: step.state.phase },
        'deposed while deciding: the new coordinator settles the round',
      );
      return { outcome: 'interrupted', state: step.state, lateRollbacks: Promise.resolve() };
    }
    if (run.stopping()) {
      // A decided round gets a few seconds to finish; whatever is left, recovery finishes at the next start.
      stopDeadline ??= Date.now() + 5_000;
      if (Date.now() > stopDeadline) {
        log.warn(
          { gid: request.gid, phase: step.state.phase },
          `stopping with ${request.gid} unfinished (${step.state.phase}): recovery finishes it at the next start`,
        );
        return { outcome: 'interrupted', state: step.state, lateRollbacks: Promise.resolve() };
      }
    }
    while (events.length === 0 && !unsettled) {
      const now = Date.now();
      let earliest = Number.POSITIVE_INFINITY;
      for (const deadline of deadlines.values()) earliest = Math.min(earliest, deadline);
      if (earliest <= now) {
        deadlines.clear();
        events.push({ type: 'timeout' });
        break;
      }
      // Stopping while votes are collected: abort (nothing is decided yet).
      if (run.stopping() && step.state.phase === 'voting') {
        events.push({ type: 'timeout' });
        break;
      }
      await new Promise<void>((resolve) => {
        signal = resolve;
        setTimeout(resolve, Math.min(earliest - now, 200));
      });
      signal = null;
    }
    if (unsettled) continue;
    const event = events.shift() as RoundEvent;
    step = roundTransition(step.state, event);
    note();
    for (const action of step.actions) perform(action);
  }

  // A prepare still in flight when the round ended: roll it back when it lands.
  const lateRollbacks = [...outstanding].map(([p, vote]) =>
    vote.then(async (v) => {
      if (v.vote !== 'yes') return;
      await rollbackUntilDone(run, node(p));
      byName.get(p)?.decided(request, 'rolled-back');
    }),
  );
  // A participant that refused because its PREPARE's answer was lost (the connection
  // dropped just then) may hold the gid after all: one rollback now, not at the next recovery.
  const refusedRollbacks =
    outcome === 'aborted'
      ? [...byName.keys()]
          .filter((p) => step.state.participants[p] === 'refused')
          .map((p) =>
            node(p)
              .rollback(request.gid)
              .catch(() => undefined),
          )
      : [];
  return {
    outcome,
    state: step.state,
    lateRollbacks: Promise.all([...lateRollbacks, ...refusedRollbacks]).then(() => undefined),
  };
}

/**
 * Records the commit decision. When the write fails its outcome is unknown:
 * an `abort` row is then written in its place (or the commit row found), which
 * settles the round one way for good. `deposed`: another process took the
 * coordinator lock before the outcome was settled; this one must leave the
 * round to its successor's recovery (the decision log says what holds).
 * Refused at the first attempt, nothing was written and nobody else ever
 * writes `commit` for this gid: that is a plain abort.
 */
async function recordCommit(
  run: RoundRun,
  participants: readonly string[],
): Promise<'commit' | 'abort' | 'deposed'> {
  const { request } = run;
  const record = {
    gid: request.gid,
    round: request.round,
    versionFrom: request.from,
    versionTo: request.to,
    participants,
  };
  try {
    return await run.decisions.decide(record, 'commit');
  } catch (error) {
    if (error instanceof DeposedError) {
      run.onDeposed?.();
      return 'abort';
    }
    run.log.warn(
      { gid: request.gid, err: (error as Error).message },
      'recording the commit decision failed: settling it',
    );
  }
  let delay = run.retryInitialMs;
  for (;;) {
    try {
      // Unknown outcome: an abort row settles it (or the commit row that won is read back).
      return await run.decisions.decide(record, 'abort');
    } catch (error) {
      if (error instanceof DeposedError) {
        run.onDeposed?.();
        return 'deposed';
      }
      if (run.stopping()) return 'deposed';
      await sleep(delay);
      delay = Math.min(delay * 2, run.retryMaxMs);
    }
  }
}

async function rollbackUntilDone(run: RoundRun, node: PhaseTwoNode): Promise<void> {
  const gid = run.request.gid;
  let delay = run.retryInitialMs;
  // Tried at least once; after a stop, recovery at the next start finishes it.
  do {
    try {
      await node.rollback(gid);
      return;
    } catch {
      await sleep(delay);
      delay = Math.min(delay * 2, run.retryMaxMs);
    }
  } while (!run.stopping());
}
