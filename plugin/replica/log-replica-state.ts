import type { Logger } from 'pino';
import type { ReplicaAgent } from './replica-agent.js';

/** Logs a replica machine's new state: why it stopped (`replica-stopped`), or where it is. */
export function logReplicaState(log: Logger, agent: ReplicaAgent): void {
  const error = agent.lastError;
  if ((agent.state === 'halted' || agent.state === 'unresponsive') && error) {
    log.warn(
      {
        replica: agent.name,
        state: agent.state,
        table: error.table,
        version: error.version,
        kind: error.kind,
        reason: error.reason,
        migration: error.migration,
        err: error.message,
        fix: error.fix,
        event: 'replica-stopped',
      },
      'replica cannot apply',
    );
    return;
  }
  log.info(
    { replica: agent.name, state: agent.state, version: agent.position?.version },
    'replica state changed',
  );
}
