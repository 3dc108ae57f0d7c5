import { sql } from 'kysely';
import type { AppliedPosition, PositionsStore } from '../../../plugin/ports/positions-store.js';
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

  async placeAtStart(stream: string, lsn: Lsn): Promise<number> {
    const result = await this.db
      .insertInto('lockstep.applied')
      .values({ stream, version: 0, lsn })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0);
  }

  async forget(stream: string): Promise<void> {
    await this.db.deleteFrom('lockstep.applied').where('stream', '=', stream).execute();
  }
}
