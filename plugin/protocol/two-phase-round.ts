/**
 * The two-phase round as a pure state machine; the spec is
 * `two-phase-round.md` beside this file.
 */

/** Round phases. */
export type RoundPhase =
  | 'voting'
  | 'deciding'
  | 'committing'
  | 'committed'
  | 'aborting'
  | 'aborted';

/** Where one participant stands. */
export type ParticipantState =
  | 'asked'
  | 'updating'
  | 'prepared'
  | 'refused'
  | 'committed'
  | 'rolled-back'
  /** Removed from the configuration once the round was decided: its gid is finished by the decision log, not by the round. */
  | 'left';

/** A round, as the coordinator knows it. */
export interface RoundState {
  readonly gid: string;
  readonly phase: RoundPhase;
  readonly participants: Readonly<Record<string, ParticipantState>>;
  /** Why a participant refused (vote no) or why the round aborted. */
  readonly reasons: Readonly<Record<string, string>>;
}

/** What happened. */
export type RoundEvent =
  | { readonly type: 'vote'; readonly participant: string; readonly vote: 'yes' | 'needs-update' }
  | {
      readonly type: 'vote';
      readonly participant: string;
      readonly vote: 'no';
      readonly reason: string;
    }
  | { readonly type: 'delta-applied'; readonly participant: string }
  | { readonly type: 'timeout' }
  | { readonly type: 'decision-recorded' }
  | { readonly type: 'decision-failed' }
  | { readonly type: 'committed'; readonly participant: string }
  | { readonly type: 'rolled-back'; readonly participant: string }
  | { readonly type: 'phase-two-failed'; readonly participant: string }
  | { readonly type: 'left'; readonly participant: string };

/** What the coordinator must do next. */
export type RoundAction =
  | { readonly type: 'prepare'; readonly participant: string }
  | { readonly type: 'send-delta'; readonly participant: string }
  | { readonly type: 'record-commit-decision' }
  | { readonly type: 'commit-prepared'; readonly participant: string }
  | { readonly type: 'rollback-prepared'; readonly participant: string }
  | { readonly type: 'finished'; readonly outcome: 'committed' | 'aborted' };

/** A transition's result. */
export interface RoundStep {
  readonly state: RoundState;
  readonly actions: readonly RoundAction[];
}

const names = (state: RoundState) => Object.keys(state.participants);

function withParticipant(state: RoundState, participant: string, to: ParticipantState): RoundState {
  return { ...state, participants: { ...state.participants, [participant]: to } };
}

/** Starts a round: every participant is asked to prepare. */
export function startRound(gid: string, participants: readonly string[]): RoundStep {
  if (participants.length === 0) throw new Error('a round needs at least one participant');
  const state: RoundState = {
    gid,
    phase: 'voting',
    participants: Object.fromEntries(participants.map((p) => [p, 'asked' as const])),
    reasons: {},
  };
  return { state, actions: participants.map((participant) => ({ type: 'prepare', participant })) };
}

function abort(state: RoundState, reasons: Record<string, string>): RoundStep {
  const next: RoundState = {
    ...state,
    phase: 'aborting',
    reasons: { ...state.reasons, ...reasons },
  };
  const actions: RoundAction[] = names(next)
    .filter((p) => next.participants[p] !== 'refused')
    .map((participant) => ({ type: 'rollback-prepared', participant }));
  return settleAbort(next, actions);
}

function settleAbort(state: RoundState, actions: RoundAction[]): RoundStep {
  const done = names(state).every((p) =>
    ['refused', 'rolled-back', 'left'].includes(state.participants[p] as string),
  );
  if (done && actions.length === 0) {
    return {
      state: { ...state, phase: 'aborted' },
      actions: [{ type: 'finished', outcome: 'aborted' }],
    };
  }
  return { state, actions };
}

/**
 * Presumed abort also covers a prepare that lands after the abort, after the
 * round ended, or after a recovery that found nothing there: it is rolled back
 * too, so no lockstep gid is ever left prepared.
 */
function latePrepare(
  state: RoundState,
  event: RoundEvent,
  current: ParticipantState | undefined,
): RoundStep | null {
  if (
    event.type !== 'vote' ||
    event.vote !== 'yes' ||
    current === 'refused' ||
    current === 'prepared' ||
    current === 'left'
  )
    return null;
  return {
    state: { ...withParticipant(state, event.participant, 'prepared'), phase: 'aborting' },
    actions: [{ type: 'rollback-prepared', participant: event.participant }],
  };
}

/** Voting: votes, deltas applied, and the vote timeout. */
function votingTransition(
  state: RoundState,
  event: RoundEvent,
  current: ParticipantState | undefined,
): RoundStep | null {
  if (event.type === 'vote' && current === 'asked') {
    if (event.vote === 'no')
      return abort(withParticipant(state, event.participant, 'refused'), {
        [event.participant]: event.reason,
      });
    if (event.vote === 'needs-update') {
      return {
        state: withParticipant(state, event.participant, 'updating'),
        actions: [{ type: 'send-delta', participant: event.participant }],
      };
    }
    const next = withParticipant(state, event.participant, 'prepared');
    if (names(next).every((p) => next.participants[p] === 'prepared')) {
      return {
        state: { ...next, phase: 'deciding' },
        actions: [{ type: 'record-commit-decision' }],
      };
    }
    return { state: next, actions: [] };
  }
  if (event.type === 'delta-applied' && current === 'updating') {
    return {
      state: withParticipant(state, event.participant, 'asked'),
      actions: [{ type: 'prepare', participant: event.participant }],
    };
  }
  if (event.type === 'timeout') {
    const silent = names(state).filter((p) => state.participants[p] !== 'prepared');
    return abort(
      state,
      Object.fromEntries(
        silent.map((p) => [
          p,
          state.participants[p] === 'updating'
            ? 'not caught up to the round before the timeout'
            : 'no vote before the timeout',
        ]),
      ),
    );
  }
  return null;
}

/** Deciding: the commit decision recorded (commit everywhere) or not (abort). */
function decidingTransition(state: RoundState, event: RoundEvent): RoundStep | null {
  if (event.type === 'decision-recorded') {
    return {
      state: { ...state, phase: 'committing' },
      actions: names(state).map((p) => ({ type: 'commit-prepared', participant: p })),
    };
  }
  if (event.type === 'decision-failed')
    return abort(state, { coordinator: 'the commit decision could not be recorded' });
  return null;
}

/** Committing: COMMIT PREPARED done (or the participant left), or retried after a failure. */
function committingTransition(
  state: RoundState,
  event: RoundEvent,
  current: ParticipantState | undefined,
): RoundStep | null {
  if ((event.type === 'committed' || event.type === 'left') && current === 'prepared') {
    const to = event.type === 'left' ? 'left' : 'committed';
    const next = withParticipant(state, event.participant, to);
    const done = (p: string) => ['committed', 'left'].includes(next.participants[p] as string);
    if (names(next).every(done)) {
      return {
        state: { ...next, phase: 'committed' },
        actions: [{ type: 'finished', outcome: 'committed' }],
      };
    }
    return { state: next, actions: [] };
  }
  if (event.type === 'phase-two-failed' && current === 'prepared') {
    return { state, actions: [{ type: 'commit-prepared', participant: event.participant }] };
  }
  return null;
}

/** Aborting: ROLLBACK PREPARED done (or the participant left), retried, or a late prepare. */
function abortingTransition(
  state: RoundState,
  event: RoundEvent,
  current: ParticipantState | undefined,
): RoundStep | null {
  // Refused, rolled back or left: that participant is done with this round.
  const open = current !== 'refused' && current !== 'rolled-back' && current !== 'left';
  if ((event.type === 'left' || event.type === 'rolled-back') && open) {
    const to = event.type === 'left' ? 'left' : 'rolled-back';
    return settleAbort(withParticipant(state, event.participant, to), []);
  }
  if (event.type === 'phase-two-failed' && open) {
    return { state, actions: [{ type: 'rollback-prepared', participant: event.participant }] };
  }
  return latePrepare(state, event, current);
}

/** Applies one event; events that do not fit the phase leave the round as it is. */
export function roundTransition(state: RoundState, event: RoundEvent): RoundStep {
  const unchanged: RoundStep = { state, actions: [] };
  const participant = 'participant' in event ? event.participant : undefined;
  if (participant !== undefined && !(participant in state.participants)) return unchanged;
  const current = participant === undefined ? undefined : state.participants[participant];
  switch (state.phase) {
    case 'voting':
      return votingTransition(state, event, current) ?? unchanged;
    case 'deciding':
      return decidingTransition(state, event) ?? unchanged;
    case 'committing':
      return committingTransition(state, event, current) ?? unchanged;
    case 'aborting':
      return abortingTransition(state, event, current) ?? unchanged;
    case 'aborted':
      return latePrepare(state, event, current) ?? unchanged;
    default:
      return unchanged;
  }
}

/**
 * Rebuilds a round after a crash from what is durable: which participants
 * still hold the gid prepared, and whether a commit decision was recorded
 * (presumed abort: no decision means abort).
 */
export function recoverRound(
  gid: string,
  participants: readonly string[],
  prepared: ReadonlySet<string>,
  commitDecided: boolean,
): RoundStep {
  if (commitDecided) {
    // Whoever no longer holds it prepared already committed before the crash.
    const state: RoundState = {
      gid,
      phase: 'committing',
      participants: Object.fromEntries(
        participants.map((p) => [p, prepared.has(p) ? 'prepared' : 'committed']),
      ),
      reasons: {},
    };
    const pending = participants.filter((p) => prepared.has(p));
    if (pending.length === 0)
      return {
        state: { ...state, phase: 'committed' },
        actions: [{ type: 'finished', outcome: 'committed' }],
      };
    return {
      state,
      actions: pending.map((participant) => ({ type: 'commit-prepared', participant })),
    };
  }
  const state: RoundState = {
    gid,
    phase: 'aborting',
    participants: Object.fromEntries(
      participants.map((p) => [p, prepared.has(p) ? 'prepared' : 'rolled-back']),
    ),
    reasons: { coordinator: 'recovered without a commit decision (presumed abort)' },
  };
  return settleAbort(
    state,
    participants
      .filter((p) => prepared.has(p))
      .map((participant) => ({ type: 'rollback-prepared', participant })),
  );
}
