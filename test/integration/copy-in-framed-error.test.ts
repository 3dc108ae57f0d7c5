import { Readable } from 'node:stream';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fanOut } from '../../adapters/postgres/setup/copy-fan-out.js';
import { copyFromFramed } from '../../adapters/postgres/setup/copy-in-framed.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters({ replicas: 1 });

/** Text rows of ~900 bytes, each framed as one CopyData message: chunks below the writer's 16 kB. */
function* framedRows(n: number): Generator<Buffer> {
  for (let i = 1; i <= n; i++) {
    const body = Buffer.from(`${i}\t${'x'.repeat(900)}\n`);
    const header = Buffer.alloc(5);
    header[0] = 0x64;
    header.writeUInt32BE(body.length + 4, 1);
    yield Buffer.concat([header, body]);
  }
}

describe('a framed COPY FROM the server fails while chunks wait behind a write', () => {
  it('fails the target without throwing from the socket drain', async () => {
    const replica = clusters.replicas[0];
    if (!replica) throw new Error('no replica');
    // Slow rows fill the socket; the CHECK fails the COPY while chunks are queued.
    await replica.query(`CREATE TABLE queued (id int CHECK (id < 2000), body text);
      CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
        $$BEGIN PERFORM pg_sleep(0.0005); RETURN NEW; END$$;
      CREATE TRIGGER slow BEFORE INSERT ON queued FOR EACH ROW EXECUTE FUNCTION slow();`);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    const client = new pg.Client({ connectionString: replica.url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('BEGIN');
      const target = {
        stream: client.query(copyFromFramed('COPY queued FROM STDIN')),
        failure: undefined as unknown,
      };
      await fanOut(Readable.from(framedRows(20_000)), [target], () => undefined, 30_000);
      // The socket drains while the server discards the rest: the queued chunks go then.
      await replica.query(`SELECT pg_sleep(1)`);
      expect((target.failure as Error | undefined)?.message).toMatch(/check constraint/);
    } finally {
      process.off('uncaughtException', onUncaught);
      await client.end().catch(() => undefined);
    }
    expect(uncaught).toEqual([]);
  });
});
