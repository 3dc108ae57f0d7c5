import { loadConfig } from '../config/load-config.js';
import { printJson } from './cli-output.js';
import { ExitCode } from './exit-codes.js';

/** `lockstep detach`: a refusal (a sidecar runs, something is prepared) is thrown: exit 1. */
export async function detachCommand(flags: {
  config?: string;
  force?: boolean;
  json?: boolean;
}): Promise<ExitCode> {
  const config = loadConfig(flags.config);
  const [{ detach }, { postgresCluster }] = await Promise.all([
    import('../attach/detach.js'),
    import('../../adapters/postgres/setup/postgres-setup.js'),
  ]);
  const result = await detach(postgresCluster(config), config, flags.force === true);
  if (flags.json) {
    printJson({ slot: config.slot, publication: config.publication, ...result });
    return ExitCode.ok;
  }
  process.stdout.write(
    `detached: slot "${config.slot}" ${result.slotDropped ? 'dropped' : 'was already gone'}, publication "${config.publication}" ${result.publicationDropped ? 'dropped' : 'was already gone'}; positions forgotten on ${result.replicasReset.join(', ') || 'no replica'}; all data kept\n`,
  );
  return ExitCode.ok;
}
