import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PostgresCluster } from '../../../adapters/local-postgres/cluster.js';
import { benchProvider } from '../../support/bench-cluster.js';
import type { System } from '../system.js';

const run = promisify(execFile);
const PGCOPYDB = '/usr/bin/pgcopydb';

/** Why pgcopydb cannot run here (not installed), or null. */
export function pgcopydbMissing(): string | null {
  try {
    accessSync(PGCOPYDB, constants.X_OK);
    return null;
  } catch {
    return `pgcopydb: column skipped, ${PGCOPYDB} is missing (apt-get install -y pgcopydb)`;
  }
}

const notReplicating = async () => {
  throw new Error('pgcopydb copies once: it takes part in (a) only');
};

/**
 * pgcopydb clone (schema, data, indexes, constraints; its default jobs): it
 * copies into one target, so one clone per replica, both started at once;
 * (a) is the command → both done. Its pg_dump / pg_restore are the server's
 * major's.
 */
export function pgcopydbSystem(): System {
  const dirs: string[] = [];
  return {
    name: 'pgcopydb',
    needsSchema: false,
    replicating: false,
    async sync(primary, replicas) {
      await Promise.all(
        replicas.map(async (r) => {
          const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-pgcopydb-'));
          dirs.push(dir);
          await run(
            PGCOPYDB,
            ['clone', '--source', url(primary), '--target', url(r), '--dir', dir, '--no-owner'],
            {
              env: { ...process.env, PATH: `${benchProvider.binaries.bin}:${process.env.PATH}` },
              maxBuffer: 64 << 20,
            },
          );
        }),
      );
    },
    pause: notReplicating,
    resume: notReplicating,
    peakRssMB: () => null,
    async stop() {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

const url = (c: PostgresCluster) => `postgres://postgres@${c.host}:${c.port}/postgres`;
