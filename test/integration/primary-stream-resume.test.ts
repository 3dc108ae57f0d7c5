import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { readSlot } from '../../adapters/postgres/source/replication-slot.js';
import {
  compareLsn,
  lsnFromBigInt,
  lsnToBigInt,
  type Packet,
} from '../../plugin/protocol/index.js';
import { decodeInChild } from '../support/decode-in-child.js';
import { readable } from '../support/rows.js';
import { createFeed, openStream, readPackets } from '../support/stream-session.js';
import { useClusters } from '../support/use-clusters.js';

const clusters = useClusters();

async function confirmedFlush(slot: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: clusters.primary.url });
  await client.connect();
  try {
    return (await readSlot(client, slot))?.confirmedFlushLsn ?? null;
  } finally {
    await client.end();
  }
}

describe('primary stream: acknowledgement and resume (real Postgres)', () => {
  it('acknowledges only explicitly, and a restart from a resume point re-emits the same packets and versions', async () => {
    await clusters.primary.query('CREATE TABLE resumed (id int PRIMARY KEY, v text)');
    const feed = await createFeed(clusters.primary.url, [{ schema: 'public', name: 'resumed' }]);
    try {
      const initial = await confirmedFlush(feed.slot);
      for (let i = 1; i <= 5; i++)
        await clusters.primary.query(`INSERT INTO resumed VALUES ($1::int, 'v' || $1::text)`, [i]);

      // First reader: reads everything, acknowledges nothing.
      const first = await openStream(clusters.primary.url, feed, { version: 0, lsn: feed.start });
      const original = await readPackets(first, 5);
      await new Promise((r) => setTimeout(r, 300));
      await first.stop();
      expect(original.map((p) => p.version)).toEqual([1, 2, 3, 4, 5]);
      for (let i = 1; i < 5; i++) {
        expect(
          compareLsn((original[i - 1] as Packet).lsn, (original[i] as Packet).lsn),
        ).toBeLessThan(0);
      }
      expect(await confirmedFlush(feed.slot)).toBe(initial);

      // Same resume point: the same packets, byte for byte, same versions.
      const again = await openStream(clusters.primary.url, feed, { version: 0, lsn: feed.start });
      expect(readable(await readPackets(again, 5))).toEqual(readable(original));
      await again.stop();

      // Resume from packet 2 while the slot is still at the start: 3..5 with versions 3..5.
      const p2 = original[1] as Packet;
      const mid = await openStream(clusters.primary.url, feed, {
        version: p2.version,
        lsn: p2.lsn,
      });
      expect(readable(await readPackets(mid, 3))).toEqual(readable(original.slice(2)));
      // Confirm packet 3: the slot moves to just past its commit record, no further.
      const p3 = original[2] as Packet;
      mid.confirm(p3.lsn);
      const expected = lsnFromBigInt(lsnToBigInt(p3.lsn) + 1n);
      for (let i = 0; i < 100 && (await confirmedFlush(feed.slot)) !== expected; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await confirmedFlush(feed.slot)).toBe(expected);
      await mid.stop();

      // Restart from the confirmed point: exactly 4 and 5, then new work continues the numbering.
      const last = await openStream(clusters.primary.url, feed, {
        version: p3.version,
        lsn: p3.lsn,
      });
      await clusters.primary.query(`INSERT INTO resumed VALUES (6, 'v6')`);
      const tail = await readPackets(last, 3);
      await last.stop();
      expect(readable(tail.slice(0, 2))).toEqual(readable(original.slice(3)));
      expect(readable(tail[2])).toMatchObject({
        version: 6,
        changes: [{ kind: 'insert', row: ['6', 'v6'] }],
      });
    } finally {
      await feed.drop();
    }
  });

  it('pauses reading for a slow consumer, keeping the buffer bounded', async () => {
    await clusters.primary.query('CREATE TABLE slow (id int PRIMARY KEY, v text)');
    const feed = await createFeed(clusters.primary.url, [{ schema: 'public', name: 'slow' }]);
    try {
      await clusters.primary.query(
        `INSERT INTO slow SELECT g, md5(g::text) FROM generate_series(1, 100000) g`,
      );
      const maxBuffered = 5_000;
      const stream = await openStream(
        clusters.primary.url,
        feed,
        { version: 0, lsn: feed.start },
        {
          maxBufferedChanges: maxBuffered,
          maxPartChanges: 1_000,
        },
      );
      let rows = 0;
      let lastId = 0;
      while (rows < 100_000) {
        const part = await stream.next();
        if (!part) throw new Error('stream ended early');
        for (const change of part.changes) {
          const id = Number(change.kind === 'insert' ? change.row.at(0) : -1);
          expect(id).toBe(lastId + 1);
          lastId = id;
        }
        rows += part.changes.length;
        await new Promise((r) => setTimeout(r, 2)); // a slow consumer
      }
      await stream.stop();
      expect(rows).toBe(100_000);
      expect(stream.stats.pauses).toBeGreaterThan(0);
      // Bounded by the limit plus what was already in flight from the socket, far below the transaction.
      expect(stream.stats.peakBufferedChanges).toBeLessThan(maxBuffered * 2);
    } finally {
      await feed.drop();
    }
  });

  it('streams a single 1,000,000-row transaction through with RSS under 256 MB', async () => {
    const rows = Number(process.env.LOCKSTEP_BIG_TX_ROWS ?? 1_000_000);
    await clusters.primary.query('CREATE TABLE big (id bigint PRIMARY KEY, payload text)');
    const feed = await createFeed(clusters.primary.url, [{ schema: 'public', name: 'big' }]);
    try {
      await clusters.primary.query(
        `INSERT INTO big SELECT g, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${rows}) g`,
      );
      const result = await decodeInChild({
        url: clusters.primary.url,
        slot: feed.slot,
        publication: feed.publication,
        start: feed.start,
        packets: 1,
      });
      console.log(`1M-row transaction through the stream: ${JSON.stringify(result)}`);
      expect(result.rows).toBe(rows);
      expect(result.packets).toBe(1);
      expect(result.parts).toBeGreaterThan(1);
      expect(result.peakRssMB).toBeLessThanOrEqual(256);
    } finally {
      await feed.drop();
    }
  });
});
