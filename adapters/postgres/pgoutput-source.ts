import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { ChangeSource, DecodedMessageHandler } from '../../plugin/primary/change-source.js';
import type { DecodedMessage } from '../../plugin/primary/decoded-message.js';
import {
  type Lsn,
  type Relation,
  type RelationColumn,
  toLsn,
  UNCHANGED_TOAST,
  type Value,
} from '../../plugin/protocol/index.js';
import { clientConfig } from './connection-url.js';
import { explainReplicationError } from './replication-errors.js';
import { assertObjectName } from './sql-identifier.js';

/** Options of the pgoutput source. */
export interface PgoutputSourceOptions {
  /** The primary's URL. */
  readonly url: string;
  /** Logical slot (pgoutput) to read. */
  readonly slot: string;
  /** Publication that names the replicated tables. */
  readonly publication: string;
  /**
   * Position already durable downstream (the resume point's LSN); answered to
   * the server until the consumer acknowledges something newer.
   */
  readonly durableLsn: Lsn;
  /** Node name used in errors. Default `primary`. */
  readonly node?: string;
  /** How often a status update is sent even when the server did not ask (ms). Default 10,000. */
  readonly statusIntervalMs?: number;
  /** logical_decoding_work_mem for this replication session (e.g. `256MB`); the server's when omitted. */
  readonly decodingWorkMem?: string;
}

const keepText = (text: string): string => text;
const textDecoder = new TextDecoder();

/**
 * Reads a logical slot with `pg-logical-replication` and the `pgoutput` plugin
 * (protocol 1, messages on). Set up against the library's data-losing defaults
 * (see shared/notes/pg-logical-replication.md): no automatic acknowledgement,
 * no acknowledgement timer, keepalives answered with the durable position only,
 * a fresh service per connection, values kept in Postgres's text form, buffers
 * copied at once, and any handler failure stops the stream.
 */
export class PgoutputSource implements ChangeSource {
  private service: LogicalReplicationService | null = null;
  private durableLsn: Lsn;
  private statusTimer: NodeJS.Timeout | null = null;
  private readonly relations = new Map<number, Relation>();
  private stopped = false;
  private failed = false;

  constructor(private readonly options: PgoutputSourceOptions) {
    assertObjectName('slot', options.slot);
    assertObjectName('publication', options.publication);
    this.durableLsn = options.durableLsn;
  }

  async start(onMessage: DecodedMessageHandler, onError: (error: Error) => void): Promise<void> {
    if (this.service) throw new Error('PgoutputSource.start called twice');
    const context = {
      node: this.options.node ?? 'primary',
      slot: this.options.slot,
      publication: this.options.publication,
    };
    const fail = (error: unknown) => {
      if (this.failed || this.stopped) return;
      this.failed = true;
      onError(explainReplicationError(error, context));
      void this.stop();
    };
    for (let attempt = 0; ; attempt++) {
      const config = clientConfig(this.options.url, 'lockstep');
      if (this.options.decodingWorkMem) {
        // A session setting of the walsender: the server's configuration is left alone.
        config.options = `-c logical_decoding_work_mem=${this.options.decodingWorkMem.replace(/\s/g, '')}`;
      }
      const service = new LogicalReplicationService(config, {
        acknowledge: { auto: false, timeoutSeconds: 0 },
        flowControl: { enabled: false },
      });
      this.service = service;
      let isStarted = false;
      const started = new Promise<void>((resolve) =>
        service.once('start', () => {
          isStarted = true;
          resolve();
        }),
      );
      service.on('data', (_lsn: string, message: Pgoutput.Message) => {
        if (this.failed || this.stopped) return;
        try {
          const decoded = this.decode(message);
          if (decoded) onMessage(decoded);
        } catch (error) {
          fail(error);
        }
      });
      service.on('heartbeat', (_lsn: string, _time: number, shouldRespond: boolean) => {
        if (shouldRespond) this.sendStatus();
      });
      let subscribeError: unknown = null;
      const subscribed = service
        .subscribe(
          new PgoutputPlugin({
            protoVersion: 1,
            publicationNames: [this.options.publication],
            messages: true,
          }),
          this.options.slot,
          '0/0',
        )
        .then(
          () => {
            if (!this.stopped) fail(new Error('the primary ended the replication stream'));
          },
          (error: unknown) => {
            subscribeError = error;
          },
        );
      service.on('error', (error: unknown) => {
        if (isStarted) fail(error);
      });
      const outcome = await Promise.race([started.then(() => 'started' as const), subscribed]);
      if (outcome === 'started') {
        void subscribed.then(() => {
          if (subscribeError) fail(subscribeError);
        });
        break;
      }
      await service.destroy().catch(() => undefined);
      this.service = null;
      // Right after another consumer stopped, the walsender can hold the slot for a few ms.
      const code = (subscribeError as { code?: string } | null)?.code;
      if (code === '55006' && attempt < 40 && !this.stopped) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      throw explainReplicationError(
        subscribeError ?? new Error('replication did not start'),
        context,
      );
    }
    this.statusTimer = setInterval(
      () => this.sendStatus(),
      this.options.statusIntervalMs ?? 10_000,
    );
    this.statusTimer.unref();
  }

  pause(): void {
    this.socket()?.pause();
  }

  resume(): void {
    this.socket()?.resume();
  }

  acknowledge(lsn: Lsn): void {
    this.durableLsn = lsn;
    this.sendStatus();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    const service = this.service;
    this.service = null;
    if (service) await service.destroy().catch(() => undefined);
  }

  /**
   * Reports the durable position. The library adds one to what it is given, so
   * the slot's confirmed_flush_lsn becomes `durableLsn + 1`: the transaction
   * whose commit record is at `durableLsn` is never sent again, the next one is.
   */
  private sendStatus(): void {
    void this.service?.acknowledge(this.durableLsn).catch(() => undefined);
  }

  /** The socket under the library's connection; pausing it stops reading from the server. */
  private socket(): NodeJS.ReadableStream | null {
    const internals = this.service as unknown as {
      _connection?: { stream?: NodeJS.ReadableStream };
    } | null;
    return internals?._connection?.stream ?? null;
  }

  private decode(message: Pgoutput.Message): DecodedMessage | null {
    switch (message.tag) {
      case 'begin':
        return {
          tag: 'begin',
          finalLsn: toLsn(message.commitLsn ?? '0/0'),
          commitTime: microsToIso(message.commitTime as unknown as bigint),
          xid: message.xid >>> 0,
        };
      case 'commit':
        return {
          tag: 'commit',
          commitLsn: toLsn(message.commitLsn ?? '0/0'),
          commitEndLsn: toLsn(message.commitEndLsn ?? '0/0'),
        };
      case 'relation': {
        // Later tuples of this relation are parsed with these parsers: keep text.
        for (const column of message.columns) column.parser = keepText;
        const columns: RelationColumn[] = message.columns.map((c) => ({
          name: c.name,
          typeOid: c.typeOid,
          typeMod: c.typeMod,
          // pgoutput names a domain by its base type, and pg_catalog as an empty namespace.
          typeName: c.typeName ? `${c.typeSchema || 'pg_catalog'}.${c.typeName}` : null,
          isKey: (c.flags & 1) === 1,
        }));
        const relation: Relation = {
          oid: message.relationOid,
          schema: message.schema,
          name: message.name,
          replicaIdentity: message.replicaIdentity,
          columns,
          keyIndexes: columns.flatMap((c, i) => (c.isKey ? [i] : [])),
        };
        this.relations.set(relation.oid, relation);
        return { tag: 'relation', relation };
      }
      case 'insert': {
        const relation = this.relationOf(message.relation.relationOid);
        return { tag: 'insert', relation, row: toRow(relation, message.new) };
      }
      case 'update': {
        const relation = this.relationOf(message.relation.relationOid);
        const old = message.old ?? message.key;
        return {
          tag: 'update',
          relation,
          row: toRow(relation, message.new),
          key: old ? toKey(relation, old) : null,
        };
      }
      case 'delete': {
        const relation = this.relationOf(message.relation.relationOid);
        const old = message.old ?? message.key;
        if (!old) throw new Error(`delete on ${relation.schema}.${relation.name} without old key`);
        return { tag: 'delete', relation, key: toKey(relation, old) };
      }
      case 'truncate':
        return {
          tag: 'truncate',
          relations: message.relations.map((r) => this.relationOf(r.relationOid)),
          cascade: message.cascade,
          restartIdentity: message.restartIdentity,
        };
      case 'message':
        // `content` points into a reused protocol buffer: decoding copies it now.
        return {
          tag: 'message',
          transactional: message.transactional,
          prefix: message.prefix,
          content: textDecoder.decode(message.content),
        };
      default:
        return null;
    }
  }

  private relationOf(oid: number): Relation {
    const relation = this.relations.get(oid);
    if (!relation)
      throw new Error(`pgoutput sent a change for relation ${oid} before its relation message`);
    return relation;
  }
}

type Tuple = Record<string, unknown>;

function toValue(value: unknown): Value {
  if (value === undefined) return UNCHANGED_TOAST;
  if (value === null || typeof value === 'string') return value;
  // Text-format tuples only carry strings; anything else means a parser leaked in.
  throw new Error(`unexpected non-text column value (${typeof value})`);
}

function toRow(relation: Relation, tuple: Tuple): Value[] {
  const row = new Array<Value>(relation.columns.length);
  for (let i = 0; i < row.length; i++)
    row[i] = toValue(tuple[(relation.columns[i] as RelationColumn).name]);
  return row;
}

function toKey(relation: Relation, tuple: Tuple): Value[] {
  return relation.keyIndexes.map((i) =>
    toValue(tuple[(relation.columns[i] as RelationColumn).name]),
  );
}

/** Microseconds since the Unix epoch as ISO-8601 UTC with all six fractional digits. */
export function microsToIso(micros: bigint): string {
  // Microseconds since 1970 stay below 2^53 until the year 2255: Number is exact and cheaper.
  const value = Number(micros);
  const millis = Math.floor(value / 1000);
  const rest = value - millis * 1000;
  const iso = new Date(millis).toISOString();
  return `${iso.slice(0, -1)}${rest.toString().padStart(3, '0')}Z`;
}
