import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CopyOutRelay } from '../../adapters/postgres/setup/copy-out-relay.js';

/** One backend message: type byte, int32 length (itself included), body. */
const message = (type: string, body: string | Buffer): Buffer => {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeUInt32BE(payload.length + 4, 1);
  return Buffer.concat([header, payload]);
};

const rows = ['1\tone\n', '2\ttwo\n', '3\t\\N\n', '4\tfour\n', `5\t${'x'.repeat(300)}\n`];
const data = rows.map((r) => message('d', r));
const [first, second] = data as [Buffer, Buffer];
const copyOut = message('H', Buffer.from([0, 0, 0]));
const notice = message('N', 'Snotice\0\0');
const after = Buffer.concat([message('C', 'COPY 5\0'), message('Z', 'I')]);
const error = message('E', 'SERROR\0Mboom\0\0');

/** Runs a relay over a fake pg connection fed `wire` in `cuts`; what it relayed and what pg got back. */
async function relay(wire: Buffer, cuts: number[]) {
  const socket = new PassThrough();
  const handedBack: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => handedBack.push(chunk)); // pg's own listener
  const queries: string[] = [];
  const relay = new CopyOutRelay('COPY t TO STDOUT');
  relay.submit({ stream: socket as never, query: (text) => queries.push(text) });
  const relayed: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of relay) relayed.push(chunk as Buffer);
  })().catch((e: unknown) => e);
  let from = 0;
  for (const cut of [...cuts, wire.length]) {
    socket.write(wire.subarray(from, cut));
    from = cut;
    await new Promise((resolve) => setImmediate(resolve));
  }
  socket.end();
  await new Promise((resolve) => setImmediate(resolve));
  relay.destroy();
  await done;
  return {
    relayed: Buffer.concat(relayed),
    handedBack: Buffer.concat(handedBack),
    messages: relay.messages,
    queries,
  };
}

describe('CopyOutRelay', () => {
  const wire = Buffer.concat([
    copyOut,
    first,
    second,
    notice,
    ...data.slice(2),
    message('c', ''),
    after,
  ]);

  it('relays the CopyData messages as framed, wherever the reads split them', async () => {
    // Every split point, and a read per byte: headers and bodies cut anywhere.
    const splits = [
      ...Array.from({ length: wire.length - 1 }, (_, i) => [i + 1]),
      Array.from({ length: wire.length - 1 }, (_, i) => i + 1),
    ];
    for (const cuts of splits) {
      const out = await relay(wire, cuts);
      expect(out.relayed.equals(Buffer.concat(data)), `cuts ${cuts.join(',')}`).toBe(true);
      expect(out.messages).toBe(5);
      // pg sees only what follows CopyDone: the `COPY 5` tag and ReadyForQuery.
      expect(out.handedBack.equals(after), `cuts ${cuts.join(',')}`).toBe(true);
    }
  });

  it('hands an ErrorResponse and what follows back to pg', async () => {
    const failing = Buffer.concat([copyOut, first, second, error, message('Z', 'I')]);
    for (const cut of [0, copyOut.length + first.length + second.length + 2]) {
      const out = await relay(failing, cut === 0 ? [] : [cut]);
      expect(out.relayed.equals(Buffer.concat([first, second]))).toBe(true);
      expect(out.handedBack.equals(Buffer.concat([error, message('Z', 'I')]))).toBe(true);
    }
  });

  it('sends its query and reads the row count from the command tag', async () => {
    const out = await relay(wire, []);
    expect(out.queries).toEqual(['COPY t TO STDOUT']);
    const r = new CopyOutRelay('x');
    r.handleCommandComplete({ text: 'COPY 1234' });
    expect(r.rowCount).toBe(1234);
  });
});
