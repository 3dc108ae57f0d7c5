import { type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { DecodedMessage } from '../../plugin/ports/decoded-message.js';
import {
  lsnToBigInt,
  type Relation,
  rowValues,
  UNCHANGED_TOAST,
  type Value,
} from '../../plugin/protocol/index.js';

/**
 * One pgoutput message in a form both decoders can be brought to without
 * losing what lockstep keeps. `null` stands for the messages lockstep drops
 * (Type, Origin). Each normalisation is explained where it is made.
 */
export type Common =
  | { kind: 'begin'; finalLsn: string; commitMicros: number; xid: number }
  | { kind: 'relation'; relation: CommonRelation }
  | { kind: 'insert'; relation: RelationRef; row: Value[] }
  | { kind: 'update'; relation: RelationRef; row: Value[]; key: Value[] | null }
  | { kind: 'delete'; relation: RelationRef; key: Value[] }
  | { kind: 'truncate'; relations: RelationRef[]; cascade: boolean; restartIdentity: boolean }
  | { kind: 'message'; transactional: boolean; prefix: string; content: string }
  | { kind: 'commit' }
  | null;

export interface CommonRelation {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: string;
  columns: { name: string; typeOid: number; typeMod: number; typeName: string | null }[];
  keyIndexes: number[];
}

/** Which relation (and which version of it: its column names) a change was resolved to. */
export interface RelationRef {
  oid: number;
  columns: string[];
}

/** lockstep's decoded message in the common form. */
export function fromLockstep(message: DecodedMessage | null): Common {
  if (message === null) return null;
  switch (message.kind) {
    case 'begin':
      return { ...message, finalLsn: lsnToBigInt(message.finalLsn).toString() };
    case 'relation':
      return { kind: 'relation', relation: lockstepRelation(message.relation) };
    case 'insert':
      return { kind: 'insert', relation: refOf(message.relation), row: rowValues(message.row) };
    case 'update':
      return {
        kind: 'update',
        relation: refOf(message.relation),
        row: rowValues(message.row),
        key: message.key ? [...message.key] : null,
      };
    case 'delete':
      return { kind: 'delete', relation: refOf(message.relation), key: [...message.key] };
    case 'truncate':
      return { ...message, relations: message.relations.map(refOf) };
    case 'message':
      // lockstep keeps the content as UTF-8 text (MessageChange.content): compared as its bytes.
      return { ...message, content: Buffer.from(message.content, 'utf8').toString('hex') };
    case 'commit':
      return { kind: 'commit' };
  }
}

function lockstepRelation(relation: Relation): CommonRelation {
  return {
    oid: relation.oid,
    schema: relation.schema,
    name: relation.name,
    replicaIdentity: relation.replicaIdentity,
    columns: relation.columns.map(({ name, typeOid, typeMod, typeName }) => ({
      name,
      typeOid,
      typeMod,
      typeName,
    })),
    keyIndexes: [...relation.keyIndexes],
  };
}

function refOf(relation: Relation): RelationRef {
  return { oid: relation.oid, columns: relation.columns.map((c) => c.name) };
}

/**
 * pg-logical-replication's pgoutput parser (the plugin's, with the same
 * options lockstep's START_REPLICATION asks for: protocol 1, messages on),
 * made to keep Postgres's text form: after each Relation message every
 * column's parser is replaced by the identity. Otherwise values go through
 * pg's global type parsers (timestamptz to a Date without microseconds, bytea
 * to a Buffer, arrays to JS arrays), and lockstep deliberately keeps text.
 */
export class Oracle {
  private readonly plugin = new PgoutputPlugin({
    protoVersion: 1,
    publicationNames: ['unused'],
    messages: true,
  });

  /** The library's parse of one XLogData payload. */
  parse(payload: Buffer): Pgoutput.Message {
    const message = this.plugin.parse(payload);
    if (message.tag === 'relation')
      for (const column of message.columns) column.parser = (raw: unknown) => raw;
    return message;
  }
}

/** The library's message in the common form. */
export function fromLibrary(message: Pgoutput.Message): Common {
  switch (message.tag) {
    case 'begin':
      return {
        kind: 'begin',
        finalLsn: lsnToBigInt(message.commitLsn ?? '0/0').toString(),
        // A BigInt of microseconds since the Unix epoch (as lockstep's); exact below 2^53.
        commitMicros: Number(message.commitTime),
        // The library reads the xid as a signed int32.
        xid: message.xid >>> 0,
      };
    case 'relation':
      return { kind: 'relation', relation: libraryRelation(message) };
    case 'insert':
      return { kind: 'insert', relation: libraryRef(message.relation), row: cells(message) };
    case 'update':
      return {
        kind: 'update',
        relation: libraryRef(message.relation),
        row: cells(message),
        key: keyCells(message.relation, message.key, message.old),
      };
    case 'delete':
      return {
        kind: 'delete',
        relation: libraryRef(message.relation),
        key: keyCells(message.relation, message.key, message.old) ?? [],
      };
    case 'truncate':
      return {
        kind: 'truncate',
        relations: message.relations.map(libraryRef),
        cascade: message.cascade,
        restartIdentity: message.restartIdentity,
      };
    case 'message':
      return {
        kind: 'message',
        transactional: message.transactional,
        prefix: message.prefix,
        content: Buffer.from(message.content).toString('hex'),
      };
    case 'commit':
      // lockstep keeps nothing of a COMMIT (its LSNs and time repeat BEGIN's or go unused).
      return { kind: 'commit' };
    case 'type':
    case 'origin':
      // lockstep drops these; a Type message's content shows in the relation's typeName.
      return null;
  }
}

function libraryRelation(message: Pgoutput.MessageRelation): CommonRelation {
  return {
    // The library reads OIDs as signed int32: above 2^31 they would be negative.
    oid: message.relationOid >>> 0,
    schema: message.schema,
    name: message.name,
    replicaIdentity: message.replicaIdentity,
    columns: message.columns.map((c) => ({
      name: c.name,
      typeOid: c.typeOid >>> 0,
      typeMod: c.typeMod,
      // Only types announced by a Type message have a name; pgoutput writes pg_catalog as ''.
      typeName: c.typeName === null ? null : `${c.typeSchema || 'pg_catalog'}.${c.typeName}`,
    })),
    // The library lists key columns by name; lockstep by index (flags & 1 in both).
    keyIndexes: message.columns.flatMap((c, i) => ((c.flags & 1) === 1 ? [i] : [])),
  };
}

function libraryRef(relation: Pgoutput.MessageRelation): RelationRef {
  return { oid: relation.relationOid >>> 0, columns: relation.columns.map((c) => c.name) };
}

/**
 * A new tuple as values in column order (the library keys them by name). The
 * library gives an unchanged TOAST value as `undefined` with its key present
 * (filled from the old tuple under REPLICA IDENTITY FULL, as lockstep does):
 * it becomes lockstep's marker.
 */
function cells(message: Pgoutput.MessageInsert | Pgoutput.MessageUpdate): Value[] {
  const tuple = message.new;
  const { columns } = message.relation;
  if (Object.keys(tuple).length !== columns.length)
    throw new Error(`the library's tuple of ${message.relation.name} is not one per column`);
  return columns.map((c) => {
    const value: unknown = tuple[c.name];
    if (value === undefined) return UNCHANGED_TOAST;
    if (value === null || typeof value === 'string') return value;
    throw new Error(`the library parsed column ${c.name} to a ${typeof value}, not text`);
  });
}

/**
 * The old identity in key-column order, or null when none was sent. From a
 * key tuple (K) the library turns a key column's NULL into `undefined` (it
 * cannot tell it from a placeholder), where lockstep reads NULL: null. In an
 * old tuple (O) `undefined` can only be unchanged TOAST: lockstep's marker.
 */
function keyCells(
  relation: Pgoutput.MessageRelation,
  key: Record<string, unknown> | null,
  old: Record<string, unknown> | null,
): Value[] | null {
  const tuple = key ?? old;
  if (tuple === null) return null;
  const missing = key ? null : UNCHANGED_TOAST;
  return relation.columns.flatMap((c) => {
    if ((c.flags & 1) !== 1) return [];
    const value = tuple[c.name];
    return [value === undefined ? missing : (value as Value)];
  });
}
