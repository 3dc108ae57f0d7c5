import pg from 'pg';
import { type Change, compareLsn, type Lsn, relationLabel } from '../../plugin/protocol/index.js';
import { ApplyError } from '../../plugin/replica/apply-error.js';
import {
  type ChangeStatement,
  type ConflictMode,
  changeStatement,
  truncateStatement,
} from './change-statement.js';
import { clientConfig, redactUrl, scrubSecrets } from './connection-url.js';

/** A replica's durable position in a stream. */
export interface ReplicaPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

interface Pending {
  readonly promise: Promise<pg.QueryResult>;
  readonly table: string | undefined;
  readonly version: number;
  readonly expectsRow: boolean;
}

const CONNECTION_LOST =
  /Connection terminated|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|the database system is (starting up|shutting down)|terminating connection|Client has encountered a connection error/i;

/**
 * Applies packets to one replica over a single pipelined connection: the
 * statements of a batch are sent without waiting for each answer, prepared once
 * per shape (named statements), values passed in Postgres's text form, and the
 * replica's `(version, lsn)` written in the same transaction as the data.
 */
export class PgReplicaTarget {
  private client: pg.Client | null = null;
  private pending: Pending[] = [];
  private statementNames = new Map<string, string>();
  private syncedFrom = new Map<string, Lsn>();
  private inTransaction = false;
  /** Updates and deletes of rows missing on the replica that `overwrite` ignored. */
  ignoredMissingRows = 0;

  constructor(
    readonly node: string,
    private readonly url: string,
    private readonly stream: string,
    private readonly conflicts: ConflictMode,
  ) {}

  /** Connects and reads the replica's position and the tables copied to it. */
  async open(): Promise<ReplicaPosition> {
    await this.close();
    const client = new pg.Client({
      ...clientConfig(this.url, `lockstep-apply-${this.node}`),
      pipeline: true,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const position = await client.query<{ version: string; lsn: Lsn }>(
        'SELECT version::text, lsn::text FROM lockstep.applied WHERE stream = $1',
        [this.stream],
      );
      const synced = await client.query<{ schema_name: string; table_name: string; copy_lsn: Lsn }>(
        'SELECT schema_name, table_name, copy_lsn::text FROM lockstep.synced_tables WHERE stream = $1',
        [this.stream],
      );
      const row = position.rows[0];
      if (!row) {
        throw new ApplyError({
          node: this.node,
          kind: 'not-synced',
          version: 0,
          problem: `the replica has no position in stream "${this.stream}"`,
          fix: 'run lockstep attach to copy the tables and set the replica up',
        });
      }
      this.client = client;
      this.statementNames.clear();
      this.syncedFrom = new Map(
        synced.rows.map((r) => [`${r.schema_name}.${r.table_name}`, r.copy_lsn]),
      );
      return { version: Number(row.version), lsn: row.lsn };
    } catch (error) {
      await client.end().catch(() => undefined);
      throw this.explain(error, 0, undefined);
    }
  }

  /** Starts a replica transaction (sent, not awaited). */
  begin(): void {
    const client = this.requireClient();
    this.inTransaction = true;
    this.send(client, { text: 'BEGIN', values: [], expectsRow: false }, undefined, 0);
    // As native logical replication: no user triggers or FK re-checks on replicated rows.
    this.send(
      client,
      { text: 'SET LOCAL session_replication_role = replica', values: [], expectsRow: false },
      undefined,
      0,
    );
  }

  /** Sends the changes of one packet (or packet part) committed on the primary at `lsn`. */
  async apply(changes: readonly Change[], version: number, lsn: Lsn): Promise<void> {
    const client = this.requireClient();
    for (const change of changes) {
      if (change.kind === 'message') continue;
      if (change.kind === 'truncate') {
        const tables = change.relations.filter((r) => this.takes(r, version, lsn));
        if (tables.length === 0) continue;
        this.send(
          client,
          {
            text: truncateStatement({ ...change, relations: tables }),
            values: [],
            expectsRow: false,
          },
          tables.map(relationLabel).join(', '),
          version,
        );
        continue;
      }
      if (!this.takes(change.relation, version, lsn)) continue;
      this.send(
        client,
        changeStatement(change, this.conflicts),
        relationLabel(change.relation),
        version,
      );
    }
    // Bound what waits in memory for large transactions; errors surface here too.
    if (this.pending.length >= 5_000) await this.settle();
  }

  /** Stores the batch's last position in the same transaction and commits. */
  async commit(position: ReplicaPosition, commitTime: string): Promise<void> {
    const client = this.requireClient();
    this.send(
      client,
      {
        text: `UPDATE lockstep.applied SET version = $2, lsn = $3, commit_time = $4, applied_at = now() WHERE stream = $1`,
        values: [this.stream, String(position.version), position.lsn, commitTime],
        expectsRow: false,
      },
      undefined,
      position.version,
    );
    const commit = client.query('COMMIT');
    this.pending.push({
      promise: commit,
      table: undefined,
      version: position.version,
      expectsRow: false,
    });
    await this.settle();
    this.inTransaction = false;
    const result = await commit;
    // After an error in pipeline mode, COMMIT answers ROLLBACK.
    if (result.command !== 'COMMIT') {
      throw new ApplyError({
        node: this.node,
        kind: 'other',
        version: position.version,
        problem: `the replica rolled the batch back (${result.command})`,
        fix: 'see the replica server log for the cause',
      });
    }
  }

  /** Abandons the open transaction, if any. */
  async rollback(): Promise<void> {
    this.pending = [];
    if (!this.inTransaction || !this.client) return;
    this.inTransaction = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
  }

  /** Closes the connection (an open transaction is rolled back by the server). */
  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.pending = [];
    this.inTransaction = false;
    await client?.end().catch(() => undefined);
  }

  /** Whether a change to `relation` in a packet at `lsn` still needs applying (not already in the table's copy). */
  private takes(relation: { schema: string; name: string }, version: number, lsn: Lsn): boolean {
    const copyLsn = this.syncedFrom.get(relationLabel(relation));
    if (copyLsn === undefined) {
      throw new ApplyError({
        node: this.node,
        kind: 'not-synced',
        version,
        table: relationLabel(relation),
        problem: 'the table is replicated but was never copied to this replica',
        fix: 'run lockstep attach to copy it',
      });
    }
    return compareLsn(lsn, copyLsn) >= 0;
  }

  private send(
    client: pg.Client,
    statement: ChangeStatement,
    table: string | undefined,
    version: number,
  ): void {
    let name = this.statementNames.get(statement.text);
    if (name === undefined && statement.values.length > 0) {
      name = `ls_${this.statementNames.size}`;
      this.statementNames.set(statement.text, name);
    }
    const promise = client.query(
      name ? { name, text: statement.text, values: statement.values } : statement.text,
    );
    promise.catch(() => undefined); // examined in settle()
    this.pending.push({ promise, table, version, expectsRow: statement.expectsRow });
  }

  /** Waits for every statement sent so far; throws the first real failure. */
  private async settle(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    const results = await Promise.allSettled(pending.map((p) => p.promise));
    let failure: { error: unknown; item: Pending } | null = null;
    results.forEach((result, i) => {
      const item = pending[i] as Pending;
      if (result.status === 'rejected') {
        // After the first error every later statement reports "transaction is aborted": keep the first.
        failure ??= { error: result.reason, item };
        return;
      }
      if (item.expectsRow && (result.value.rowCount ?? 0) === 0 && !failure) {
        if (this.conflicts === 'overwrite') {
          this.ignoredMissingRows++;
        } else {
          failure = {
            error: new ApplyError({
              node: this.node,
              kind: 'conflict',
              version: item.version,
              table: item.table,
              problem:
                'the row to update or delete does not exist on the replica (it has diverged from the primary)',
              fix: `restore the row on replica "${this.node}" or resync it, or set conflicts: "overwrite" to skip such rows`,
            }),
            item,
          };
        }
      }
    });
    if (failure) {
      const { error, item } = failure as { error: unknown; item: Pending };
      await this.rollback();
      throw this.explain(error, item.version, item.table);
    }
  }

  private requireClient(): pg.Client {
    if (!this.client) throw new Error(`replica ${this.node} is not open`);
    return this.client;
  }

  /** Turns a driver or server error into an ApplyError naming the table, version and fix. */
  private explain(error: unknown, version: number, table: string | undefined): ApplyError {
    if (error instanceof ApplyError) return error;
    const e = error as { code?: string; message?: string; detail?: string; constraint?: string };
    const message = scrubSecrets(
      `${e.message ?? String(error)}${e.detail ? ` (${e.detail})` : ''}`,
      this.url,
    );
    const base = { node: this.node, version, table, sqlState: e.code, cause: error };
    if (
      !e.code ||
      e.code.startsWith('08') ||
      e.code === '57P01' ||
      e.code === '57P03' ||
      CONNECTION_LOST.test(e.message ?? '')
    ) {
      return new ApplyError({
        ...base,
        kind: 'unreachable',
        table: undefined,
        problem: `the replica is unreachable (${redactUrl(this.url)}): ${message}`,
        fix: 'start the replica server or fix the network; lockstep retries and catches up by itself',
      });
    }
    if (e.code === '23505') {
      return new ApplyError({
        ...base,
        kind: 'conflict',
        problem: `${message} [${e.code}]`,
        fix: `remove the conflicting row on replica "${this.node}" (it was not written by lockstep), or set conflicts: "overwrite"`,
      });
    }
    if (e.code === '42P01' || e.code === '42703' || e.code === '42804' || e.code === '22P02') {
      return new ApplyError({
        ...base,
        kind: 'schema',
        problem: `${message} [${e.code}]`,
        fix: `make the table's definition on replica "${this.node}" match the primary's (lockstep doctor lists the differences)`,
      });
    }
    return new ApplyError({
      ...base,
      kind: 'other',
      problem: `${message} [${e.code}]`,
      fix: `fix the cause on replica "${this.node}"; lockstep retries by itself`,
    });
  }
}
