import { afterAll, beforeAll } from 'vitest';
import { NatsCluster } from './nats-cluster.js';

/** A 3-node JetStream cluster for a test file, started in `beforeAll` and destroyed in `afterAll`. */
export function useNatsCluster(options: { size?: number; maxPayload?: number } = {}): {
  readonly cluster: NatsCluster;
} {
  let cluster: NatsCluster | null = null;
  beforeAll(async () => {
    cluster = await NatsCluster.start(options);
  });
  afterAll(async () => {
    await cluster?.destroy();
  });
  return {
    get cluster() {
      if (!cluster) throw new Error('the NATS cluster is used before beforeAll ran');
      return cluster;
    },
  };
}
