import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { LockstepStatus } from '../../plugin/status/read-status.js';
import { lockstep } from './lockstep-process.js';

/** Commands on an attached configuration, and whether its slot is streamed (pause tests). */
export function streamCommands(clusters: { configFile: string; primary: PostgresCluster }) {
  const command = (name: string, ...rest: string[]) =>
    lockstep([name, '--config', clusters.configFile, ...rest]);
  return {
    command,
    status: async () => JSON.parse((await command('status', '--json')).output) as LockstepStatus,
    slotActive: async () =>
      (
        await clusters.primary.query<{ active: boolean }>(
          "SELECT active FROM pg_replication_slots WHERE slot_name = 'lockstep'",
        )
      )[0]?.active,
  };
}
