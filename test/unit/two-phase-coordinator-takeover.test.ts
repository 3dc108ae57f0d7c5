import { describe, expect, it } from 'vitest';
import type {
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../../plugin/coordinator/round-participant.js';
import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import { toLsn } from '../../plugin/protocol/index.js';
import {
  capturedLog,
  FakeWorld,
  offeredTen,
  QUICK_ROUNDS,
  sleep,
  until,
} from '../support/fake-round-world.js';

/** A successor coordinator over the bus: it learns of earlier rounds from agents, and a deposed one stands back. */
describe('TwoPhaseCoordinator across a takeover', () => {
  it('cuts a round still collecting votes when a replica waits at an earlier one, and runs that one next', async () => {
    const world = new FakeWorld();
    // r1 holds version 6: it can prepare 7, but never catches up to 10 (parked at 7's gate).
    const parked: RoundParticipant = {
      ...world.participant('r1', 'yes', 30),
      heldVersion: 6,
      async prepare(request: PrepareRequest): Promise<Vote> {
        if (request.from > 7) return { vote: 'needs-update', at: 6 };
        world.prepare(request.gid, 'r1');
        return { vote: 'yes' };
      },
      delta: () => new Promise(() => undefined),
    };
    const participants = [world.participant('r0', 'yes', 30), parked];
    // Patient enough that only the cut can end the round at 10 within the test.
    const { log, lines } = capturedLog();
    const coordinator = await offeredTen(world, participants, {
      log,
      options: { ...QUICK_ROUNDS, voteTimeoutMs: 600_000, deltaTimeoutMs: 600_000 },
    });
    await until(() => coordinator.held?.phase === 'voting', 'the round at 10 never started');
    // The agent tells the coordinator it waits at 7 (a packet the predecessor published).
    coordinator.offer({ version: 7, lsn: toLsn('0/7'), rows: 1, whole: true });
    await until(() => coordinator.committedThrough >= 7, 'the round at 7 never ran');
    await coordinator.stop();
    expect(world.happenings.filter((h) => h.kind === 'decided')).toEqual([
      { kind: 'decided', gid: expect.stringMatching(/^lockstep_s_7_/), decision: 'commit' },
    ]);
    // Its abort says it was cut, not that r1 was late.
    // (A later abort of 10 is the stop's, while r1 still catches up.)
    expect(lines.find((l) => l.event === 'round-aborted')).toEqual(
      expect.objectContaining({ gid: expect.stringMatching(/^lockstep_s_10_/), cut: true }),
    );
  });

  it('leaves a round to its successor when phase two is refused as deposed, instead of retrying it until stopped', async () => {
    const world = new FakeWorld();
    // r0 refuses once r1 prepared (and its yes was counted): the abort must roll r1 back.
    const refusing = world.preparing('r0', async (request) => {
      while (!world.prepared.get(request.gid)?.has('r1')) await sleep(1);
      await sleep(5);
      return { vote: 'no', reason: 'r0 refuses' };
    });
    const participants = [refusing, world.participant('r1', 'yes', 30)];
    const deposed = new Map(participants.map((p) => [p.name, world.node(p.name, 0)]));
    // Over the bus a deposed coordinator cannot send ROLLBACK PREPARED any more.
    const r1 = deposed.get('r1') as PhaseTwoNode;
    deposed.set('r1', { ...r1, rollback: () => Promise.reject(new DeposedError(null)) });
    const coordinator = await offeredTen(world, participants, { nodes: deposed });
    await until(() => coordinator.roundsAborted > 0, 'the round never ended');
    await coordinator.stop();
    // Still prepared on r1: the successor's recovery rolls it back (presumed abort).
    expect(world.happenings.filter((h) => h.kind === 'rollback')).toEqual([]);
    expect(new Set([...world.prepared.values()].flatMap((nodes) => [...nodes]))).toEqual(
      new Set(['r1']),
    );
  });

  it('counts a round whose decision it was deposed from as interrupted, not aborted', async () => {
    const world = new FakeWorld();
    const participants = [world.participant('r0', 'yes', 30), world.participant('r1', 'yes', 30)];
    // The commit row's write fails without an answer; settling it finds the epoch taken.
    let calls = 0;
    const decisions = {
      ...world.store(),
      decide: () =>
        Promise.reject(++calls === 1 ? new Error('connection lost') : new DeposedError(2)),
    };
    const { log, lines } = capturedLog();
    const coordinator = await offeredTen(world, participants, { decisions, log });
    await until(() => lines.some((l) => l.event === 'round-interrupted'), 'never interrupted');
    await coordinator.stop();
    expect(coordinator.roundsAborted).toBe(0);
    expect(lines.filter((l) => l.event === 'round-aborted')).toEqual([]);
    // Prepared everywhere and undecided: the successor's recovery settles it.
    expect(world.happenings.filter((h) => h.kind === 'decided')).toEqual([]);
  });
});
