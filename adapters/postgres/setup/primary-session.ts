import type pg from 'pg';
import type { TableName } from '../../../plugin/ports/catalog-table.js';
import type { PrimarySetup, TableSize } from '../../../plugin/ports/cluster-setup.js';
import type { PrimarySession } from '../../../plugin/ports/lockstep-cluster.js';
import type { LockstepError } from '../../../plugin/ports/lockstep-error.js';
import type { MigrationHistoryEntry } from '../../../plugin/ports/migration-session.js';
import type { ReplicationSlots, SlotPosition } from '../../../plugin/ports/replication-slots.js';
import type { SlotHealth } from '../../../plugin/ports/slot-health.js';
import { controlDbOn } from '../control/control-schema.js';
import { PgJoinHoldsStore } from '../control/join-holds.js';
import { MigrationHistory } from '../control/migration-history.js';
import { PgReplicaStatusStore } from '../control/replica-status-store.js';
import { streamLockHeld } from '../control/stream-lock.js';
import { PgStreamsStore } from '../control/streams-store.js';
import {
  dropReplicationSlot,
  ensurePublication,
  readSlot,
  readSlotHealth,
} from '../source/replication-slot.js';
import { quoteIdent } from '../sql-identifier.js';
import { DDL_EVENT_TRIGGER, installDdlCapture, removeDdlCapture } from './ddl-capture.js';
import { PgNodeSession } from './node-session.js';
import { checkPrimaryPrerequisites } from './primary-prerequisites.js';
import { tableSizes } from './table-sizes.js';

/** The primary's slots, on one session. */
class PgReplicationSlots implements ReplicationSlots {
  constructor(private readonly client: pg.Client) {}

  read(slot: string): Promise<SlotPosition | null> {
    return readSlot(this.client, slot);
  }

  health(stream: string): Promise<SlotHealth | null> {
    return readSlotHealth(this.client, stream);
  }

  drop(slot: string): Promise<boolean> {
    return dropReplicationSlot(this.client, slot);
  }

  async terminateConsumer(slot: string): Promise<void> {
    await this.client.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
        WHERE slot_name = $1 AND active_pid IS NOT NULL`,
      [slot],
    );
  }
}

/** The publication, the DDL capture and the checks of the primary, on one session. */
class PgPrimarySetup implements PrimarySetup {
  constructor(private readonly client: pg.Client) {}

  ensurePublication(
    publication: string,
    tables: readonly TableName[],
    schemas: readonly string[],
  ): Promise<void> {
    return ensurePublication(this.client, publication, tables, schemas);
  }

  async publicationExists(publication: string): Promise<boolean> {
    const { rowCount } = await this.client.query(
      'SELECT 1 FROM pg_publication WHERE pubname = $1',
      [publication],
    );
    return (rowCount ?? 0) > 0;
  }

  async dropPublication(publication: string): Promise<void> {
    await this.client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
  }

  async publishedTables(publication: string): Promise<TableName[]> {
    const { rows } = await this.client.query<{ schemaname: string; tablename: string }>(
      'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
      [publication],
    );
    return rows.map((r) => ({ schema: r.schemaname, name: r.tablename }));
  }

  installDdlCapture(): Promise<void> {
    return installDdlCapture(this.client);
  }

  removeDdlCapture(): Promise<void> {
    return removeDdlCapture(this.client);
  }

  async ddlCaptureInstalled(): Promise<boolean> {
    const { rowCount } = await this.client.query(
      'SELECT 1 FROM pg_event_trigger WHERE evtname = $1',
      [DDL_EVENT_TRIGGER],
    );
    return (rowCount ?? 0) > 0;
  }

  tableSizes(tables: readonly TableName[]): Promise<Map<string, TableSize>> {
    return tableSizes(this.client, tables);
  }

  checkPrerequisites(options: { needFreeSlot: boolean }): Promise<LockstepError[]> {
    return checkPrimaryPrerequisites(this.client, options);
  }

  migrationHistory(): Promise<MigrationHistoryEntry[]> {
    return new MigrationHistory(controlDbOn(this.client)).list();
  }
}

/** A session on the primary with its stores, all on one `pg` client. */
export class PgPrimarySession extends PgNodeSession implements PrimarySession {
  readonly slots: PgReplicationSlots;
  readonly setup: PgPrimarySetup;
  readonly streams: PgStreamsStore;
  readonly replicaStatus: PgReplicaStatusStore;
  readonly joinHolds: PgJoinHoldsStore;

  constructor(client: pg.Client, bounded = false) {
    super(client, bounded);
    const db = controlDbOn(client);
    this.slots = new PgReplicationSlots(client);
    this.setup = new PgPrimarySetup(client);
    this.streams = new PgStreamsStore(db);
    this.replicaStatus = new PgReplicaStatusStore(db);
    this.joinHolds = new PgJoinHoldsStore(db);
  }

  streamLockHeld(stream: string): Promise<boolean> {
    return streamLockHeld(this.client, stream);
  }
}
