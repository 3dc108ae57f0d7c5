import { hostname } from 'node:os';
import type pg from 'pg';
import type { Lsn } from '../../../plugin/protocol/index.js';
import { CONTROL_QUERY_TIMEOUT_MS } from '../connection/connection-url.js';
import { connectNode, endClient } from '../connection/node-connection.js';

/** A replica's hold on the slot while attach copies it (lockstep.join_holds). */
export interface JoinHold {
  readonly replica: string;
  readonly version: number;
  readonly lsn: Lsn;
  /** host:pid of the attach that holds it. */
  readonly holder: string;
  readonly createdAt: string;
  /** Whether that attach's session on the primary still runs (false: it was killed). */
  readonly holderAlive: boolean;
}

/**
 * The holds an attach keeps on the primary while it copies joining replicas:
 * written on a session of its own, which stays open until they are dropped,
 * so that `status` and `doctor` can tell a live hold from one a killed attach
 * left behind.
 */
export class JoinHolds {
  private constructor(
    private readonly client: pg.Client,
    private readonly stream: string,
  ) {}

  static async open(url: string, stream: string): Promise<JoinHolds> {
    return new JoinHolds(
      await connectNode('primary', url, 'lockstep-join-hold', CONTROL_QUERY_TIMEOUT_MS),
      stream,
    );
  }

  /** Holds the slot at `anchor` for each replica, replacing a hold an earlier attach left. */
  async hold(replicas: readonly string[], anchor: { version: number; lsn: Lsn }): Promise<void> {
    await this.client.query(
      `INSERT INTO lockstep.join_holds (stream, replica, version, lsn, holder, holder_pid, holder_started)
       SELECT $1, r, $3, $4, $5, a.pid, a.backend_start
         FROM unnest($2::text[]) r, pg_stat_activity a WHERE a.pid = pg_backend_pid()
       ON CONFLICT (stream, replica) DO UPDATE SET version = excluded.version, lsn = excluded.lsn,
         holder = excluded.holder, holder_pid = excluded.holder_pid,
         holder_started = excluded.holder_started, created_at = now()`,
      [this.stream, replicas, String(anchor.version), anchor.lsn, `${hostname()}:${process.pid}`],
    );
  }

  /** Drops the replicas' holds (those this session wrote) and ends the session. */
  async release(replicas: readonly string[]): Promise<void> {
    try {
      await this.client.query(
        `DELETE FROM lockstep.join_holds
          WHERE stream = $1 AND replica = ANY($2::text[]) AND holder_pid = pg_backend_pid()`,
        [this.stream, replicas],
      );
    } finally {
      await endClient(this.client);
    }
  }
}

/** Every hold of `stream`, with whether its attach still runs. */
export async function readJoinHolds(client: pg.ClientBase, stream: string): Promise<JoinHold[]> {
  const { rows } = await client.query<{
    replica: string;
    version: string;
    lsn: Lsn;
    holder: string;
    created_at: string;
    alive: boolean;
  }>(
    `SELECT h.replica, h.version::text, h.lsn::text, h.holder, h.created_at::text,
            EXISTS (SELECT 1 FROM pg_stat_activity a
                     WHERE a.pid = h.holder_pid AND a.backend_start = h.holder_started) AS alive
       FROM lockstep.join_holds h WHERE h.stream = $1 ORDER BY h.replica`,
    [stream],
  );
  return rows.map((r) => ({
    replica: r.replica,
    version: Number(r.version),
    lsn: r.lsn,
    holder: r.holder,
    createdAt: r.created_at,
    holderAlive: r.alive,
  }));
}

/** The LSNs the slot is held at for joining replicas (the sidecar confirms no further). */
export async function joinHoldLsns(
  client: pg.ClientBase | pg.Pool,
  stream: string,
): Promise<Lsn[]> {
  const { rows } = await client.query<{ lsn: Lsn }>(
    'SELECT lsn::text AS lsn FROM lockstep.join_holds WHERE stream = $1',
    [stream],
  );
  return rows.map((r) => r.lsn);
}

/** Drops holds of `replicas` whatever wrote them (they are placed, or the stream is detached). */
export async function dropJoinHolds(
  client: pg.ClientBase,
  stream: string,
  replicas?: readonly string[],
): Promise<void> {
  await client.query(
    `DELETE FROM lockstep.join_holds WHERE stream = $1 AND ($2::text[] IS NULL OR replica = ANY($2::text[]))`,
    [stream, replicas ?? null],
  );
}
