import { clientConfig } from '../../adapters/postgres/connection/connection-url.js';
import { startReplicationCommand } from '../../adapters/postgres/source/pgoutput-decoder.js';
import { XLOGDATA_HEADER } from '../../adapters/postgres/source/pgoutput-source.js';
import { ReplicationConnection } from '../../adapters/postgres/source/replication-connection.js';
import type { Lsn } from '../../plugin/protocol/index.js';

/** Prefix of the non-transactional message that ends a capture (see {@link captureXLogData}). */
export const CAPTURE_END_PREFIX = 'capture.end';

/** One XLogData message as the source receives it: where it lies, and a copy of its payload. */
export interface CapturedXLogData {
  /** The buffer the connection handed over (never written again, see CopyDataHandler). */
  readonly buf: Buffer;
  /** Offset of the pgoutput payload in `buf` (after the XLogData header). */
  readonly start: number;
  readonly end: number;
  /** A copy of the payload alone, for decoders that take one Buffer per message. */
  readonly payload: Buffer;
}

/**
 * Reads a slot the way PgoutputSource does (same connection class, same
 * START_REPLICATION options) and keeps every XLogData message, up to and
 * including a non-transactional logical message with prefix
 * {@link CAPTURE_END_PREFIX}, which the caller emits after its workload.
 * Nothing is confirmed beyond `start`: the slot is only read.
 */
export async function captureXLogData(
  url: string,
  feed: { slot: string; publication: string; start: Lsn },
  ms = 60_000,
): Promise<CapturedXLogData[]> {
  const connection = await ReplicationConnection.open(clientConfig(url, 'lockstep'));
  const captured: CapturedXLogData[] = [];
  const endMarker = Buffer.from(`${CAPTURE_END_PREFIX}\0`);
  let done: () => void = () => undefined;
  const reachedEnd = new Promise<void>((resolve) => {
    done = resolve;
  });
  try {
    const stream = connection.start(
      startReplicationCommand(feed.slot, feed.publication),
      (buf, start, end) => {
        if (buf[start] === 0x6b /* k */ && buf[start + 17] === 1) connection.sendStatus(feed.start);
        if (buf[start] !== 0x77 /* w */) return;
        const from = start + XLOGDATA_HEADER;
        const payload = Buffer.from(buf.subarray(from, end));
        captured.push({ buf, start: from, end, payload });
        // Tag M, flags 0 (not transactional), its LSN, then the prefix.
        if (payload[0] === 0x4d && payload[1] === 0 && payload.indexOf(endMarker) === 10) done();
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${CAPTURE_END_PREFIX} message`)), ms);
    });
    await Promise.race([
      stream.started.then(() => reachedEnd),
      stream.ended.then(() => Promise.reject(new Error('the stream ended before its end marker'))),
      timeout,
    ]).finally(() => clearTimeout(timer));
    return captured;
  } finally {
    await connection.close();
  }
}
