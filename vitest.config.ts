import { defineConfig } from 'vitest/config';
import DurationSequencer from './test/harness/duration-sequencer.js';

export default defineConfig({
  test: {
    globalSetup: ['test/harness/global-setup.ts'],
    // Longest files first (recorded durations): no worker left running a long file alone at the end.
    sequence: { sequencer: DurationSequencer },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/harness/failure-logs.ts'],
          // Real clusters: generous timeouts for start-up, never thresholds on speed.
          testTimeout: 180_000,
          hookTimeout: 120_000,
          pool: 'forks',
          sequence: { groupOrder: 1 },
          // Three on two cores: the files wait on timeouts, pauses and servers much of the time
          // (with two, both cores were 59 % busy on average over a CI run).
          maxWorkers: 3,
        },
      },
    ],
  },
});
