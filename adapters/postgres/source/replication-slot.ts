import type pg from 'pg';
import type { TableName } from '../../../plugin/ports/catalog-table.js';
import { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type { CreatedSlot, SlotBlocker } from '../../../plugin/ports/replication-slots.js';
import type { SlotHealth } from '../../../plugin/ports/slot-health.js';
import { CONTROL_EVENTS_TABLE, type Lsn, toLsn } from '../../../plugin/protocol/index.js';
import { sleep } from '../../../plugin/support/sleep.js';
import { watchAnswering } from '../connection/answer-watch.js';
import { clientConfig } from '../connection/connection-url.js';
import { LibpqClient } from '../connection/libpq-client.js';
import { endClient } from '../connection/node-connection.js';
import { assertObjectName, quoteIdent, quoteQualified } from '../sql-identifier.js';
import { explainReplicationError } from './replication-errors.js';
import { watchSlotBlockers } from './slot-blockers.js';

export type { TableName } from '../../../plugin/ports/catalog-table.js';
export type { CreatedSlot } from '../../../plugin/ports/replication-slots.js';

/**
 * Creates a `pgoutput` slot through the replication protocol. With
 * `exportSnapshot`, the connection stays open so that other sessions can copy
 * the data as of the slot's start: copy and stream then meet exactly.
 */
export async function createReplicationSlot(
  url: string,
  slot: string,
  options: {
    exportSnapshot?: boolean;
    /** Dropped by the server when its session ends (a snapshot slot of a copy: a killed attach leaves nothing). */
    temporary?: boolean;
    node?: string;
    /** Told which running transactions the creation waits for, should it wait. */
    onBlocked?: (blockers: readonly SlotBlocker[]) => void;
    /** How often the server is asked about the creation; one that does not answer fails it. */
    boundMs?: number;
    /** The deadline of the watch on what the creation waits for (ms; `controlTimeoutMs`). */
    queryTimeoutMs?: number;
  } = {},
): Promise<CreatedSlot> {
  assertObjectName('slot', slot);
  const client = new LibpqClient({
    ...clientConfig(url),
    replication: 'database',
  } as pg.ClientConfig);
  client.on('error', () => undefined);
  try {
    await client.connect();
    const mode = options.exportSnapshot ? 'export' : 'nothing';
    const stopWatching = options.onBlocked
      ? watchSlotBlockers(url, options.onBlocked, undefined, options.queryTimeoutMs)
      : null;
    const answers = options.boundMs
      ? watchAnswering(url, client, options.boundMs, () =>
          slotUnanswered(options.node ?? 'primary', slot, options.boundMs as number),
        )
      : null;
    const creating = client.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)}${options.temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput (SNAPSHOT '${mode}')`,
    );
    const { rows } = await Promise.race([creating, ...(answers ? [answers.frozen] : [])]).finally(
      () => {
        stopWatching?.();
        answers?.stop();
      },
    );
    const row = rows[0] as { consistent_point: string; snapshot_name: string | null };
    if (!options.exportSnapshot) await endClient(client);
    return {
      consistentPoint: toLsn(row.consistent_point),
      snapshotName: row.snapshot_name ?? null,
      // Bounded: a primary frozen during the copy must not hold attach at the snapshot's end.
      release: async () => {
        if (options.exportSnapshot) await endClient(client);
      },
    };
  } catch (error) {
    await endClient(client);
    if (error instanceof LockstepError) throw error;
    throw explainReplicationError(error, { node: options.node ?? 'primary', slot });
  }
}

/** The slot's creation given up on: the server did not answer for `boundMs`. */
function slotUnanswered(node: string, slot: string, boundMs: number): LockstepError {
  return new LockstepError({
    node,
    setting: 'connection',
    problem: `creating the replication slot "${slot}" failed: the server did not answer for ${boundMs} ms (applyTimeoutMs)`,
    fix: 'check that the server runs and answers (not stopped, not overloaded), then run lockstep attach again (a slot it made is dropped or used by it)',
  });
}

/** Drops a slot if it exists, waiting briefly for a just-stopped consumer to let go of it. */
export async function dropReplicationSlot(client: pg.ClientBase, slot: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { rowCount } = await client.query(
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      return (rowCount ?? 0) > 0;
    } catch (error) {
      // A walsender can keep the slot active for a few ms after its client stopped.
      if ((error as { code?: string }).code !== '55006' || attempt >= 100) throw error;
      await sleep(50);
    }
  }
}

/** Slot position as the primary reports it, or `null` when the slot does not exist. */
export async function readSlot(
  client: pg.ClientBase,
  slot: string,
): Promise<{ confirmedFlushLsn: Lsn | null; restartLsn: Lsn | null; active: boolean } | null> {
  const { rows } = await client.query(
    'SELECT confirmed_flush_lsn::text AS c, restart_lsn::text AS r, active FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  const row = rows[0] as { c: string | null; r: string | null; active: boolean } | undefined;
  if (!row) return null;
  return {
    confirmedFlushLsn: row.c ? toLsn(row.c) : null,
    restartLsn: row.r ? toLsn(row.r) : null,
    active: row.active,
  };
}

/**
 * Creates (or replaces the contents of) a publication: the given tables, and
 * with `schemas` every table of those schemas, present and future (PostgreSQL
 * 15's TABLES IN SCHEMA: tables created later by captured DDL are published
 * from their first row).
 */
export async function ensurePublication(
  client: pg.ClientBase,
  publication: string,
  tables: readonly TableName[],
  schemas: readonly string[] = [],
): Promise<void> {
  assertObjectName('publication', publication);
  const whole = new Set(schemas);
  // The control-event table is published wherever it exists: control events travel as its rows
  // (a stream never starts without it: the sidecar checks before streaming).
  const { rowCount: hasControlEvents } = await client.query(
    `SELECT 1 WHERE to_regclass('lockstep.control_events') IS NOT NULL`,
  );
  const objects = [
    ...(schemas.length ? [`TABLES IN SCHEMA ${schemas.map(quoteIdent).join(', ')}`] : []),
    ...[...tables, ...(hasControlEvents ? [CONTROL_EVENTS_TABLE] : [])]
      .filter((t) => !whole.has(t.schema))
      .map((t) => `TABLE ${quoteQualified(t.schema, t.name)}`),
  ].join(', ');
  const exists = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [
    publication,
  ]);
  if (exists.rowCount) {
    if (objects) await client.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET ${objects}`);
  } else {
    await client.query(
      `CREATE PUBLICATION ${quoteIdent(publication)}${objects ? ` FOR ${objects}` : ''}`,
    );
  }
}

/** The stream's slot as pg_replication_slots shows it; null when the stream is not attached. */
export async function readSlotHealth(
  client: pg.ClientBase | pg.Pool,
  stream: string,
): Promise<SlotHealth | null> {
  const { rows } = await client.query<{
    slot: string;
    exists: boolean;
    wal_status: SlotHealth['walStatus'];
    safe: string | null;
    retained: string | null;
    confirmed: Lsn | null;
  }>(
    `SELECT t.slot, s.slot_name IS NOT NULL AS exists, s.wal_status, s.safe_wal_size::text AS safe,
            s.confirmed_flush_lsn::text AS confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint::text AS retained
       FROM lockstep.streams t LEFT JOIN pg_replication_slots s ON s.slot_name = t.slot
      WHERE t.stream = $1`,
    [stream],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    name: row.slot,
    exists: row.exists,
    walStatus: row.wal_status ?? null,
    safeWalBytes: row.safe === null ? null : Number(row.safe),
    retainedBytes: row.retained === null ? null : Number(row.retained),
    confirmedLsn: row.confirmed ?? null,
  };
}
