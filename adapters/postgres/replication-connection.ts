import pg from 'pg';
import { type Lsn, lsnToBigInt, POSTGRES_EPOCH_MICROS } from '../../plugin/protocol/index.js';

/** pg's own Query class (exported at run time; @types/pg declares it as an interface-only type). */
const PgQuery = (pg as unknown as { Query: new (text: string) => object }).Query;

/** The parts of pg's connection the stream uses (not in @types/pg). */
interface ReplicationWire {
  readonly stream: NodeJS.ReadableStream;
  once(event: 'replicationStart', listener: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
}

/**
 * Messages handed over before reading yields a turn of the event loop. A
 * backlog arrives faster than it is consumed, and Node hands a socket over in
 * up to 32 reads at once: unchecked, the stream held the loop for 80-100 ms at
 * a time at start-up, and other connections' replies (the replicas' batch
 * round trips) waited behind it.
 */
const MESSAGES_PER_TURN = 1_000;

/**
 * START_REPLICATION as a pg Query: the client hands every CopyData message of
 * the stream to the active query, so this one receives them directly — one
 * call per message, no event emitter in between. pg's Query is its documented
 * extension point (lockstep's pipelined COPY is one too); the query ends when
 * the stream does, with the server's error if there was one.
 */
class StreamQuery extends PgQuery {
  constructor(
    text: string,
    private readonly onCopyData: (chunk: Buffer) => void,
  ) {
    super(text);
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.onCopyData(message.chunk);
  }
}

/**
 * One logical replication connection (`replication=database`) on pg: starts a
 * stream, passes on its CopyData payloads (XLogData `w`, keepalive `k`) and
 * sends standby status updates. Deliberately small: acknowledging, answering
 * keepalives and decoding are the caller's decisions, so nothing here can
 * confirm a position the caller has not made durable.
 */
export class ReplicationConnection {
  /** Paused by the caller (back-pressure), as opposed to yielding a turn. */
  private paused = false;
  private yielding = false;
  private closed = false;
  private messagesThisTurn = 0;

  private constructor(private readonly client: pg.Client) {}

  /** Connects with `config` in replication mode; connection errors (auth, host, privilege) reject. */
  static async open(config: pg.ClientConfig): Promise<ReplicationConnection> {
    const client = new pg.Client({ ...config, replication: 'database' } as pg.ClientConfig);
    // Until start() wires the stream's errors, a dropped connection must not be an unhandled 'error'.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return new ReplicationConnection(client);
  }

  /**
   * Sends `command` (START_REPLICATION …). `started` resolves once the server
   * streams; `ended` settles when the stream does (rejecting with the server's
   * or the connection's error). `onCopyData` gets each message's bytes; it must
   * copy what it keeps (pg may reuse the buffer).
   */
  start(
    command: string,
    onCopyData: (chunk: Buffer) => void,
  ): { started: Promise<void>; ended: Promise<void> } {
    const started = new Promise<void>((resolve) => this.wire().once('replicationStart', resolve));
    const ended = new Promise<void>((resolve, reject) => {
      const query = new StreamQuery(command, (chunk) => {
        onCopyData(chunk);
        if (++this.messagesThisTurn >= MESSAGES_PER_TURN) this.yieldTurn();
      }) as unknown as {
        callback: (error: Error | null) => void;
      };
      query.callback = (error) => (error ? reject(error) : resolve());
      this.client.removeAllListeners('error');
      this.client.on('error', reject);
      this.client.query(query as unknown as pg.QueryConfig);
    });
    return { started, ended };
  }

  /**
   * A standby status update saying everything before `lsn + 1` is written,
   * flushed and applied: the slot's confirmed_flush_lsn becomes `lsn + 1`, so
   * the transaction whose commit record is at `lsn` is never sent again and the
   * next one is.
   */
  sendStatus(lsn: Lsn): void {
    const next = lsnToBigInt(lsn) + 1n;
    const message = Buffer.alloc(34);
    message[0] = 0x72; // 'r'
    for (const at of [1, 9, 17]) message.writeBigUInt64BE(next, at);
    message.writeBigInt64BE(BigInt(Date.now() * 1000 - POSTGRES_EPOCH_MICROS), 25);
    message[33] = 0; // no reply requested
    this.wire().sendCopyFromChunk(message);
  }

  /** Stops reading from the server (TCP flow control holds the walsender back). */
  pause(): void {
    this.paused = true;
    this.wire().stream.pause();
  }

  /** Reads from the server again. */
  resume(): void {
    this.paused = false;
    if (!this.yielding) this.wire().stream.resume();
  }

  /** Ends the connection (the walsender exits and releases the slot). */
  async close(): Promise<void> {
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }

  /** Stops reading until the event loop has had a turn (what the socket already holds waits). */
  private yieldTurn(): void {
    if (this.yielding) return;
    this.yielding = true;
    this.wire().stream.pause();
    setImmediate(() => {
      this.yielding = false;
      this.messagesThisTurn = 0;
      if (!this.paused && !this.closed) this.wire().stream.resume();
    });
  }

  private wire(): ReplicationWire {
    return (this.client as unknown as { connection: ReplicationWire }).connection;
  }
}
