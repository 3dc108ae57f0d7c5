import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/compare-nodes.js';
import { LockstepProcess, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

describe('attach while a transaction stays open on the primary', () => {
  it('names the transaction the slot waits for, and goes on once it ends', async () => {
    const schema = 'CREATE TABLE t (id int PRIMARY KEY)';
    await clusters.primary.query(schema);
    await clusters.replicas[0]?.query(schema);
    // An application's transaction left idle after a write (it holds an xid).
    const app = new pg.Client({ connectionString: clusters.primary.url, application_name: 'app' });
    await app.connect();
    const config = writeConfig(clusters.primary, clusters.replicas);
    let attach: LockstepProcess | null = null;
    try {
      await app.query('BEGIN');
      await app.query('INSERT INTO t VALUES (1)');
      const [{ pid }] = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
        .rows as [{ pid: number }];
      attach = new LockstepProcess(['attach', '--config', config.file]);
      const running = attach;
      await eventually(
        async () =>
          new RegExp(
            `waits for running transactions .*transactions="pid ${pid} \\(idle in transaction for \\d+ s, app`,
          ).test(running.output),
        'attach to name the open transaction',
      );
      await app.query('ROLLBACK');
      expect(await attach.closed).toBe(0);
      expect(attach.output).toMatch(/attached:/);
    } finally {
      attach?.kill('SIGTERM');
      await app.end();
      config.remove();
    }
  });
});
