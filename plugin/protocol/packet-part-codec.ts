import type { Change } from './change.js';
import type { PacketPart } from './packet.js';
import type { Relation, RelationColumn, ReplicaIdentity } from './relation.js';
import type { RelationInterner } from './relation-interner.js';
import { isUnchangedToast, UNCHANGED_TOAST, type Value } from './value.js';
import {
  PacketPartFormatError,
  Reader,
  readPartHead,
  Writer,
  writePartHead,
} from './wire-bytes.js';

export { PacketPartFormatError } from './wire-bytes.js';

/**
 * The wire format of a packet part on the bus: a format byte, the header,
 * the relations the part's changes refer to (each once), then the changes.
 * Integers are big-endian; strings are a u32 byte length and UTF-8; values
 * keep Postgres's text form. A reader refuses any format byte it does not know.
 */
export const PACKET_PART_FORMAT = 1;

const KINDS = ['insert', 'update', 'delete', 'truncate', 'message'] as const;
const IDENTITIES: readonly ReplicaIdentity[] = ['default', 'nothing', 'full', 'index'];
const NULL_VALUE = 0;
const TOAST_VALUE = 1;
const TEXT_VALUE = 2;

function writeRelation(w: Writer, relation: Relation): void {
  w.u32(relation.oid);
  w.text(relation.schema);
  w.text(relation.name);
  w.u8(IDENTITIES.indexOf(relation.replicaIdentity));
  w.u32(relation.columns.length);
  for (const column of relation.columns) {
    w.text(column.name);
    w.u32(column.typeOid);
    w.i32(column.typeMod);
    w.nullableText(column.typeName);
    w.u8(column.isKey ? 1 : 0);
  }
  w.u32(relation.keyIndexes.length);
  for (const index of relation.keyIndexes) w.u32(index);
}

function readRelation(r: Reader): Relation {
  const oid = r.u32();
  const schema = r.text();
  const name = r.text();
  const replicaIdentity = r.pick(IDENTITIES, 'replica identity');
  const columns: RelationColumn[] = [];
  for (let n = r.u32(); n > 0; n--) {
    columns.push({
      name: r.text(),
      typeOid: r.u32(),
      typeMod: r.i32(),
      typeName: r.nullableText(),
      isKey: r.flag(),
    });
  }
  const keyIndexes: number[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const index = r.u32();
    if (index >= columns.length) throw new PacketPartFormatError(`key column ${index}`);
    keyIndexes.push(index);
  }
  return { oid, schema, name, replicaIdentity, columns, keyIndexes };
}

function writeValue(w: Writer, value: Value | undefined): void {
  if (value === null || value === undefined) w.u8(NULL_VALUE);
  else if (isUnchangedToast(value)) w.u8(TOAST_VALUE);
  else {
    w.u8(TEXT_VALUE);
    w.text(value);
  }
}

function readValue(r: Reader): Value {
  const tag = r.u8();
  if (tag === NULL_VALUE) return null;
  if (tag === TOAST_VALUE) return UNCHANGED_TOAST;
  if (tag === TEXT_VALUE) return r.text();
  throw new PacketPartFormatError(`unknown value tag ${tag}`);
}

function writeValues(
  w: Writer,
  values: { readonly length: number; at(i: number): Value | undefined },
) {
  w.u32(values.length);
  for (let i = 0; i < values.length; i++) writeValue(w, values.at(i));
}

function readValues(r: Reader): Value[] {
  const values: Value[] = [];
  for (let n = r.u32(); n > 0; n--) values.push(readValue(r));
  return values;
}

/** The relations `changes` refer to, each once, in order of first use. */
function relationsOf(changes: readonly Change[]): Map<Relation, number> {
  const relations = new Map<Relation, number>();
  const add = (relation: Relation) => {
    if (!relations.has(relation)) relations.set(relation, relations.size);
  };
  for (const change of changes) {
    if (change.kind === 'truncate') change.relations.forEach(add);
    else if (change.kind !== 'message') add(change.relation);
  }
  return relations;
}

function writeChange(w: Writer, change: Change, relations: Map<Relation, number>): void {
  w.u8(KINDS.indexOf(change.kind));
  const ref = (relation: Relation) => w.u32(relations.get(relation) as number);
  if (change.kind === 'message') {
    w.text(change.prefix);
    w.text(change.content);
  } else if (change.kind === 'truncate') {
    w.u32(change.relations.length);
    change.relations.forEach(ref);
    w.u8(change.cascade ? 1 : 0);
    w.u8(change.restartIdentity ? 1 : 0);
  } else {
    ref(change.relation);
    if (change.kind === 'delete') writeValues(w, change.key);
    else writeValues(w, change.row);
    if (change.kind === 'update') {
      w.u8(change.key ? 1 : 0);
      if (change.key) writeValues(w, change.key);
    }
  }
}

function readChange(r: Reader, relations: readonly Relation[]): Change {
  const relation = () => {
    const index = r.u32();
    const found = relations[index];
    if (!found) throw new PacketPartFormatError(`relation ${index} of ${relations.length}`);
    return found;
  };
  const kind = r.pick(KINDS, 'change kind');
  switch (kind) {
    case 'insert':
      return { kind, relation: relation(), row: readValues(r) };
    case 'update': {
      const of = relation();
      const row = readValues(r);
      return { kind, relation: of, row, key: r.flag() ? readValues(r) : null };
    }
    case 'delete':
      return { kind, relation: relation(), key: readValues(r) };
    case 'truncate': {
      const list: Relation[] = [];
      for (let n = r.u32(); n > 0; n--) list.push(relation());
      return { kind, relations: list, cascade: r.flag(), restartIdentity: r.flag() };
    }
    case 'message':
      return { kind, prefix: r.text(), content: r.text() };
  }
}

/** The bytes of a packet part on the bus; `capacity`: the bytes to start with. */
export function encodePacketPart(part: PacketPart, capacity = 4096): Buffer {
  const w = new Writer(capacity);
  writePartHead(w, PACKET_PART_FORMAT, part);
  const relations = relationsOf(part.changes);
  w.u32(relations.size);
  for (const relation of relations.keys()) writeRelation(w, relation);
  w.u32(part.changes.length);
  for (const change of part.changes) writeChange(w, change, relations);
  return w.done();
}

/**
 * The packet part `body` holds; throws {@link PacketPartFormatError} on
 * anything else. `relations`: shares relation objects across parts.
 */
export function decodePacketPart(body: Uint8Array, relations?: RelationInterner): PacketPart {
  const r = new Reader(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  const format = r.u8();
  if (format !== PACKET_PART_FORMAT)
    throw new PacketPartFormatError(`format ${format}, this version reads ${PACKET_PART_FORMAT}`);
  return readPartBody(r, relations);
}

/** The rest of a packet part, after its format byte. */
export function readPartBody(r: Reader, interner?: RelationInterner): PacketPart {
  const { header, index, final } = readPartHead(r);
  const relations: Relation[] = [];
  for (let n = r.u32(); n > 0; n--)
    relations.push(interner ? internedRelation(r, interner) : readRelation(r));
  const changes: Change[] = [];
  for (let n = r.u32(); n > 0; n--) changes.push(readChange(r, relations));
  r.end();
  return { header, index, changes, final };
}

/**
 * The next relation, as `interner`'s object: bytes equal to the ones it last
 * saw for the table are not decoded again (every packet carries its tables:
 * decoding and interning them took about 7% of an agent's busy time).
 */
function internedRelation(r: Reader, interner: RelationInterner): Relation {
  const from = r.offset;
  const oid = r.u32();
  skipRelationAfterOid(r);
  const bytes = r.since(from);
  const known = interner.known(oid, bytes);
  if (known) return known;
  return interner.intern(readRelation(new Reader(bytes)), bytes);
}

/** Moves past what {@link writeRelation} wrote after the oid; bounds checked, values not (a decode does). */
function skipRelationAfterOid(r: Reader): void {
  const skipText = () => r.skip(r.u32());
  skipText();
  skipText();
  r.skip(1);
  for (let n = r.u32(); n > 0; n--) {
    skipText();
    r.skip(8);
    if (r.u8() === 1) skipText();
    r.skip(1);
  }
  r.skip(4 * r.u32());
}
