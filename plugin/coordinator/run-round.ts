import type { Logger } from 'pino';
import type { RoundState } from '../protocol/index.js';
import type { FaultHook } from './fault-point.js';
import { RoundDriver } from './round-driver.js';
import type {
  DecisionStore,
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
} from './round-participant.js';

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
  /**
   * Receives, once at the start, the way to tell the round a participant left
   * (after its decision), and to cut it short while it still collects votes
   * (it aborts as on its timeout).
   */
  control?(round: { leave(participant: string): void; cut(): void }): void;
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
  const { log, request } = run;
  const driver = new RoundDriver(run);
  let stopDeadline: number | null = null;
  while (driver.outcome === null) {
    const { state } = driver.step;
    if (driver.unsettled) {
      log.warn(
        { gid: request.gid, phase: state.phase },
        'deposed while deciding: successor settles it',
      );
      return { outcome: 'interrupted', state, lateRollbacks: Promise.resolve() };
    }
    if (run.stopping()) {
      // A decided round gets a few seconds to finish; whatever is left, recovery finishes at the next start.
      stopDeadline ??= Date.now() + 5_000;
      if (Date.now() > stopDeadline) {
        log.warn(
          { gid: request.gid, phase: state.phase },
          'stopping with a round unfinished: recovery ends it',
        );
        return { outcome: 'interrupted', state, lateRollbacks: Promise.resolve() };
      }
    }
    const event = await driver.nextEvent();
    if (event) driver.apply(event);
  }
  const { state } = driver.step;
  return {
    outcome: driver.outcome,
    // A participant whose gid did not land says why beside the votes' reasons.
    state: { ...state, reasons: { ...state.reasons, ...driver.notLandedReasons } },
    lateRollbacks: driver.lateRollbacks(),
  };
}
