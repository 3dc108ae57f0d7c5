import type { Lsn } from '../protocol/index.js';

/** The replication slot as `pg_replication_slots` shows it (sidecar, status, metrics). */
export interface SlotHealth {
  /** The slot's name. */
  readonly name: string;
  /** Whether it exists on the primary. */
  readonly exists: boolean;
  /**
   * `reserved`/`extended`: its WAL is kept; `unreserved`: past
   * `max_slot_wal_keep_size`, about to be removed; `lost`: removed, the slot
   * can never stream again. Null when the slot does not exist.
   */
  readonly walStatus: 'reserved' | 'extended' | 'unreserved' | 'lost' | null;
  /** WAL that may still be written before the slot is invalidated (null: no limit). */
  readonly safeWalBytes: number | null;
  /** WAL the slot keeps on the primary. */
  readonly retainedBytes: number | null;
  /** Its confirmed_flush_lsn: WAL before it is gone (null when the slot does not exist). */
  readonly confirmedLsn: Lsn | null;
}

/**
 * Why the slot can no longer stream, with the one way back; null while it can.
 * An invalidated slot (its WAL removed past `max_slot_wal_keep_size`) and a
 * missing one (dropped by someone, or not on a promoted standby) alike: the
 * changes since the replicas' positions are gone, so every replica needs a
 * fresh copy.
 */
export function slotLoss(slot: SlotHealth): { reason: string; fix: string } | null {
  const fix =
    'lockstep attach --resync all: a new slot, and every replica copied anew from its snapshot';
  if (!slot.exists)
    return {
      reason: `the replication slot "${slot.name}" does not exist on the primary (dropped, or lost in a failover)`,
      fix,
    };
  if (slot.walStatus === 'lost')
    return {
      reason: `the replication slot "${slot.name}" was invalidated: the WAL it needed was removed (max_slot_wal_keep_size)`,
      fix,
    };
  return null;
}
