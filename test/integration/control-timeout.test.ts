import { describe, expect, it } from 'vitest';
import { frozenDuring, useTwoReplicas } from '../support/frozen-replica.js';
import { writeConfig } from '../support/lockstep-process.js';

const clusters = useTwoReplicas();

describe('controlTimeoutMs', () => {
  // The test's own timeout is below the 30 s default: only the configured deadline ends the wait.
  it('bounds a control query on a frozen primary: recover names it (exit 3)', {
    timeout: 20_000,
  }, async () => {
    // 8 s: the lock session's own lock wait ends 1 s before it, so the server must be frozen
    // before that (the freeze follows the wait within a poll) for the deadline to be what ends it.
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 8_000 });
    try {
      // Taking the coordinator lock raises the stream's epoch on the lock's own control session.
      const run = await frozenDuring(
        clusters.primary,
        ['recover', '--json', '--config', config.file],
        'lockstep.streams',
      );
      expect(run.code, run.output).toBe(3);
      expect(JSON.parse(run.stdout)).toMatchObject({ error: { node: 'primary', code: 3 } });
    } finally {
      config.remove();
    }
  });
});
