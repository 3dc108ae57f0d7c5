import type { Change, DeleteChange, InsertChange, MessageChange, UpdateChange } from './change.js';
import type { Relation } from './relation.js';
import { isUnchangedToast, type Row, type Value } from './value.js';

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
  key: Value[];
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
  if (!previous) return row;
  return row.map((value, i) => (isUnchangedToast(value) ? (previous[i] ?? value) : value));
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
    const key =
      change.kind === 'delete'
        ? [...change.key]
        : relation.keyIndexes.map((i) => (change.row[i] ?? null) as Value);
    // Most keys are one column: its text is the identity (no JSON per change).
    const id = key.length === 1 && typeof key[0] === 'string' ? key[0] : JSON.stringify(key);
    const state = entry.keyed.get(id);
    if (change.kind === 'insert') {
      if (state) state.image = change.row;
      else entry.keyed.set(id, { existedBefore: false, image: change.row, key });
    } else if (change.kind === 'update') {
      if (state) state.image = overlay(state.image, change.row);
      else entry.keyed.set(id, { existedBefore: true, image: change.row, key });
    } else if (state) {
      state.image = null;
    } else {
      entry.keyed.set(id, { existedBefore: true, image: null, key });
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
      else if (state.existedBefore) net.deletes.push(state.key);
      else if (state.image) net.inserts.push(state.image);
    }
    return net;
  });
}
