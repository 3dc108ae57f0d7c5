import { describe, expect, it } from 'vitest';
import { toLsn } from '../../plugin/protocol/index.js';
import { BusRounds } from '../../plugin/sidecar/bus-rounds.js';
import { capturedLog, FakeWorld, QUICK_ROUNDS, until } from '../support/fake-round-world.js';

/** Bus rounds over one fake agent whose decision log fails its first `failures` reads of the last round. */
function rounds(world: FakeWorld, failures: number, retryInitialMs = 5) {
  const { log, lines } = capturedLog();
  const store = world.store();
  let left = failures;
  const participant = world.participant('r1', 'yes', 30);
  const busRounds = new BusRounds({
    stream: 's',
    participants: [participant],
    nodes: new Map([['r1', world.node('r1', 0)]]),
    decisions: {
      ...store,
      lastRound: async () => {
        if (left-- > 0) throw new Error('terminating connection due to administrator command');
        return store.lastRound();
      },
    },
    options: { ...QUICK_ROUNDS, retryInitialMs, retryMaxMs: retryInitialMs * 4 },
    log,
    epoch: () => 1,
    paused: () => false,
    serve: () => async () => undefined,
    close: async () => undefined,
  });
  return { busRounds, lines };
}

describe('BusRounds.start', () => {
  it('retries a start the primary cut short, then runs rounds', async () => {
    const world = new FakeWorld();
    const { busRounds, lines } = rounds(world, 3);
    await busRounds.start();
    expect(lines.filter((l) => l.event === 'rounds-start-failed')).toHaveLength(3);
    busRounds.offer({ version: 10, lsn: toLsn('0/10'), rows: 1, whole: true });
    await until(() => busRounds.coordinator.committedThrough >= 10, 'the round never committed');
    await busRounds.stop();
    expect(world.happenings.filter((h) => h.kind === 'decided')).toEqual([
      { kind: 'decided', gid: expect.stringMatching(/^lockstep_s_10_/), decision: 'commit' },
    ]);
  });

  it('ends a start still retrying when stopped, without waiting out its backoff', async () => {
    const world = new FakeWorld();
    // A backoff far longer than the test may take: only the stop can end the wait.
    const { busRounds, lines } = rounds(world, Number.POSITIVE_INFINITY, 600_000);
    const starting = busRounds.start();
    await until(() => lines.some((l) => l.event === 'rounds-start-failed'), 'no failed start');
    await busRounds.stop();
    await starting;
    expect(world.happenings).toEqual([]);
  });
});
