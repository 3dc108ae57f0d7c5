import { criticalSetup } from './critical-setup.js';
import { useAttached } from './use-attached.js';
import { useNatsCluster } from './use-nats-cluster.js';

/** The two-phase tests' nodes (see {@link criticalSetup}) with a 3-node NATS cluster as the bus. */
export function useBusCritical(twoPhase: Record<string, unknown> = {}) {
  const nats = useNatsCluster();
  const setup = criticalSetup(twoPhase);
  const clusters = useAttached({
    ...setup,
    config: {
      ...setup.config,
      // Read when the file is written (in beforeAll): the NATS cluster is up by then.
      get bus() {
        return { url: nats.cluster.url, replicas: 3 };
      },
    },
  });
  return { nats, clusters };
}
