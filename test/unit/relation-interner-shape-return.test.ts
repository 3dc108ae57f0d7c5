import { describe, expect, it } from 'vitest';
import type { Change } from '../../plugin/protocol/change.js';
import { compactChanges, type RelationNetChanges } from '../../plugin/protocol/net-changes.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import { decodeBusPieces, encodePacketBatch } from '../../plugin/protocol/packet-batch-codec.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import type { Relation } from '../../plugin/protocol/relation.js';
import { RelationInterner } from '../../plugin/protocol/relation-interner.js';
import { rowValues } from '../../plugin/protocol/value.js';
import { numberedRelationWithOid, onePhasePacket } from '../support/bus-packets.js';

// The table's relation before, during and after `REPLICA IDENTITY USING INDEX t_pkey`
// and its revert on the primary (not captured DDL: nothing in the stream marks it).
const before = numberedRelationWithOid(16384);
const during: Relation = { ...before, replicaIdentity: 'index' };
const after = numberedRelationWithOid(16384);

const packet = (version: number, change: Change): PacketPart => onePhasePacket(version, [change]);

type Table = Map<string, string>;

/** The changes one by one, as the primary committed them. */
function inOrder(changes: readonly Change[]): Table {
  const table: Table = new Map();
  for (const c of changes) {
    if (c.kind === 'insert' || c.kind === 'update') {
      const [id, v] = rowValues(c.row) as string[];
      table.set(id as string, v as string);
    } else if (c.kind === 'delete') table.delete(c.key[0] as string);
  }
  return table;
}

/**
 * The compacted plan as the replica target sends it (per relation: deletes,
 * updates, inserts), with its row-count and unique-key checks: 'fallback'
 * when one fails (the target then applies change by change).
 */
function compacted(nets: readonly RelationNetChanges[]): Table | 'fallback' {
  const table: Table = new Map();
  for (const net of nets) {
    for (const key of net.deletes) if (!table.delete(key[0] as string)) return 'fallback';
    for (const row of net.updates) {
      const [id, v] = rowValues(row) as string[];
      if (!table.has(id as string)) return 'fallback';
      table.set(id as string, v as string);
    }
    for (const row of net.inserts) {
      const [id, v] = rowValues(row) as string[];
      if (table.has(id as string)) return 'fallback';
      table.set(id as string, v as string);
    }
  }
  return table;
}

describe('relations interned across a schema change and its revert', () => {
  it('a compacted batch ends as the changes in order did (or falls back)', () => {
    const parts = [
      packet(1, { kind: 'insert', relation: before, row: ['1', 'a'] }),
      packet(2, { kind: 'delete', relation: during, key: ['1'] }),
      packet(3, { kind: 'insert', relation: after, row: ['1', 'c'] }),
    ];
    const interner = new RelationInterner();
    const changes = parts
      .flatMap((p) => decodeBusPieces(encodePacketBatch([encodePacketPart(p)]), interner))
      .flatMap((piece) => ('changes' in piece ? piece.changes : []));
    const expected = inOrder(changes);
    expect([...expected]).toEqual([['1', 'c']]);
    const nets = compactChanges(changes);
    expect(nets).not.toBeNull();
    const result = compacted(nets as RelationNetChanges[]);
    // Interned to one object, packets 1 and 3 form one group applied before packet 2's delete:
    // the row inserted last is deleted, every row count matches, and the replica silently differs.
    if (result !== 'fallback') expect([...result]).toEqual([...expected]);
  });
});
