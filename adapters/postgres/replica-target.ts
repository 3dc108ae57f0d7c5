import type { Socket } from 'node:net';
import type pg from 'pg';
import {
  type Change,
  capturedStatement,
  checkedGid,
  compactChanges,
  compareLsn,
  DDL_MESSAGE,
  type InsertChange,
  type Lsn,
  matchesCommandTag,
  type Relation,
  relationLabel,
  withoutConcurrently,
} from '../../plugin/protocol/index.js';
import { ApplyError } from '../../plugin/replica/apply-error.js';
import {
  encodeInserts,
  encodeNetChanges,
  insertManyStatement,
  netChangeStatements,
  type ReplicaColumnTypes,
} from './bulk-statement.js';
import {
  type ChangeStatement,
  type ConflictMode,
  changeStatement,
  truncateStatement,
} from './change-statement.js';
import { AT_LEAST_LOCAL_COMMIT, clientConfig, redactUrl, scrubSecrets } from './connection-url.js';
import { readDatabaseId } from './database-identity.js';
import { LibpqClient } from './libpq-client.js';
import { dropClient, endClient } from './node-connection.js';
import { pipelinedCopy } from './pipelined-copy.js';
import { type CapturedSettings, runAsRole } from './run-as-role.js';
import { SharedBatchPlans } from './shared-batch-plans.js';
import { quoteQualified } from './sql-identifier.js';

/** A replica's durable position in a stream. */
export interface ReplicaPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

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

/** One packet's changes, as the agent hands a batch over. */
export interface PacketChanges {
  readonly changes: readonly Change[];
  readonly version: number;
  readonly lsn: Lsn;
}

/** The set-based attempt failed in a way the ordered apply may not: try that instead. */
class CompactedApplyFailed extends Error {}

/** What a transaction that will be prepared bounds: waiting for locks, and each statement. */
const PARTICIPANT_TIMEOUTS = ['lock_timeout', 'statement_timeout'] as const;

/** Rows sent but not yet confirmed by the replica before the apply waits for it. */
const MAX_ROWS_IN_FLIGHT = 20_000;

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
  /** Rows carried by the statements in `pending` (set-based ones count every row). */
  private pendingRows = 0;
  private statementNames = new Map<string, string>();
  private syncedFrom = new Map<string, Lsn>();
  /** Column types on the replica per relation message (a new message after ALTER TABLE asks again). */
  private columnTypes = new WeakMap<Relation, ReplicaColumnTypes>();
  /** The last comparison {@link takes} made (a packet's changes mostly share it), kept without allocating. */
  private lastTakenLsn: Lsn | null = null;
  private lastTakenCopyLsn: Lsn | null = null;
  private lastTakenResult = false;
  /** `syncedFrom` by relation message, so the hot path builds no `schema.name` string per change. */
  private copyLsnByRelation = new WeakMap<object, Lsn | null>();
  private inTransaction = false;
  /** A client still connecting, and a count of attempts: {@link abort} drops it and voids its attempt. */
  private connecting: pg.Client | null = null;
  private attempts = 0;
  /** The version the open transaction found the replica at (its compare-and-set's expected value). */
  private openFrom = 0;
  /** Updates and deletes of rows missing on the replica that `overwrite` ignored. */
  ignoredMissingRows = 0;
  /** The identity of the database last connected to (see database-identity.ts); null before. */
  databaseId: string | null = null;

  constructor(
    readonly node: string,
    private readonly url: string,
    private readonly stream: string,
    private readonly conflicts: ConflictMode,
    /** lock_timeout and statement_timeout of transactions that will be prepared (ms). */
    private readonly participantTimeoutMs = 5_000,
    /** Batch plans shared with the sidecar's other replicas (a private one when alone). */
    private readonly plans = new SharedBatchPlans(0),
  ) {}

  /** Connects and reads the replica's position and the tables copied to it. */
  async open(): Promise<ReplicaPosition> {
    await this.close();
    const attempt = ++this.attempts;
    const client = new LibpqClient({
      ...clientConfig(this.url, `lockstep-apply-${this.node}`),
      pipeline: true,
    });
    client.on('error', () => undefined);
    this.connecting = client;
    try {
      await client.connect();
      // The slot is confirmed past what replicas commit: a commit must survive the replica's crash.
      await client.query(AT_LEAST_LOCAL_COMMIT);
      // Reported in status: attach checks it is the database it copies into.
      this.databaseId = await readDatabaseId(client);
      // A replica lockstep has not set up yet (no control schema) is one waiting for attach too.
      const position = await client
        .query<{ version: string; lsn: Lsn }>(
          'SELECT version::text, lsn::text FROM lockstep.applied WHERE stream = $1',
          [this.stream],
        )
        .catch((error: { code?: string }) => {
          if (error.code === '42P01') return { rows: [] };
          throw error;
        });
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
      const synced = await this.readSynced(client);
      // Given up on (the apply deadline) while connecting: this client is dropped, not kept.
      if (attempt !== this.attempts) throw new Error('the connection attempt was abandoned');
      this.connecting = null;
      this.client = client;
      this.statementNames.clear();
      this.columnTypes = new WeakMap();
      this.copyLsnByRelation = new WeakMap();
      this.syncedFrom = synced;
      return { version: Number(row.version), lsn: row.lsn };
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
   * Starts a replica transaction (sent, not awaited) that first locks the
   * replica's position row and checks it still holds `from`: two appliers (a
   * deposed sidecar and its successor) serialise there, and the later one
   * fails the check instead of applying the same packets again. A transaction
   * that may be prepared gets lock and statement timeouts, so a participant
   * never waits unboundedly while its vote is awaited.
   */
  private beginAt(from: number, timeouts: readonly string[]): void {
    const client = this.requireClient();
    this.inTransaction = true;
    this.openFrom = from;
    this.corked(client, () => {
      this.send(client, { text: 'BEGIN', values: [], expectsRow: false }, undefined, 0);
      for (const setting of timeouts) {
        this.send(
          client,
          {
            text: `SET LOCAL ${setting} = ${this.participantTimeoutMs}`,
            values: [],
            expectsRow: false,
          },
          undefined,
          0,
        );
      }
      // As native logical replication: no user triggers or FK re-checks on replicated rows.
      this.send(
        client,
        { text: 'SET LOCAL session_replication_role = replica', values: [], expectsRow: false },
        undefined,
        0,
      );
      // After the timeouts: waiting for this lock is bounded like any other.
      this.send(
        client,
        {
          text: 'SELECT 1 FROM lockstep.applied WHERE stream = $1 AND version = $2 FOR UPDATE',
          values: [this.stream, String(from)],
          expectsRow: true,
        },
        undefined,
        from + 1,
        true,
      );
    });
  }

  /** Sends the changes of one packet (or packet part) committed on the primary at `lsn`, in order. */
  async apply(changes: readonly Change[], version: number, lsn: Lsn): Promise<void> {
    const client = this.requireClient();
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i] as Change;
      if (change.kind !== 'message' && this.namesNewTable(change))
        await this.refreshSynced(version);
      if (change.kind === 'message') {
        if (change.prefix === DDL_MESSAGE) await this.runDdl(client, change.content, version);
        continue;
      }
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
      if (change.kind === 'insert') {
        // A run of inserts into one table becomes one set-based INSERT, keeping the order.
        let end = i + 1;
        while (
          end < changes.length &&
          changes[end]?.kind === 'insert' &&
          (changes[end] as InsertChange).relation === change.relation
        )
          end++;
        if (end - i > 1) {
          const start = i;
          const encoded = this.plans.runOf(changes, start, () =>
            encodeInserts(
              change.relation,
              (changes.slice(start, end) as InsertChange[]).map((c) => c.row),
              this.conflicts,
            ),
          );
          const types = await this.typesOf(change.relation, version);
          this.send(
            client,
            insertManyStatement(change.relation, encoded, types, this.conflicts),
            relationLabel(change.relation),
            version,
          );
          i = end - 1;
          continue;
        }
      }
      this.send(
        client,
        changeStatement(change, this.conflicts),
        relationLabel(change.relation),
        version,
      );
    }
    // Once enough is in flight, wait for the oldest half: statements the server has not
    // read yet sit in this process's memory, and waiting here pushes back on the stream,
    // while the newer half keeps the replica busy meanwhile.
    if (this.pendingRows >= MAX_ROWS_IN_FLIGHT) await this.settle(false, MAX_ROWS_IN_FLIGHT / 2);
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
    const plan = whole
      ? this.plans.planOf(
          packets.map((p) => p.changes),
          () =>
            compactChanges(changesOf(packets))?.map((net) =>
              encodeNetChanges(net, this.conflicts),
            ) ?? null,
        )
      : null;
    if (plan) {
      // Types first: a lookup sent after a failed statement would only report the aborted transaction.
      const types = await this.typesOfAll(
        plan.map((net) => net.relation),
        position.version,
      );
      try {
        const client = this.requireClient();
        // The whole batch leaves in one write (a write per statement cost more CPU than building it).
        this.corked(client, () => {
          this.beginAt(from, prepareAs === undefined ? [] : PARTICIPANT_TIMEOUTS);
          for (const net of plan) {
            const columnTypes = types.get(net.relation) as ReplicaColumnTypes;
            const table = relationLabel(net.relation);
            for (const statement of netChangeStatements(net, columnTypes, this.conflicts))
              this.send(client, statement, table, position.version);
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

  /**
   * Whether this replica needs every change of these packets and none of them
   * is captured DDL (which must run at its place): then the batch can be
   * compacted. Checks only; the shared plan flattens the changes once for all replicas.
   */
  private takesWholeBatch(packets: readonly PacketChanges[]): boolean {
    for (const packet of packets) {
      for (const change of packet.changes) {
        if (change.kind === 'message') {
          if (change.prefix === DDL_MESSAGE) return false;
        } else if (change.kind === 'truncate') {
          // Mixed positions against table copies are rare (right after a resumed attach): keep the exact path.
          for (const relation of change.relations)
            if (!this.takes(relation, packet.version, packet.lsn)) return false;
        } else if (!this.takes(change.relation, packet.version, packet.lsn)) return false;
      }
    }
    return true;
  }

  /** The replica's types for a relation's columns, in the primary's column order. */
  private async typesOf(relation: Relation, version: number): Promise<ReplicaColumnTypes> {
    return (await this.typesOfAll([relation], version)).get(relation) as ReplicaColumnTypes;
  }

  /**
   * {@link typesOf} for several relations, with one catalog query for those not
   * known yet: a batch's first use of its tables costs one round trip, not one per table.
   */
  private async typesOfAll(
    relations: readonly Relation[],
    version: number,
  ): Promise<Map<Relation, ReplicaColumnTypes>> {
    const result = new Map<Relation, ReplicaColumnTypes>();
    const unknown: Relation[] = [];
    for (const relation of relations) {
      const known = this.columnTypes.get(relation);
      if (known) result.set(relation, known);
      else unknown.push(relation);
    }
    if (unknown.length === 0) return result;
    let rows: { rel: number; name: string; type: string }[];
    try {
      ({ rows } = await this.requireClient().query<{ rel: number; name: string; type: string }>(
        `SELECT r.ord AS rel, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
           FROM unnest($1::text[]) WITH ORDINALITY AS r(tbl, ord)
           JOIN pg_attribute a ON a.attrelid = r.tbl::regclass
          WHERE a.attnum > 0 AND NOT a.attisdropped`,
        [unknown.map((r) => quoteQualified(r.schema, r.name))],
      ));
    } catch (error) {
      // Inside a transaction an earlier statement may have failed: that is the error to report.
      await this.settle();
      throw this.explain(
        error,
        version,
        unknown.length === 1 ? relationLabel(unknown[0] as Relation) : undefined,
      );
    }
    const byRelation = unknown.map(() => new Map<string, string>());
    for (const row of rows) byRelation[Number(row.rel) - 1]?.set(row.name, row.type);
    unknown.forEach((relation, index) => {
      const byName = byRelation[index] as Map<string, string>;
      const types = relation.columns.map((column) => {
        const type = byName.get(column.name);
        if (!type) {
          throw new ApplyError({
            node: this.node,
            kind: 'schema',
            version,
            table: relationLabel(relation),
            problem: `column "${column.name}" does not exist on the replica`,
            fix: `add the column on replica "${this.node}" with the primary's type (lockstep doctor lists the differences)`,
          });
        }
        return type;
      });
      const entry = { types };
      this.columnTypes.set(relation, entry);
      result.set(relation, entry);
    });
    return result;
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
    const { rows } = await this.requireClient().query<{ version: string; lsn: Lsn }>(
      'SELECT version::text, lsn::text FROM lockstep.applied WHERE stream = $1',
      [this.stream],
    );
    const row = rows[0];
    if (!row) throw new Error(`replica ${this.node} has no position in stream "${this.stream}"`);
    return { version: Number(row.version), lsn: row.lsn };
  }

  /**
   * Moves the stored LSN forward to an idle point of the stream while the
   * version stays: no replicated commit lies in between, so the slot may be
   * confirmed that far. Refused (fenced) when another applier moved the version.
   */
  async advance(position: ReplicaPosition): Promise<void> {
    const { rowCount } = await this.requireClient().query(
      'UPDATE lockstep.applied SET lsn = greatest(lsn, $3::pg_lsn) WHERE stream = $1 AND version = $2',
      [this.stream, String(position.version), position.lsn],
    );
    if (rowCount !== 1) throw this.fenced(position.version);
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
    await this.settle(compacted);
    // Compare-and-set from the version the transaction started at (locked since its start).
    const [stored, commit] = this.corked(client, () => [
      client.query(
        'UPDATE lockstep.applied SET version = $2, lsn = $3, commit_time = $4, applied_at = now() WHERE stream = $1 AND version = $5',
        [this.stream, String(position.version), position.lsn, commitTime, String(this.openFrom)],
      ),
      client.query(end),
    ]);
    stored.catch(() => undefined);
    commit.catch(() => undefined);
    this.inTransaction = false;
    try {
      if ((await stored).rowCount !== 1) throw this.fenced(position.version);
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
    this.pending = [];
    this.pendingRows = 0;
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
    this.pending = [];
    this.pendingRows = 0;
    this.inTransaction = false;
    for (const client of clients) if (client) dropClient(client);
  }

  /** The replica's position is not the one this transaction started from: another applier moved it. */
  private fenced(version: number): ApplyError {
    return new ApplyError({
      node: this.node,
      kind: 'fenced',
      version,
      problem: `the replica's position is no longer version ${this.openFrom}: another lockstep applier moved it first`,
      fix: 'nothing to do when a sidecar just took over (this applier stops); otherwise make sure one sidecar per stream runs with this configuration',
    });
  }

  /** Closes the connection (an open transaction is rolled back by the server). */
  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.pending = [];
    this.pendingRows = 0;
    this.inTransaction = false;
    if (client) await endClient(client);
  }

  /** The tables copied to this replica, and the LSN each copy is consistent with. */
  private async readSynced(client: pg.Client): Promise<Map<string, Lsn>> {
    const { rows } = await client.query<{ schema_name: string; table_name: string; copy_lsn: Lsn }>(
      'SELECT schema_name, table_name, copy_lsn::text FROM lockstep.synced_tables WHERE stream = $1',
      [this.stream],
    );
    return new Map(rows.map((r) => [`${r.schema_name}.${r.table_name}`, r.copy_lsn]));
  }

  /**
   * Reads the copied tables again, inside the open transaction if there is
   * one: a migration or captured DDL run through lockstep creates a table on
   * every node and records it as in step, while this connection stays open.
   */
  private async refreshSynced(version: number): Promise<void> {
    try {
      this.syncedFrom = await this.readSynced(this.requireClient());
    } catch (error) {
      // Inside a transaction an earlier statement may have failed: that is the error to report.
      await this.settle();
      throw this.explain(error, version, undefined);
    }
    this.copyLsnByRelation = new WeakMap();
  }

  /** Whether `change` names a table this connection has not seen in the copied tables (rare: a cheap lookup on the hot path). */
  private namesNewTable(change: Exclude<Change, { kind: 'message' }>): boolean {
    const relations = change.kind === 'truncate' ? change.relations : [change.relation];
    return relations.some(
      (r) => !this.copyLsnByRelation.has(r) && !this.syncedFrom.has(relationLabel(r)),
    );
  }

  /** {@link takesWholeBatch}, after reading the copied tables again if the packets name a table not known yet. */
  private async takesWholeBatchFresh(
    packets: readonly PacketChanges[],
    version: number,
  ): Promise<boolean> {
    try {
      return this.takesWholeBatch(packets);
    } catch (error) {
      if (!(error instanceof ApplyError) || error.kind !== 'not-synced') throw error;
      await this.refreshSynced(version);
      return this.takesWholeBatch(packets);
    }
  }

  /**
   * DDL captured on the primary, run here at its place in the stream (what was
   * sent before it is checked first): with the primary's search_path, and
   * without CONCURRENTLY, which cannot run inside the replica's transaction
   * (the plain form builds the same index). A table it creates is recorded as
   * in step, so the packet's rows for it apply.
   */
  private async runDdl(client: pg.Client, content: string, version: number): Promise<void> {
    await this.settle();
    const { searchPath, command, ordinal, role, tag, settings } = JSON.parse(content) as {
      searchPath: string;
      command: string;
      ordinal?: number;
      role: string;
      tag?: string;
      settings?: Omit<CapturedSettings, 'search_path'>;
    };
    const statement = capturedStatement(command, ordinal ?? 1);
    try {
      if (statement === null)
        throw new Error(`DDL statement ${ordinal} not found in the captured query string`);
      // Never a statement the primary did not run: it must be the command the primary reported.
      if (tag && !matchesCommandTag(statement, tag))
        throw new Error(`the statement found is not the ${tag} the primary ran`);
      await runAsRole(client, role, withoutConcurrently(statement), {
        ...settings,
        search_path: searchPath,
      });
      await client.query(
        `INSERT INTO lockstep.synced_tables (stream, schema_name, table_name, copy_lsn, rows)
         SELECT $1, n.nspname, c.relname, '0/0', 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND c.xmin = pg_current_xact_id()::xid
         ON CONFLICT DO NOTHING`,
        [this.stream],
      );
    } catch (error) {
      const explained = this.explain(error, version, undefined);
      throw new ApplyError({
        node: this.node,
        kind: 'schema',
        version,
        sqlState: explained.sqlState,
        problem: `the DDL captured on the primary failed here: ${(statement ?? command).trim().slice(0, 200)} — ${explained.message.split('\n')[0]}`,
        fix: /^role ".*" does not exist/.test(explained.message)
          ? `create role "${role}" on replica "${this.node}" (captured DDL runs as the role that ran it on the primary; pg_dumpall --roles-only copies roles); lockstep retries by itself`
          : `make replica "${this.node}"'s schema match the primary's before this statement (lockstep doctor lists differences); lockstep retries by itself`,
        cause: error,
      });
    }
    await this.refreshSynced(version);
  }

  /** Whether a change to `relation` in a packet at `lsn` still needs applying (not already in the table's copy). */
  private takes(relation: { schema: string; name: string }, version: number, lsn: Lsn): boolean {
    let copyLsn = this.copyLsnByRelation.get(relation);
    if (copyLsn === undefined) {
      copyLsn = this.syncedFrom.get(relationLabel(relation)) ?? null;
      this.copyLsnByRelation.set(relation, copyLsn);
    }
    if (copyLsn === null) {
      throw new ApplyError({
        node: this.node,
        kind: 'not-synced',
        version,
        table: relationLabel(relation),
        problem: 'the table is replicated but was never copied to this replica',
        fix: 'run lockstep attach to copy it',
      });
    }
    // Same packet as the last call (the common case): reuse the comparison.
    if (this.lastTakenLsn === lsn && this.lastTakenCopyLsn === copyLsn) return this.lastTakenResult;
    this.lastTakenLsn = lsn;
    this.lastTakenCopyLsn = copyLsn;
    this.lastTakenResult = compareLsn(lsn, copyLsn) >= 0;
    return this.lastTakenResult;
  }

  /** Runs `send` (sends only, nothing awaited) with the connection corked: its messages leave in one write. */
  private corked<T>(client: pg.Client, send: () => T): T {
    const { stream } = (client as unknown as { connection: { stream: Socket } }).connection;
    stream.cork();
    try {
      return send();
    } finally {
      stream.uncork();
    }
  }

  private send(
    client: pg.Client,
    statement: ChangeStatement,
    table: string | undefined,
    version: number,
    fence = false,
  ): void {
    let name = this.statementNames.get(statement.text);
    if (name === undefined && statement.values.length > 0) {
      name = `ls_${this.statementNames.size}`;
      this.statementNames.set(statement.text, name);
    }
    const promise = statement.copyData
      ? pipelinedCopy(client, statement.text, statement.copyData)
      : client.query(
          // pg never writes to the values it is given; its types just do not say so.
          name
            ? { name, text: statement.text, values: statement.values as (string | Buffer | null)[] }
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
   * Waits for every statement sent so far; throws the first real failure. For
   * a set-based attempt, any failure is reported as {@link CompactedApplyFailed}
   * (after rolling back) so the caller retries change by change, which either
   * succeeds or names the exact failing change.
   */
  private async settle(compacted = false, downToRows = 0): Promise<void> {
    let pending = this.pending;
    let rows = this.pendingRows;
    this.pending = [];
    this.pendingRows = 0;
    if (downToRows > 0) {
      // Only the oldest statements: the rest stay in flight, so the replica never runs dry.
      let cut = 0;
      while (cut < pending.length && rows > downToRows) rows -= (pending[cut++] as Pending).rows;
      this.pending = pending.slice(cut);
      this.pendingRows = rows;
      pending = pending.slice(0, cut);
    }
    const results = await Promise.allSettled(pending.map((p) => p.promise));
    let failure: { error: unknown; item: Pending } | null = null;
    results.forEach((result, i) => {
      const item = pending[i] as Pending;
      if (result.status === 'rejected') {
        // After the first error every later statement reports "transaction is aborted": keep the first.
        failure ??= { error: result.reason, item };
        return;
      }
      if (
        item.expectRows !== null &&
        (result.value.rowCount ?? 0) !== item.expectRows &&
        !failure
      ) {
        if (item.fence) {
          failure = { error: this.fenced(item.version), item };
          return;
        }
        if (compacted) {
          failure = { error: new CompactedApplyFailed('row count'), item };
          return;
        }
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
      const explained =
        error instanceof CompactedApplyFailed
          ? error
          : this.explain(error, item.version, item.table);
      const final =
        explained instanceof ApplyError && ['unreachable', 'fenced'].includes(explained.kind);
      if (compacted && !final) {
        throw new CompactedApplyFailed(explained.message);
      }
      throw explained;
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
    if (/timeout expired|connection timeout/i.test(e.message ?? '')) {
      return new ApplyError({
        ...base,
        kind: 'unresponsive',
        table: undefined,
        problem: `the replica does not answer (${redactUrl(this.url)}): ${message}`,
        fix: 'check the replica server and the network to it; lockstep retries and catches up by itself',
      });
    }
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
    if (e.code === '0A000' && /referenced in a foreign key/.test(e.message ?? '')) {
      return new ApplyError({
        ...base,
        kind: 'schema',
        problem: `${message} [${e.code}]`,
        fix: `on replica "${this.node}" a table the primary did not truncate references it: drop that foreign key there, or truncate both together on the primary (lockstep never cascades, like native apply)`,
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

/** Every change of `packets`, in order (a plain loop: V8's flatMap took 15x as long on a batch of 2,500 packets). */
function changesOf(packets: readonly PacketChanges[]): Change[] {
  const all: Change[] = [];
  for (const packet of packets) for (const change of packet.changes) all.push(change);
  return all;
}
