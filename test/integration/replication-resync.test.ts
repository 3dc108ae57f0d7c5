import { describe, expect, it } from 'vitest';
import { postgresCluster } from '../../adapters/postgres/setup/postgres-setup.js';
import { loadConfig } from '../../plugin/config/load-config.js';
import { readStatus } from '../../plugin/status/read-status.js';
import { eventually, expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const SCHEMA = `CREATE TABLE parent (id int PRIMARY KEY, v text);
                CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent, pad text);
                CREATE TABLE marker (id bigserial PRIMARY KEY);`;
// A tiny lag limit, so a replica down for a moment is already "too far behind".
const clusters = useAttached({ replicas: 2, schema: SCHEMA, config: { maxLagBytes: 256 * 1024 } });

let next = 1;
/** Rows written while a replica is copied (a range of their own). */
let duringId = 5_000_000;
/** Writes enough WAL to pass maxLagBytes. */
async function writeLots(): Promise<void> {
  const from = next;
  next += 2_000;
  await clusters.primary.query(
    `INSERT INTO parent SELECT g, md5(g::text) FROM generate_series(${from}, ${next - 1}) g;
     INSERT INTO child SELECT g, g, repeat('x', 200) FROM generate_series(${from}, ${next - 1}) g;`,
  );
}
const slotConfirmed = async () =>
  (
    await clusters.primary.query<{ lsn: string }>(
      `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
    )
  )[0]?.lsn;

describe('a replica further behind than maxLagBytes', () => {
  it('is marked stale, stops holding WAL, and is resynced by attach --resync', async () => {
    const [, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    const cfg = loadConfig(clusters.configFile);
    let sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await writeLots();
      await waitForMarker(clusters.primary, clusters.replicas);
      await r2.stopServer('immediate');
      const held = await slotConfirmed();
      for (let i = 0; i < 3; i++) await writeLots();
      await eventually(
        async () => (await readStatus(postgresCluster(), cfg)).replicas[1]?.state === 'stale',
        'replica2 marked stale',
      );
      // It no longer holds WAL: the slot moves on with replica1.
      await eventually(
        async () => (await slotConfirmed()) !== held,
        'the slot to move past replica2',
      );

      sidecar.kill('SIGTERM');
      await sidecar.exited;
      await r2.startServer();
      const resynced = await lockstep([
        'attach',
        '--config',
        clusters.configFile,
        '--resync',
        'replica2',
      ]);
      expect(resynced.output).toMatch(/resync: emptying the replica replica=replica2 version=\d+/);
      expect(resynced.code).toBe(0);
      sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
      await writeLots();
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['parent', 'child', 'marker']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it.each([
    { writes: 'one-phase', twoPhase: {} },
    {
      writes: 'critical (two-phase) writes during the copy',
      twoPhase: { tables: ['public.parent'] },
    },
  ])(
    'with resync: "auto", is copied anew by the sidecar once it is back — $writes',
    async ({ twoPhase }) => {
      const [, r2] = clusters.replicas as [
        (typeof clusters.replicas)[number],
        (typeof clusters.replicas)[number],
      ];
      const auto = writeConfig(clusters.primary, clusters.replicas, {
        maxLagBytes: 256 * 1024,
        resync: 'auto',
        twoPhase,
      });
      const sidecar = new LockstepProcess(['run', '--config', auto.file]);
      try {
        await writeLots();
        await waitForMarker(clusters.primary, clusters.replicas);
        await r2.stopServer('immediate');
        for (let i = 0; i < 3; i++) await writeLots();
        await eventually(
          async () =>
            sidecar.logEvent('replica-stale', { replica: 'replica2', fix: /resync: auto/ }) !==
            undefined,
          'stale and resyncing',
        );
        await r2.startServer();
        // Small transactions while the replica is copied: the others commit them (two-phase rounds
        // without it, when critical); the resynced replica then meets them in the stream.
        let writing = true;
        const during = (async () => {
          while (writing) {
            await clusters.primary.query('INSERT INTO parent VALUES ($1, $2)', [
              duringId++,
              'during',
            ]);
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
        try {
          await eventually(
            async () => sidecar.logEvent('replica-resynced', { replica: 'replica2' }) !== undefined,
            'the resync to finish',
          );
          await new Promise((r) => setTimeout(r, 500));
        } finally {
          writing = false;
          await during;
        }
        await writeLots();
        await waitForMarker(clusters.primary, clusters.replicas, 30_000).catch((e: Error) => {
          // The sidecar's last words say why it did not converge.
          throw new Error(`${e.message}\n${sidecar.output.slice(-5000)}`);
        });
        await expectIdentical(clusters.primary, clusters.replicas, ['parent', 'child', 'marker']);
      } finally {
        sidecar.kill('SIGTERM');
        await sidecar.exited;
        auto.remove();
      }
    },
  );
});
