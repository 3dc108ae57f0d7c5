import type pg from 'pg';
import { NotLandedError } from '../../../plugin/ports/lockstep-error.js';
import type { PhaseTwoNode, PreparedGid } from '../../../plugin/ports/phase-two-node.js';
import {
  checkedGid,
  classifyGid,
  GID_LIKE,
  isMigrationGid,
  parseGid,
} from '../../../plugin/protocol/index.js';
import type { MigrationReading } from '../../../plugin/protocol/migration-summary.js';
import { readPosition } from '../apply/position-row.js';
import { CONTROL_QUERY_TIMEOUT_MS, scrubbedError } from '../connection/connection-url.js';
import { connectNode, endClient } from '../connection/node-connection.js';
import { migrationGidLanded, readMigrationReading } from './migration-history.js';

export type { PreparedGid } from '../../../plugin/ports/phase-two-node.js';

/** `undefined_object`: COMMIT/ROLLBACK PREPARED of a gid that is not (or no longer) prepared. */
const NOT_PREPARED = '42704';

/**
 * Phase two on one node: lists, commits and rolls back lockstep's prepared
 * transactions, always within the node's own database (pg_prepared_xacts
 * shows every database's). Its own connection, reopened after a failure, so a
 * participant's apply connection is never needed to finish a round.
 */
export class PreparedTransactions implements PhaseTwoNode {
  private client: pg.Client | null = null;
  /**
   * Calls run one at a time (a round's phase two, a late rollback and recovery
   * can overlap): a failure then closes only its own session, and a second
   * caller never opens a session beside the first.
   */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly node: string,
    private readonly url: string,
    private readonly queryTimeoutMs = CONTROL_QUERY_TIMEOUT_MS,
  ) {}

  /** The stream's gids (of rounds and of migrations) prepared on this node, oldest first. */
  list(stream: string): Promise<PreparedGid[]> {
    return this.serially(() => this.listNow(stream));
  }

  private async listNow(stream: string): Promise<PreparedGid[]> {
    const client = await this.connection();
    let all: Awaited<ReturnType<typeof listLockstepGids>>;
    try {
      all = await listLockstepGids(client);
    } catch (error) {
      await this.closeNow();
      throw scrubbedError(error, this.url);
    }
    return all
      .filter((g) => parseGid(g.gid, stream) !== null || isMigrationGid(g.gid, stream))
      .map((g) => ({ ...g, kind: isMigrationGid(g.gid, stream) ? 'migration' : 'stream' }));
  }

  /**
   * The node's migration history and copy time (an agent's status report; after
   * {@link list} on the same connection, so a gid committed in between is in it).
   */
  migrationReading(stream: string): Promise<MigrationReading> {
    return this.serially(async () => {
      const client = await this.connection();
      try {
        return await readMigrationReading(client, stream);
      } catch (error) {
        await this.closeNow();
        throw scrubbedError(error, this.url);
      }
    });
  }

  /**
   * COMMIT PREPARED. A gid no longer prepared counts when an earlier attempt
   * committed it (its answer lost); rolled back instead: {@link NotLandedError}.
   */
  commit(gid: string): Promise<void> {
    return this.serially(() => this.finish('COMMIT', gid));
  }

  /** ROLLBACK PREPARED; a gid that is not prepared (never was, or already rolled back) needs nothing. */
  rollback(gid: string): Promise<void> {
    return this.serially(() => this.finish('ROLLBACK', gid));
  }

  /** Closes the connection (after the calls already queued). */
  close(): Promise<void> {
    return this.serially(() => this.closeNow());
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async closeNow(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client) await endClient(client);
  }

  private async finish(verb: 'COMMIT' | 'ROLLBACK', gid: string): Promise<void> {
    // The gid is validated: quoting it as a literal is exact.
    const text = `${verb} PREPARED '${checkedGid(gid)}'`;
    const client = await this.connection();
    try {
      await client.query(text);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== NOT_PREPARED) {
        // A failed session may be gone or in a bad state: the next call starts afresh.
        await this.closeNow();
        throw scrubbedError(error, this.url);
      }
    }
    if (verb === 'COMMIT') await this.requireLanded(client, gid);
  }

  /**
   * A COMMIT of a gid not prepared is done only when an earlier attempt
   * committed it (its answer lost): the node's own records, written by the
   * prepared transaction, tell. Otherwise it was rolled back outside lockstep.
   */
  private async requireLanded(client: pg.Client, gid: string): Promise<void> {
    const what = classifyGid(gid);
    let landed: boolean | null = null;
    try {
      if (what?.kind === 'stream') {
        const position = await readPosition(client, what.parts.stream);
        landed = position !== null && position.version >= what.parts.version;
      } else if (what?.kind === 'migration') landed = await migrationGidLanded(client, gid);
    } catch (error) {
      await this.closeNow();
      throw scrubbedError(error, this.url);
    }
    // A control schema older than lockstep.migration_gids (a bus replica not yet upgraded by its agent)
    // cannot tell a lost answer from a rollback: counted done, as before the table, rather
    // than refusing a migration that is there and asking for it to be run twice.
    if (landed === null && what?.kind === 'migration') return;
    if (landed !== true) throw new NotLandedError(this.node, gid, what?.kind ?? 'stream');
  }

  private async connection(): Promise<pg.Client> {
    this.client ??= await connectNode(
      this.node,
      this.url,
      'lockstep-phase-two',
      this.queryTimeoutMs,
    );
    return this.client;
  }
}

/** Phase two on every node of a configuration, by name: the primary, then each replica. */
export function preparedTransactionNodes(config: {
  readonly primary: string;
  readonly replicas: ReadonlyArray<{ readonly name: string; readonly url: string }>;
  readonly controlTimeoutMs?: number;
}): Map<string, PreparedTransactions> {
  const nodes = [{ name: 'primary', url: config.primary }, ...config.replicas];
  const deadline = config.controlTimeoutMs;
  return new Map(nodes.map((n) => [n.name, new PreparedTransactions(n.name, n.url, deadline)]));
}

/** Every lockstep gid (any stream) prepared in the database `client` is connected to, oldest first. */
export async function listLockstepGids(
  client: pg.ClientBase,
): Promise<Array<{ gid: string; preparedAt: string; ageSeconds: number }>> {
  const { rows } = await client.query<{ gid: string; prepared: Date; age: number }>(
    `SELECT gid, prepared, extract(epoch FROM now() - prepared)::float8 AS age
       FROM pg_prepared_xacts
      WHERE database = current_database() AND gid LIKE $1
      ORDER BY prepared`,
    [GID_LIKE],
  );
  return rows.map((r) => ({
    gid: r.gid,
    preparedAt: r.prepared.toISOString(),
    ageSeconds: Number(r.age),
  }));
}
