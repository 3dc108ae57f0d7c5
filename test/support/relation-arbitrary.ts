import fc from 'fast-check';
import type { Relation } from '../../plugin/protocol/relation.js';

/** Relations that differ in one field at a time (names of other lengths too: the skip must find the end). */
export const relations = fc
  .record({
    oid: fc.constantFrom(1, 2),
    schema: fc.constantFrom('public', 'app'),
    name: fc.constantFrom('t', 'ü_long_name'),
    replicaIdentity: fc.constantFrom('default' as const, 'full' as const),
    columns: fc.array(
      fc.record({
        name: fc.constantFrom('id', 'value'),
        typeOid: fc.constantFrom(23, 25),
        typeMod: fc.constantFrom(-1, 8),
        typeName: fc.constantFrom(null, 'public.mood'),
        isKey: fc.boolean(),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  .map((r): Relation => ({ ...r, keyIndexes: [0] }));
