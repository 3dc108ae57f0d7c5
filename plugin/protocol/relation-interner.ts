import type { Relation } from './relation.js';

/** The relations kept at most; past it the cache starts over (only sharing is lost, never correctness). */
const MAX_RELATIONS = 4_096;

/** Everything a relation says, as one string: equal strings, interchangeable relations. */
function relationKey(relation: Relation): string {
  let key = `${relation.oid}\u0000${relation.schema}\u0000${relation.name}\u0000${relation.replicaIdentity}\u0000${relation.keyIndexes.join(',')}`;
  for (const c of relation.columns)
    key += `\u0000${c.name}\u0001${c.typeOid}\u0001${c.typeMod}\u0001${c.typeName ?? ''}\u0001${c.isKey ? 1 : 0}`;
  return key;
}

/**
 * Hands out one object per distinct relation decoded from the bus. The apply
 * path groups a batch's changes by relation object and caches replica column
 * types and statements per object (as the primary's decoder shares one object
 * per relation message); each bus message carries its own copy, so without
 * this a batch of 3,000 packets became 9,000 one-row statements.
 */
export class RelationInterner {
  private readonly known = new Map<string, Relation>();

  intern(relation: Relation): Relation {
    const key = relationKey(relation);
    const found = this.known.get(key);
    if (found) return found;
    if (this.known.size >= MAX_RELATIONS) this.known.clear();
    this.known.set(key, relation);
    return relation;
  }
}
