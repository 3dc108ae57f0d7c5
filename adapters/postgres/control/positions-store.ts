import { sql } from 'kysely';
import type { AppliedPosition, PositionsStore } from '../../../plugin/ports/positions-store.js';
import type { StreamPosition } from '../../../plugin/ports/resync-guard.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { controlTableExists } from './control-table-exists.js';
import type { ControlDb } from './lockstep-schema.js';

/**
 * `lockstep.applied` on a replica, outside the apply path (attach, detach,
 * status): the apply pipeline writes its position row by hand (apply/position-row.ts).
 */
export class PgPositionsStore implements PositionsStore {
  constructor(private readonly db: ControlDb) {}

  exists(): Promise<boolean> {
    return controlTableExists(this.db, 'lockstep.applied');
  }

  async read(stream: string): Promise<AppliedPosition | null> {
    const row = await this.db
      .selectFrom('lockstep.applied')
      .select([
        sql<string>`version::text`.as('version'),
        sql<Lsn>`lsn::text`.as('lsn'),
        'commit_time',
      ])
      .where('stream', '=', stream)
      .executeTakeFirst();
    return row ? { version: Number(row.version), lsn: row.lsn, commitTime: row.commit_time } : null;
  }

  placeAtStart(stream: string, lsn: Lsn): Promise<number> {
    return this.place(stream, { version: 0, lsn });
  }

  /** `position` unless the replica has one; how many rows were written (0 or 1). */
  async place(stream: string, position: StreamPosition): Promise<number> {
    const result = await this.db
      .insertInto('lockstep.applied')
      .values({ stream, version: position.version, lsn: position.lsn })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0);
  }

  /** `position`, whatever the replica had (a reset). */
  async reset(stream: string, position: StreamPosition): Promise<void> {
    await this.db
      .insertInto('lockstep.applied')
      .values({ stream, version: position.version, lsn: position.lsn })
      .onConflict((oc) =>
        oc.column('stream').doUpdateSet((eb) => ({
          version: eb.ref('excluded.version'),
          lsn: eb.ref('excluded.lsn'),
          applied_at: sql`now()`,
        })),
      )
      .execute();
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.applied').where('stream', '=', stream).execute();
  }
}
