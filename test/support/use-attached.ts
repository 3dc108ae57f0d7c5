import { afterAll, beforeAll, expect } from 'vitest';
import { lockstep, writeConfig } from './lockstep-process.js';
import { type UsedClusters, useClusters } from './use-clusters.js';

/** Clusters with the same schema everywhere, seed data on the primary, and lockstep attached. */
export interface AttachedClusters extends UsedClusters {
  /** Path of the configuration file. */
  readonly configFile: string;
  /** What `lockstep attach` printed. */
  readonly attachOutput: string;
}

/**
 * Starts a primary and replicas, creates `schema` on every node, runs `seed` on
 * the primary, writes a configuration (with `config` on top) and attaches.
 */
export function useAttached(options: {
  replicas: number;
  schema: string;
  seed?: string;
  config?: Record<string, unknown>;
}): AttachedClusters {
  const clusters = useClusters({ replicas: options.replicas });
  let config: ReturnType<typeof writeConfig> | null = null;
  let attachOutput = '';
  beforeAll(async () => {
    await Promise.all([clusters.primary, ...clusters.replicas].map((c) => c.query(options.schema)));
    if (options.seed) await clusters.primary.query(options.seed);
    config = writeConfig(clusters.primary, clusters.replicas, options.config);
    const attached = await lockstep(['attach', '--config', config.file]);
    expect(attached.output).toMatch(/attached:/);
    expect(attached.code).toBe(0);
    attachOutput = attached.output;
  });
  afterAll(() => config?.remove());
  return {
    get primary() {
      return clusters.primary;
    },
    get replicas() {
      return clusters.replicas;
    },
    get configFile() {
      if (!config) throw new Error('used before beforeAll ran');
      return config.file;
    },
    get attachOutput() {
      return attachOutput;
    },
  };
}
