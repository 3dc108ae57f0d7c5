import type { PreparedGid } from '../ports/phase-two-node.js';
import type { AgentStatusRecord } from '../protocol/agent-status-record.js';

/**
 * Lists the stream's gids prepared on the agent's replica for its status
 * report, through the agent's own phase-two node, one listing at a time. A
 * failed listing keeps the last one.
 */
export class InDoubtLister {
  private busy = false;

  constructor(
    private readonly list: () => Promise<ReadonlyArray<PreparedGid>>,
    private readonly found: (gids: AgentStatusRecord['inDoubt']) => void,
  ) {}

  /** Starts a listing unless one is running. */
  poll(): void {
    if (this.busy) return;
    this.busy = true;
    void this.list()
      .then(
        (gids) => this.found(gids.map(({ gid, preparedAt }) => ({ gid, preparedAt }))),
        () => undefined,
      )
      .finally(() => {
        this.busy = false;
      });
  }
}
