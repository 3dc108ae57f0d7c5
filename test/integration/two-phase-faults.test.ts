import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { eventually, expectIdentical, preparedGids } from '../support/compare-nodes.js';
import { criticalSetup, CRITICAL_TABLES as TABLES } from '../support/critical-setup.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached(criticalSetup());

const ids = async (node: PostgresCluster) =>
  new Set((await node.query<{ id: number }>('SELECT id FROM accounts')).map((r) => r.id));

/** Each point of the round where the sidecar is SIGKILLed, and what recovery must then do. */
const FAULTS = [
  { point: 'after-prepare:1', recovery: /rolled back lockstep_\w+ \(.*no commit decision\)/ },
  {
    point: 'after-decision',
    recovery: /committed lockstep_\w+ \(.*a commit decision is recorded\)/,
  },
  {
    point: 'after-commit:1',
    recovery: /committed lockstep_\w+ \(.*a commit decision is recorded\)/,
  },
] as const;

describe('a sidecar killed inside a two-phase round', () => {
  let base = 0;
  for (const fault of FAULTS) {
    it(`at ${fault.point}: after recovery each critical write is on every replica or on none, and no gid is left`, async () => {
      const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
      base += 100;
      const sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
        LOCKSTEP_FAULT: fault.point,
      });
      for (let i = 1; i <= 5; i++) {
        await clusters.primary.query('INSERT INTO accounts VALUES ($1, $2)', [base + i, i]);
        await clusters.primary.query('INSERT INTO events (note) VALUES ($1)', [
          `after ${base + i}`,
        ]);
      }
      // The process kills itself at the fault point (SIGKILL: no exit code).
      expect(await sidecar.exited).toBeNull();
      expect(sidecar.child.signalCode).toBe('SIGKILL');
      const before = await preparedGids([clusters.primary, ...clusters.replicas]);
      expect(before.length).toBeGreaterThan(0);

      const recovered = await lockstep(['recover', '--config', clusters.configFile]);
      expect(recovered.code).toBe(0);
      expect(recovered.output).toMatch(fault.recovery);
      expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
      // All or nothing: both replicas hold exactly the same critical writes.
      expect([...(await ids(r1))].sort()).toEqual([...(await ids(r2))].sort());

      const again = new LockstepProcess(['run', '--config', clusters.configFile]);
      try {
        await eventually(async () => {
          const want = await ids(clusters.primary);
          const [a, b] = [await ids(r1), await ids(r2)];
          return [...want].every((id) => a.has(id) && b.has(id));
        }, 'every critical write on both replicas');
        await eventually(
          async () =>
            (await r1.query('SELECT 1 FROM events WHERE note = $1', [`after ${base + 5}`])).length >
              0 &&
            (await r2.query('SELECT 1 FROM events WHERE note = $1', [`after ${base + 5}`])).length >
              0,
          'the last write on both replicas',
        );
        await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      } finally {
        again.kill('SIGTERM');
        expect(await again.exited).toBe(0);
      }
      expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
    });
  }

  for (const point of ['after-prepare:1:cut', 'after-decision:1:cut', 'after-commit:1:cut']) {
    it(`with its connections cut at ${point}, finishes the round by itself: all or nothing, no gid left`, async () => {
      const [r1, r2] = clusters.replicas as [PostgresCluster, PostgresCluster];
      base += 100;
      const sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
        LOCKSTEP_FAULT: point,
      });
      try {
        for (let i = 1; i <= 5; i++) {
          await clusters.primary.query('INSERT INTO accounts VALUES ($1, $2)', [base + i, i]);
          await clusters.primary.query('INSERT INTO events (note) VALUES ($1)', [
            `after ${base + i}`,
          ]);
        }
        const last = `after ${base + 5}`;
        await eventually(
          async () =>
            (await r1.query('SELECT 1 FROM events WHERE note = $1', [last])).length > 0 &&
            (await r2.query('SELECT 1 FROM events WHERE note = $1', [last])).length > 0,
          'every write on both replicas after the cut',
        );
        await eventually(
          async () => (await preparedGids([clusters.primary, ...clusters.replicas])).length === 0,
          'no gid left prepared',
        );
        await expectIdentical(clusters.primary, clusters.replicas, TABLES);
        // The cut was felt (a replica connection failed and was reopened) …
        // (an agent's err field, or the error in a message of the coordinator)
        expect(
          sidecar.logLines().some((l) => /unreachable|terminat/i.test(`${l.err} ${l.msg}`)),
        ).toBe(true);
        // … and ridden through: still the same process.
        expect(sidecar.child.exitCode).toBeNull();
      } finally {
        sidecar.kill('SIGTERM');
        const code = await sidecar.exited;
        // On failure the sidecar's last words are in the assertion, not printed.
        expect({ code, output: code === 0 ? '' : sidecar.output.slice(-5000) }).toEqual({
          code: 0,
          output: '',
        });
      }
    });
  }

  it('recovers at start-up by itself, before any new work', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile], {
      LOCKSTEP_FAULT: 'after-decision',
    });
    await clusters.primary.query('INSERT INTO accounts VALUES (900, 1)');
    await sidecar.exited;
    expect((await preparedGids(clusters.replicas)).length).toBeGreaterThan(0);
    const again = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      await eventually(
        async () =>
          /^lockstep_/.test(String(again.logged(/^recovery/, { action: 'committed' })?.gid)),
        'the restarted sidecar to commit the decided round',
      );
      const recoveredAt = again.logLines().findIndex((l) => l.action !== undefined);
      const streamingAt = again.logLines().findIndex((l) => l.event === 'stream-started');
      expect(recoveredAt).toBeGreaterThanOrEqual(0);
      expect(streamingAt === -1 || recoveredAt < streamingAt).toBe(true);
      await eventually(
        async () => (await preparedGids(clusters.replicas)).length === 0,
        'no gid left',
      );
      await expectIdentical(clusters.primary, clusters.replicas, TABLES);
    } finally {
      again.kill('SIGTERM');
      expect(await again.exited).toBe(0);
    }
  });
});
