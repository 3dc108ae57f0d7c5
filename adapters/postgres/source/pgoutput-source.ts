import type {
  ChangeSource,
  DecodedMessageHandler,
  WalEndHandler,
} from '../../../plugin/ports/change-source.js';
import { type Lsn, lsnFromBigInt } from '../../../plugin/protocol/index.js';
import { sleep } from '../../../plugin/support/sleep.js';
import { clientConfig } from '../connection/connection-url.js';
import { assertObjectName } from '../sql-identifier.js';
import { PgoutputDecoder, startReplicationCommand } from './pgoutput-decoder.js';
import { ReplicationConnection } from './replication-connection.js';
import { explainReplicationError } from './replication-errors.js';

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

/** The primary asks again and again for a confirmation: it is shutting down and waits for this client. */
export class PrimaryShuttingDown extends Error {
  constructor() {
    super(
      'the primary is shutting down and waits for lockstep to confirm the end of its WAL: ending the replication connection (lockstep reconnects once it is back)',
    );
    this.name = 'PrimaryShuttingDown';
  }
}

/** Where an XLogData message's payload starts (after its tag, two LSNs and the send time). */
export const XLOGDATA_HEADER = 25;

/**
 * Reads a logical slot over lockstep's own {@link ReplicationConnection} with
 * `pgoutput` (protocol 1, messages on), decoded by lockstep's decoder. What the
 * traps in shared/notes/pg-logical-replication.md ask of a durable consumer
 * holds by construction: nothing is acknowledged but what the consumer made
 * durable, keepalives are answered with that position, a fresh connection
 * (and decoder) is used per start, rows point only into buffers nothing
 * writes again (the socket's reads, never the driver's reused buffer), and
 * any decoding or handler failure stops the stream.
 */
export class PgoutputSource implements ChangeSource {
  private connection: ReplicationConnection | null = null;
  private durableLsn: Lsn;
  private statusTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The replication connection's close, once stop() began it. */
  private closing: Promise<void> = Promise.resolve();
  private failed = false;
  /** When the server last asked for a reply (the last second's asks). */
  private replyAsks: number[] = [];
  /** The end of WAL those asks were made at (the walsender's sent position). */
  private replyAsksAt = 0n;

  constructor(private readonly options: PgoutputSourceOptions) {
    assertObjectName('slot', options.slot);
    assertObjectName('publication', options.publication);
    this.durableLsn = options.durableLsn;
  }

  async start(
    onMessage: DecodedMessageHandler,
    onError: (error: Error) => void,
    onWalEnd?: WalEndHandler,
  ): Promise<void> {
    if (this.connection) throw new Error('PgoutputSource.start called twice');
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
      let connection: ReplicationConnection;
      try {
        connection = await ReplicationConnection.open(this.connectionConfig());
      } catch (error) {
        throw explainReplicationError(error, context);
      }
      this.connection = connection;
      const decoder = new PgoutputDecoder();
      const stream = connection.start(
        startReplicationCommand(this.options.slot, this.options.publication),
        this.frameHandler(decoder, onMessage, fail, onWalEnd),
      );
      // Settles with the stream's error, or null when the server ended it cleanly.
      const ended = stream.ended.then(
        () => null,
        (error: unknown) => error ?? new Error('the replication connection failed'),
      );
      const started = await Promise.race([
        stream.started.then(() => true),
        ended.then(() => false),
      ]);
      if (started) {
        void ended.then((error) => {
          if (!this.stopped) fail(error ?? new Error('the primary ended the replication stream'));
        });
        break;
      }
      const streamError = await ended;
      await connection.close();
      this.connection = null;
      // Right after another consumer stopped, the walsender can hold the slot for a few ms.
      const code = (streamError as { code?: string } | null)?.code;
      if (code === '55006' && attempt < 40 && !this.stopped) {
        await sleep(50);
        continue;
      }
      throw explainReplicationError(streamError ?? new Error('replication did not start'), context);
    }
    this.statusTimer = setInterval(
      () => this.sendStatus(),
      this.options.statusIntervalMs ?? 10_000,
    );
    this.statusTimer.unref();
  }

  /** The replication connection's settings: the URL's, with the session's decoding memory. */
  private connectionConfig(): ReturnType<typeof clientConfig> {
    const config = clientConfig(this.options.url, 'lockstep');
    if (this.options.decodingWorkMem) {
      // A session setting of the walsender: the server's configuration is left alone.
      // After the connection's own options (libpq's `options`), which it keeps.
      const setting = `-c logical_decoding_work_mem=${this.options.decodingWorkMem.replace(/\s/g, '')}`;
      config.options = config.options ? `${config.options} ${setting}` : setting;
    }
    return config;
  }

  /** Handles each CopyData frame: XLogData decoded and handed on, keepalives answered. */
  private frameHandler(
    decoder: PgoutputDecoder,
    onMessage: DecodedMessageHandler,
    fail: (error: unknown) => void,
    onWalEnd?: WalEndHandler,
  ): (buf: Buffer, start: number, end: number) => void {
    return (buf, start, end) => {
      if (this.failed || this.stopped) return;
      try {
        const kind = buf[start];
        if (kind === 0x77 /* w: XLogData */) {
          // The connection's buffers are never written again: rows may point into them.
          const decoded = decoder.decode(buf, start + XLOGDATA_HEADER, end, true);
          if (decoded !== null) onMessage(decoded);
        } else if (kind === 0x6b /* k: keepalive */) {
          const walEnd = buf.readBigUInt64BE(start + 1);
          if (walEnd > 0n) onWalEnd?.(lsnFromBigInt(walEnd));
          if (buf[start + 17] === 1) {
            this.sendStatus();
            if (this.serverWaits(walEnd)) {
              fail(new PrimaryShuttingDown());
              return;
            }
          }
        } else {
          throw new Error(`unknown replication message 0x${(kind ?? 0).toString(16)}`);
        }
      } catch (error) {
        fail(error);
      }
    };
  }

  pause(): void {
    this.connection?.pause();
  }

  resume(): void {
    this.connection?.resume();
  }

  acknowledge(lsn: Lsn): void {
    this.durableLsn = lsn;
    this.sendStatus();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    const connection = this.connection;
    this.connection = null;
    // A second stop waits for the first one's close: the walsender lets go of the slot then.
    if (connection) this.closing = connection.close();
    await this.closing;
  }

  /**
   * Whether the walsender is waiting on this client. It asks for a reply at
   * most every `wal_sender_timeout / 2` while streaming; when it shuts down
   * (`WalSndDone`) it asks again as soon as each reply arrives, until the
   * reported flush position reaches the end of what it sent — which lockstep
   * may only report once every replica holds it. Three asks within 200 ms at
   * the same end of WAL (each answered at once, so only a waiting shutdown
   * asks that fast) mean the primary's shutdown is waiting: the connection is
   * ended instead, so a fast restart of the primary never waits on lockstep.
   * (A `wal_sender_timeout` under 400 ms would also ask that often while
   * idle: the connection would then be recycled now and then.)
   */
  private serverWaits(walEnd: bigint): boolean {
    const now = Date.now();
    if (walEnd !== this.replyAsksAt) this.replyAsks = [];
    this.replyAsksAt = walEnd;
    this.replyAsks = this.replyAsks.filter((at) => now - at < 200);
    this.replyAsks.push(now);
    return this.replyAsks.length >= 3;
  }

  /** Reports the durable position (see {@link ReplicationConnection.sendStatus} for the `+ 1`). */
  private sendStatus(): void {
    try {
      this.connection?.sendStatus(this.durableLsn);
    } catch {
      // A closing connection: the next start reports the position again.
    }
  }
}
