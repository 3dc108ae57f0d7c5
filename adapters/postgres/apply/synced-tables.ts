import type pg from 'pg';
import { ApplyError } from '../../../plugin/ports/apply-error.js';
import {
  type Change,
  compareLsn,
  DDL_MESSAGE,
  type Lsn,
  MIGRATION_MARKER,
  type Relation,
  relationLabel,
} from '../../../plugin/protocol/index.js';
import { beforeCopy, schemaPoint } from './captured-ddl.js';

/** One packet's changes, as the agent hands a batch over. */
export interface PacketChanges {
  readonly changes: readonly Change[];
  readonly version: number;
  readonly lsn: Lsn;
}

/**
 * The tables copied to one replica (`lockstep.synced_tables`) and the LSN
 * each copy is consistent with: a change committed before a table's copy is
 * already in it and is skipped. On the hot path: lookups by relation message,
 * and the last comparison is reused (a packet's changes mostly share it).
 */
export class SyncedTables {
  private copyLsnByName = new Map<string, Lsn>();
  /** `copyLsnByName` by relation message, so the hot path builds no `schema.name` string per change. */
  private copyLsnByRelation = new WeakMap<object, Lsn | null>();
  private lastLsn: Lsn | null = null;
  private lastCopyLsn: Lsn | null = null;
  private lastResult = false;
  /** The latest copy of any table: what was committed before it is in the replica's copy. */
  private point: Lsn | null = null;

  constructor(
    private readonly node: string,
    private readonly stream: string,
  ) {}

  /** Reads the copied tables (inside the open transaction if there is one). */
  async load(client: pg.ClientBase): Promise<void> {
    const { rows } = await client.query<{ schema_name: string; table_name: string; copy_lsn: Lsn }>(
      'SELECT schema_name, table_name, copy_lsn::text FROM lockstep.synced_tables WHERE stream = $1',
      [this.stream],
    );
    this.copyLsnByName = new Map(rows.map((r) => [`${r.schema_name}.${r.table_name}`, r.copy_lsn]));
    this.copyLsnByRelation = new WeakMap();
    this.point = schemaPoint(this.copyLsnByName.values());
  }

  /** Whether `change` names a table not seen among the copied tables (a cheap lookup on the hot path). */
  namesNewTable(change: Exclude<Change, { kind: 'message' }>): boolean {
    const relations = change.kind === 'truncate' ? change.relations : [change.relation];
    return relations.some(
      (r) => !this.copyLsnByRelation.has(r) && !this.copyLsnByName.has(relationLabel(r)),
    );
  }

  /** The latest copy of any table: captured DDL before it may already be in the replica's schema. */
  schemaPoint(): Lsn | null {
    return this.point;
  }

  /**
   * Whether this replica needs every change of these packets and none of them
   * is captured DDL (which must run at its place) or a migration's marker
   * (checked in the ordered path, see change-sender.ts): then the batch can be
   * compacted. Checks only; the shared plan flattens the changes once for all replicas.
   */
  takesWholeBatch(packets: readonly PacketChanges[]): boolean {
    const first = packets[0];
    if (first && this.point !== null && compareLsn(first.lsn, this.point) >= 0)
      return this.takesWholeBatchPastCopies(packets);
    for (const packet of packets) {
      for (const change of packet.changes) {
        if (change.kind === 'message') {
          if (change.prefix === DDL_MESSAGE || change.prefix === MIGRATION_MARKER) return false;
        } else if (change.kind === 'truncate') {
          // Mixed positions against table copies are rare (right after a resumed attach): keep the exact path.
          for (const relation of change.relations)
            if (!this.takes(relation, packet.version, packet.lsn)) return false;
        } else if (!this.takes(change.relation, packet.version, packet.lsn)) return false;
      }
    }
    return true;
  }

  /**
   * {@link takesWholeBatch} for packets committed after every table's copy
   * (the first is, and a batch's LSNs only grow): each table needs only to be
   * known as copied, checked once per table per batch instead of once per change.
   */
  private takesWholeBatchPastCopies(
    packets: ReadonlyArray<{ readonly changes: readonly Change[]; version: number; lsn: Lsn }>,
  ): boolean {
    const checked = new Set<object>();
    const check = (relation: Relation, packet: { version: number; lsn: Lsn }) => {
      if (checked.has(relation)) return true;
      checked.add(relation);
      return this.takes(relation, packet.version, packet.lsn);
    };
    for (const packet of packets) {
      for (const change of packet.changes) {
        if (change.kind === 'message') {
          if (change.prefix === DDL_MESSAGE || change.prefix === MIGRATION_MARKER) return false;
        } else if (change.kind === 'truncate') {
          for (const relation of change.relations) if (!check(relation, packet)) return false;
        } else if (!check(change.relation, packet)) return false;
      }
    }
    return true;
  }

  /** Whether a change to `relation` in a packet at `lsn` still needs applying (not already in the table's copy). */
  takes(relation: { schema: string; name: string }, version: number, lsn: Lsn): boolean {
    let copyLsn = this.copyLsnByRelation.get(relation);
    if (copyLsn === undefined) {
      copyLsn = this.copyLsnByName.get(relationLabel(relation)) ?? null;
      this.copyLsnByRelation.set(relation, copyLsn);
    }
    if (copyLsn === null) {
      // Before the copy, a table not copied did not exist then (or was not published): nothing to do.
      if (beforeCopy(lsn, this.point)) return false;
      throw new ApplyError({
        node: this.node,
        kind: 'not-synced',
        version,
        table: relationLabel(relation),
        problem: 'the table is replicated but was never copied to this replica',
        fix: 'run lockstep attach to copy it',
      });
    }
    // Same packet as the last call (the common case): reuse the comparison.
    if (this.lastLsn === lsn && this.lastCopyLsn === copyLsn) return this.lastResult;
    this.lastLsn = lsn;
    this.lastCopyLsn = copyLsn;
    this.lastResult = compareLsn(lsn, copyLsn) >= 0;
    return this.lastResult;
  }
}
