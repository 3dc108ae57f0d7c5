import type { Socket } from 'node:net';
import { type CopyStreamQuery, from as copyFrom } from 'pg-copy-streams';

/**
 * `COPY … FROM STDIN` fed with data already framed as CopyData messages
 * (a {@link CopyOutRelay}'s output): written to the socket as it is.
 * pg-copy-streams wraps each chunk it is given in a CopyData header; this
 * replaces only that step (pg-copy-streams 7's `flushChunk`, hence its
 * pinned minor version), and keeps its handling of the protocol around it.
 * A chunk may end inside a message: a load that stops mid-stream must drop
 * its session, not send CopyFail (which would land inside that message).
 */
export function copyFromFramed(text: string): CopyStreamQuery {
  const stream = copyFrom(text);
  const framed = stream as unknown as {
    connection: { stream: Socket } | null;
    flushChunk(chunk: Buffer): boolean;
  };
  // After the server failed the COPY, pg-copy-streams drops `connection`; chunks still
  // buffered behind a write are flushed on the socket's drain: drop them.
  framed.flushChunk = (chunk) => framed.connection?.stream.write(chunk) ?? true;
  return stream;
}
