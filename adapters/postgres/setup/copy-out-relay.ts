import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

/** The parts of pg's connection a custom query takes over (not in @types/pg; pg 8.x). */
interface RelayConnection {
  readonly stream: Socket;
  query(text: string): void;
}

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const ERROR_RESPONSE = 0x45; // E
const HEADER = 5; // type byte + int32 length
const NO_BYTES = Buffer.alloc(0);

/**
 * `COPY … TO STDOUT` whose output is the CopyData messages exactly as the
 * server framed them, header included: a frontend feeds a `COPY … FROM
 * STDIN` with the very same messages, so they go to every replica as they
 * arrived, without unwrapping each row and wrapping it again. That took
 * pg-copy-streams a slice per row (one CopyData message is one row): two
 * thirds of attach's CPU for a table of short rows. Messages the server may
 * put between them (notices, parameter changes) are left out; an
 * ErrorResponse hands the connection back to pg, which fails the query.
 * `messages` counts the CopyData messages so far (progress).
 */
export class CopyOutRelay extends Readable {
  /** CopyData messages seen so far: one per row (binary: the trailer too). */
  messages = 0;
  /** Bytes read from the server so far (a stalled read shows as no change). */
  bytes = 0;
  /** The row count of the server's `COPY n` tag, once it arrived. */
  rowCount: number | null = null;
  /**
   * Settles once the server said the statement is over: resolved at its
   * ReadyForQuery (the `COPY n` tag came before it), rejected with the
   * query's error. Read-only, the snapshot's transaction needs nothing more.
   */
  readonly answered: Promise<void>;
  private settle: { resolve(): void; reject(error: Error): void } | null = null;
  private connection: RelayConnection | null = null;
  private pgDataHandler: ((chunk: Buffer) => void) | null = null;
  /** Bytes of a message header split across reads. */
  private header: Buffer = NO_BYTES;
  /** Body bytes of the current message still to come, and its type. */
  private remaining = 0;
  private type = 0;
  private wanted = false;
  private forwarding = false;
  private readonly onReadable = () => this.forward();

  constructor(private readonly text: string) {
    super();
    this.answered = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Awaited only once the rows are fanned out: an earlier failure is the stream's error.
    this.answered.catch(() => undefined);
  }

  /** pg's Submittable: takes the socket's reads over, as pg-copy-streams does. */
  submit(connection: RelayConnection): void {
    this.connection = connection;
    const stream = connection.stream;
    const listeners = stream.listeners('data') as Array<(chunk: Buffer) => void>;
    this.pgDataHandler = listeners[0] ?? null;
    if (this.pgDataHandler) stream.removeListener('data', this.pgDataHandler);
    stream.pause();
    stream.on('readable', this.onReadable);
    connection.query(this.text);
  }

  override _read(): void {
    this.wanted = true;
    this.forward();
  }

  private forward(): void {
    if (this.forwarding) return;
    this.forwarding = true;
    while (this.wanted && this.connection) {
      const chunk: Buffer | null = this.connection.stream.read();
      if (chunk === null) break;
      this.relay(chunk);
    }
    this.forwarding = false;
  }

  /** Pushes the CopyData bytes of one read; hands the rest back to pg at CopyDone or an error. */
  private relay(chunk: Buffer): void {
    this.bytes += chunk.length;
    let pos = 0;
    let from = -1; // start of the run of CopyData bytes being collected
    const flush = (to: number) => {
      if (from !== -1 && to > from) this.wanted = this.push(chunk.subarray(from, to));
      from = -1;
    };
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - pos);
        if (this.type === COPY_DATA && from === -1) from = pos;
        pos += n;
        this.remaining -= n;
        continue;
      }
      const start = pos;
      const need = HEADER - this.header.length;
      if (chunk.length - pos < need) {
        flush(start);
        this.header = Buffer.concat([this.header, chunk.subarray(pos)]);
        return;
      }
      const split = this.header.length > 0;
      const header = split ? Buffer.concat([this.header, chunk.subarray(pos, pos + need)]) : chunk;
      const at = split ? 0 : pos;
      if (split) this.header = NO_BYTES;
      pos += need;
      this.type = header[at] as number;
      this.remaining = header.readUInt32BE(at + 1) - 4;
      if (this.type === COPY_DATA) {
        this.messages++;
        if (split) {
          flush(start);
          this.wanted = this.push(header);
        } else if (from === -1) from = start;
        continue;
      }
      flush(start);
      if (this.type === ERROR_RESPONSE) {
        this.handBack(split ? Buffer.concat([header, chunk.subarray(pos)]) : chunk.subarray(start));
        return;
      }
      if (this.type === COPY_DONE) {
        this.handBack(chunk.subarray(pos + this.remaining));
        this.push(null);
        return;
      }
      // CopyOutResponse, a notice, a parameter change: not part of the data.
    }
    flush(chunk.length);
  }

  /** Gives the socket back to pg with the bytes it has not seen (CommandComplete, an error). */
  private handBack(unread: Buffer): void {
    const { connection, pgDataHandler } = this;
    if (!connection) return;
    this.connection = null;
    connection.stream.removeListener('readable', this.onReadable);
    if (pgDataHandler) {
      connection.stream.on('data', pgDataHandler);
      if (unread.length > 0) pgDataHandler(unread);
    }
    // The handler above may pause the socket (pg's backpressure); resume once it returned.
    process.nextTick(() => connection.stream.resume());
  }

  /** pg: the query failed (an ErrorResponse, or the connection ended). */
  handleError(error: Error): void {
    this.settle?.reject(error);
    this.destroy(error);
  }

  /** pg: `COPY n`. */
  handleCommandComplete(message: { text?: string }): void {
    const match = /COPY (\d+)/.exec(message.text ?? '');
    if (match) this.rowCount = Number(match[1]);
  }

  handleReadyForQuery(): void {
    this.settle?.resolve();
  }
}
