import type pg from 'pg';
import { CONTROL_QUERY_TIMEOUT_MS } from '../../adapters/postgres/connection/connection-url.js';
import { connectNode, endClient } from '../../adapters/postgres/connection/node-connection.js';
import { dropJoinHolds } from '../../adapters/postgres/control/join-holds.js';
import { listLockstepGids } from '../../adapters/postgres/control/prepared-transactions.js';
import { StreamLock } from '../../adapters/postgres/control/stream-lock.js';
import { removeDdlCapture } from '../../adapters/postgres/setup/ddl-capture.js';
import { dropReplicationSlot } from '../../adapters/postgres/source/replication-slot.js';
import { quoteIdent } from '../../adapters/postgres/sql-identifier.js';
import type { LockstepConfig } from '../config/config-schema.js';
import { LockstepError } from '../ports/lockstep-error.js';
import { isMigrationGid, parseGid } from '../protocol/index.js';

/** What `detach` removed. */
export interface DetachResult {
  readonly slotDropped: boolean;
  readonly publicationDropped: boolean;
  /** Replicas whose position rows for the stream were removed. */
  readonly replicasReset: readonly string[];
}

/**
 * `lockstep detach`: drops the slot (so the primary keeps no more WAL for
 * lockstep), the publication and the DDL event trigger, and forgets the
 * stream's positions; all data, the decision log and migration history stay.
 * Refuses while a sidecar is active or a lockstep transaction is prepared
 * somewhere, unless `force` (which also ends the active sidecar's stream).
 */
export async function detach(config: LockstepConfig, force = false): Promise<DetachResult> {
  const lock = new StreamLock(config.primary, config.slot);
  const free = await lock.tryAcquire();
  try {
    if (!free && !force) {
      throw new LockstepError({
        node: 'primary',
        problem: `a lockstep sidecar for stream "${config.slot}" is running (it holds the coordinator lock)`,
        fix: 'stop it first, or run lockstep detach --force (its stream ends with the slot)',
      });
    }
    const primary = await connectNode('primary', config.primary);
    try {
      if (!force) await refuseWhilePrepared(config, primary);
      if (force) {
        // The running sidecar's walsender holds the slot: end it so the slot can go.
        await primary.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
            WHERE slot_name = $1 AND active_pid IS NOT NULL`,
          [config.slot],
        );
      }
      const slotDropped = await dropReplicationSlot(primary, config.slot);
      const { rowCount } = await primary.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [
        config.publication,
      ]);
      await primary.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(config.publication)}`);
      await removeDdlCapture(primary);
      const { rows: control } = await primary.query<{ exists: boolean }>(
        "SELECT to_regclass('lockstep.streams') IS NOT NULL AS exists",
      );
      if (control[0]?.exists) {
        await primary.query('DELETE FROM lockstep.replica_status WHERE stream = $1', [config.slot]);
        await primary.query('DELETE FROM lockstep.streams WHERE stream = $1', [config.slot]);
        // Holds left by a killed attach (a schema older than the table has none).
        const { rowCount: holds } = await primary.query(
          "SELECT 1 WHERE to_regclass('lockstep.join_holds') IS NOT NULL",
        );
        if (holds) await dropJoinHolds(primary, config.slot);
      }
      const replicasReset: string[] = [];
      for (const replica of config.replicas) {
        const client = await connectNode(replica.name, replica.url).catch((error: Error) => {
          throw new LockstepError({
            node: replica.name,
            problem: `the slot and publication are gone, but the replica's position could not be removed: ${error.message}`,
            fix: 'run lockstep detach again once the replica is reachable',
            cause: error,
          });
        });
        try {
          const { rows } = await client.query<{ exists: boolean }>(
            "SELECT to_regclass('lockstep.applied') IS NOT NULL AS exists",
          );
          if (rows[0]?.exists) {
            // A transaction left prepared (--force) holds the position row: never wait on it.
            await client.query("SET lock_timeout = '5s'");
            // Positions in a stream that no longer exists; a later attach starts afresh.
            await client.query('DELETE FROM lockstep.applied WHERE stream = $1', [config.slot]);
            await client.query('DELETE FROM lockstep.synced_tables WHERE stream = $1', [
              config.slot,
            ]);
          }
          replicasReset.push(replica.name);
        } finally {
          await client.end();
        }
      }
      return { slotDropped, publicationDropped: (rowCount ?? 0) > 0, replicasReset };
    } finally {
      await primary.end();
    }
  } finally {
    await lock.release();
  }
}

/**
 * Every node is asked for lockstep transactions still prepared (a replica can
 * hold one the primary does not); a node that cannot be asked refuses too,
 * since what it holds is unknown.
 */
async function refuseWhilePrepared(config: LockstepConfig, primary: pg.Client): Promise<void> {
  // This stream's gids only: another stream sharing a node is none of this detach's business.
  const ours = async (client: pg.Client) =>
    (await listLockstepGids(client)).filter(
      (p) => parseGid(p.gid, config.slot) !== null || isMigrationGid(p.gid, config.slot),
    );
  const held: string[] = (await ours(primary)).map((p) => `primary: ${p.gid}`);
  for (const replica of config.replicas) {
    const client = await connectNode(
      replica.name,
      replica.url,
      'lockstep-detach',
      CONTROL_QUERY_TIMEOUT_MS,
    ).catch((error: Error) => {
      throw new LockstepError({
        node: replica.name,
        problem: `cannot check the replica for prepared lockstep transactions: ${error.message}`,
        fix: 'run lockstep detach once the replica is reachable (or detach --force)',
        cause: error,
      });
    });
    try {
      for (const p of await ours(client)) held.push(`${replica.name}: ${p.gid}`);
    } finally {
      await endClient(client);
    }
  }
  if (held.length > 0) {
    throw new LockstepError({
      node: held[0]?.split(':')[0] as string,
      problem: `lockstep transactions are still prepared: ${held.join(', ')}`,
      fix: 'run lockstep recover first (or detach --force and finish them by hand)',
    });
  }
}
