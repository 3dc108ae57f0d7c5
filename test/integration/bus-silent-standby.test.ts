import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  askStreamPaused,
  coordinatorRoundTransport,
} from '../../adapters/nats/agent-round-transport.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { testBusSigner, testBusVerifier } from '../support/bus-keys.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

const nats = useNatsCluster();

describe('a standby publisher on the coordinator subjects', () => {
  it('sends no reply, so an agent gets the lock holder answer even when the standby is quicker', async () => {
    const servers = [nats.cluster.nodeUrl(0)];
    const [standbyBus, holderBus, agentBus] = await Promise.all([
      connectBus({ servers }, 'test-standby'),
      connectBus({ servers }, 'test-holder'),
      connectBus({ servers }, 'test-agent'),
    ]);
    const silent = async () => null;
    const standby = coordinatorRoundTransport(standbyBus, 'lockstep', testBusSigner()).serve({
      decision: silent,
      waiting: () => undefined,
      // At once: a reply from it would always come first.
      stream: silent,
    });
    const holder = coordinatorRoundTransport(holderBus, 'lockstep', testBusSigner()).serve({
      decision: silent,
      waiting: () => undefined,
      stream: async () => {
        await new Promise((r) => setTimeout(r, 50));
        return { ok: true, value: { paused: true } };
      },
    });
    await Promise.all([standbyBus.flush(), holderBus.flush()]);
    try {
      const answers: Array<boolean | null> = [];
      const trust = { verifier: testBusVerifier(), log: pino({ level: 'silent' }) };
      for (let i = 0; i < 5; i++)
        answers.push(await askStreamPaused(agentBus, 'lockstep', 2_000, trust));
      expect(answers).toEqual([true, true, true, true, true]);
    } finally {
      await standby();
      await holder();
      await Promise.all([standbyBus, holderBus, agentBus].map((nc) => nc.close()));
    }
  });
});
