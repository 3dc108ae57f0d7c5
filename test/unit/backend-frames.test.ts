import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendFrames } from '../../adapters/postgres/source/backend-frames.js';
import { PgoutputDecoder } from '../../adapters/postgres/source/pgoutput-decoder.js';

/** A protocol message: type byte, int32 length (counting itself), body. */
function message(type: number, body: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** Everything `frames` hands over after each chunk is pushed. */
function read(chunks: readonly Buffer[]): { type: number; body: Buffer }[] {
  const frames = new BackendFrames();
  const out: { type: number; body: Buffer }[] = [];
  for (const chunk of chunks) {
    frames.push(chunk);
    while (frames.next())
      out.push({
        type: frames.type,
        body: Buffer.from(frames.buf.subarray(frames.start, frames.end)),
      });
  }
  return out;
}

describe('BackendFrames', () => {
  it('hands over every message whole and in order, however the bytes are cut into reads', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.integer({ min: 0x41, max: 0x7a }),
            body: fc.uint8Array({ maxLength: 300 }),
          }),
          { maxLength: 12 },
        ),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 50 }),
        (messages, cuts) => {
          const bytes = Buffer.concat(messages.map((m) => message(m.type, m.body)));
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const size = cuts[i % cuts.length] as number;
            chunks.push(bytes.subarray(at, at + size));
            at += size;
          }
          expect(read(chunks)).toEqual(
            messages.map((m) => ({ type: m.type, body: Buffer.from(m.body) })),
          );
        },
      ),
    );
  });

  it('keeps the order when a read arrives before the last one was read through', () => {
    const frames = new BackendFrames();
    const first = Buffer.concat([message(0x64, Buffer.from('a')), message(0x64, Buffer.from('b'))]);
    frames.push(first);
    expect(frames.next()).toBe(true);
    frames.push(message(0x64, Buffer.from('c')));
    const bodies: string[] = [];
    while (frames.next()) bodies.push(frames.buf.toString('utf8', frames.start, frames.end));
    expect(bodies).toEqual(['b', 'c']);
  });

  it('gives back what it has not handed over, a partial message included', () => {
    const frames = new BackendFrames();
    const second = message(0x5a, Buffer.from('I'));
    const third = message(0x64, Buffer.from('partial'));
    frames.push(Buffer.concat([message(0x64, Buffer.from('a')), second, third.subarray(0, 4)]));
    expect(frames.next()).toBe(true);
    expect(frames.takeRest()).toEqual(Buffer.concat([second, third.subarray(0, 4)]));
    expect(frames.next()).toBe(false);
    expect(frames.takeRest()).toBeNull();
  });

  it('waits for a message cut anywhere, including inside its length', () => {
    const whole = message(0x64, Buffer.from('hello'));
    for (let cut = 1; cut < whole.length; cut++) {
      const frames = new BackendFrames();
      frames.push(whole.subarray(0, cut));
      expect(frames.next()).toBe(false);
      frames.push(whole.subarray(cut));
      expect(frames.next()).toBe(true);
      expect(frames.buf.toString('utf8', frames.start, frames.end)).toBe('hello');
      expect(frames.next()).toBe(false);
    }
  });

  it('decodes a row of multi-byte text the same wherever the reads cut it', () => {
    const relation = Buffer.concat([
      Buffer.from([0x52, 0, 0, 0, 1]),
      Buffer.from('public\0t\0d'),
      Buffer.from([0, 2, 1]),
      Buffer.from('id\0'),
      Buffer.from([0, 0, 0, 25, 255, 255, 255, 255, 0]),
      Buffer.from('v\0'),
      Buffer.from([0, 0, 0, 25, 255, 255, 255, 255]),
    ]);
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (text, cuts) => {
          const value = Buffer.from(text.repeat(20));
          const head = Buffer.from([
            0x49, 0, 0, 0, 1, 0x4e, 0, 2, 0x74, 0, 0, 0, 1, 0x31, 0x74, 0, 0, 0, 0,
          ]);
          head.writeUInt32BE(value.length, head.length - 4);
          const xlog = (payload: Buffer) =>
            Buffer.concat([Buffer.from([0x77]), Buffer.alloc(24), payload]);
          const bytes = Buffer.concat(
            [xlog(relation), xlog(Buffer.concat([head, value]))].map((m) => message(0x64, m)),
          );
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const size = cuts[i % cuts.length] as number;
            chunks.push(bytes.subarray(at, at + size));
            at += size;
          }
          const decoder = new PgoutputDecoder();
          const decoded = read(chunks).map((m) => decoder.decode(m.body, 25, m.body.length, true));
          const row = (decoded[1] as unknown as { row: { at(i: number): unknown } }).row;
          expect([row.at(0), row.at(1)]).toEqual(['1', value.toString()]);
        },
      ),
    );
  });

  it('fails on a length no server sends, whole or cut inside the header, without allocating for it', () => {
    for (const length of [0, 3, 0x40000000 + 65, 0xffffffff]) {
      const head = Buffer.from([0x64, 0, 0, 0, 0]);
      head.writeUInt32BE(length, 1);
      const bytes = Buffer.concat([head, Buffer.alloc(16)]);
      expect(() => read([bytes])).toThrow(/invalid protocol message length/);
      for (let cut = 1; cut < 5; cut++)
        expect(() => read([bytes.subarray(0, cut), bytes.subarray(cut)])).toThrow(
          /invalid protocol message length/,
        );
    }
  });
});
