import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import { ensurePacketStream } from '../../adapters/nats/packet-stream-setup.js';
import { busSettings } from '../../plugin/config/bus-settings.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import type { Relation } from '../../plugin/protocol/index.js';
import { busKeyFiles } from './bus-keys.js';
import { numberedRelation } from './bus-packets.js';
import { appliedVersion } from './compare-nodes.js';
import { NUMBERED_SCHEMA } from './numbered-table.js';
import { useAttached } from './use-attached.js';
import { useNatsCluster } from './use-nats-cluster.js';

/**
 * Two replicas of the numbered table attached with `bus`, and the packet
 * stream opened for the test to publish on itself (no lockstep run): tests
 * of the agent alone, with what lockstep run never sends.
 */
export function useAgentStream() {
  const nats = useNatsCluster();
  const clusters = useAttached({
    replicas: 2,
    schema: NUMBERED_SCHEMA,
    config: {
      get bus() {
        return { url: nats.cluster.url };
      },
    },
  });
  let nc: NatsConnection | null = null;
  let settings: BusSettings | null = null;
  let relation: Relation | null = null;
  /** The version attach placed the replicas at. */
  let base = 0;
  const replica = (index: number) => clusters.replicas[index] as PostgresCluster;
  beforeAll(async () => {
    settings = busSettings({
      slot: 'lockstep',
      bus: { ...busKeyFiles(), url: nats.cluster.url, replicas: 1, maxAge: '1h', maxBytes: '64MB' },
    }) as BusSettings;
    nc = await connectBus(settings, 'test');
    await ensurePacketStream(nc, settings);
    relation = await numberedRelation(replica(0));
    base = await appliedVersion(replica(0));
    expect(await appliedVersion(replica(1))).toBe(base);
  });
  afterAll(async () => {
    await nc?.close();
  });
  const ready = <T>(value: T | null): T => {
    if (value === null) throw new Error('the stream opens in beforeAll');
    return value;
  };
  return {
    clusters,
    replica,
    get nc() {
      return ready(nc);
    },
    get settings() {
      return ready(settings);
    },
    get relation() {
      return ready(relation);
    },
    get base() {
      return base;
    },
    /** The ids in `t` on `node`. */
    async rowsOn(node: PostgresCluster): Promise<number[]> {
      const rows = await node.query<{ id: number }>('SELECT id FROM t ORDER BY id');
      return rows.map((r) => Number(r.id));
    },
  };
}
