import type { LockstepConfig } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { printJson } from './cli-output.js';
import { ExitCode } from './exit-codes.js';

/** `pause` and `resume` (the primary's control schema upgraded if it predates pause). */
async function changePause(config: LockstepConfig, paused: boolean) {
  const [{ migrateControlSchema }, { setReplicationPaused }, { postgresCluster }] =
    await Promise.all([
      import('../../adapters/postgres/control/control-schema.js'),
      import('../attach/pause-replication.js'),
      import('../../adapters/postgres/setup/postgres-setup.js'),
    ]);
  return setReplicationPaused(postgresCluster(config), config, paused, () =>
    migrateControlSchema('primary', config.primary, config.controlTimeoutMs),
  );
}

/**
 * `lockstep pause` (`paused` true) and `lockstep resume`. Exit 1 when a
 * running sidecar did not let go of the slot in time. `--json` uses
 * `status --json`'s names: `paused`, `pausedSince`, `sidecar.running`.
 */
export async function pauseCommand(
  flags: { config?: string; json?: boolean },
  paused: boolean,
): Promise<ExitCode> {
  const config = loadConfig(flags.config);
  const result = await changePause(config, paused);
  const code = result.released ? ExitCode.ok : ExitCode.problems;
  const since = result.pausedSince?.toISOString() ?? null;
  if (flags.json) {
    printJson({
      paused,
      pausedSince: since,
      wasPaused: result.wasPaused,
      sidecar: { running: result.sidecarRunning },
      released: result.released,
    });
    return code;
  }
  if (!paused) {
    const runs = result.sidecarRunning
      ? 'the sidecar streams again from the lowest replica position'
      : 'no sidecar runs now: start lockstep run';
    process.stdout.write(
      result.wasPaused ? `resumed: ${runs}\n` : `not paused: nothing to resume (${runs})\n`,
    );
    return code;
  }
  const keeps = 'the slot keeps WAL from the lowest replica position until lockstep resume';
  if (!result.sidecarRunning)
    process.stdout.write(
      `paused since ${since}: no sidecar runs now; one started stays paused; ${keeps}\n`,
    );
  else if (result.released)
    process.stdout.write(
      `paused since ${since}: the sidecar stopped streaming, replicas stay where they are; ${keeps}\n`,
    );
  else
    process.stderr.write(
      `paused since ${since} (recorded), but the running sidecar still streams after 10 s: is it an older lockstep? Restart it and it stays paused\n`,
    );
  return code;
}
