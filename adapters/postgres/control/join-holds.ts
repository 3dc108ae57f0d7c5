import { hostname } from 'node:os';
import { sql } from 'kysely';
import type pg from 'pg';
import type {
  JoinHold,
  JoinHoldSession,
  JoinHoldsStore,
} from '../../../plugin/ports/join-holds.js';
import type { StreamPosition } from '../../../plugin/ports/resync-guard.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../connection/connection-url.js';
import { connectBounded, endClient, lockWaitWithin } from '../connection/node-connection.js';
import { controlDbOn } from './control-schema.js';
import { controlTableExists } from './control-table-exists.js';
import type { ControlDb, ControlSession } from './lockstep-schema.js';

export type { JoinHold } from '../../../plugin/ports/join-holds.js';

const replicaIn = (names: readonly string[]) => sql<boolean>`replica = ANY(${[...names]}::text[])`;

/** `lockstep.join_holds` on the primary, on the session `db` runs on. */
export class PgJoinHoldsStore implements JoinHoldsStore {
  constructor(private readonly db: ControlDb) {}

  exists(): Promise<boolean> {
    return controlTableExists(this.db, 'lockstep.join_holds');
  }

  async read(stream: string): Promise<JoinHold[]> {
    const rows = await this.db
      .selectFrom('lockstep.join_holds as h')
      .select([
        'h.replica',
        sql<string>`h.version::text`.as('version'),
        sql<Lsn>`h.lsn::text`.as('lsn'),
        'h.holder',
        sql<string>`h.created_at::text`.as('created_at'),
        // Alive: the session that wrote it (same pid, same start) still runs.
        sql<boolean>`EXISTS (SELECT 1 FROM pg_stat_activity a
                     WHERE a.pid = h.holder_pid AND a.backend_start = h.holder_started)`.as(
          'alive',
        ),
      ])
      .where('h.stream', '=', stream)
      .orderBy('h.replica')
      .execute();
    return rows.map((r) => ({
      replica: r.replica,
      version: Number(r.version),
      lsn: r.lsn,
      holder: r.holder,
      createdAt: r.created_at,
      holderAlive: r.alive,
    }));
  }

  async lsns(stream: string): Promise<Lsn[]> {
    const rows = await this.db
      .selectFrom('lockstep.join_holds')
      .select(sql<Lsn>`lsn::text`.as('lsn'))
      .where('stream', '=', stream)
      .execute();
    return rows.map((r) => r.lsn);
  }

  async drop(stream: string, replicas?: readonly string[]): Promise<void> {
    let query = this.db.deleteFrom('lockstep.join_holds').where('stream', '=', stream);
    if (replicas) query = query.where(replicaIn(replicas));
    await query.execute();
  }
}

/**
 * The holds an attach keeps on the primary while it copies joining replicas:
 * written on a session of its own, which stays open until they are dropped,
 * so that `status` and `doctor` can tell a live hold from one a killed attach
 * left behind.
 */
export class JoinHolds implements JoinHoldSession {
  private readonly db: ControlDb;

  private constructor(
    private readonly client: pg.Client,
    private readonly stream: string,
  ) {
    this.db = controlDbOn(client);
  }

  static async open(
    url: string,
    stream: string,
    queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
  ): Promise<JoinHolds> {
    return new JoinHolds(
      // Bounded: a hold whose client gave up must not be written later by a backend that
      // then exits (a hold of a dead pid pins the slot until the next attach).
      await connectBounded(
        'primary',
        url,
        'lockstep-join-hold',
        queryTimeoutMs,
        lockWaitWithin(queryTimeoutMs),
      ),
      stream,
    );
  }

  async hold(replicas: readonly string[], anchor: StreamPosition): Promise<void> {
    // The holder is this session: its pid and start tell a live hold from a killed attach's.
    await this.db
      .insertInto('lockstep.join_holds')
      .columns(['stream', 'replica', 'version', 'lsn', 'holder', 'holder_pid', 'holder_started'])
      .expression(
        sql`SELECT ${this.stream}, r, ${String(anchor.version)}, ${anchor.lsn}, ${`${hostname()}:${process.pid}`}, a.pid, a.backend_start
              FROM unnest(${[...replicas]}::text[]) r, pg_stat_activity a WHERE a.pid = pg_backend_pid()`,
      )
      .onConflict((oc) =>
        oc.columns(['stream', 'replica']).doUpdateSet((eb) => ({
          version: eb.ref('excluded.version'),
          lsn: eb.ref('excluded.lsn'),
          holder: eb.ref('excluded.holder'),
          holder_pid: eb.ref('excluded.holder_pid'),
          holder_started: eb.ref('excluded.holder_started'),
          created_at: sql`now()`,
        })),
      )
      .execute();
  }

  async release(replicas: readonly string[]): Promise<void> {
    try {
      await this.db
        .deleteFrom('lockstep.join_holds')
        .where('stream', '=', this.stream)
        .where(replicaIn(replicas))
        .where(sql<boolean>`holder_pid = pg_backend_pid()`)
        .execute();
    } finally {
      await endClient(this.client);
    }
  }
}

/** Every hold of `stream`, with whether its attach still runs. */
export async function readJoinHolds(client: ControlSession, stream: string): Promise<JoinHold[]> {
  return new PgJoinHoldsStore(controlDbOn(client)).read(stream);
}

/** The LSNs the slot is held at for joining replicas (the sidecar confirms no further). */
export async function joinHoldLsns(client: ControlSession, stream: string): Promise<Lsn[]> {
  return new PgJoinHoldsStore(controlDbOn(client)).lsns(stream);
}
