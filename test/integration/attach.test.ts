import { describe, expect, it } from 'vitest';
import { expectIdentical, waitForMarker } from '../support/compare-nodes.js';
import { LockstepProcess, lockstep, writeConfig } from '../support/lockstep-process.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 2 });
const TABLES = ['items', 'notes', '"Other Schema"."Order"', 'marker'];

describe('lockstep attach', () => {
  it('refuses without changing anything, creates missing tables with --create-schema, and resumes after a failure', async () => {
    const [r1, r2] = clusters.replicas as [
      (typeof clusters.replicas)[number],
      (typeof clusters.replicas)[number],
    ];
    await clusters.primary.query(`
      CREATE TYPE mood AS ENUM ('sad', 'happy');
      CREATE TABLE items (id bigserial PRIMARY KEY, v text NOT NULL, m mood);
      CREATE TABLE notes (id int PRIMARY KEY, body text);
      CREATE SCHEMA "Other Schema"; CREATE TABLE "Other Schema"."Order" ("Id" int, "select" text, PRIMARY KEY ("Id"));
      CREATE TABLE marker (id bigserial PRIMARY KEY);
      INSERT INTO items (v, m) SELECT 'item ' || g, 'happy' FROM generate_series(1, 500) g;
      INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 300) g;
      INSERT INTO "Other Schema"."Order" VALUES (1, 'a');`);
    // Replicas have the enum (a type is not a table) but no tables at all.
    for (const r of [r1, r2]) await r.query(`CREATE TYPE mood AS ENUM ('sad', 'happy')`);
    const config = writeConfig(clusters.primary, clusters.replicas, {
      tables: ['public.*', '"Other Schema".*'],
    });
    try {
      const refused = await lockstep(['attach', '--config', config.file]);
      expect(refused.code).toBe(1);
      expect(refused.output).toMatch(
        /\[replica1, table public\.items\] the table does not exist on the replica/,
      );
      expect(refused.output).toMatch(
        /attach refused: fix the 8 problem\(s\) above \(nothing was changed\)/,
      );
      expect(
        await clusters.primary.query(
          `SELECT 1 FROM pg_replication_slots WHERE slot_name = 'lockstep'`,
        ),
      ).toEqual([]);

      // replica2 holds a stray row in notes: its copy of notes fails, the rest succeeds.
      await r2.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
      await r2.query(`INSERT INTO notes VALUES (999, 'stray')`);
      const failed = await lockstep(['attach', '--config', config.file, '--create-schema']);
      expect(failed.code).toBe(1);
      expect(failed.output).toMatch(/created a missing table replica=replica1 table=public\.items/);
      expect(failed.output).toMatch(
        /\[replica2, table public\.notes\] the table already has rows on the replica.*\n\s+fix: empty it/,
      );

      // Writes between the two runs: the stream must meet both copies exactly.
      await clusters.primary.query(
        `INSERT INTO notes VALUES (301, 'between'); UPDATE items SET v = 'changed' WHERE id <= 10`,
      );
      await r2.query('DELETE FROM notes');
      const resumed = await lockstep(['attach', '--config', config.file]);
      expect(resumed.code).toBe(0);
      expect(resumed.output).toMatch(
        /resuming: taking a fresh snapshot for the tables not copied yet/,
      );
      // Only what had not been copied is copied again.
      const copies = resumed.output.match(/✓ (replica\d): (\S+)/g) ?? [];
      expect(copies.length).toBeGreaterThanOrEqual(1);
      expect(copies.every((c) => /replica2/.test(c))).toBe(true);
      expect((await lockstep(['attach', '--config', config.file])).output).toMatch(
        /already attached/,
      );

      const sidecar = new LockstepProcess(['run', '--config', config.file]);
      try {
        await clusters.primary.query(
          `INSERT INTO notes VALUES (302, 'after'); DELETE FROM items WHERE id = 500`,
        );
        await waitForMarker(clusters.primary, clusters.replicas);
        await expectIdentical(clusters.primary, clusters.replicas, TABLES);
      } finally {
        sidecar.kill('SIGTERM');
        expect(await sidecar.exited).toBe(0);
      }
    } finally {
      config.remove();
    }
  });
});
