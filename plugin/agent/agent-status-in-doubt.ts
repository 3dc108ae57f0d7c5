import type { PreparedGid } from '../ports/phase-two-node.js';
import type { AgentStatusRecord } from '../protocol/agent-status-record.js';
import {
  type MigrationReading,
  type MigrationSummary,
  summarizeMigrations,
} from '../protocol/migration-summary.js';

/** One listing: the gids prepared on the replica, then its migration history. */
export interface ReplicaListing {
  readonly inDoubt: AgentStatusRecord['inDoubt'];
  /** Null when the history could not be read (status then does not judge it). */
  readonly migrations: MigrationSummary | null;
}

/**
 * Lists the stream's gids prepared on the agent's replica, then sums up its
 * migration history, for its status report, one listing at a time. The
 * history is read after the gids, so a migration whose gid is no longer
 * listed is in it unless it was rolled back (status tells a round in phase
 * two from a lost one by that). A failed gid listing keeps the last one.
 */
export class InDoubtLister {
  private busy = false;

  constructor(
    private readonly list: () => Promise<ReadonlyArray<PreparedGid>>,
    private readonly history: () => Promise<MigrationReading>,
    private readonly found: (listing: ReplicaListing) => void,
  ) {}

  /** Starts a listing unless one is running. */
  poll(): void {
    if (this.busy) return;
    this.busy = true;
    void this.listing()
      .then(this.found, () => undefined)
      .finally(() => {
        this.busy = false;
      });
  }

  private async listing(): Promise<ReplicaListing> {
    const gids = await this.list();
    const inDoubt = gids.map(({ gid, preparedAt }) => ({ gid, preparedAt }));
    const read = await this.history().catch(() => null);
    const migrations =
      read &&
      summarizeMigrations(
        read.migrations.map((m) => m.name),
        new Date(),
        read.copiedAt,
      );
    return { inDoubt, migrations };
  }
}
