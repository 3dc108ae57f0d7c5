import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import {
  CONTROL_TIMEOUT_MS,
  frozenDuring,
  HANG_MS,
  useTwoReplicas,
} from '../support/frozen-replica.js';
import { lockstep, writeConfig } from '../support/lockstep-process.js';

const clusters = useTwoReplicas({ controlTimeoutMs: CONTROL_TIMEOUT_MS });
const config = () => ['--config', clusters.configFile];

/** An application session that holds `lockSql` (in an open transaction) until released. */
async function holding(lockSql: string): Promise<() => Promise<void>> {
  const holder = new pg.Client({ connectionString: clusters.primary.url });
  holder.on('error', () => undefined);
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query(lockSql);
  return () => holder.end();
}

describe('operator commands against a primary that is busy or frozen from the start', () => {
  it('pause behind an application lock on its row names the lock, not a privilege', async () => {
    const release = await holding(
      "SELECT * FROM lockstep.streams WHERE stream = 'lockstep' FOR UPDATE",
    );
    try {
      const pause = await lockstep(['pause', ...config()], {}, HANG_MS);
      expect(pause.code, pause.output).not.toBe(0);
      expect(pause.output).not.toMatch(/connect as the role/);
      expect(pause.output).toMatch(
        /\[primary\] recording the pause of stream "lockstep" in lockstep\.streams \(not recorded\) failed: a lock it needs was not granted/,
      );
      expect(pause.output).toMatch(/fix: find the session on the primary that holds the lock/);
      expect(pause.code, pause.output).toBe(1);
    } finally {
      await release();
    }
    const again = await lockstep(['pause', ...config()], {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect((await lockstep(['resume', ...config()], {}, HANG_MS)).code).toBe(0);
  }, 120_000);

  it('doctor behind an application lock on a control table names the primary and checks the replicas', async () => {
    const release = await holding('LOCK TABLE lockstep.join_holds IN ACCESS EXCLUSIVE MODE');
    try {
      const doctor = await lockstep(['doctor', ...config()], {}, HANG_MS);
      expect(doctor.output).toMatch(
        /\[primary\] doctor's checks .* failed: a lock it needs was not granted/,
      );
      expect(doctor.output).not.toMatch(/\[replica[12]\]/);
      expect(doctor.code, doctor.output).toBe(1);
    } finally {
      await release();
    }
  }, 120_000);

  it('commands with the primary frozen before they start end, naming it, never its password (exit 3)', async () => {
    const secret = 's3cret-pw';
    const primary = Object.assign(Object.create(clusters.primary) as PostgresCluster, {
      url: clusters.primary.urlFor({ password: secret }),
    });
    const withPassword = writeConfig(primary, clusters.replicas, {
      applyTimeoutMs: 3_000,
      controlTimeoutMs: CONTROL_TIMEOUT_MS,
    });
    const commands = [
      ['doctor'],
      ['pause'],
      ['detach'],
      ['migrate', 'status', '--dir', mkdtempSync(path.join(os.tmpdir(), 'lockstep-adv-'))],
    ];
    await clusters.primary.freezeServer();
    try {
      for (const command of commands) {
        const run = await lockstep([...command, '--config', withPassword.file], {}, HANG_MS);
        expect(run.code, run.output).toBe(3);
        expect(run.output).toMatch(/\[primary\]|"primary"/);
        expect(run.output).not.toContain(secret);
      }
    } finally {
      await clusters.primary.thawServer();
      withPassword.remove();
    }
  }, 120_000);

  it('detach frozen while it takes its lock: names the primary (exit 3); detach again finishes', async () => {
    const detach = ['detach', ...config()];
    // Raising the epoch (an UPDATE) reads the publications: it waits there, and the primary is frozen.
    const frozen = await frozenDuring(clusters.primary, detach, 'pg_catalog.pg_publication');
    expect(frozen.code, frozen.output).toBe(3);
    expect(frozen.output).toMatch(
      /\[primary\] taking the coordinator lock of stream "lockstep" \(detach; nothing dropped yet\) failed: the primary did not answer/,
    );
    expect(await clusters.primary.query('SELECT 1 FROM pg_replication_slots')).toHaveLength(1);
    const again = await lockstep(detach, {}, HANG_MS);
    expect(again.code, again.output).toBe(0);
    expect(await clusters.primary.query('SELECT 1 FROM pg_publication')).toEqual([]);
    expect(await clusters.primary.query('SELECT 1 FROM pg_replication_slots')).toEqual([]);
  }, 120_000);
});
