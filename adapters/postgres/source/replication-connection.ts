import type { Socket } from 'node:net';
import pg from 'pg';
import { type Lsn, lsnToBigInt, POSTGRES_EPOCH_MICROS } from '../../../plugin/protocol/index.js';
import { LibpqClient, type LibpqClientConfig } from '../connection/libpq-client.js';
import { BackendFrames } from './backend-frames.js';

/** The parts of pg's connection the stream uses (not in @types/pg). */
interface ReplicationWire {
  readonly stream: Socket;
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

/** How long closing waits for the server to end the connection before dropping the socket. */
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Receives one CopyData message of the stream: its bytes are `buf[start, end)`.
 * `buf` is a socket read or a message joined from several, and nothing writes
 * to it afterwards (Node hands every read over in a buffer of its own), so
 * the receiver may keep references into it.
 */
export type CopyDataHandler = (buf: Buffer, start: number, end: number) => void;

/**
 * One logical replication connection (`replication=database`) on pg: starts a
 * stream, passes on its CopyData payloads (XLogData `w`, keepalive `k`) and
 * sends standby status updates. Deliberately small: acknowledging, answering
 * keepalives and decoding are the caller's decisions, so nothing here can
 * confirm a position the caller has not made durable.
 *
 * pg connects and authenticates; once START_REPLICATION is sent, this class
 * reads the socket itself ({@link BackendFrames}): pg's parser built a message
 * object and a Buffer view per CopyData message and passed it through two
 * event emitters, about a quarter of the sidecar's allocation in a backlog
 * drain. The socket is taken over while the client is idle (after
 * ReadyForQuery), when pg's parser holds no partial message, and handed back
 * at the next ReadyForQuery.
 */
export class ReplicationConnection {
  /** Paused by the caller (back-pressure), as opposed to yielding a turn. */
  private paused = false;
  private yielding = false;
  private closed = false;
  private readonly frames = new BackendFrames();
  private onCopyData: CopyDataHandler | null = null;
  private settle: { started: () => void; ended: (error: Error | null) => void } | null = null;
  private pgDataListeners: ((chunk: Buffer) => void)[] = [];

  private constructor(private readonly client: pg.Client) {}

  /**
   * Connects with `config` (clientConfig's, so TLS follows the node's sslmode)
   * in replication mode; connection errors (auth, host, privilege, TLS) reject.
   */
  static async open(config: LibpqClientConfig): Promise<ReplicationConnection> {
    const client = new LibpqClient({ ...config, replication: 'database' } as LibpqClientConfig);
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
   * or the connection's error). `onCopyData` gets each message's bytes (see
   * {@link CopyDataHandler}).
   */
  start(
    command: string,
    onCopyData: CopyDataHandler,
  ): { started: Promise<void>; ended: Promise<void> } {
    let started: () => void = () => undefined;
    const startedPromise = new Promise<void>((resolve) => {
      started = resolve;
    });
    const ended = new Promise<void>((resolve, reject) => {
      this.settle = { started, ended: (error) => (error ? reject(error) : resolve()) };
    });
    this.client.removeAllListeners('error');
    this.client.on('error', (error: Error) => this.finish(error));
    this.onCopyData = onCopyData;
    const socket = this.wire().stream;
    this.pgDataListeners = socket.listeners('data') as ((chunk: Buffer) => void)[];
    socket.removeAllListeners('data');
    socket.on('data', this.receive);
    socket.write(simpleQuery(command));
    return { started: startedPromise, ended };
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

  /** Stops reading (what is already read waits too; TCP flow control holds the walsender back). */
  pause(): void {
    this.paused = true;
    this.wire().stream.pause();
  }

  /** Reads again, starting with what was already read. */
  resume(): void {
    this.paused = false;
    if (this.yielding) return;
    this.drain();
    if (!this.paused && !this.yielding) this.wire().stream.resume();
  }

  /** Ends the connection (the walsender exits and releases the slot). */
  async close(): Promise<void> {
    this.closed = true;
    const socket = this.wire().stream;
    if (socket.listeners('data').includes(this.receive)) {
      // Still streaming: what arrives from now on is dropped, and a paused socket reads again.
      // A walsender in the middle of a large transaction is blocked sending it; it reads our
      // Terminate, exits, and end() resolves only once this side reads up to that end.
      socket.removeListener('data', this.receive);
      socket.on('data', () => undefined);
      socket.resume();
    }
    // Should the server never answer, the socket is dropped (end() resolves when it closes).
    const late = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
    await this.client.end().catch(() => undefined);
    clearTimeout(late);
  }

  private readonly receive = (chunk: Buffer): void => {
    if (this.framing(() => this.frames.push(chunk))) this.drain();
  };

  /** The next whole message (one function for every call: the loop above runs per message). */
  private readonly nextFrame = (): boolean => this.frames.next();

  /** Runs a step of the framing; garbage on the wire ends the stream with its error. */
  private framing(step: () => unknown): boolean {
    try {
      return step() !== false;
    } catch (error) {
      this.wire().stream.destroy();
      this.finish(error as Error);
      return false;
    }
  }

  /** Hands over whole messages until none is left, the caller pauses, or the turn is used up. */
  private drain(): void {
    const { frames } = this;
    let handed = 0;
    while (!this.paused && !this.closed && this.framing(this.nextFrame)) {
      const { type, buf, start, end } = frames;
      if (type === 0x64 /* d: CopyData */) {
        this.onCopyData?.(buf, start, end);
        if (++handed >= MESSAGES_PER_TURN) {
          this.yieldTurn();
          return;
        }
      } else if (type === 0x57 /* W: CopyBothResponse */) this.settle?.started();
      else if (type === 0x45 /* E: ErrorResponse */) this.finish(serverError(buf, start, end));
      else if (type === 0x5a /* Z: ReadyForQuery */) {
        this.handBack();
        this.finish(null);
        return;
      }
      // CopyDone, CommandComplete, notices and parameter changes need no answer here.
    }
  }

  /** Settles the stream once: with the first error, or cleanly. */
  private finish(error: Error | null): void {
    const settle = this.settle;
    this.settle = null;
    this.onCopyData = null;
    settle?.ended(error);
  }

  /**
   * Gives the socket back to pg's parser, which is at a message boundary after
   * ReadyForQuery; whatever followed it in the last read goes to pg first.
   */
  private handBack(): void {
    const socket = this.wire().stream;
    socket.removeListener('data', this.receive);
    for (const listener of this.pgDataListeners) socket.on('data', listener);
    const rest = this.frames.takeRest();
    if (rest) for (const listener of this.pgDataListeners) listener(rest);
    this.pgDataListeners = [];
  }

  /** Stops reading until the event loop has had a turn (what is already read waits). */
  private yieldTurn(): void {
    this.yielding = true;
    this.wire().stream.pause();
    setImmediate(() => {
      this.yielding = false;
      if (!this.paused && !this.closed) this.resume();
    });
  }

  private wire(): ReplicationWire {
    return (this.client as unknown as { connection: ReplicationWire }).connection;
  }
}

/** A simple-protocol Query message. */
function simpleQuery(text: string): Buffer {
  const body = Buffer.byteLength(text) + 1;
  const message = Buffer.alloc(5 + body);
  message[0] = 0x51; // Q
  message.writeUInt32BE(4 + body, 1);
  message.write(text, 5);
  return message;
}

/** An ErrorResponse as pg's DatabaseError, with the fields lockstep reads (code, message, detail, hint). */
function serverError(buf: Buffer, start: number, end: number): Error {
  const fields: Record<string, string> = {};
  let at = start;
  while (at < end && buf[at] !== 0) {
    const field = String.fromCharCode(buf[at] as number);
    const stop = buf.indexOf(0, at + 1);
    if (stop < 0 || stop >= end) break;
    fields[field] = buf.toString('utf8', at + 1, stop);
    at = stop + 1;
  }
  const error = new pg.DatabaseError(fields.M ?? 'unknown server error', end - start + 4, 'error');
  Object.assign(error, {
    severity: fields.S,
    code: fields.C,
    detail: fields.D,
    hint: fields.H,
    where: fields.W,
    file: fields.F,
    line: fields.L,
    routine: fields.R,
  });
  return error;
}
