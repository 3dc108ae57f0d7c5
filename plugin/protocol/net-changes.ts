import {
  type Change,
  type DeleteChange,
  type InsertChange,
  keyValuesOf,
  type MessageChange,
  type UpdateChange,
} from './change.js';
import type { Relation } from './relation.js';
import { hasUnchangedToast, isUnchangedToast, type Row, rowValues, type Value } from './value.js';

/** What one relation needs after a batch, per key: rows to remove, rows to change, rows to add. */
export interface RelationNetChanges {
  readonly relation: Relation;
  /** Identity values (aligned with `relation.keyIndexes`) of rows that existed before and are gone. */
  readonly deletes: Value[][];
  /** Final images of rows that existed before and still exist (may hold unchanged-TOAST markers). */
  readonly updates: Row[];
  /** Final images of rows that did not exist before (complete). */
  readonly inserts: Row[];
}

interface KeyState {
  existedBefore: boolean;
  image: Row | null;
  /** The identity values, or the first row seen (whose key columns hold them): most keys are never needed. */
  key: readonly Value[] | null;
  first: Row | null;
}

/** The identity values of a key state, aligned with `relation.keyIndexes`. */
function keyValues(relation: Relation, state: KeyState): Value[] {
  return state.key ? [...state.key] : keyValuesOf(relation, state.first as Row);
}

/** The text that identifies a row by its key within a batch (a one-column key is its own text). */
function identityText(values: readonly Value[]): string {
  const only = values.length === 1 ? values[0] : undefined;
  return typeof only === 'string' ? only : JSON.stringify(values);
}

/** Whether `changes` can be compacted: every change is a row change on a keyed table that keeps its key. */
function compactable(
  change: Change,
): change is InsertChange | UpdateChange | DeleteChange | MessageChange {
  if (change.kind === 'message') return true;
  if (change.kind === 'truncate') return false;
  const { relation } = change;
  if (relation.keyIndexes.length === 0) return false;
  // Under REPLICA IDENTITY FULL the "key" is the whole row: only plain inserts are safe to group.
  if (relation.replicaIdentity === 'full') return change.kind === 'insert';
  if (change.kind === 'update' && change.key) {
    // The key changed (or was sent): the row moves; keep the exact order instead.
    return false;
  }
  return true;
}

/** Overlays an update's row on an earlier image: an unchanged-TOAST column keeps the earlier value. */
function overlay(previous: Row | null, row: Row): Row {
  if (!previous || !hasUnchangedToast(row)) return row;
  return rowValues(row).map((value, i) =>
    isUnchangedToast(value) ? (previous.at(i) ?? value) : value,
  );
}

/**
 * Compacts a batch of changes to its net effect per row: a row inserted then
 * updated becomes one insert of its last image, a row updated many times one
 * update, a row inserted then deleted nothing at all. Nothing outside the batch
 * can see the steps between (the replica commits the batch as one transaction),
 * so the end state is the same. Returns `null` when the batch has changes whose
 * order matters (truncate, key changes, updates and deletes of tables without a
 * key): those batches are applied change by change.
 *
 * The relations come back in order of first appearance; applying each one's
 * deletes, then updates, then inserts avoids the usual unique-key collisions
 * (a caller falls back to the ordered apply if one happens anyway).
 */
export function compactChanges(changes: readonly Change[]): RelationNetChanges[] | null {
  const byRelation = new Map<Relation, { keyed: Map<string, KeyState>; plainInserts: Row[] }>();
  for (const change of changes) {
    if (!compactable(change)) return null;
    if (change.kind === 'message') continue;
    const { relation } = change;
    let entry = byRelation.get(relation);
    if (!entry) {
      entry = { keyed: new Map(), plainInserts: [] };
      byRelation.set(relation, entry);
    }
    if (relation.replicaIdentity === 'full') {
      entry.plainInserts.push((change as InsertChange).row);
      continue;
    }
    // Most keys are one column: its text is the identity, read without building a key array.
    const keyIndexes = relation.keyIndexes;
    const single =
      keyIndexes.length === 1 && change.kind !== 'delete'
        ? change.row.at(keyIndexes[0] as number)
        : undefined;
    const id =
      typeof single === 'string'
        ? single
        : identityText(change.kind === 'delete' ? change.key : keyValuesOf(relation, change.row));
    const state = entry.keyed.get(id);
    if (state) {
      if (change.kind === 'delete') state.image = null;
      else state.image = change.kind === 'insert' ? change.row : overlay(state.image, change.row);
    } else if (change.kind === 'delete') {
      entry.keyed.set(id, { existedBefore: true, image: null, key: change.key, first: null });
    } else {
      // A row first seen inserted did not exist before; one first seen updated did.
      const existedBefore = change.kind === 'update';
      entry.keyed.set(id, { existedBefore, image: change.row, key: null, first: change.row });
    }
  }
  return [...byRelation].map(([relation, entry]) => {
    const net: RelationNetChanges = {
      relation,
      deletes: [],
      updates: [],
      inserts: [...entry.plainInserts],
    };
    for (const state of entry.keyed.values()) {
      if (state.existedBefore && state.image) net.updates.push(state.image);
      else if (state.existedBefore) net.deletes.push(keyValues(relation, state));
      else if (state.image) net.inserts.push(state.image);
    }
    return net;
  });
}
