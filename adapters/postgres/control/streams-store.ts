import { sql } from 'kysely';
import type {
  PauseChange,
  StreamHead,
  StreamRecord,
  StreamsStore,
} from '../../../plugin/ports/streams-store.js';
import type { TwoPhaseStatus } from '../../../plugin/ports/two-phase-status.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { BOUND_TRANSACTION_SQL } from '../connection/session-bounds.js';
import { controlTableExists } from './control-table-exists.js';
import type { ControlDb } from './lockstep-schema.js';

/** The channel `pause` and `resume` notify on; the payload is the stream's name. */
export const PAUSE_CHANNEL = 'lockstep_pause';

const jsonb = (value: unknown) => sql<string>`${JSON.stringify(value)}::jsonb`;

/** `lockstep.streams` on the primary, on the session `db` runs on. */
export class PgStreamsStore implements StreamsStore {
  constructor(private readonly db: ControlDb) {}

  exists(): Promise<boolean> {
    return controlTableExists(this.db, 'lockstep.streams');
  }

  async startLsn(stream: string): Promise<Lsn | null> {
    const row = await this.db
      .selectFrom('lockstep.streams')
      .select(sql<Lsn>`start_lsn::text`.as('lsn'))
      .where('stream', '=', stream)
      .executeTakeFirst();
    return row?.lsn ?? null;
  }

  async replicatedSet(stream: string) {
    const row = await this.db
      .selectFrom('lockstep.streams')
      .select(['tables', 'capture_ddl'])
      .where('stream', '=', stream)
      .executeTakeFirst();
    return row && { tables: row.tables, captureDdl: row.capture_ddl };
  }

  async recordReplicatedSet(stream: string, tables: readonly string[], captureDdl: boolean) {
    await this.db
      .updateTable('lockstep.streams')
      .set({ tables: jsonb(tables), capture_ddl: captureDdl })
      .where('stream', '=', stream)
      .execute();
  }

  async record(stream: string, record: StreamRecord): Promise<void> {
    await this.db
      .insertInto('lockstep.streams')
      .values({
        stream,
        slot: record.slot,
        publication: record.publication,
        start_lsn: record.startLsn,
        tables: jsonb(record.tables),
        capture_ddl: record.captureDdl,
      })
      .onConflict((oc) =>
        oc.column('stream').doUpdateSet((eb) => ({
          slot: eb.ref('excluded.slot'),
          publication: eb.ref('excluded.publication'),
          start_lsn: eb.ref('excluded.start_lsn'),
          attached_at: sql`now()`,
          version: 0,
          lsn: null,
          tables: eb.ref('excluded.tables'),
          capture_ddl: eb.ref('excluded.capture_ddl'),
        })),
      )
      .execute();
  }

  /** Since when the stream is paused, or null; undefined when it is not attached. */
  async pausedAt(stream: string): Promise<Date | null | undefined> {
    const row = await this.db
      .selectFrom('lockstep.streams')
      .select('paused_at')
      .where('stream', '=', stream)
      .executeTakeFirst();
    return row === undefined ? undefined : row.paused_at;
  }

  async activity(stream: string) {
    // As text: the primary's own clock and precision, compared with what the sidecar writes.
    return this.db
      .selectFrom('lockstep.streams')
      .select([sql<string>`now()::text`.as('since'), 'active_sidecar as owner'])
      .where('stream', '=', stream)
      .executeTakeFirst();
  }

  /**
   * The flag and the notification commit together, and the row is locked
   * while read, so `before` is exact even against a concurrent command.
   * Pausing a paused stream keeps its first time.
   */
  async writePause(stream: string, paused: boolean): Promise<PauseChange | undefined> {
    // By hand, not db.transaction(): a failed ROLLBACK (the session is gone) must not replace
    // the failing statement's error, whose code pause and resume decide on.
    await sql`BEGIN`.execute(this.db);
    try {
      // The stream row stays locked until COMMIT: a pause frozen (SIGSTOP) before it must not keep
      // it from a sidecar raising its epoch, nor wait for it without bound.
      await sql.raw(BOUND_TRANSACTION_SQL).execute(this.db);
      const change = await this.pauseInTransaction(stream, paused);
      await sql`COMMIT`.execute(this.db);
      return change;
    } catch (error) {
      await sql`ROLLBACK`.execute(this.db).catch(() => undefined);
      throw error;
    }
  }

  private async pauseInTransaction(
    stream: string,
    paused: boolean,
  ): Promise<PauseChange | undefined> {
    const row = await this.db
      .selectFrom('lockstep.streams')
      .select('paused_at')
      .where('stream', '=', stream)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return undefined;
    const updated = await this.db
      .updateTable('lockstep.streams')
      .set({ paused_at: sql`CASE WHEN ${paused} THEN coalesce(paused_at, now()) END` })
      .where('stream', '=', stream)
      .returning('paused_at')
      .executeTakeFirst();
    await sql`SELECT pg_notify(${PAUSE_CHANNEL}, ${stream})`.execute(this.db);
    return { before: row.paused_at, after: updated?.paused_at ?? null };
  }

  async head(stream: string): Promise<StreamHead | undefined> {
    const row = await this.db
      .selectFrom('lockstep.streams as s')
      .select([
        sql<string>`s.version::text`.as('version'),
        sql<Lsn | null>`s.lsn::text`.as('lsn'),
        's.commit_time',
        's.two_phase',
        's.active_sidecar',
        's.active_since',
        // Through to_jsonb: a control schema from before pause reads as not paused instead of failing.
        sql<Date | null>`(to_jsonb(s) ->> 'paused_at')::timestamptz`.as('paused_at'),
        sql<Lsn>`pg_current_wal_lsn()::text`.as('wal'),
      ])
      .where('s.stream', '=', stream)
      .executeTakeFirst();
    return (
      row && {
        version: Number(row.version),
        lsn: row.lsn,
        commitTime: row.commit_time,
        walLsn: row.wal,
        twoPhase: row.two_phase as TwoPhaseStatus | null,
        activeSidecar: row.active_sidecar,
        activeSince: row.active_since,
        pausedAt: row.paused_at,
      }
    );
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.streams').where('stream', '=', stream).execute();
  }
}
