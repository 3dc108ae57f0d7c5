import { describe, expect, it } from 'vitest';
import type {
  DecisionQuestion,
  StreamStanding,
  WireReply,
} from '../../plugin/protocol/round-subjects.js';
import { BusRounds } from '../../plugin/sidecar/bus-rounds.js';
import { capturedLog, FakeWorld, QUICK_ROUNDS } from '../support/fake-round-world.js';

type Handlers = {
  decision(question: DecisionQuestion): Promise<WireReply<'commit' | 'abort'> | null>;
  stream(): Promise<WireReply<StreamStanding> | null>;
};

/** Bus rounds whose lock epoch is `epoch()`; returns the handlers it serves agents with. */
async function served(
  epoch: () => number | null,
): Promise<{ handlers: Handlers; stop(): Promise<void> }> {
  const world = new FakeWorld();
  let handlers: Handlers | null = null;
  const busRounds = new BusRounds({
    stream: 's',
    participants: [world.participant('r1', 'yes', 0)],
    nodes: new Map([['r1', world.node('r1', 0)]]),
    decisions: world.store(),
    options: QUICK_ROUNDS,
    log: capturedLog().log,
    epoch,
    paused: () => true,
    serve: (h) => {
      handlers = h;
      return async () => undefined;
    },
    close: async () => undefined,
  });
  await busRounds.start();
  return { handlers: handlers as unknown as Handlers, stop: () => busRounds.stop() };
}

describe('BusRounds answering agents', () => {
  it('stays silent while it does not hold the coordinator lock, so the holder answers first', async () => {
    let epoch: number | null = 1;
    const { handlers, stop } = await served(() => epoch);
    try {
      expect(await handlers.stream()).toEqual({ ok: true, value: { paused: true } });
      epoch = null;
      // A refusal would be the first reply an agent's request takes, hiding the holder's answer.
      expect(await handlers.stream()).toBeNull();
      expect(await handlers.decision({ gid: 'lockstep_s_1_2', replica: 'r1' })).toBeNull();
    } finally {
      await stop();
    }
  });
});
