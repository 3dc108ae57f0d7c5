import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  preparedGids,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess, rewriteConfig } from '../support/lockstep-process.js';
import { useMigrationJoin } from '../support/migration-join.js';

// The job running migrate read the file before replica3 was added.
const { clusters, replica, config, migrateAtGate } = useMigrationJoin('join-during-migration');

describe('a replica joining while a migration that left it out is between its checks and its round', () => {
  it('gets the migration in its copy: it does not reach the migration’s version without it', async () => {
    const { primary } = clusters;
    const [r1, r2, r3] = [replica(0), replica(1), replica(2)];
    const sidecar = new LockstepProcess(['run', '--config', config()]);
    // Holds migrate's primary transaction before it writes anything.
    let gate: pg.Client | undefined;
    let attach: LockstepProcess | null = null;
    try {
      await waitForMarker(primary, [r1, r2]);
      const held = await migrateAtGate();
      gate = held.gate;
      const migrate = held.migrate;

      rewriteConfig(config(), primary, [r1, r2, r3]);
      await eventually(
        async () =>
          (
            await primary.query(
              `SELECT 1 FROM lockstep.replica_status WHERE replica = $1 AND state = 'not-attached'`,
              [r3.name],
            )
          ).length > 0,
        'the sidecar to serve replica3',
      );
      attach = new LockstepProcess(['attach', '--config', config()]);
      const joining = attach;
      // Either it copies and places replica3 (the race) or it waits for the migration.
      let exited = false;
      void joining.exited.then(() => {
        exited = true;
      });
      await eventually(
        async () => exited || /waiting for a running migration/.test(joining.output),
        'attach to finish or wait for the migration',
        120_000,
      );
      await gate.query('COMMIT');

      const up = await migrate;
      expect(up.code, up.output).toBe(0);
      expect(await attach.exited, attach.output).toBe(0);
      await waitForMarker(primary, [r1, r2, r3]);
      expect(await appliedVersion(r3)).toBe(await appliedVersion(r1));
      await expectIdentical(primary, [r1, r2, r3], ['items', 'marker']);
      expect(await preparedGids([primary, r1, r2, r3])).toEqual([]);
    } finally {
      await gate?.end().catch(() => undefined);
      attach?.kill('SIGTERM');
      await attach?.exited;
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  }, 300_000);
});
