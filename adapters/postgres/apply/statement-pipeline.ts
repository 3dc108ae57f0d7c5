import type { Socket } from 'node:net';
import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import type { ChangeStatement, ConflictMode } from './change-statement.js';
import { pipelinedCopy } from './pipelined-copy.js';
import { textBindQuery } from './text-bind-query.js';

/** The set-based attempt failed in a way the ordered apply may not: try that instead. */
export class CompactedApplyFailed extends Error {}

interface Pending {
  readonly promise: Promise<pg.QueryResult>;
  readonly table: string | undefined;
  readonly version: number;
  /** Rows the statement must touch (updates and deletes), or null when any count is fine. */
  readonly expectRows: number | null;
  /** Rows the statement carries (for the in-flight bound). */
  readonly rows: number;
  /** The fence: the replica's position must be the one this transaction started from. */
  readonly fence?: boolean;
}

/** What the pipeline needs of the target it sends for. */
export interface PipelineHost {
  readonly node: string;
  readonly conflicts: ConflictMode;
  /** The error for a fence that failed: another applier moved the position. */
  fenced(version: number): ApplyError;
  explain(error: unknown, version: number, table: string | undefined): ApplyError;
  /** Abandons the open transaction (after a failure). */
  rollback(): Promise<void>;
}

/** Runs `send` (sends only, nothing awaited) with the connection corked: its messages leave in one write. */
export function corked<T>(client: pg.Client, send: () => T): T {
  const { stream } = (client as unknown as { connection: { stream: Socket } }).connection;
  stream.cork();
  try {
    return send();
  } finally {
    stream.uncork();
  }
}

/**
 * Statements sent on one pipelined connection without waiting for each
 * answer, named once per shape (prepared statements), then checked together:
 * errors, and rows touched where an update or delete must find its row.
 */
export class StatementPipeline {
  private pending: Pending[] = [];
  /** Rows carried by the statements in `pending` (set-based ones count every row). */
  private pendingRows = 0;
  private readonly statementNames = new Map<string, string>();
  /** Updates and deletes of rows missing on the replica that `overwrite` ignored. */
  ignoredMissingRows = 0;

  constructor(private readonly host: PipelineHost) {}

  /** Rows sent and not yet checked. */
  get rowsInFlight(): number {
    return this.pendingRows;
  }

  /** Drops what was sent and not checked (the transaction is being abandoned). */
  clear(): void {
    this.pending = [];
    this.pendingRows = 0;
  }

  /** A new connection knows none of the named statements. */
  forgetStatements(): void {
    this.statementNames.clear();
  }

  send(
    client: pg.Client,
    statement: ChangeStatement,
    table: string | undefined,
    version: number,
    fence = false,
  ): void {
    let name = this.statementNames.get(statement.text);
    if (name === undefined && statement.values.length > 0 && !statement.textBytes) {
      name = `ls_${this.statementNames.size}`;
      this.statementNames.set(statement.text, name);
    }
    const promise = statement.copyData
      ? pipelinedCopy(client, statement.text, statement.copyData)
      : statement.textBytes
        ? textBindQuery(client, statement.text, statement.values)
        : client.query(
            // pg never writes to the values it is given; its types just do not say so.
            name
              ? {
                  name,
                  text: statement.text,
                  values: statement.values as (string | Buffer | null)[],
                }
              : statement.text,
          );
    promise.catch(() => undefined); // examined in settle()
    const expected = (statement as { expectedRows?: number }).expectedRows;
    const rows = statement.rows ?? 1;
    this.pendingRows += rows;
    this.pending.push({
      promise,
      table,
      version,
      expectRows: expected ?? (statement.expectsRow ? 1 : null),
      rows,
      fence,
    });
  }

  /**
   * Waits for every statement sent so far (or only the oldest, down to
   * `downToRows` in flight); throws the first real failure. For a set-based
   * attempt, any failure is reported as {@link CompactedApplyFailed} (after
   * rolling back) so the caller retries change by change, which either
   * succeeds or names the exact failing change.
   */
  async settle(compacted = false, downToRows = 0): Promise<void> {
    let pending = this.pending;
    let rows = this.pendingRows;
    this.clear();
    if (downToRows > 0) {
      // Only the oldest statements: the rest stay in flight, so the replica never runs dry.
      let cut = 0;
      while (cut < pending.length && rows > downToRows) rows -= (pending[cut++] as Pending).rows;
      this.pending = pending.slice(cut);
      this.pendingRows = rows;
      pending = pending.slice(0, cut);
    }
    const results = await Promise.allSettled(pending.map((p) => p.promise));
    const failure = this.firstFailure(pending, results, compacted);
    if (!failure) return;
    const { error, item } = failure;
    await this.host.rollback();
    const explained =
      error instanceof CompactedApplyFailed
        ? error
        : this.host.explain(error, item.version, item.table);
    const final =
      explained instanceof ApplyError && ['unreachable', 'fenced'].includes(explained.kind);
    if (compacted && !final) throw new CompactedApplyFailed(explained.message);
    throw explained;
  }

  private firstFailure(
    pending: readonly Pending[],
    results: readonly PromiseSettledResult<pg.QueryResult>[],
    compacted: boolean,
  ): { error: unknown; item: Pending } | null {
    for (let i = 0; i < results.length; i++) {
      const result = results[i] as PromiseSettledResult<pg.QueryResult>;
      const item = pending[i] as Pending;
      // After the first error every later statement reports "transaction is aborted": keep the first.
      if (result.status === 'rejected') return { error: result.reason, item };
      if (item.expectRows === null || (result.value.rowCount ?? 0) === item.expectRows) continue;
      if (item.fence) return { error: this.host.fenced(item.version), item };
      if (compacted) return { error: new CompactedApplyFailed('row count'), item };
      if (this.host.conflicts === 'overwrite') {
        this.ignoredMissingRows++;
        continue;
      }
      return {
        error: new ApplyError({
          node: this.host.node,
          kind: 'conflict',
          version: item.version,
          table: item.table,
          problem:
            'the row to update or delete does not exist on the replica (it has diverged from the primary)',
          fix: `restore the row on replica "${this.host.node}" or resync it, or set conflicts: "overwrite" to skip such rows`,
        }),
        item,
      };
    }
    return null;
  }
}
