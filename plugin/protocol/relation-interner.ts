import type { Relation } from './relation.js';

/** The tables kept at most; past it the cache starts over (only sharing is lost, never correctness). */
const MAX_TABLES = 4_096;

/** Everything a relation says, as one string: equal strings, interchangeable relations. */
function relationKey(relation: Relation): string {
  let key = `${relation.oid}\u0000${relation.schema}\u0000${relation.name}\u0000${relation.replicaIdentity}\u0000${relation.keyIndexes.join(',')}`;
  for (const c of relation.columns)
    key += `\u0000${c.name}\u0001${c.typeOid}\u0001${c.typeMod}\u0001${c.typeName ?? ''}\u0001${c.isKey ? 1 : 0}`;
  return key;
}

/**
 * Hands out one object per relation for as long as the table keeps its shape,
 * as the primary's decoder does per relation message. The apply path groups a
 * batch's changes by relation object and caches replica column types per
 * object; each bus message carries its own copy, so without this a batch of
 * 3,000 packets became 9,000 one-row statements. Only the table's latest
 * shape is kept: a table that changes and changes back gets a new object (an
 * older one reused would let a batch compact its changes out of order, and
 * keep column types read before the change).
 */
export class RelationInterner {
  private readonly latest = new Map<
    number,
    { key: string; relation: Relation; encoded: Buffer | null }
  >();

  /** `oid`'s object when `encoded` is byte for byte what it was last interned from; null otherwise. */
  known(oid: number, encoded: Uint8Array): Relation | null {
    const last = this.latest.get(oid);
    return last?.encoded?.equals(encoded) ? last.relation : null;
  }

  /** One object per shape of the table; `encoded`: the bytes it was decoded from, for {@link known}. */
  intern(relation: Relation, encoded?: Uint8Array): Relation {
    const key = relationKey(relation);
    const last = this.latest.get(relation.oid);
    // A copy: a view would keep the whole message it came in alive.
    const bytes = encoded ? Buffer.from(encoded) : null;
    if (last?.key === key) {
      if (bytes) last.encoded = bytes;
      return last.relation;
    }
    if (!last && this.latest.size >= MAX_TABLES) this.latest.clear();
    this.latest.set(relation.oid, { key, relation, encoded: bytes });
    return relation;
  }
}
