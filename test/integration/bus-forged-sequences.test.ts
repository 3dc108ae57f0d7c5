import { Kvm } from '@nats-io/kv';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { sequenceValuesKv } from '../../adapters/nats/sequence-values-kv.js';
import {
  encodeSequenceValues,
  SEQUENCE_VALUES_KEY,
  sequenceValuesBucket,
} from '../../plugin/protocol/sequence-values.js';
import { testBusSigner, testBusVerifier } from '../support/bus-keys.js';
import { useNatsCluster } from '../support/use-nats-cluster.js';

// Whoever may write the _SEQUENCES bucket must not move the replicas' sequences.
const nats = useNatsCluster();

describe('the sequence values an agent reads from the bus', () => {
  it('are those lockstep run signed; a value written by another client is not applied', async () => {
    const nc = await connectBus({ servers: [nats.cluster.nodeUrl(0)] }, 'test-sequences');
    const settings = { stream: 'lockstep', replicas: 1 };
    const events: string[] = [];
    const log = pino(
      { level: 'info' },
      { write: (line: string) => events.push(JSON.parse(line).event) },
    );
    const publisher = sequenceValuesKv(async () => nc, settings, { signer: testBusSigner() });
    const agent = sequenceValuesKv(async () => nc, settings, { verifier: testBusVerifier(), log });
    const genuine = [{ schema: 'public', name: 't_id_seq', lastValue: '5' }];
    try {
      await publisher.put(genuine);
      expect(await agent.get()).toEqual(genuine);
      expect(events).toEqual([]);
      const kv = await new Kvm(nc).open(sequenceValuesBucket('lockstep'));
      const forged = [{ schema: 'public', name: 't_id_seq', lastValue: '9000000000000000000' }];
      await kv.put(SEQUENCE_VALUES_KEY, encodeSequenceValues(forged));
      expect(await agent.get()).toBe(null);
      expect(events).toEqual(['bus-signature-invalid']);
    } finally {
      await nc.close();
    }
  });
});
