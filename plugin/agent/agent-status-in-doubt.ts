import type { LockstepCluster, ReplicaSession } from '../ports/lockstep-cluster.js';
import type { AgentStatusRecord } from '../protocol/agent-status-record.js';

/**
 * Lists the lockstep gids prepared on the agent's replica for its status
 * report, on a session of its own (bounded queries), one listing at a time.
 * A failed listing keeps the last one and opens a new session next time.
 */
export class InDoubtLister {
  private session: ReplicaSession | null = null;
  private busy = false;

  constructor(
    private readonly cluster: LockstepCluster,
    private readonly replica: { readonly name: string; readonly url: string },
    private readonly found: (gids: AgentStatusRecord['inDoubt']) => void,
  ) {}

  /** Starts a listing unless one is running. */
  poll(): void {
    if (this.busy) return;
    this.busy = true;
    void this.list().finally(() => {
      this.busy = false;
    });
  }

  async close(): Promise<void> {
    await this.session?.close().catch(() => undefined);
    this.session = null;
  }

  private async list(): Promise<void> {
    try {
      this.session ??= await this.cluster.replica(this.replica.name, this.replica.url, {
        applicationName: 'lockstep agent status',
        bounded: true,
      });
      const gids = await this.session.preparedGids();
      this.found(gids.map(({ gid, preparedAt }) => ({ gid, preparedAt })));
    } catch {
      await this.close();
    }
  }
}
