import type { LockstepConfig } from '../config/config-schema.js';
import { printJson } from './cli-output.js';
import { ExitCode } from './exit-codes.js';

/**
 * `lockstep migrate status`: exit 1 when a node's history differs from the
 * primary's or cannot be read, 3 when a node cannot be reached.
 */
export async function migrateStatusCommand(
  config: LockstepConfig,
  flags: { dir: string; json?: boolean },
): Promise<ExitCode> {
  const [{ formatMigrationStatus, readMigrationStatus }, { postgresControl }] = await Promise.all([
    import('../migrate/migration-status.js'),
    import('./postgres-control.js'),
  ]);
  const status = await readMigrationStatus(
    config,
    flags.dir,
    postgresControl(config).migrationSession,
  );
  if (flags.json) printJson(status);
  else for (const line of formatMigrationStatus(status)) process.stdout.write(`${line}\n`);
  if (status.nodes.some((n) => !n.reachable)) return ExitCode.unreachable;
  return status.consistent ? ExitCode.ok : ExitCode.problems;
}
