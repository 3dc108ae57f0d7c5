import pg from 'pg';
import { GID_LIKE, isMigrationGid, parseGid } from '../../plugin/protocol/index.js';
import { clientConfig, scrubbedError } from './connection-url.js';

/** A lockstep gid prepared on a node. */
export interface PreparedGid {
  readonly gid: string;
  /** When it was prepared (ISO-8601). */
  readonly preparedAt: string;
  /** Seconds since then, by the node's clock. */
  readonly ageSeconds: number;
  /** A stream round's, or a migration's (`lockstep migrate`/`exec`). */
  readonly kind: 'stream' | 'migration';
}

/** `undefined_object`: COMMIT/ROLLBACK PREPARED of a gid that is not (or no longer) prepared. */
const NOT_PREPARED = '42704';

/**
 * Phase two on one node: lists, commits and rolls back lockstep's prepared
 * transactions, always within the node's own database (pg_prepared_xacts
 * shows every database's). Its own connection, reopened after a failure, so a
 * participant's apply connection is never needed to finish a round.
 */
export class PreparedTransactions {
  private client: pg.Client | null = null;

  constructor(
    readonly node: string,
    private readonly url: string,
  ) {}

  /** The stream's gids (of rounds and of migrations) prepared on this node, oldest first. */
  async list(stream: string): Promise<PreparedGid[]> {
    const { rows } = await this.run<{ gid: string; prepared: Date; age: string }>(
      `SELECT gid, prepared, extract(epoch FROM now() - prepared)::float8::text AS age
         FROM pg_prepared_xacts
        WHERE database = current_database() AND gid LIKE $1
        ORDER BY prepared`,
      [GID_LIKE],
    );
    return rows
      .filter((r) => parseGid(r.gid, stream) !== null || isMigrationGid(r.gid, stream))
      .map((r) => ({
        gid: r.gid,
        preparedAt: r.prepared.toISOString(),
        ageSeconds: Number(r.age),
        kind: isMigrationGid(r.gid, stream) ? 'migration' : 'stream',
      }));
  }

  /** COMMIT PREPARED; a gid no longer prepared was committed by an earlier attempt whose answer was lost. */
  async commit(gid: string): Promise<void> {
    await this.finish('COMMIT', gid);
  }

  /** ROLLBACK PREPARED; a gid that is not prepared (never was, or already rolled back) needs nothing. */
  async rollback(gid: string): Promise<void> {
    await this.finish('ROLLBACK', gid);
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async finish(verb: 'COMMIT' | 'ROLLBACK', gid: string): Promise<void> {
    if (!/^lockstep_[A-Za-z0-9_]+$/.test(gid)) throw new RangeError(`not a lockstep gid: ${gid}`);
    try {
      // The gid is validated above: quoting it as a literal is exact.
      await this.run(`${verb} PREPARED '${gid}'`, []);
    } catch (error) {
      if ((error as { code?: string }).code === NOT_PREPARED) return;
      throw error;
    }
  }

  private async run<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    if (!this.client) {
      const client = new pg.Client({
        ...clientConfig(this.url, 'lockstep-phase-two'),
        connectionTimeoutMillis: 10_000,
      });
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => undefined);
        throw scrubbedError(error, this.url);
      }
      this.client = client;
    }
    try {
      return await this.client.query<R>(text, values);
    } catch (error) {
      // A failed session may be gone or in a bad state: the next call starts afresh.
      if ((error as { code?: string }).code !== NOT_PREPARED) await this.close();
      throw scrubbedError(error, this.url);
    }
  }
}
