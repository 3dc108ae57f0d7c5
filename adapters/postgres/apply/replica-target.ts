import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import type { BusyAnswer } from '../../../plugin/ports/busy-answer.js';
import {
  type Change,
  checkedGid,
  type Lsn,
  relationLabel,
} from '../../../plugin/protocol/index.js';
import { readDatabaseId } from '../connection/database-identity.js';
import { explainIdleEnd } from '../connection/idle-end.js';
import { answersHeard, dropClient, endClient } from '../connection/node-connection.js';
import { SessionKeepalive } from '../connection/session-keepalive.js';
import { classifyApplyError } from './apply-error-classifier.js';
import { applySessionBusy, newApplyClient, setUpApplySession } from './apply-session.js';
import { netChangeStatements, type ReplicaColumnTypes } from './bulk-statement.js';
import { sendChanges, setBasedPlan } from './change-sender.js';
import type { ChangeStatement, ConflictMode } from './change-statement.js';
import { ColumnTypes } from './column-types.js';
import { type ControlMessageTarget, controlMessages } from './control-messages.js';
import {
  advancePosition,
  beginStatements,
  fencedError,
  noPositionError,
  type ReplicaPosition,
  readPosition,
  storePosition,
} from './position-row.js';
import { type ReplicaTargetOptions, withDefaults } from './replica-target-options.js';
import { CompactedApplyFailed, corked, StatementPipeline } from './statement-pipeline.js';
import { type PacketChanges, SyncedTables } from './synced-tables.js';

export type { ReplicaPosition } from './position-row.js';

/** What a transaction that will be prepared bounds: waiting for locks, and each statement. */
const PARTICIPANT_TIMEOUTS = ['lock_timeout', 'statement_timeout'] as const;

/** Rows sent but not yet confirmed by the replica before the apply waits for it. */
const MAX_ROWS_IN_FLIGHT = 20_000;

/**
 * Applies packets to one replica over a single pipelined connection: the
 * statements of a batch are sent without waiting for each answer, prepared once
 * per shape (named statements), values passed in Postgres's text form, and the
 * replica's `(version, lsn)` written in the same transaction as the data.
 */
export class PgReplicaTarget {
  private client: pg.Client | null = null;
  private readonly pipeline: StatementPipeline;
  private synced: SyncedTables;
  private readonly columnTypes: ColumnTypes;
  private inTransaction = false;
  /** A client still connecting, and a count of attempts: {@link abort} drops it and voids its attempt. */
  private connecting: pg.Client | null = null;
  private attempts = 0;
  /** The version the open transaction found the replica at (its compare-and-set's expected value). */
  private openFrom = 0;
  /** The identity of the database last connected to (see database-identity.ts); null before. */
  databaseId: string | null = null;
  private readonly options: Required<ReplicaTargetOptions>;
  private readonly keepalive: SessionKeepalive;
  private readonly messages: ControlMessageTarget;

  constructor(
    readonly node: string,
    private readonly url: string,
    private readonly stream: string,
    private readonly conflicts: ConflictMode,
    options: ReplicaTargetOptions = {},
  ) {
    this.options = withDefaults(options);
    this.keepalive = new SessionKeepalive(this.options.applyTimeoutMs / 3);
    this.pipeline = new StatementPipeline({
      node,
      conflicts,
      // The position is not the one this transaction started from: another applier moved it.
      fenced: (version) => fencedError(this.node, this.openFrom, version),
      explain: (error, version, table) => this.explain(error, version, table),
      rollback: () => this.rollback(),
    });
    this.synced = new SyncedTables(node, stream);
    this.columnTypes = new ColumnTypes(node);
    this.messages = {
      node,
      stream,
      runsCapturedDdl: this.options.runsCapturedDdl,
      note: this.options.note,
      settle: () => this.pipeline.settle(),
      schemaPoint: () => this.synced.schemaPoint(),
      refreshSynced: (version) => this.refreshSynced(version),
      explain: (error, version) => this.explain(error, version, undefined),
    };
  }

  /** Updates and deletes of rows missing on the replica that `overwrite` ignored. */
  get ignoredMissingRows(): number {
    return this.pipeline.ignoredMissingRows;
  }

  /** Connects and reads the replica's position and the tables copied to it. */
  async open(): Promise<ReplicaPosition> {
    await this.close();
    const attempt = ++this.attempts;
    const client = newApplyClient(this.url, this.node);
    this.connecting = client;
    try {
      await client.connect();
      await setUpApplySession(client, this.options.applyTimeoutMs);
      // Reported in status: attach checks it is the database it copies into.
      this.databaseId = await readDatabaseId(client);
      const position = await readPosition(client, this.stream);
      if (!position) throw noPositionError(this.node, this.stream);
      const synced = new SyncedTables(this.node, this.stream);
      await synced.load(client);
      // Given up on (the apply deadline) while connecting: this client is dropped, not kept.
      if (attempt !== this.attempts) throw new Error('the connection attempt was abandoned');
      this.connecting = null;
      this.client = client;
      this.pipeline.forgetStatements();
      this.columnTypes.clear();
      this.synced = synced;
      return position;
    } catch (error) {
      if (this.connecting === client) this.connecting = null;
      dropClient(client);
      throw this.explain(error, 0, undefined);
    }
  }

  /**
   * Starts the transaction of a large packet streamed in parts. Its phase is
   * known only at its end, and a participant's 5 s timeouts could fail a
   * large one-phase packet's slow statement or lock wait (captured DDL on a
   * busy replica) for ever: each of its steps is bounded by the agent's
   * apply deadline instead.
   */
  begin(from: number): void {
    this.beginAt(from, []);
  }

  /**
   * Starts a replica transaction (sent, not awaited) that first locks the position row and
   * checks it still holds `from` (the fence: a deposed applier fails there, see beginStatements).
   */
  private beginAt(from: number, timeouts: readonly string[]): void {
    const client = this.requireClient();
    this.inTransaction = true;
    this.openFrom = from;
    this.keepalive.start(client, () => this.inTransaction && this.client === client);
    const statements = beginStatements(
      this.stream,
      from,
      timeouts,
      this.options.participantTimeoutMs,
    );
    const lock = statements.pop() as ChangeStatement;
    corked(client, () => {
      for (const statement of statements) this.pipeline.send(client, statement, undefined, 0);
      this.pipeline.send(client, lock, undefined, from + 1, true);
    });
  }

  /** Sends the changes of one packet (or packet part) committed on the primary at `lsn`, in order. */
  async apply(changes: readonly Change[], version: number, lsn: Lsn): Promise<void> {
    const client = this.requireClient();
    await sendChanges(
      {
        conflicts: this.conflicts,
        synced: () => this.synced,
        plans: this.options.plans,
        typesOf: (relation) => this.columnTypes.of(relation, version, this.catalogQuery(version)),
        send: (statement, table) => this.pipeline.send(client, statement, table, version),
        refreshSynced: () => this.refreshSynced(version),
        ...controlMessages(this.messages, client, version, lsn),
      },
      changes,
      version,
      lsn,
    );
    // Once enough is in flight, wait for the oldest half: statements the server has not
    // read yet sit in this process's memory, and waiting here pushes back on the stream,
    // while the newer half keeps the replica busy meanwhile.
    if (this.pipeline.rowsInFlight >= MAX_ROWS_IN_FLIGHT)
      await this.pipeline.settle(false, MAX_ROWS_IN_FLIGHT / 2);
  }

  /**
   * Applies whole packets as one transaction ending at `position`: set-based
   * (net changes per table) when the batch allows it, otherwise — or when that
   * attempt fails — change by change in the primary's order.
   */
  async applyBatch(
    packets: readonly PacketChanges[],
    position: ReplicaPosition,
    commitTime: string,
    prepareAs?: string,
  ): Promise<void> {
    const from = (packets[0]?.version ?? position.version) - 1;
    const whole = await this.takesWholeBatchFresh(packets, position.version);
    const plan = whole ? setBasedPlan(packets, this.options.plans, this.conflicts) : null;
    if (plan) {
      // Types first: a lookup sent after a failed statement would only report the aborted transaction.
      const types = await this.columnTypes.ofAll(
        plan.map((net) => net.relation),
        position.version,
        this.catalogQuery(position.version),
      );
      try {
        const client = this.requireClient();
        // The whole batch leaves in one write (a write per statement cost more CPU than building it).
        corked(client, () => {
          this.beginAt(from, prepareAs === undefined ? [] : PARTICIPANT_TIMEOUTS);
          for (const net of plan) {
            const columnTypes = types.get(net.relation) as ReplicaColumnTypes;
            const table = relationLabel(net.relation);
            for (const statement of netChangeStatements(net, columnTypes, this.conflicts))
              this.pipeline.send(client, statement, table, position.version);
          }
        });
        await this.finish(position, commitTime, true, prepareAs);
        return;
      } catch (error) {
        if (!(error instanceof CompactedApplyFailed)) throw error;
      }
    }
    this.beginAt(from, prepareAs === undefined ? [] : PARTICIPANT_TIMEOUTS);
    for (const packet of packets) await this.apply(packet.changes, packet.version, packet.lsn);
    await this.finish(position, commitTime, false, prepareAs);
  }

  /** Catalog lookups inside the open transaction: a failure there reports the statement that failed first. */
  private catalogQuery(version: number) {
    return async <R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<R[]> => {
      try {
        return (await this.requireClient().query<R>(text, values)).rows;
      } catch (error) {
        await this.pipeline.settle();
        throw this.explain(error, version, undefined);
      }
    };
  }

  /**
   * Stores the batch's last position in the same transaction and commits it,
   * or, with `prepareAs`, ends it with PREPARE TRANSACTION under that gid.
   */
  async commit(position: ReplicaPosition, commitTime: string, prepareAs?: string): Promise<void> {
    await this.finish(position, commitTime, false, prepareAs);
  }

  /** The durable position, read again (after a round this replica took part in ended elsewhere). */
  async position(): Promise<ReplicaPosition> {
    const position = await readPosition(this.requireClient(), this.stream);
    if (!position)
      throw new Error(`replica ${this.node} has no position in stream "${this.stream}"`);
    return position;
  }

  /**
   * Moves the stored LSN forward to an idle point of the stream while the
   * version stays: no replicated commit lies in between, so the slot may be
   * confirmed that far. Refused (fenced) when another applier moved the version.
   */
  async advance(position: ReplicaPosition): Promise<void> {
    if (!(await advancePosition(this.requireClient(), this.stream, position)))
      throw fencedError(this.node, this.openFrom, position.version);
  }

  private async finish(
    position: ReplicaPosition,
    commitTime: string,
    compacted: boolean,
    prepareAs: string | undefined,
  ): Promise<void> {
    const client = this.requireClient();
    // Validated before anything is sent: a lockstep gid is safe to quote as a literal.
    const verb = prepareAs === undefined ? 'COMMIT' : 'PREPARE';
    const end =
      prepareAs === undefined ? 'COMMIT' : `PREPARE TRANSACTION '${checkedGid(prepareAs)}'`;
    // Every statement is checked (errors, rows touched) before COMMIT is sent: a
    // missing row must stop the batch, not be noticed after it committed.
    await this.pipeline.settle(compacted);
    // Compare-and-set from the version the transaction started at (locked since its start).
    const [stored, commit] = corked(client, () => [
      storePosition(client, this.stream, position, commitTime, this.openFrom),
      client.query(end),
    ]);
    stored.catch(() => undefined);
    commit.catch(() => undefined);
    this.inTransaction = false;
    try {
      if ((await stored).rowCount !== 1)
        throw fencedError(this.node, this.openFrom, position.version);
      const result = await commit;
      // After an error in pipeline mode, COMMIT (or PREPARE) answers ROLLBACK.
      if (result.command !== verb)
        throw new Error(`the replica answered ${result.command} to ${verb}`);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.explain(error, position.version, undefined);
    }
  }

  /** Abandons the open transaction, if any. */
  async rollback(): Promise<void> {
    this.pipeline.clear();
    if (!this.inTransaction || !this.client) return;
    this.inTransaction = false;
    await this.client.query('ROLLBACK').catch(() => undefined);
  }

  /** Drops the connection at once: the server stopped answering, nothing more is said to it. */
  abort(): void {
    const clients = [this.client, this.connecting];
    this.attempts++;
    this.client = null;
    this.connecting = null;
    this.pipeline.clear();
    this.inTransaction = false;
    for (const client of clients) if (client) dropClient(client);
  }

  /** Statements the replica answered on the connection (or the one connecting): the apply deadline's sign of life. */
  heard = (): number => answersHeard(this.client ?? this.connecting);

  /** Whether the replica is still busy with the statement sent on the open connection. */
  busy = (boundMs: number): Promise<BusyAnswer> => applySessionBusy(this.url, this.client, boundMs);

  /** Closes the connection (an open transaction is rolled back by the server). */
  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.pipeline.clear();
    this.inTransaction = false;
    if (client) await endClient(client);
  }

  /**
   * Reads the copied tables again, inside the open transaction if there is
   * one: a migration or captured DDL run through lockstep creates a table on
   * every node and records it as in step, while this connection stays open.
   */
  private async refreshSynced(version: number): Promise<void> {
    try {
      await this.synced.load(this.requireClient());
    } catch (error) {
      // Inside a transaction an earlier statement may have failed: that is the error to report.
      await this.pipeline.settle();
      throw this.explain(error, version, undefined);
    }
  }

  /** {@link takesWholeBatch}, after reading the copied tables again if the packets name a table not known yet. */
  private async takesWholeBatchFresh(
    packets: readonly PacketChanges[],
    version: number,
  ): Promise<boolean> {
    try {
      return this.synced.takesWholeBatch(packets);
    } catch (error) {
      if (!(error instanceof ApplyError) || error.kind !== 'not-synced') throw error;
      await this.refreshSynced(version);
      return this.synced.takesWholeBatch(packets);
    }
  }

  private requireClient(): pg.Client {
    if (!this.client) throw new Error(`replica ${this.node} is not open`);
    return this.client;
  }

  /** Turns a driver or server error into an ApplyError naming the table, version and fix. */
  private explain(error: unknown, version: number, table: string | undefined): ApplyError {
    const failure = explainIdleEnd(this.client, error);
    return classifyApplyError(failure, { node: this.node, url: this.url, version, table });
  }
}
