import { describe, expect, it } from 'vitest';
import { useTwoReplicas } from '../support/frozen-replica.js';
import { holdStreamRow, runThroughHeldRow } from '../support/hold-stream-row.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';

const clusters = useTwoReplicas();

// A control deadline under the 20 s lock wait: the wait must end on the server first, named.
describe('a lock wait on the primary under a short controlTimeoutMs', () => {
  it('recover names the lock wait and its fix, not a primary that does not answer', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 3_000 });
    const release = await holdStreamRow(clusters.primary);
    try {
      const run = await lockstep(['recover', '--json', '--config', config.file], {}, 60_000);
      // Not 3, which says the primary is unreachable: it answers, a session holds a row.
      expect(run.code, run.output).toBe(1);
      const { error } = JSON.parse(run.stdout) as { error: Record<string, unknown> };
      expect(error).toMatchObject({ node: 'primary', code: 1 });
      expect(String(error.problem)).toMatch(/lock_timeout/);
      expect(String(error.fix)).toMatch(/pg_locks/);
    } finally {
      await release();
      config.remove();
    }
  });

  it('attach --resync names the lock wait and its fix, and copies nothing', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 3_000 });
    const release = await holdStreamRow(clusters.primary);
    try {
      const run = await lockstep(['attach', '--resync', 'replica1', '--config', config.file]);
      expect(run.code, run.output).toBe(1);
      expect(run.output).toMatch(
        /\[primary\] taking the coordinator lock of stream "lockstep" \(attach --resync; nothing copied yet\) failed: a lock it needs was not granted/,
      );
      expect(run.output).toMatch(/fix: find the session on the primary .*pg_locks/);
      expect(run.output).not.toMatch(/✓ replica1:/);
    } finally {
      await release();
      config.remove();
    }
  });

  it('run logs the lock wait with its fix, does not claim another sidecar, and takes over once it ends', async () => {
    const config = writeConfig(clusters.primary, clusters.replicas, { controlTimeoutMs: 3_000 });
    try {
      await runThroughHeldRow(clusters.primary, config.file, 'sidecar-active');
    } finally {
      config.remove();
    }
  });
});
