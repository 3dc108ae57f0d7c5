import pg from 'pg';
import { clientConfig, scrubbedError } from './connection-url.js';

/** A decision as the log holds it. */
export type Decision = 'commit' | 'abort';

/** What a round's decision row records besides the decision. */
export interface DecisionRecord {
  readonly gid: string;
  readonly round: number;
  readonly versionFrom: number;
  readonly versionTo: number;
  readonly participants: readonly string[];
}

/**
 * The durable decision log on the primary (`lockstep.decisions`). Committing a
 * `commit` row is a round's commit point. Both writers — the coordinator
 * deciding commit, a recoverer deciding abort — insert with the gid as primary
 * key, so whichever commits first wins and the other reads the winner back.
 */
export class DecisionLog {
  private readonly pool: pg.Pool;

  constructor(
    private readonly url: string,
    private readonly stream: string,
  ) {
    this.pool = new pg.Pool({ ...clientConfig(url, 'lockstep-decisions'), max: 1 });
    this.pool.on('error', () => undefined);
  }

  /**
   * Records `decision` for a gid unless one is recorded already, and returns
   * the decision that holds. Synchronous commit: the row is durable on return.
   */
  async decide(record: DecisionRecord, decision: Decision): Promise<Decision> {
    const { rows } = await this.query<{ decision: Decision }>(
      `WITH inserted AS (
         INSERT INTO lockstep.decisions (gid, stream, round, version_from, version_to, decision, participants)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (gid) DO NOTHING
         RETURNING decision)
       SELECT decision FROM inserted
       UNION ALL
       SELECT decision FROM lockstep.decisions WHERE gid = $1 AND NOT EXISTS (SELECT 1 FROM inserted)`,
      [
        record.gid,
        this.stream,
        String(record.round),
        String(record.versionFrom),
        String(record.versionTo),
        decision,
        record.participants,
      ],
    );
    // A concurrent writer that won committed after this statement's snapshot: read it now.
    const held = rows[0]?.decision ?? (await this.read([record.gid])).get(record.gid);
    if (!held) throw new Error(`no decision could be read back for ${record.gid}`);
    return held;
  }

  /** The decisions recorded for some gids. */
  async read(gids: readonly string[]): Promise<Map<string, Decision>> {
    if (gids.length === 0) return new Map();
    const { rows } = await this.query<{ gid: string; decision: Decision }>(
      'SELECT gid, decision FROM lockstep.decisions WHERE gid = ANY($1::text[])',
      [gids],
    );
    return new Map(rows.map((r) => [r.gid, r.decision]));
  }

  /** The highest round number the stream has used (0 when none). */
  async lastRound(): Promise<number> {
    const { rows } = await this.query<{ round: string | null }>(
      'SELECT max(round)::text AS round FROM lockstep.decisions WHERE stream = $1',
      [this.stream],
    );
    return Number(rows[0]?.round ?? 0);
  }

  /**
   * Forgets decisions older than `olderThanSeconds` whose gids are prepared
   * nowhere (nothing can ask about them any more); keeps the newest row, which
   * carries the round counter.
   */
  async prune(stillPrepared: readonly string[], olderThanSeconds: number): Promise<number> {
    const { rowCount } = await this.query(
      `DELETE FROM lockstep.decisions
        WHERE stream = $1 AND decided_at < now() - make_interval(secs => $2)
          AND gid <> ALL($3::text[])
          AND round < (SELECT max(round) FROM lockstep.decisions WHERE stream = $1)`,
      [this.stream, olderThanSeconds, stillPrepared],
    );
    return rowCount ?? 0;
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  private async query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw scrubbedError(error, this.url);
    }
  }
}
