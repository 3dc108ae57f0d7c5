import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type {
  ParticipantOutcome,
  PrepareRequest,
} from '../../plugin/coordinator/round-participant.js';
import { runRound } from '../../plugin/coordinator/run-round.js';
import { NotLandedError } from '../../plugin/ports/lockstep-error.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { FakeWorld, QUICK_ROUNDS } from '../support/fake-round-world.js';

const GID = 'lockstep_s_10_1e1';
const REQUEST: PrepareRequest = { gid: GID, round: 1, from: 10, to: 10, toLsn: toLsn('0/10') };

describe('a round whose gid was rolled back outside lockstep on one replica', () => {
  it('ends committed elsewhere, never counts that replica committed, and does not retry it', async () => {
    const world = new FakeWorld();
    const told: string[] = [];
    const participants = ['r1', 'r2'].map((name) => ({
      ...world.participant(name, 'yes', 1_000),
      decided: (_request: PrepareRequest, outcome: ParticipantOutcome) =>
        told.push(`${name} ${outcome}`),
      notLanded: (_request: PrepareRequest, error: NotLandedError) =>
        told.push(`${name} not landed: ${error.gid}`),
    }));
    let commits = 0;
    const lost = {
      ...world.node('r2', 0),
      commit: async (gid: string) => {
        commits++;
        throw new NotLandedError('r2', gid, 'stream');
      },
    };
    const result = await runRound({
      request: REQUEST,
      participants,
      nodes: new Map([
        ['r1', world.node('r1', 0)],
        ['r2', lost],
      ]),
      decisions: world.store(),
      log: pino({ level: 'silent' }),
      timeoutMs: QUICK_ROUNDS.voteTimeoutMs,
      deltaTimeoutMs: QUICK_ROUNDS.deltaTimeoutMs,
      retryInitialMs: QUICK_ROUNDS.retryInitialMs,
      retryMaxMs: QUICK_ROUNDS.retryMaxMs,
      stopping: () => false,
    });
    expect(result.outcome).toBe('committed');
    expect(result.state.participants).toEqual({ r1: 'committed', r2: 'left' });
    expect(result.state.reasons.r2).toContain(`gid ${GID} is neither prepared nor committed`);
    expect(commits).toBe(1);
    // r2 hears why first (its status error, its counter), then that it left the round.
    expect(told).toEqual(['r1 committed', `r2 not landed: ${GID}`, 'r2 rolled-back']);
  });
});
