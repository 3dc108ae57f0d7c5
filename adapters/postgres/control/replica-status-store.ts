import { sql } from 'kysely';
import type {
  ReplicaNote,
  ReplicaReport,
  ReplicaStatusStore,
} from '../../../plugin/ports/replica-status-store.js';
import type { StreamPosition } from '../../../plugin/ports/resync-guard.js';
import type { ControlDb } from './lockstep-schema.js';

/** `replica = ANY(names)`: one array parameter, whatever the number of names (none too). */
const replicaIn = (names: readonly string[]) => sql<boolean>`replica = ANY(${[...names]}::text[])`;

/** `lockstep.replica_status` on the primary, on the session `db` runs on. */
export class PgReplicaStatusStore implements ReplicaStatusStore {
  constructor(private readonly db: ControlDb) {}

  async staleReplicas(stream: string, names?: readonly string[]): Promise<string[]> {
    let query = this.db
      .selectFrom('lockstep.replica_status')
      .select('replica')
      .where('stream', '=', stream)
      .where('stale_since', 'is not', null);
    if (names) query = query.where(replicaIn(names));
    return (await query.execute()).map((r) => r.replica);
  }

  async clearStale(stream: string, names: readonly string[]): Promise<void> {
    await this.db
      .updateTable('lockstep.replica_status')
      .set({ stale_since: null })
      .where('stream', '=', stream)
      .where(replicaIn(names))
      .where('stale_since', 'is not', null)
      .execute();
  }

  async markStale(stream: string, replica: string): Promise<void> {
    await this.db
      .insertInto('lockstep.replica_status')
      .values({ stream, replica, state: 'stale', stale_since: sql`now()` })
      .onConflict((oc) =>
        oc.columns(['stream', 'replica']).doUpdateSet({
          state: 'stale',
          stale_since: sql`coalesce(lockstep.replica_status.stale_since, now())`,
          updated_at: sql`now()`,
        }),
      )
      .execute();
  }

  async clearStaleFenced(
    stream: string,
    names: readonly string[],
    epoch: number | null,
  ): Promise<boolean> {
    const fenceEpoch = epoch === null ? null : String(epoch);
    const { rows } = await sql<{ current: boolean }>`WITH fence AS (
       SELECT epoch FROM lockstep.streams
        WHERE stream = ${stream} AND (${fenceEpoch}::bigint IS NULL OR epoch = ${fenceEpoch}::bigint) FOR SHARE),
     cleared AS (
       UPDATE lockstep.replica_status SET stale_since = NULL
        WHERE stream = ${stream} AND ${replicaIn(names)} AND EXISTS (SELECT 1 FROM fence)
        RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM fence) AS current`.execute(this.db);
    return rows[0]?.current === true;
  }

  async recordPositions(
    stream: string,
    replicas: readonly string[],
    position: StreamPosition,
  ): Promise<void> {
    await this.db
      .updateTable('lockstep.replica_status')
      .set({ version: String(position.version), lsn: position.lsn, updated_at: sql`now()` })
      .where('stream', '=', stream)
      .where(replicaIn(replicas))
      .execute();
  }

  async reportsSince(
    stream: string,
    names: readonly string[],
    since: string,
  ): Promise<ReplicaReport[]> {
    return this.db
      .selectFrom('lockstep.replica_status')
      .select([
        'replica',
        'database_id as database',
        sql<boolean>`stale_since IS NULL AND state NOT IN ('stale', 'resyncing')`.as('ok'),
      ])
      .where('stream', '=', stream)
      .where(replicaIn(names))
      .where(sql<boolean>`updated_at >= ${since}::timestamptz`)
      .execute();
  }

  async notes(stream: string): Promise<ReplicaNote[]> {
    const rows = await this.db
      .selectFrom('lockstep.replica_status')
      .select(['replica', 'state', 'error', 'error_at'])
      .where('stream', '=', stream)
      .execute();
    return rows.map((r) => ({
      replica: r.replica,
      state: r.state,
      error: r.error,
      errorAt: r.error_at,
    }));
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.replica_status').where('stream', '=', stream).execute();
  }
}
