/**
 * What ReplicationConnection takes from pg beyond its public API, checked
 * against the installed pg (package.json pins its minor version for this
 * reason). A pg upgrade that changes any of it fails here, with the reason,
 * instead of breaking replication at run time:
 * - `client.connection.stream` is the socket pg reads from, once connected;
 * - pg reads it only through the socket's `data` listeners, which can be
 *   removed while the client is idle and added back later; bytes handed to
 *   them from a message boundary on (even split) are parsed as usual;
 * - `client.connection.sendCopyFromChunk` writes one CopyData message;
 * - `client.end()` still ends the connection with those listeners replaced;
 * - `pg.DatabaseError` is built as `(message, length, name)`.
 */
import { Socket } from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { clientConfig } from '../../adapters/postgres/connection/connection-url.js';
import {
  LibpqClient,
  type LibpqClientConfig,
} from '../../adapters/postgres/connection/libpq-client.js';
import { BackendFrames } from '../../adapters/postgres/source/backend-frames.js';
import { startReplicationCommand } from '../../adapters/postgres/source/pgoutput-decoder.js';
import { ReplicationConnection } from '../../adapters/postgres/source/replication-connection.js';
import { lsnFromBigInt, lsnToBigInt, toLsn } from '../../plugin/protocol/index.js';
import { createFeed } from '../support/stream-session.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters();

interface Wire {
  stream?: unknown;
  sendCopyFromChunk?: unknown;
}

const CHANGED = 'pg internals ReplicationConnection relies on changed';

/** A replication client connected as ReplicationConnection.open connects one. */
async function replicationClient(name: string): Promise<pg.Client> {
  const config = { ...clientConfig(clusters.primary.url, name), replication: 'database' };
  const client = new LibpqClient(config as LibpqClientConfig);
  await client.connect();
  return client;
}

function wireOf(client: pg.Client): Wire {
  return (client as unknown as { connection?: Wire }).connection ?? {};
}

/** A frame: type byte, int32 length counting itself, body. */
function frame(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type);
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Waits for `probe` to hold (the server updates its views asynchronously). */
async function eventually(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never: ${what}`);
}

describe("pg's socket hand-over (contract)", () => {
  it('exposes the socket it reads and a CopyData writer on client.connection', async () => {
    const client = await replicationClient('contract-shape');
    try {
      const wire = wireOf(client);
      expect(wire.stream instanceof Socket, `${CHANGED}: client.connection.stream`).toBe(true);
      const listeners = (wire.stream as Socket).listeners('data');
      expect(listeners.length, `${CHANGED}: no data listener on the socket`).toBeGreaterThan(0);
      expect(typeof wire.sendCopyFromChunk, `${CHANGED}: sendCopyFromChunk`).toBe('function');
      const error = new pg.DatabaseError('boom', 10, 'error');
      expect(
        [error instanceof Error, error.message, error.name],
        `${CHANGED}: DatabaseError`,
      ).toEqual([true, 'boom', 'error']);
    } finally {
      await client.end();
    }
  });

  it('reads only through its data listeners, and parses what is handed back to them', async () => {
    const client = await replicationClient('contract-listeners');
    try {
      const socket = wireOf(client).stream as Socket;
      const pgListeners = socket.listeners('data') as ((chunk: Buffer) => void)[];
      socket.removeAllListeners('data');
      // A command pg never sees: its reply is read here, up to ReadyForQuery.
      const frames = new BackendFrames();
      const types: string[] = [];
      await new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          frames.push(chunk);
          while (frames.next()) {
            types.push(String.fromCharCode(frames.type));
            if (frames.type === 0x5a) resolve();
          }
        });
        socket.write(frame('Q', Buffer.from('IDENTIFY_SYSTEM\0')));
      });
      expect(types).toContain('D');
      socket.removeAllListeners('data');
      for (const listener of pgListeners) socket.on('data', listener);
      // Bytes handed to pg's listeners directly, cut inside a message: a notice reaches the client.
      const notices: string[] = [];
      client.on('notice', (notice: { message?: string }) => notices.push(String(notice.message)));
      const notice = frame('N', Buffer.from('SNOTICE\0Mhanded back\0\0'));
      for (const part of [notice.subarray(0, 7), notice.subarray(7)])
        for (const listener of pgListeners) listener(part);
      expect(notices, `${CHANGED}: bytes handed to the data listeners`).toEqual(['handed back']);
      const { rows } = await client.query('SELECT 42 AS answer');
      expect(rows, `${CHANGED}: the client after its socket was handed back`).toEqual([
        { answer: 42 },
      ]);
    } finally {
      await client.end();
    }
  });

  it('gets the socket back from ReplicationConnection at ReadyForQuery, and server errors as DatabaseError', async () => {
    const connection = await ReplicationConnection.open(
      clientConfig(clusters.primary.url, 'contract-back'),
    );
    try {
      await connection.start('IDENTIFY_SYSTEM', () => undefined).ended;
      const client = (connection as unknown as { client: pg.Client }).client;
      const { rows } = await client.query('SELECT 7 AS seven');
      expect(rows, `${CHANGED}: pg after ReplicationConnection handed its socket back`).toEqual([
        { seven: 7 },
      ]);
      const failed = connection.start(startReplicationCommand('no_such_slot', 'none'), () => {
        throw new Error('no data expected');
      });
      const error = await failed.ended.then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(pg.DatabaseError);
      expect((error as { code?: string }).code).toBe('42704');
    } finally {
      await connection.close();
    }
  });

  it('sends standby status through sendCopyFromChunk, and ends while streaming', async () => {
    await clusters.primary.query('CREATE TABLE contract_t (id int PRIMARY KEY)');
    const feed = await createFeed(clusters.primary.url, [{ schema: 'public', name: 'contract_t' }]);
    try {
      const connection = await ReplicationConnection.open(
        clientConfig(clusters.primary.url, 'contract-status'),
      );
      try {
        const stream = connection.start(
          startReplicationCommand(feed.slot, feed.publication),
          () => {},
        );
        // Only whether the walsender ends matters here, not how the stream settles.
        void stream.ended.catch(() => undefined);
        await stream.started;
        const [{ lsn } = { lsn: '' }] = await clusters.primary.query<{ lsn: string }>(
          'SELECT pg_current_wal_lsn()::text AS lsn',
        );
        connection.sendStatus(toLsn(lsn));
        const reported = lsnFromBigInt(lsnToBigInt(lsn) + 1n);
        await eventually(async () => {
          const rows = await clusters.primary.query<{ flush: string | null }>(
            `SELECT flush_lsn::text AS flush FROM pg_stat_replication WHERE application_name = 'contract-status'`,
          );
          return rows[0]?.flush != null && toLsn(rows[0].flush) === reported;
        }, `${CHANGED}: the status update reached the server`);
      } finally {
        await connection.close();
      }
      await eventually(async () => {
        const rows = await clusters.primary.query<{ active: boolean }>(
          'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
          [feed.slot],
        );
        return rows[0]?.active === false;
      }, `${CHANGED}: the walsender ended after close()`);
    } finally {
      await feed.drop();
    }
  });
});
