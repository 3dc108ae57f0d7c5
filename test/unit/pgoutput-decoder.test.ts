import { describe, expect, it } from 'vitest';
import { PgoutputDecoder } from '../../adapters/postgres/source/pgoutput-decoder.js';
import { microsToIso, UNCHANGED_TOAST } from '../../plugin/protocol/index.js';
import { readable } from '../support/rows.js';

/** Builds pgoutput payloads byte by byte, as the server sends them (PostgreSQL's message formats). */
class Bytes {
  private parts: Buffer[] = [];
  byte(value: number | string): this {
    this.parts.push(Buffer.from([typeof value === 'string' ? value.charCodeAt(0) : value]));
    return this;
  }
  int16(value: number): this {
    return this.fixed(2, (b) => b.writeInt16BE(value));
  }
  int32(value: number): this {
    return this.fixed(4, (b) => b.writeInt32BE(value));
  }
  uint32(value: number): this {
    return this.fixed(4, (b) => b.writeUInt32BE(value));
  }
  private fixed(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    return this.raw(b);
  }
  cstring(text: string): this {
    this.parts.push(Buffer.from(`${text}\0`, 'utf8'));
    return this;
  }
  text(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    return this.byte('t').int32(bytes.length).raw(bytes);
  }
  raw(bytes: Buffer): this {
    this.parts.push(bytes);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** An INSERT into relation 16385 of three columns: text values, null for NULL. */
function insertMessage(values: readonly (string | null)[]): Buffer {
  const bytes = new Bytes().byte('I').uint32(16385).byte('N').int16(values.length);
  for (const value of values) {
    if (value === null) bytes.byte('n');
    else bytes.text(value);
  }
  return bytes.done();
}

/** Relation 16385 "public"."Order" (id key, note text, doc jsonb of a Type message). */
function relationMessage(identity = 'd'): Buffer {
  return new Bytes()
    .byte('R')
    .uint32(16385)
    .cstring('public')
    .cstring('Order')
    .byte(identity)
    .int16(3)
    .byte(1)
    .cstring('id')
    .uint32(20)
    .int32(-1)
    .byte(identity === 'f' ? 1 : 0)
    .cstring('note')
    .uint32(25)
    .int32(-1)
    .byte(identity === 'f' ? 1 : 0)
    .cstring('doc')
    .uint32(70000)
    .int32(-1)
    .done();
}

describe('PgoutputDecoder', () => {
  it('decodes begin and commit with canonical LSNs, the commit time to the microsecond and an unsigned xid', () => {
    const decoder = new PgoutputDecoder();
    // 2026-11-26T00:00:00.123456Z in microseconds since 2000-01-01.
    const micros = (Date.UTC(2026, 10, 26) - Date.UTC(2000, 0, 1)) * 1000 + 123_456;
    const begin = new Bytes()
      .byte('B')
      .uint32(0x1)
      .uint32(0xab00)
      .uint32(Math.floor(micros / 2 ** 32))
      .uint32(micros % 2 ** 32)
      .uint32(0xfffffff0)
      .done();
    expect(decoder.decode(begin)).toEqual({
      kind: 'begin',
      finalLsn: '1/AB00',
      commitMicros: micros + 946_684_800_000_000,
      xid: 0xfffffff0,
    });
    const commit = new Bytes()
      .byte('C')
      .byte(0)
      .uint32(0)
      .uint32(0x10)
      .uint32(0)
      .uint32(0x40)
      .uint32(0)
      .uint32(0)
      .done();
    expect(decoder.decode(commit)).toEqual({ kind: 'commit' });
    expect(() => decoder.decode(commit.subarray(0, 20))).toThrow(/truncated/);
  });

  it('resolves relations (with names of announced types) and decodes rows as arrays of text', () => {
    const decoder = new PgoutputDecoder();
    expect(
      decoder.decode(new Bytes().byte('Y').uint32(70000).cstring('app').cstring('mood').done()),
    ).toBeNull();
    const relation = decoder.decode(relationMessage());
    expect(relation).toMatchObject({
      kind: 'relation',
      relation: {
        oid: 16385,
        schema: 'public',
        name: 'Order',
        replicaIdentity: 'default',
        keyIndexes: [0],
        columns: [
          { name: 'id', typeOid: 20, typeMod: -1, typeName: null, isKey: true },
          { name: 'note', isKey: false },
          { name: 'doc', typeName: 'app.mood' },
        ],
      },
    });
    const insert = insertMessage(['42', 'héllo "wörld" — a longer value', null]);
    expect(readable(decoder.decode(insert))).toMatchObject({
      kind: 'insert',
      row: ['42', 'héllo "wörld" — a longer value', null],
    });
  });

  it('keeps a row intact when the protocol buffer it came from is reused', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage());
    const message = insertMessage(['7', 'seven', null]);
    const decoded = decoder.decode(message);
    message.fill(0x21);
    expect(readable(decoded)).toMatchObject({ row: ['7', 'seven', null] });
  });

  it('decodes text of every short length, ASCII or not, byte for byte', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage());
    const values = [
      ...Array.from({ length: 11 }, (_, n) => '0123456789A'.slice(0, n)),
      'é',
      'ab日',
      '\u0001\t~',
    ];
    for (const value of values) {
      const insert = insertMessage([value, value.toUpperCase(), null]);
      expect(readable(decoder.decode(insert))).toMatchObject({
        row: [value, value.toUpperCase(), null],
      });
    }
  });

  it('takes the key of an update from its old key tuple and marks unchanged TOAST', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage());
    const update = new Bytes()
      .byte('U')
      .uint32(16385)
      .byte('K')
      .int16(3)
      .text('1')
      .byte('n')
      .byte('n')
      .byte('N')
      .int16(3)
      .text('2')
      .byte('u')
      .text('x')
      .done();
    expect(readable(decoder.decode(update))).toMatchObject({
      kind: 'update',
      key: ['1'],
      row: ['2', UNCHANGED_TOAST, 'x'],
    });
    const plain = new Bytes()
      .byte('U')
      .uint32(16385)
      .byte('N')
      .int16(3)
      .text('3')
      .byte('n')
      .byte('u')
      .done();
    expect(readable(decoder.decode(plain))).toMatchObject({
      key: null,
      row: ['3', null, UNCHANGED_TOAST],
    });
  });

  it('under REPLICA IDENTITY FULL fills unchanged TOAST of the new row from the old row', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage('f'));
    const update = new Bytes()
      .byte('U')
      .uint32(16385)
      .byte('O')
      .int16(3)
      .text('1')
      .text('old note')
      .byte('n')
      .byte('N')
      .int16(3)
      .text('1')
      .byte('u')
      .text('y')
      .done();
    expect(readable(decoder.decode(update))).toMatchObject({
      key: ['1', 'old note', null],
      row: ['1', 'old note', 'y'],
    });
    const remove = new Bytes()
      .byte('D')
      .uint32(16385)
      .byte('O')
      .int16(3)
      .text('1')
      .byte('n')
      .text('y')
      .done();
    expect(decoder.decode(remove)).toMatchObject({ kind: 'delete', key: ['1', null, 'y'] });
  });

  it('decodes truncate flags and logical messages', () => {
    const decoder = new PgoutputDecoder();
    decoder.decode(relationMessage());
    const truncate = new Bytes().byte('T').uint32(1).byte(3).uint32(16385).done();
    expect(decoder.decode(truncate)).toMatchObject({
      kind: 'truncate',
      cascade: true,
      restartIdentity: true,
      relations: [{ name: 'Order' }],
    });
    const content = Buffer.from('{"ddl":"ALTER TABLE x"}');
    const message = new Bytes()
      .byte('M')
      .byte(1)
      .uint32(0)
      .uint32(0x99)
      .cstring('lockstep.ddl')
      .int32(content.length)
      .raw(content)
      .done();
    expect(decoder.decode(message)).toEqual({
      kind: 'message',
      transactional: true,
      prefix: 'lockstep.ddl',
      content: '{"ddl":"ALTER TABLE x"}',
    });
  });

  it('refuses what it cannot decode exactly: unknown relations, short messages, column count mismatches', () => {
    const decoder = new PgoutputDecoder();
    expect(() => decoder.decode(new Bytes().byte('I').uint32(7).byte('N').int16(0).done())).toThrow(
      /relation 7 before its relation message/,
    );
    decoder.decode(relationMessage());
    expect(() =>
      decoder.decode(
        new Bytes().byte('I').uint32(16385).byte('N').int16(2).text('1').text('a').done(),
      ),
    ).toThrow(/sent 2 columns/);
    expect(() =>
      decoder.decode(new Bytes().byte('I').uint32(16385).byte('N').int16(3).text('1').done()),
    ).toThrow(/truncated/);
    const cut = insertMessage(['1', null, 'abc']);
    expect(() => decoder.decode(cut.subarray(0, cut.length - 1))).toThrow(/truncated/);
    // A message is a range of a larger read: its end bounds it, not the buffer's.
    const read = Buffer.concat([Buffer.from('xx'), cut, Buffer.from('next message')]);
    expect(readable(decoder.decode(read, 2, 2 + cut.length))).toMatchObject({
      row: ['1', null, 'abc'],
    });
    expect(() => decoder.decode(read, 2, 1 + cut.length)).toThrow(/truncated/);
    expect(() => decoder.decode(Buffer.from('Z'))).toThrow(/unknown pgoutput message tag/);
  });

  it('formats microseconds since the Unix epoch with six fractional digits', () => {
    expect(microsToIso(1_000_000_000_000_001)).toBe('2001-09-09T01:46:40.000001Z');
  });
});
