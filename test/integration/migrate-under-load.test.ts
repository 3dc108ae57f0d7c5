import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { expectIdentical, preparedGids, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep } from '../support/lockstep-process.js';
import { useAttached } from '../support/use-attached.js';

const clusters = useAttached({
  replicas: 2,
  schema: `CREATE TABLE marker (id bigserial PRIMARY KEY);
           CREATE TABLE events (id bigserial PRIMARY KEY, amount int NOT NULL);
           CREATE TABLE other (id int PRIMARY KEY);`,
  seed: `INSERT INTO events (amount) SELECT (g % 7) - 3 FROM generate_series(1, 5000) g;`,
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'lockstep-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One connection running `statement(i)` in a loop until stopped. */
function writer(url: string, statement: (i: number) => string) {
  let running = true;
  let writes = 0;
  const done = (async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (let i = 0; running; i++) {
        // The workload's own updates and deletes may deadlock each other: that one is retried.
        const ok = await client.query(statement(i)).then(
          () => true,
          (error: { code?: string }) => {
            if (error.code !== '40P01') throw error;
            return false;
          },
        );
        if (ok) writes++;
      }
    } finally {
      await client.end();
    }
  })();
  return {
    async stop(): Promise<number> {
      running = false;
      await done;
      return writes;
    },
  };
}

/** Inserts (many with negative amounts), updates and deletes rows of `events` until stopped. */
function raceEvents(url: string): { stop(): Promise<number> } {
  // Apart: an insert never waits behind an update that waits for the migration's row locks.
  const writers = [
    writer(
      url,
      () => 'INSERT INTO events (amount) SELECT -1 - (g % 5) FROM generate_series(1, 20) g',
    ),
    writer(url, (i) => `UPDATE events SET amount = amount - 1 WHERE id % 97 = ${i % 97}`),
    writer(
      url,
      () => 'DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY random() LIMIT 3)',
    ),
  ];
  return {
    async stop() {
      let total = 0;
      for (const w of writers) total += await w.stop();
      return total;
    },
  };
}

describe('a data migration under a concurrent write workload', () => {
  it('leaves every node identical, row by row: writers to the tables it writes wait for the round', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      writeFileSync(
        path.join(dir, '001-zero-negatives.sql'),
        // The pause widens the window in which the application writes after the UPDATE read.
        'UPDATE events SET amount = 0 WHERE amount < 0; SELECT pg_sleep(1);',
      );
      const race = raceEvents(clusters.primary.url);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const migrated = await lockstep(
        ['migrate', 'up', '--config', clusters.configFile, '--dir', dir],
        {},
        120_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      const writes = await race.stop();
      expect(migrated.code).toBe(0);
      expect(writes).toBeGreaterThan(0);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['events']);
      expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('locks a table even when the dry run changes no row there, and the tables it only reads', async () => {
    const sidecar = new LockstepProcess(['run', '--config', clusters.configFile]);
    try {
      // No row matches when it runs: still, inserts racing it must not be judged differently.
      writeFileSync(
        path.join(dir, '001b-zero-very-negative.sql'),
        `UPDATE events SET amount = 0 WHERE amount < -1000
            AND id > (SELECT coalesce(max(id), 0) - 1000000 FROM other);
         SELECT pg_sleep(1);`,
      );
      const race = writer(
        clusters.primary.url,
        () => 'INSERT INTO events (amount) SELECT -2000 FROM generate_series(1, 20)',
      );
      const others = writer(clusters.primary.url, (i) => `INSERT INTO other VALUES (${1000 + i})`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const migrated = await lockstep(
        ['migrate', 'up', '--config', clusters.configFile, '--dir', dir],
        {},
        120_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await race.stop();
      await others.stop();
      expect(migrated.code).toBe(0);
      await waitForMarker(clusters.primary, clusters.replicas);
      await expectIdentical(clusters.primary, clusters.replicas, ['events', 'other']);
    } finally {
      sidecar.kill('SIGTERM');
      await sidecar.exited;
    }
  });

  it('is refused with every node unchanged when the real run writes a table its dry run did not', async () => {
    // Writes `other` only when it runs for real: the first (dry) run finds the flag unset.
    for (const node of [clusters.primary, ...clusters.replicas])
      await node.query(`CREATE SEQUENCE flip_seq;
        CREATE FUNCTION flip_once() RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
          IF nextval('flip_seq') % 2 = 0 THEN INSERT INTO other VALUES (1); END IF;
        END $$;`);
    writeFileSync(path.join(dir, '002-data-dependent.sql'), 'SELECT flip_once();');
    const before = await clusters.primary.query('SELECT count(*)::int AS n FROM other');
    const refused = await lockstep(
      ['migrate', 'up', '--config', clusters.configFile, '--dir', dir],
      {},
      120_000,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/touched a table its dry run did not/);
    expect(refused.output).toMatch(/other/);
    expect(await clusters.primary.query('SELECT count(*)::int AS n FROM other')).toEqual(before);
    expect(
      await clusters.primary.query("SELECT name FROM lockstep.migrations WHERE name LIKE '002%'"),
    ).toEqual([]);
    expect(await preparedGids([clusters.primary, ...clusters.replicas])).toEqual([]);
  });
});
