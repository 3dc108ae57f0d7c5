import { describe, expect, it } from 'vitest';
import {
  appliedVersion,
  eventually,
  expectIdentical,
  waitForMarker,
} from '../support/compare-nodes.js';
import { LockstepProcess } from '../support/lockstep-process.js';
import { insertNumbered, NUMBERED_SCHEMA } from '../support/numbered-table.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({ replicas: 2, schema: NUMBERED_SCHEMA });
const write = (from: number, n: number) => insertNumbered(clusters.primary, from, n);

describe('deltas and duplicates on the real path', () => {
  it('heals a gap with a delta from memory, and skips packets a replica already has', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await write(1, 5);
      await eventually(async () => (await appliedVersion(r2)) === 5, 'both at version 5');
      // Gap: replica2 misses 30 packets while down; they are still in memory when it returns.
      await r2.stopServer('immediate');
      await write(100, 30);
      await eventually(async () => (await appliedVersion(r1)) === 35, 'replica1 at 35');
      await r2.startServer();
      await eventually(async () => (await appliedVersion(r2)) === 35, 'replica2 healed to 35');
      await sidecar.untilEvent('delta-from-memory', { replica: 'replica2', from: 6, to: 35 });

      // Duplicates: replica2 falls behind again, the sidecar dies, and the stream restarts from replica2's position.
      await r2.stopServer('immediate');
      await write(200, 10);
      await eventually(async () => (await appliedVersion(r1)) === 45, 'replica1 at 45');
      sidecar.kill('SIGKILL');
      await sidecar.exited;
      await r2.startServer();
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await eventually(async () => (await appliedVersion(r2)) === 45, 'replica2 at 45');
      await eventually(
        async () =>
          sidecar.logEvent('duplicates-skipped', { replica: 'replica1', duplicates: 10 }) !==
          undefined,
        'replica1 to report the duplicates it skipped',
      );
      expect(await appliedVersion(r1)).toBe(45);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['t', 'marker']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });
});
