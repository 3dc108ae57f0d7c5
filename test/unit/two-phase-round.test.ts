import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type RoundAction,
  type RoundEvent,
  type RoundState,
  recoverRound,
  roundTransition,
  startRound,
} from '../../plugin/protocol/two-phase-round.js';

/** One participant's database, as the world sees it. */
type Db = 'none' | 'prepared' | 'committed' | 'rolled-back';

/**
 * A world of participants and a coordinator running the machine. `choose`
 * draws from the test's random stream; each step performs one enabled move:
 * run a pending action (with a random outcome), time the vote out, or crash
 * the coordinator (it recovers from the durable decision and the prepared gids).
 */
class World {
  db: Record<string, Db> = {};
  votedYes = new Set<string>();
  decided = false;
  pending: RoundAction[] = [];
  /** Prepares sent but not answered yet: they can land at any later time, even after a crash. */
  inFlight: string[] = [];
  state: RoundState;
  outcome: 'committed' | 'aborted' | null = null;
  /** Participants removed from the configuration after the decision: their removal finishes their gid. */
  left = new Set<string>();

  constructor(
    readonly participants: string[],
    private readonly choose: (n: number) => number,
  ) {
    for (const p of participants) this.db[p] = 'none';
    const step = startRound('lockstep_s_1_1', participants);
    this.state = step.state;
    this.take(step.actions);
  }

  private take(actions: readonly RoundAction[]): void {
    for (const action of actions) {
      if (action.type === 'prepare') this.inFlight.push(action.participant);
      else if (action.type === 'finished') this.outcome = action.outcome;
      else this.pending.push(action);
    }
  }

  private feed(event: RoundEvent): void {
    const step = roundTransition(this.state, event);
    // 5. a participant that left the round gets no action from it any more
    for (const action of step.actions)
      if ('participant' in action)
        expect(this.state.participants[action.participant]).not.toBe('left');
    this.state = step.state;
    this.take(step.actions);
  }

  private checkInvariants(action: RoundAction): void {
    if (action.type === 'record-commit-decision' || action.type === 'commit-prepared') {
      // 1. never commit unless every participant voted yes
      expect(this.participants.every((p) => this.votedYes.has(p))).toBe(true);
    }
    if (action.type === 'commit-prepared') expect(this.decided).toBe(true); // 3. decision first
    if (action.type === 'rollback-prepared') expect(this.decided).toBe(false); // 2. never abort after commit
  }

  /** Lands a prepare: the participant votes at random (or, when `kind` is given, as told). */
  private landPrepare(p: string, kind: number): void {
    if (this.db[p] !== 'none') return; // this participant already finished with this gid
    if (kind === 0) {
      this.db[p] = 'prepared';
      this.votedYes.add(p);
      this.feed({ type: 'vote', participant: p, vote: 'yes' });
    } else if (kind === 1) {
      this.feed({ type: 'vote', participant: p, vote: 'needs-update' });
    } else {
      this.feed({ type: 'vote', participant: p, vote: 'no', reason: 'duplicate key' });
    }
  }

  private run(action: RoundAction, succeed: boolean): void {
    this.checkInvariants(action);
    switch (action.type) {
      case 'send-delta':
        this.feed({ type: 'delta-applied', participant: action.participant });
        return;
      case 'record-commit-decision':
        if (succeed) this.decided = true;
        this.feed({ type: succeed ? 'decision-recorded' : 'decision-failed' });
        return;
      case 'commit-prepared':
        if (succeed && this.db[action.participant] === 'prepared') {
          this.db[action.participant] = 'committed';
          this.feed({ type: 'committed', participant: action.participant });
        } else {
          this.feed({ type: 'phase-two-failed', participant: action.participant });
        }
        return;
      case 'rollback-prepared':
        if (!succeed) {
          this.feed({ type: 'phase-two-failed', participant: action.participant });
          return;
        }
        // As in Postgres: rolling back a gid that was never prepared does nothing, and
        // does not stop a PREPARE with that gid from landing later.
        if (this.db[action.participant] === 'prepared') this.db[action.participant] = 'rolled-back';
        this.feed({ type: 'rolled-back', participant: action.participant });
        return;
      default:
        return;
    }
  }

  private crash(): void {
    this.pending = [];
    // The restarted coordinator's configuration no longer has the participants that left.
    const stay = this.participants.filter((p) => !this.left.has(p));
    const prepared = new Set(stay.filter((p) => this.db[p] === 'prepared'));
    // With every participant gone it recovers over none: the round ends by its decision log.
    const step = recoverRound(this.state.gid, stay, prepared, this.decided);
    this.state = step.state;
    this.take(step.actions);
  }

  /** One random move. */
  step(): void {
    const moves = this.pending.length + this.inFlight.length + 2;
    const move = this.choose(moves);
    if (move < this.pending.length) {
      const [action] = this.pending.splice(move, 1);
      this.run(action as RoundAction, this.choose(4) !== 0);
    } else if (move < this.pending.length + this.inFlight.length) {
      const [p] = this.inFlight.splice(move - this.pending.length, 1);
      this.landPrepare(p as string, this.choose(6) < 4 ? 0 : this.choose(2) + 1);
    } else if (move === moves - 2) {
      this.feed({ type: 'timeout' });
    } else if (this.choose(3) === 0) {
      this.crash();
    } else if (this.choose(2) === 0) {
      this.leave(this.participants[this.choose(this.participants.length)] as string);
    }
  }

  /** A participant removed from the configuration: the driver tells a decided round only. */
  private leave(p: string): void {
    if (this.state.phase !== 'committing' && this.state.phase !== 'aborting') return;
    this.left.add(p);
    this.feed({ type: 'left', participant: p });
  }

  /** The removals finish the left participants' gid by the decision log (presumed abort). */
  finishLeft(): void {
    for (const p of this.left)
      if (this.db[p] === 'prepared') this.db[p] = this.decided ? 'committed' : 'rolled-back';
  }

  /** Runs every outstanding action to success (prepares vote yes): the round must settle. */
  quiesce(): void {
    for (let guard = 0; guard < 1_000 && (this.pending.length || this.inFlight.length); guard++) {
      if (this.inFlight.length) this.landPrepare(this.inFlight.shift() as string, 0);
      else this.run(this.pending.shift() as RoundAction, true);
    }
  }
}

function world(participants: number, choices: number[]): World {
  let i = 0;
  const choose = (n: number) =>
    choices.length ? (choices[i++ % choices.length] as number) % n : 0;
  return new World(
    Array.from({ length: participants }, (_, k) => `r${k + 1}`),
    choose,
  );
}

describe('two-phase round (model tests)', () => {
  it('keeps every invariant under random votes, timeouts, failures and crashes, and settles all-or-nothing', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(1_000), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 0, max: 60 }),
        (n, choices, steps) => {
          const w = world(n, choices);
          for (let s = 0; s < steps && w.outcome === null; s++) w.step();
          w.quiesce();
          w.finishLeft();
          const states = Object.values(w.db);
          // 4. nobody is left prepared, and the outcome is the same everywhere
          expect(states).not.toContain('prepared');
          const committed = states.filter((d) => d === 'committed').length;
          expect(committed === 0 || committed === n).toBe(true);
          expect(w.outcome).toBe(committed === n ? 'committed' : 'aborted');
          if (committed === n) expect(w.decided).toBe(true);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('commits when everyone votes yes, after a needs-update round trip', () => {
    let step = startRound('g', ['a', 'b']);
    expect(step.actions).toEqual([
      { type: 'prepare', participant: 'a' },
      { type: 'prepare', participant: 'b' },
    ]);
    step = roundTransition(step.state, { type: 'vote', participant: 'a', vote: 'needs-update' });
    expect(step.actions).toEqual([{ type: 'send-delta', participant: 'a' }]);
    step = roundTransition(step.state, { type: 'delta-applied', participant: 'a' });
    expect(step.actions).toEqual([{ type: 'prepare', participant: 'a' }]);
    step = roundTransition(step.state, { type: 'vote', participant: 'a', vote: 'yes' });
    step = roundTransition(step.state, { type: 'vote', participant: 'b', vote: 'yes' });
    expect(step).toMatchObject({
      state: { phase: 'deciding' },
      actions: [{ type: 'record-commit-decision' }],
    });
    // Too late to abort: a timeout once the decision is being written changes nothing.
    expect(roundTransition(step.state, { type: 'timeout' }).state.phase).toBe('deciding');
    step = roundTransition(step.state, { type: 'decision-recorded' });
    expect(step.actions).toHaveLength(2);
    step = roundTransition(step.state, { type: 'committed', participant: 'a' });
    step = roundTransition(step.state, { type: 'committed', participant: 'b' });
    expect(step).toMatchObject({
      state: { phase: 'committed' },
      actions: [{ type: 'finished', outcome: 'committed' }],
    });
  });

  it('aborts on a no, keeping the reason, and rolls back the others', () => {
    let step = startRound('g', ['a', 'b']);
    step = roundTransition(step.state, { type: 'vote', participant: 'a', vote: 'yes' });
    step = roundTransition(step.state, {
      type: 'vote',
      participant: 'b',
      vote: 'no',
      reason: 'duplicate key (id)=(7)',
    });
    expect(step.state).toMatchObject({
      phase: 'aborting',
      reasons: { b: 'duplicate key (id)=(7)' },
    });
    expect(step.actions).toEqual([{ type: 'rollback-prepared', participant: 'a' }]);
    step = roundTransition(step.state, { type: 'rolled-back', participant: 'a' });
    expect(step.actions).toEqual([{ type: 'finished', outcome: 'aborted' }]);
  });

  it('recovers by the decision log: commit what is prepared, or presume abort', () => {
    expect(recoverRound('g', ['a', 'b'], new Set(['b']), true).actions).toEqual([
      { type: 'commit-prepared', participant: 'b' },
    ]);
    expect(recoverRound('g', ['a', 'b'], new Set(['a', 'b']), false).actions).toEqual([
      { type: 'rollback-prepared', participant: 'a' },
      { type: 'rollback-prepared', participant: 'b' },
    ]);
    expect(recoverRound('g', ['a'], new Set(), false).state.phase).toBe('aborted');
  });
});
