import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import type { Lsn } from '../../../plugin/protocol/index.js';
import type { ChangeStatement } from './change-statement.js';

/** A replica's durable position in a stream. */
export interface ReplicaPosition {
  readonly version: number;
  readonly lsn: Lsn;
}

/**
 * The replica's `(version, lsn)` row in `lockstep.applied`: written in the
 * same transaction as the data it stands for, so it is the exactly-once truth.
 * Null when the replica has none (never attached, or no control schema yet).
 */
export async function readPosition(
  client: pg.ClientBase,
  stream: string,
): Promise<ReplicaPosition | null> {
  const { rows } = await client
    .query<{ version: string; lsn: Lsn }>(
      'SELECT version::text, lsn::text FROM lockstep.applied WHERE stream = $1',
      [stream],
    )
    .catch((error: { code?: string }) => {
      // A replica lockstep has not set up yet (no control schema) is one waiting for attach too.
      if (error.code === '42P01') return { rows: [] };
      throw error;
    });
  const row = rows[0];
  return row ? { version: Number(row.version), lsn: row.lsn } : null;
}

/**
 * The first statements of a replica transaction: lock and statement timeouts
 * when it may be prepared, replica mode (as native logical replication: no
 * user triggers or FK re-checks on replicated rows), then the lock of the
 * position row with the check that it still holds `from` (the fence): two
 * appliers (a deposed sidecar and its successor) serialise there, and the
 * later one fails the check instead of applying the same packets again. The
 * timeouts keep a participant from waiting unboundedly while its vote is awaited.
 */
export function beginStatements(
  stream: string,
  from: number,
  timeouts: readonly string[],
  timeoutMs: number,
): ChangeStatement[] {
  const plain = (text: string): ChangeStatement => ({ text, values: [], expectsRow: false });
  return [
    plain('BEGIN'),
    ...timeouts.map((setting) => plain(`SET LOCAL ${setting} = ${timeoutMs}`)),
    plain('SET LOCAL session_replication_role = replica'),
    // After the timeouts: waiting for this lock is bounded like any other.
    {
      text: 'SELECT 1 FROM lockstep.applied WHERE stream = $1 AND version = $2 FOR UPDATE',
      values: [stream, String(from)],
      expectsRow: true,
    },
  ];
}

/** Compare-and-set of the position at the end of a transaction that started at `from`. */
export function storePosition(
  client: pg.ClientBase,
  stream: string,
  position: ReplicaPosition,
  commitTime: string,
  from: number,
): Promise<pg.QueryResult> {
  return client.query(
    'UPDATE lockstep.applied SET version = $2, lsn = $3, commit_time = $4, applied_at = now() WHERE stream = $1 AND version = $5',
    [stream, String(position.version), position.lsn, commitTime, String(from)],
  );
}

/** Moves the stored LSN forward while the version stays; false when another applier moved the version. */
export async function advancePosition(
  client: pg.ClientBase,
  stream: string,
  position: ReplicaPosition,
): Promise<boolean> {
  const { rowCount } = await client.query(
    'UPDATE lockstep.applied SET lsn = greatest(lsn, $3::pg_lsn) WHERE stream = $1 AND version = $2',
    [stream, String(position.version), position.lsn],
  );
  return rowCount === 1;
}

/** The replica's position is not the one the transaction started `from`: another applier moved it. */
export function fencedError(node: string, from: number, version: number): ApplyError {
  return new ApplyError({
    node,
    kind: 'fenced',
    version,
    problem: `the replica's position is no longer version ${from}: another lockstep applier moved it first`,
    fix: 'nothing to do when a sidecar just took over (this applier stops); otherwise make sure one sidecar per stream runs with this configuration',
  });
}

/** The replica was never placed in the stream: attach has not copied it (or a resync of it failed midway). */
export function noPositionError(node: string, stream: string): ApplyError {
  return new ApplyError({
    node,
    kind: 'not-synced',
    version: 0,
    problem: `the replica has no position in stream "${stream}"`,
    fix: `run lockstep attach to copy the tables and set the replica up; after a resync that failed midway, run lockstep attach --resync ${node} again (with bus, with this agent stopped)`,
  });
}
