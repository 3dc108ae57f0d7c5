import { busSettings } from '../config/bus-settings.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { printJson } from './cli-output.js';
import { ExitCode } from './exit-codes.js';

/**
 * `lockstep migrate status`: exit 1 when a node's history differs from the
 * primary's or cannot be read, 3 when a node cannot be reached (with `bus`:
 * a replica no agent reports on).
 */
export async function migrateStatusCommand(
  config: LockstepConfig,
  flags: { dir: string; json?: boolean; config?: string },
): Promise<ExitCode> {
  const [{ formatMigrationStatus, readMigrationStatus }, { MigrationSession }] = await Promise.all([
    import('../migrate/migration-status.js'),
    import('../../adapters/postgres/control/migration-session.js'),
  ]);
  // Each read bounded by applyTimeoutMs, the deadline of the other commands' steps: a frozen node is
  // reported unreachable, not waited on for ever.
  // With `bus` the replicas' histories come from their agents' reports, as `status` reads them.
  const bus = busSettings(config);
  const reader = bus
    ? (await import('../../adapters/nats/agent-status-kv.js')).agentStatusReader(bus)
    : null;
  const status = await readMigrationStatus(
    config,
    flags.dir,
    (node, url) => new MigrationSession(node, url, config.slot, config.applyTimeoutMs),
    reader ? { reader, ...(flags.config ? { configFile: flags.config } : {}) } : undefined,
  );
  if (flags.json) printJson(status);
  else for (const line of formatMigrationStatus(status)) process.stdout.write(`${line}\n`);
  if (status.nodes.some((n) => !n.reachable)) return ExitCode.unreachable;
  return status.consistent ? ExitCode.ok : ExitCode.problems;
}
