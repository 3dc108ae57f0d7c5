import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type {
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../../plugin/coordinator/round-participant.js';
import { type RoundResult, runRound } from '../../plugin/coordinator/run-round.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { FakeWorld, QUICK_ROUNDS } from '../support/fake-round-world.js';
import { useFakeTimers } from '../support/fake-timers.js';

const REQUEST: PrepareRequest = {
  gid: 'lockstep_s_10_1e1',
  round: 1,
  from: 10,
  to: 10,
  toLsn: toLsn('0/10'),
};
const VOTE_MS = QUICK_ROUNDS.voteTimeoutMs;

/** A participant whose prepare answers when told, and whose progress the test moves. */
function slowPreparer(world: FakeWorld) {
  const state: { progress: number; gid: string; answer: (vote: Vote) => void } = {
    progress: 0,
    gid: REQUEST.gid,
    answer: () => undefined,
  };
  const participant: RoundParticipant = {
    ...world.participant('r2', 'yes', VOTE_MS),
    prepare: (request) =>
      new Promise<Vote>((resolve) => {
        state.answer = (vote) => {
          if (vote.vote === 'yes') world.prepare(request.gid, 'r2');
          resolve(vote);
        };
      }),
    // Progress on another round's apply (an older one still running) is not this round's.
    progress: (gid) => (gid === state.gid ? state.progress : -1),
  };
  return { participant, state };
}

function round(world: FakeWorld, participants: RoundParticipant[]): Promise<RoundResult> {
  return runRound({
    request: REQUEST,
    participants,
    nodes: new Map(['r1', 'r2'].map((n) => [n, world.node(n, 0)])),
    decisions: world.store(),
    log: pino({ level: 'silent' }),
    timeoutMs: VOTE_MS,
    deltaTimeoutMs: QUICK_ROUNDS.deltaTimeoutMs,
    retryInitialMs: QUICK_ROUNDS.retryInitialMs,
    retryMaxMs: QUICK_ROUNDS.retryMaxMs,
    stopping: () => false,
  });
}

describe('the vote deadline of a participant that shows progress', () => {
  useFakeTimers();

  it('waits for a prepare ten deadlines long while it progresses, and commits', async () => {
    const world = new FakeWorld();
    const { participant, state } = slowPreparer(world);
    const result = round(world, [world.participant('r1', 'yes', VOTE_MS), participant]);
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(VOTE_MS / 2);
      state.progress++;
    }
    state.answer({ vote: 'yes' });
    await vi.advanceTimersByTimeAsync(VOTE_MS);
    expect((await result).outcome).toBe('committed');
  });

  it('aborts once a deadline passes without progress, after long progress', async () => {
    const world = new FakeWorld();
    const { participant, state } = slowPreparer(world);
    const result = round(world, [world.participant('r1', 'yes', VOTE_MS), participant]);
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(VOTE_MS / 2);
      state.progress++;
    }
    await vi.advanceTimersByTimeAsync(VOTE_MS * 2);
    expect((await result).outcome).toBe('aborted');
  });

  it('does not count taking the prepare as progress: a replica frozen once it took it fails at the first deadline', async () => {
    const world = new FakeWorld();
    const { participant, state } = slowPreparer(world);
    state.progress = -1;
    const result = round(world, [world.participant('r1', 'yes', VOTE_MS), participant]);
    await vi.advanceTimersByTimeAsync(VOTE_MS / 4);
    // Taken: its count starts, then nothing more (frozen).
    state.progress = 7;
    await vi.advanceTimersByTimeAsync(VOTE_MS);
    const done = await Promise.race([result, Promise.resolve(null)]);
    expect(done?.outcome).toBe('aborted');
  });

  it('does not count a count that fell and climbs back as progress: it aborts at the deadline', async () => {
    const world = new FakeWorld();
    const { participant, state } = slowPreparer(world);
    state.progress = 5;
    const result = round(world, [world.participant('r1', 'yes', VOTE_MS), participant]);
    await vi.advanceTimersByTimeAsync(VOTE_MS / 4);
    // Its packet rolled back, then applied again part of the way it had come.
    state.progress = -1;
    await vi.advanceTimersByTimeAsync(VOTE_MS / 4);
    state.progress = 3;
    await vi.advanceTimersByTimeAsync(VOTE_MS * 0.75);
    const done = await Promise.race([result, Promise.resolve(null)]);
    expect(done?.outcome).toBe('aborted');
  });
});
