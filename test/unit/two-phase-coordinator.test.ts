import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { recoverPrepared } from '../../plugin/coordinator/recover-prepared.js';
import type { RoundParticipant } from '../../plugin/coordinator/round-participant.js';
import { TwoPhaseCoordinator } from '../../plugin/coordinator/two-phase-coordinator.js';
import { toLsn } from '../../plugin/protocol/index.js';
import {
  type Behaviour,
  FakeWorld,
  type Happening,
  offeredTen,
  QUICK_ROUNDS,
  sleep,
  until,
} from '../support/fake-round-world.js';

describe('TwoPhaseCoordinator with fake participants and nodes', () => {
  it('ends a round where a participant already holds a version inside it (resynced before a takeover), instead of refusing it for ever', async () => {
    const world = new FakeWorld();
    const participant = (name: string, held: number): RoundParticipant => {
      let at = held;
      return {
        name,
        get heldVersion() {
          return at;
        },
        async prepare(request) {
          if (at < request.from - 1) return { vote: 'needs-update', at };
          if (at >= request.from) return { vote: 'no', reason: `${name} already holds ${at}` };
          world.prepare(request.gid, name);
          return { vote: 'yes' };
        },
        async delta(request) {
          at = request.from - 1;
        },
        decided(request, outcome) {
          if (outcome === 'committed') at = request.to;
        },
      };
    };
    // r1 and r2 committed 5..6 while r3 was resynced; a new coordinator meets 5, 6 and 7 at once.
    const participants = [participant('r1', 6), participant('r2', 6), participant('r3', 4)];
    const coordinator = new TwoPhaseCoordinator({
      stream: 's',
      participants: () => participants,
      epoch: () => 1,
      nodes: new Map(['r1', 'r2', 'r3'].map((n) => [n, world.node(n, 0)])),
      decisions: world.store(),
      log: pino({ level: 'silent' }),
      options: QUICK_ROUNDS,
    });
    await coordinator.start();
    for (const version of [5, 6, 7])
      coordinator.offer({ version, lsn: toLsn(`0/${version}`), rows: 1, whole: true });
    const deadline = Date.now() + 5_000;
    while (coordinator.committedThrough < 7) {
      if (Date.now() > deadline) throw new Error(`stuck at ${coordinator.committedThrough}`);
      await sleep(5);
    }
    await coordinator.stop();
    expect(coordinator.roundsAborted).toBe(0);
    expect(participants.map((p) => p.heldVersion)).toEqual([7, 7, 7]);
  });

  it('rolls back at once a refusal whose PREPARE had succeeded (its answer lost), without waiting for recovery', async () => {
    const world = new FakeWorld();
    const healthy = world.participant('r0', 'yes', 30);
    const lost = world.preparing('r1', async (request) => {
      // PREPARE TRANSACTION ran on the node; the connection dropped before its answer arrived.
      world.prepare(request.gid, 'r1');
      throw new Error('Connection terminated unexpectedly');
    });
    const coordinator = await offeredTen(world, [healthy, lost]);
    await until(() => coordinator.roundsAborted > 0, 'no round aborted');
    const gid = [...world.prepared.keys()][0] as string;
    await until(() => (world.prepared.get(gid)?.size ?? 0) === 0, `${gid} is still prepared`);
    await coordinator.stop();
    expect(world.happenings).toContainEqual({ kind: 'rollback', gid, node: 'r1' });
  });

  it('fires the after-prepare fault point only for a yes its round still counts, not a late one being rolled back', async () => {
    const world = new FakeWorld();
    let aborted = false;
    let asked = 0;
    const refusing = world.participant('r0', 'no', 30);
    const late = world.preparing('r1', async (request) => {
      // Retried rounds are refused: only the first one's late yes is in question.
      if (++asked > 1) return { vote: 'no', reason: 'r1 refuses the retries' };
      // PREPARE TRANSACTION finishes only once r0's refusal ended the round.
      while (!aborted) await sleep(5);
      world.prepare(request.gid, 'r1');
      return { vote: 'yes' };
    });
    const faults: string[] = [];
    const coordinator = await offeredTen(world, [refusing, late], {
      fault: (point, count) => faults.push(`${point}:${count}`),
    });
    await until(() => coordinator.roundsAborted > 0, 'no round aborted');
    aborted = true;
    // The late yes lands and its ended round rolls it back.
    await until(
      () => world.happenings.some((h) => h.kind === 'rollback' && h.node === 'r1'),
      'the late prepare was not rolled back',
    );
    await coordinator.stop();
    // A test killing the coordinator "after 1 prepared" would otherwise kill it with nothing prepared.
    expect(faults).toEqual([]);
  });

  it('aborts a round whose participant never catches up to it (a delta that never arrives), naming why', async () => {
    const world = new FakeWorld();
    const participants = [
      world.participant('r0', 'yes', 30),
      world.participant('r1', 'stuck-update', 30),
    ];
    const finished: Array<{ outcome: string; seconds: number }> = [];
    const coordinator = new TwoPhaseCoordinator({
      stream: 's',
      participants: () => participants,
      epoch: () => 1,
      nodes: new Map(['r0', 'r1'].map((n) => [n, world.node(n, 0)])),
      decisions: world.store(),
      log: pino({ level: 'silent' }),
      options: { ...QUICK_ROUNDS, deltaTimeoutMs: 50 },
      onRoundFinished: (outcome, seconds) => finished.push({ outcome, seconds }),
    });
    await coordinator.start();
    coordinator.offer({ version: 10, lsn: toLsn('0/10'), rows: 1, whole: true });
    const deadline = Date.now() + 5_000;
    while (coordinator.roundsAborted === 0) {
      if (Date.now() > deadline) throw new Error('the round waits for the delta without end');
      await sleep(5);
    }
    await coordinator.stop();
    expect(coordinator.status().held?.refusals).toEqual({
      r1: 'not caught up to the round before the timeout',
    });
    // The round is timed for the metrics: aborted, after at least its delta deadline.
    expect(finished[0]?.outcome).toBe('aborted');
    expect(finished[0]?.seconds).toBeGreaterThanOrEqual(0.05);
    for (const [, nodes] of world.prepared) expect([...nodes]).toEqual([]);
  });

  it('commits only when all vote yes, records the decision first, and leaves nothing prepared', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.constantFrom<Behaviour>(
            'yes',
            'no',
            'needs-update',
            'stuck-update',
            'late-yes',
            'throws',
          ),
          {
            minLength: 1,
            maxLength: 4,
          },
        ),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }),
        async (behaviours, failures) => {
          const world = new FakeWorld();
          const timeoutMs = 30;
          const names = behaviours.map((_, i) => `r${i}`);
          const participants = behaviours.map((b, i) =>
            world.participant(names[i] as string, b, timeoutMs),
          );
          const nodes = new Map(names.map((n, i) => [n, world.node(n, failures[i] ?? 0)]));
          const coordinator = new TwoPhaseCoordinator({
            stream: 's',
            participants: () => participants,
            epoch: () => 1,
            nodes,
            decisions: world.store(),
            log: pino({ level: 'silent' }),
            options: {
              voteTimeoutMs: timeoutMs,
              deltaTimeoutMs: timeoutMs,
              batchRows: 100,
              retryInitialMs: 5,
              retryMaxMs: 20,
              recoveryIntervalMs: 60_000,
            },
          });
          await coordinator.start();
          coordinator.offer({ version: 10, lsn: toLsn('0/10'), rows: 1, whole: true });
          const deadline = Date.now() + 5_000;
          while (coordinator.roundsCommitted + coordinator.roundsAborted === 0) {
            if (Date.now() > deadline) throw new Error('no round finished');
            await sleep(5);
          }
          await coordinator.stop();
          // Prepares still in flight land; the next start's recovery finishes whatever is left.
          await sleep(timeoutMs * 3 + 50);
          for (let pass = 0; pass < 5; pass++) {
            const report = await recoverPrepared('s', [...nodes.values()], world.store());
            if (report.failed.length === 0) break;
          }

          const allYes = behaviours.every((b) => b === 'yes' || b === 'needs-update');
          const first = world.happenings.find((h) => h.kind === 'decided');
          expect(coordinator.roundsCommitted > 0).toBe(allYes);
          const commits = world.happenings.filter((h) => h.kind === 'commit');
          const rollbacks = world.happenings.filter((h) => h.kind === 'rollback');
          if (commits.length > 0) {
            // The commit decision is durable before the first COMMIT PREPARED.
            expect(first).toMatchObject({ decision: 'commit' });
            expect(world.happenings.indexOf(first as Happening)).toBeLessThan(
              world.happenings.indexOf(commits[0] as Happening),
            );
            expect(rollbacks.filter((r) => r.gid === commits[0]?.gid)).toEqual([]);
            expect(commits.map((c) => (c.kind === 'commit' ? c.node : '')).sort()).toEqual(
              [...names].sort(),
            );
          }
          for (const [, nodes] of world.prepared) expect([...nodes]).toEqual([]);
        },
      ),
      { numRuns: 30 },
    );
  }, 60_000);
});
