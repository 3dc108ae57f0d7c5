import type { DecodedMessage } from '../../../plugin/ports/decoded-message.js';
import {
  type Lsn,
  POSTGRES_EPOCH_MICROS,
  type Relation,
  type RelationColumn,
  type ReplicaIdentity,
  type Row,
  UNCHANGED_TOAST,
  type Value,
} from '../../../plugin/protocol/index.js';
import { quoteIdent } from '../sql-identifier.js';
import { LsnText } from './lsn-text.js';
import { TupleArena, TupleRow, tupleEnd, utf8Text } from './pgoutput-tuple.js';

const TWO_32 = 4_294_967_296;

/** Every COMMIT decodes to the same message (nothing in it is used). */
const COMMIT: DecodedMessage = Object.freeze({ kind: 'commit' });

const IDENTITY: Record<number, ReplicaIdentity> = {
  100: 'default',
  110: 'nothing',
  102: 'full',
  105: 'index',
};

/**
 * Decodes pgoutput (protocol 1, `messages` on, text values) straight into
 * lockstep's {@link DecodedMessage}: new rows as {@link TupleRow}s (the
 * primary's bytes, aligned with the relation's columns), keys as text values,
 * LSNs canonical, relations resolved.
 *
 * The streaming library's own parser builds a name-keyed object per tuple,
 * converts values through `pg`'s global type parsers (timestamptz loses its
 * microseconds unless each column's parser is swapped out) and formats every
 * LSN zero-padded; at tens of thousands of changes per second that was most of
 * the stream's allocation. Format: PostgreSQL's "Logical Replication Message
 * Formats". Values are copied out of the buffer; rows too, unless the caller
 * says the buffer is never written again.
 */
export class PgoutputDecoder {
  private readonly relations = new Map<number, Relation>();
  /** Non-built-in types announced by Type messages, by OID: `schema.name`. */
  private readonly types = new Map<number, string>();
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** End of the current message in `buf`. */
  private end = 0;
  /** Whether rows may point into `buf` (see {@link decode}). */
  private kept = false;
  private readonly arena = new TupleArena();
  private readonly lsnText = new LsnText();

  /**
   * Decodes the XLogData payload `buf[offset, end)` (a range, not a Buffer
   * view per message); null for messages lockstep does not use (origin, type).
   * `kept`: nothing will ever write to `buf` again (a socket read is never
   * reused), so rows may point into it instead of being copied out.
   */
  decode(buf: Buffer, offset = 0, end = buf.length, kept = false): DecodedMessage | null {
    this.buf = buf;
    this.pos = offset + 1;
    this.end = end;
    this.kept = kept;
    const tag = buf[offset];
    switch (tag) {
      case 0x42 /* B */:
        return this.begin();
      case 0x43 /* C */:
        return this.commit();
      case 0x49 /* I */:
        return this.insert();
      case 0x55 /* U */:
        return this.update();
      case 0x44 /* D */:
        return this.remove();
      case 0x52 /* R */:
        return this.relation();
      case 0x54 /* T */:
        return this.truncate();
      case 0x4d /* M */:
        return this.message();
      case 0x59 /* Y */:
        this.type();
        return null;
      case 0x4f /* O */:
        return null;
      default:
        throw new Error(`unknown pgoutput message tag 0x${(tag ?? 0).toString(16)}`);
    }
  }

  /** The relation last announced for `oid`. */
  private relationOf(oid: number): Relation {
    const relation = this.relations.get(oid);
    if (!relation)
      throw new Error(`pgoutput sent a change for relation ${oid} before its relation message`);
    return relation;
  }

  private begin(): DecodedMessage {
    const finalLsn = this.lsn();
    const high = this.uint32();
    const low = this.uint32();
    return {
      kind: 'begin',
      finalLsn,
      commitMicros: high * TWO_32 + low + POSTGRES_EPOCH_MICROS,
      xid: this.uint32(),
    };
  }

  private commit(): DecodedMessage {
    // Flags, the commit LSN (BEGIN's final LSN again), the end LSN and the commit time: unused.
    this.need(25);
    this.pos += 25;
    return COMMIT;
  }

  private relation(): DecodedMessage {
    const oid = this.uint32();
    const schema = this.cstring();
    const name = this.cstring();
    const identity = IDENTITY[this.uint8()];
    if (!identity) throw new Error(`unknown replica identity in the relation message of ${name}`);
    const count = this.uint16();
    const columns: RelationColumn[] = [];
    for (let i = 0; i < count; i++) {
      const flags = this.uint8();
      const columnName = this.cstring();
      const typeOid = this.uint32();
      const typeMod = this.int32();
      columns.push({
        name: columnName,
        typeOid,
        typeMod,
        // pgoutput names a domain by its base type; built-in types get no Type message.
        typeName: this.types.get(typeOid) ?? null,
        isKey: (flags & 1) === 1,
      });
    }
    const relation: Relation = {
      oid,
      schema,
      name,
      replicaIdentity: identity,
      columns,
      keyIndexes: columns.flatMap((c, i) => (c.isKey ? [i] : [])),
    };
    this.relations.set(oid, relation);
    return { kind: 'relation', relation };
  }

  private type(): void {
    const oid = this.uint32();
    const schema = this.cstring();
    const name = this.cstring();
    this.types.set(oid, `${schema || 'pg_catalog'}.${name}`);
  }

  private insert(): DecodedMessage {
    const relation = this.relationOf(this.uint32());
    this.expect(0x4e /* N */);
    return { kind: 'insert', relation, row: this.row(relation, null) };
  }

  private update(): DecodedMessage {
    const relation = this.relationOf(this.uint32());
    let kind = this.uint8();
    let key: Value[] | null = null;
    let old: Value[] | null = null;
    if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
      const tuple = this.tuple(relation, null);
      key = keyOf(relation, tuple);
      // A key tuple holds NULL for every other column: only a whole old row (O) can stand in for TOAST.
      if (kind === 0x4f) old = tuple;
      kind = this.uint8();
    }
    if (kind !== 0x4e /* N */)
      throw new Error(`unexpected pgoutput update part 0x${kind.toString(16)}`);
    // Under REPLICA IDENTITY FULL an unchanged TOAST value of the new row is known from the old one.
    const row = this.row(relation, old);
    return { kind: 'update', relation, row, key };
  }

  private remove(): DecodedMessage {
    const relation = this.relationOf(this.uint32());
    const kind = this.uint8();
    if (kind !== 0x4b /* K */ && kind !== 0x4f /* O */)
      throw new Error(`delete on ${relation.schema}.${relation.name} without old key`);
    return { kind: 'delete', relation, key: keyOf(relation, this.tuple(relation, null)) };
  }

  private truncate(): DecodedMessage {
    const count = this.uint32();
    const flags = this.uint8();
    const relations: Relation[] = [];
    for (let i = 0; i < count; i++) relations.push(this.relationOf(this.uint32()));
    return {
      kind: 'truncate',
      relations,
      cascade: (flags & 1) === 1,
      restartIdentity: (flags & 2) === 2,
    };
  }

  private message(): DecodedMessage {
    const flags = this.uint8();
    this.pos += 8; // the message's LSN
    const prefix = this.cstring();
    const length = this.uint32();
    const content = this.text(length);
    return { kind: 'message', transactional: (flags & 1) === 1, prefix, content };
  }

  /**
   * A new row's TupleData: kept as bytes (see TupleRow), unchanged-TOAST
   * columns included, unless the old row stands in for those (`fallback`):
   * then decoded to values.
   */
  private row(relation: Relation, fallback: readonly Value[] | null): Row {
    const count = this.columnCount(relation);
    const start = this.pos;
    let end = tupleEnd(this.buf, start, this.end, count);
    let complete = true;
    if (end < 0 && fallback === null) {
      end = tupleEnd(this.buf, start, this.end, count, true);
      complete = false;
    }
    if (end < 0) return this.values(count, fallback);
    this.pos = end;
    return this.kept
      ? new TupleRow(this.buf, start, count, end - start, complete)
      : this.arena.copy(this.buf, start, end, count, complete);
  }

  /** A TupleData: one value per column, aligned with the relation's columns. */
  private tuple(relation: Relation, fallback: readonly Value[] | null): Value[] {
    return this.values(this.columnCount(relation), fallback);
  }

  /** The column count of a TupleData, which must match the relation's. */
  private columnCount(relation: Relation): number {
    const count = this.uint16();
    if (count !== relation.columns.length)
      throw new Error(
        `pgoutput sent ${count} columns for ${relation.schema}.${relation.name}, whose relation message has ${relation.columns.length}`,
      );
    return count;
  }

  /** The `count` columns of a TupleData as values. */
  private values(count: number, fallback: readonly Value[] | null): Value[] {
    const row = new Array<Value>(count);
    for (let i = 0; i < count; i++) {
      const kind = this.uint8();
      if (kind === 0x74 /* t */) row[i] = this.text(this.uint32());
      else if (kind === 0x6e /* n */) row[i] = null;
      else if (kind === 0x75 /* u */) row[i] = fallback ? (fallback[i] as Value) : UNCHANGED_TOAST;
      else
        throw new Error(
          `unexpected pgoutput value kind 0x${kind.toString(16)} (binary is not requested)`,
        );
    }
    return row;
  }

  private expect(byte: number): void {
    const got = this.uint8();
    if (got !== byte)
      throw new Error(
        `unexpected pgoutput byte 0x${got.toString(16)} (expected 0x${byte.toString(16)})`,
      );
  }

  private uint8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  private uint16(): number {
    this.need(2);
    const value = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  private uint32(): number {
    this.need(4);
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  private int32(): number {
    this.need(4);
    const value = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  private lsn(): Lsn {
    const high = this.uint32();
    return this.lsnText.format(high, this.uint32());
  }

  private cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0 || end >= this.end) throw new Error('truncated pgoutput message');
    const text = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return text;
  }

  /** `length` bytes as UTF-8 text. */
  private text(length: number): string {
    this.need(length);
    const start = this.pos;
    this.pos += length;
    return utf8Text(this.buf, start, length);
  }

  private need(bytes: number): void {
    if (this.pos + bytes > this.end) throw new Error('truncated pgoutput message');
  }
}

/** The identity values of an old or key tuple, aligned with the relation's key columns. */
function keyOf(relation: Relation, tuple: readonly Value[]): Value[] {
  return relation.keyIndexes.map((i) => tuple[i] ?? null);
}

/** `START_REPLICATION` for a logical slot read with pgoutput, names quoted (the library interpolates them raw). */
export function startReplicationCommand(slot: string, publication: string): string {
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  return `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL 0/0 (proto_version '1', publication_names ${literal(quoteIdent(publication))}, messages 'true')`;
}
