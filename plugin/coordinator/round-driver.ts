import { DeposedError, NotLandedError } from '../ports/lockstep-error.js';
import {
  type RoundAction,
  type RoundEvent,
  type RoundStep,
  roundTransition,
  startRound,
} from '../protocol/index.js';
import { sleep } from '../support/sleep.js';
import { logDecisionFailure } from './decision-failure.js';
import type { PhaseTwoNode, RoundParticipant, Vote } from './round-participant.js';
import type { RoundRun } from './run-round.js';

/**
 * One round's machine and the effects of its actions: it performs what a
 * transition asks (prepare, delta, decision, phase two) and turns the answers
 * into events, which {@link nextEvent} hands back one at a time, with a
 * `timeout` event once a participant's deadline passed.
 */
export class RoundDriver {
  private readonly byName: Map<string, RoundParticipant>;
  private readonly events: RoundEvent[] = [];
  private signal: (() => void) | null = null;
  private readonly deadlines = new Map<string, number>();
  /** A preparing participant's progress when its vote deadline was last set (see `RoundParticipant.progress`). */
  private readonly progressAt = new Map<string, number>();
  private readonly outstanding = new Map<string, Promise<Vote>>();
  private prepared = 0;
  private commits = 0;
  /** One COMMIT PREPARED after another: a crash between two leaves a definite prefix committed. */
  private commitChain: Promise<void> = Promise.resolve();
  outcome: 'committed' | 'aborted' | null = null;
  /** Participants whose gid was rolled back outside lockstep, with why (they left a committed round). */
  readonly notLandedReasons: Record<string, string> = {};
  /** The decision's outcome is unknown and this process was deposed: its successor settles it. */
  unsettled = false;
  step: RoundStep;

  constructor(private readonly run: RoundRun) {
    this.byName = new Map(run.participants.map((p) => [p.name, p]));
    this.step = startRound(run.request.gid, [...this.byName.keys()]);
    run.onState?.(this.step.state);
    run.control?.({
      leave: (participant) => this.push({ type: 'left', participant }),
      // Only undecided: a decided round is finished, never cut.
      cut: () => {
        if (this.step.state.phase === 'voting') this.push({ type: 'timeout' });
      },
    });
    for (const action of this.step.actions) this.perform(action);
  }

  /** Feeds one event to the machine and performs what it asks. */
  apply(event: RoundEvent): void {
    this.step = roundTransition(this.step.state, event);
    this.run.onState?.(this.step.state);
    for (const action of this.step.actions) this.perform(action);
  }

  /**
   * Waits for the next event: an answer, a passed deadline (`timeout`), or a
   * stop while votes are collected (`timeout`: nothing is decided yet). Null
   * when the round became unsettled instead.
   */
  async nextEvent(): Promise<RoundEvent | null> {
    while (this.events.length === 0 && !this.unsettled) {
      const now = Date.now();
      this.extendWhileProgressing(now);
      let earliest = Number.POSITIVE_INFINITY;
      for (const deadline of this.deadlines.values()) earliest = Math.min(earliest, deadline);
      if (earliest <= now) {
        this.deadlines.clear();
        this.progressAt.clear();
        this.events.push({ type: 'timeout' });
        break;
      }
      if (this.run.stopping() && this.step.state.phase === 'voting') {
        this.events.push({ type: 'timeout' });
        break;
      }
      await new Promise<void>((resolve) => {
        this.signal = resolve;
        setTimeout(resolve, Math.min(earliest - now, 200));
      });
      this.signal = null;
    }
    if (this.unsettled) return null;
    return this.events.shift() as RoundEvent;
  }

  /**
   * Once the round ended: a prepare still in flight is rolled back when it
   * lands, and (aborted) a participant that refused gets one rollback now —
   * its PREPARE's answer may have been lost with the connection, not at the
   * next recovery.
   */
  lateRollbacks(): Promise<void> {
    const { request } = this.run;
    const late = [...this.outstanding].map(([p, vote]) =>
      vote.then(async (v) => {
        if (v.vote !== 'yes') return;
        await rollbackUntilDone(this.run, this.node(p));
        this.byName.get(p)?.decided(request, 'rolled-back');
      }),
    );
    const refused =
      this.outcome === 'aborted'
        ? [...this.byName.keys()]
            .filter((p) => this.step.state.participants[p] === 'refused')
            .map((p) =>
              this.node(p)
                .rollback(request.gid)
                .catch(() => undefined),
            )
        : [];
    return Promise.all([...late, ...refused]).then(() => undefined);
  }

  /**
   * A preparing participant whose vote deadline passed while it progressed
   * (its replica kept answering a large apply) gets another deadline: the
   * deadline detects one that does not answer, it does not bound a round's size.
   */
  private extendWhileProgressing(now: number): void {
    for (const [p, deadline] of this.deadlines) {
      const before = this.progressAt.get(p);
      if (before === undefined) continue;
      const progress = this.participant(p).progress?.(this.run.request.gid);
      // Only a count above the one at the last extension is progress: one that fell (a packet
      // rolled back, a connection counting afresh) must climb past it to count again.
      if (progress === undefined || progress <= before) continue;
      // The first count (before it, -1: parked behind other work) is where it starts, not progress.
      if (before === -1) this.progressAt.set(p, progress);
      else if (deadline <= now) {
        this.progressAt.set(p, progress);
        this.deadlines.set(p, now + this.run.timeoutMs);
      }
    }
  }

  private push(event: RoundEvent): void {
    this.events.push(event);
    this.signal?.();
  }

  /** Phase two failed on `p`: logged, and the machine is told after the retry delay. */
  private phaseTwoFailed(p: string, error: Error, message: string): void {
    if (error instanceof DeposedError) {
      // Phase two may no longer be sent (over the bus): retrying would spin until stopped.
      this.run.onDeposed?.();
      this.unsettled = true;
      this.signal?.();
      return;
    }
    this.run.log.warn({ replica: p, gid: this.run.request.gid, err: error.message }, message);
    setTimeout(
      () => this.push({ type: 'phase-two-failed', participant: p }),
      this.run.retryInitialMs,
    );
  }

  private node(name: string): PhaseTwoNode {
    return this.run.nodes.get(name) as PhaseTwoNode;
  }

  private participant(name: string): RoundParticipant {
    return this.byName.get(name) as RoundParticipant;
  }

  private perform(action: RoundAction): void {
    switch (action.type) {
      case 'prepare':
        this.prepare(action.participant);
        return;
      case 'send-delta':
        this.sendDelta(action.participant);
        return;
      case 'record-commit-decision':
        this.recordDecision();
        return;
      case 'commit-prepared':
        this.commitPrepared(action.participant);
        return;
      case 'rollback-prepared':
        this.rollbackPrepared(action.participant);
        return;
      case 'finished':
        this.outcome = action.outcome;
        return;
    }
  }

  private prepare(p: string): void {
    this.deadlines.set(p, Date.now() + this.run.timeoutMs);
    const participant = this.participant(p);
    const vote = participant
      .prepare(this.run.request, this.run.timeoutMs)
      .catch((error: Error): Vote => ({ vote: 'no', reason: error.message }));
    // Read once the prepare was sent: a transport starts counting it afresh.
    const progress = participant.progress?.(this.run.request.gid);
    if (progress === undefined) this.progressAt.delete(p);
    else this.progressAt.set(p, progress);
    this.outstanding.set(p, vote);
    void vote.then((v) => {
      this.deadlines.delete(p);
      this.progressAt.delete(p);
      if (this.outstanding.get(p) === vote) this.outstanding.delete(p);
      // Only a yes the round still counts: a late one (the round aborted) is being rolled back.
      if (v.vote === 'yes' && this.step.state.phase === 'voting')
        this.run.fault?.('after-prepare', ++this.prepared);
      if (v.vote === 'no') {
        this.push({ type: 'vote', participant: p, vote: 'no', reason: v.reason });
      } else this.push({ type: 'vote', participant: p, vote: v.vote });
    });
  }

  private sendDelta(p: string): void {
    const { request, log } = this.run;
    const participant = this.participant(p);
    const at = participant.heldVersion;
    // A migration's round (from 0) waits for the barrier instead of a delta.
    const delta = request.from > 0 ? { delta: `${(at ?? 0) + 1}..${request.from - 1}` } : {};
    log.info(
      { replica: p, gid: request.gid, vote: 'needs-update', at, version: request.from, ...delta },
      request.from > 0
        ? 'needs-update: sending the delta'
        : 'needs-update: waiting for the barrier',
    );
    // A participant that cannot catch up now is asked again and answers no with its reason;
    // one that does not get there in time aborts the round (it is retried), never holds it.
    this.deadlines.set(p, Date.now() + this.run.deltaTimeoutMs);
    const caughtUp = () => {
      this.deadlines.delete(p);
      this.push({ type: 'delta-applied', participant: p });
    };
    void participant.delta(request).then(caughtUp, caughtUp);
  }

  private recordDecision(): void {
    if (this.run.dryRun) {
      // Every participant prepared: that was the question; roll back everywhere.
      this.push({ type: 'decision-failed' });
      return;
    }
    void recordCommit(this.run, [...this.byName.keys()]).then((decision) => {
      if (decision === 'deposed') {
        this.unsettled = true;
        this.signal?.();
        return;
      }
      if (decision === 'commit') this.run.fault?.('after-decision', 1);
      this.push({ type: decision === 'commit' ? 'decision-recorded' : 'decision-failed' });
    });
  }

  private commitPrepared(p: string): void {
    const { request } = this.run;
    // Recovery finishes whatever a crash between two commits left (the fault point "after k of n commits").
    this.commitChain = this.commitChain
      .then(() => this.node(p).commit(request.gid))
      .then(
        () => {
          this.run.fault?.('after-commit', ++this.commits);
          this.participant(p).decided(request, 'committed');
          this.push({ type: 'committed', participant: p });
        },
        // The commit decision is recorded: it is retried until committed.
        (error: Error) => {
          if (error instanceof NotLandedError) this.notLanded(p, error);
          else this.phaseTwoFailed(p, error, 'COMMIT PREPARED failed: retrying');
        },
      );
  }

  /**
   * Rolled back outside lockstep: no retry can commit it. The participant
   * leaves the round (never counted committed) and its applier reads its
   * position again; the error names the fix.
   */
  private notLanded(p: string, error: NotLandedError): void {
    this.run.log.error(
      { replica: p, gid: error.gid, err: error.message, event: 'commit-not-landed' },
      'COMMIT PREPARED: gid rolled back outside lockstep',
    );
    this.notLandedReasons[p] = error.message;
    this.participant(p).notLanded?.(this.run.request, error);
    this.participant(p).decided(this.run.request, 'rolled-back');
    this.push({ type: 'left', participant: p });
  }

  private rollbackPrepared(p: string): void {
    const { request } = this.run;
    this.node(p)
      .rollback(request.gid)
      .then(
        () => {
          this.participant(p).decided(request, 'rolled-back');
          this.push({ type: 'rolled-back', participant: p });
        },
        (error: Error) => this.phaseTwoFailed(p, error, 'ROLLBACK PREPARED failed: retrying'),
      );
  }
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
    logDecisionFailure(run.log, request.gid, error, 'commit');
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
      logDecisionFailure(run.log, request.gid, error, 'abort');
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
    } catch (error) {
      // Deposed: the successor's recovery rolls it back.
      if (error instanceof DeposedError) return;
      await sleep(delay);
      delay = Math.min(delay * 2, run.retryMaxMs);
    }
  } while (!run.stopping());
}
