import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { agentRoundTransport } from '../../adapters/nats/agent-round-transport.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { NatsPhaseTwoNode } from '../../adapters/nats/nats-phase-two-node.js';
import {
  type AgentAddress,
  NatsRoundParticipant,
} from '../../adapters/nats/nats-round-participant.js';
import { AgentRoundServer } from '../../plugin/agent/agent-round-server.js';
import { DeposedError } from '../../plugin/ports/lockstep-error.js';
import type { PhaseTwoNode } from '../../plugin/ports/phase-two-node.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import { testBusSigner, testBusVerifier } from '../support/bus-keys.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// A coordinator that has not noticed yet that a successor took over asks an agent that already
// heard from the successor: the agent refuses, and the old coordinator must stop (DeposedError),
// not count the refusal as a failure to retry every 200 ms until it is stopped.
const nats = useNatsCluster();

describe('an agent refusing a deposed coordinator over the bus', () => {
  it('makes phase two throw DeposedError and a prepare vote no, and runs nothing on the replica', async () => {
    const ran: string[] = [];
    const node: PhaseTwoNode = {
      node: 'replica1',
      list: async () => [],
      commit: async (gid) => void ran.push(`commit ${gid}`),
      rollback: async (gid) => void ran.push(`rollback ${gid}`),
      close: async () => {},
    };
    const agentBus = await connectBus({ servers: [nats.cluster.nodeUrl(0)] }, 'test-agent');
    const coordinatorBus = await connectBus(
      { servers: [nats.cluster.nodeUrl(0)] },
      'test-coordinator',
    );
    const transport = agentRoundTransport(agentBus, 'lockstep', 'replica1', 1_000, {
      verifier: testBusVerifier(),
      log: pino({ level: 'silent' }),
    });
    const server = new AgentRoundServer(
      'replica1',
      () => null,
      {
        ...transport,
        stream: 'lockstep',
        node,
        recoveryIntervalMs: 60_000,
      },
      pino({ level: 'silent' }),
    );
    const stop = transport.serve(server.handle);
    // Both on one server: once it has the subscriptions, requests find them (another
    // server of the cluster would learn of them only later).
    await agentBus.flush();
    const address = (epoch: number): AgentAddress => ({
      nc: coordinatorBus,
      slot: 'lockstep',
      replica: 'replica1',
      epoch: () => epoch,
      timeouts: { prepareMs: 2_000, deltaMs: 2_000, phaseTwoMs: 2_000 },
      signer: testBusSigner(),
    });
    try {
      // The successor (epoch 2) reached the agent first.
      expect(await new NatsPhaseTwoNode(address(2)).list('lockstep')).toEqual([]);
      const deposed = new NatsPhaseTwoNode(address(1));
      await expect(deposed.rollback('lockstep_1_2')).rejects.toBeInstanceOf(DeposedError);
      await expect(deposed.commit('lockstep_1_2')).rejects.toBeInstanceOf(DeposedError);
      const vote = await new NatsRoundParticipant(address(1)).prepare({
        gid: 'lockstep_1_2',
        round: 1,
        from: 1,
        to: 2,
        toLsn: '0/20' as Lsn,
      });
      expect(vote.vote).toBe('no');
      expect(ran).toEqual([]);
      // The successor's own requests still run.
      await new NatsPhaseTwoNode(address(2)).rollback('lockstep_1_2');
      expect(ran).toEqual(['rollback lockstep_1_2']);
    } finally {
      await stop();
      await agentBus.close();
      await coordinatorBus.close();
    }
  });
});
