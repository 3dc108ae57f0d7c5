import { describe, expect, it } from 'vitest';
import type {
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
  Vote,
} from '../../plugin/coordinator/round-participant.js';
import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import { toLsn } from '../../plugin/protocol/index.js';
import { FakeWorld, offeredTen, QUICK_ROUNDS, sleep, until } from '../support/fake-round-world.js';

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
    const coordinator = await offeredTen(world, participants, {
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
});
