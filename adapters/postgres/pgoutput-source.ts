import type pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { ChangeSource, DecodedMessageHandler } from '../../plugin/primary/change-source.js';
import type { DecodedMessage } from '../../plugin/primary/decoded-message.js';
import type { Lsn } from '../../plugin/protocol/index.js';
import { clientConfig } from './connection-url.js';
import { PgoutputDecoder, startReplicationCommand } from './pgoutput-decoder.js';
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

/** A payload the decoder could not read: handed to the data handler, which stops the stream. */
class UndecodableMessage {
  constructor(readonly error: unknown) {}
}

/**
 * The library's output-plugin interface, filled with lockstep's own decoder
 * (see {@link PgoutputDecoder} for why) and a START_REPLICATION with quoted
 * names. `parse` never throws: the library calls it inside a socket event.
 */
class LockstepPgoutputPlugin {
  readonly name = 'pgoutput';
  readonly options = {};
  private readonly decoder = new PgoutputDecoder();

  constructor(private readonly command: string) {}

  start(client: pg.Client): Promise<unknown> {
    return client.query(this.command);
  }

  parse(buffer: Buffer): DecodedMessage | UndecodableMessage | null {
    try {
      return this.decoder.decode(buffer);
    } catch (error) {
      return new UndecodableMessage(error);
    }
  }
}

/**
 * Reads a logical slot with `pg-logical-replication`'s connection and
 * `pgoutput` (protocol 1, messages on), decoded by lockstep's own decoder. Set
 * up against the library's data-losing defaults (see
 * shared/notes/pg-logical-replication.md): no automatic acknowledgement, no
 * acknowledgement timer, keepalives answered with the durable position only, a
 * fresh service (and decoder) per connection, values kept in Postgres's text
 * form and copied out of the protocol buffer at once, and any decoding or
 * handler failure stops the stream.
 */
export class PgoutputSource implements ChangeSource {
  private service: LogicalReplicationService | null = null;
  private durableLsn: Lsn;
  private statusTimer: NodeJS.Timeout | null = null;
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
      service.on('data', (_lsn: string, decoded: DecodedMessage | UndecodableMessage | null) => {
        if (this.failed || this.stopped || decoded === null) return;
        if (decoded instanceof UndecodableMessage) {
          fail(decoded.error);
          return;
        }
        try {
          onMessage(decoded);
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
          new LockstepPgoutputPlugin(
            startReplicationCommand(this.options.slot, this.options.publication),
          ),
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
}
