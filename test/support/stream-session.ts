import pg from 'pg';
import { PgoutputSource } from '../../adapters/postgres/source/pgoutput-source.js';
import {
  createReplicationSlot,
  dropReplicationSlot,
  ensurePublication,
} from '../../adapters/postgres/source/replication-slot.js';
import type { PhaseDecider } from '../../plugin/primary/packet-assembler.js';
import { PrimaryStream } from '../../plugin/primary/primary-stream.js';
import {
  type Lsn,
  type Packet,
  PacketCollector,
  type ResumePoint,
  versionZeroLsn,
} from '../../plugin/protocol/index.js';

let counter = 0;

/** A publication and slot of its own for one test, over the given tables. */
export async function createFeed(
  url: string,
  tables: { schema: string; name: string }[],
): Promise<{ slot: string; publication: string; start: Lsn; drop(): Promise<void> }> {
  counter += 1;
  const suffix = `${process.pid}_${counter}`;
  const slot = `t_slot_${suffix}`;
  const publication = `t_pub_${suffix}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await ensurePublication(client, publication, tables);
  } finally {
    await client.end();
  }
  const created = await createReplicationSlot(url, slot);
  return {
    slot,
    publication,
    start: versionZeroLsn(created.consistentPoint),
    drop: async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await dropReplicationSlot(c, slot);
        await c.query(`DROP PUBLICATION IF EXISTS ${publication}`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Opens a stream on a feed from a resume point. */
export async function openStream(
  url: string,
  feed: { slot: string; publication: string },
  resume: ResumePoint,
  options: {
    maxPartChanges?: number;
    maxBufferedChanges?: number;
    decidePhase?: PhaseDecider;
    /** logical_decoding_work_mem of the replication session, as the sidecar sets it. */
    decodingWorkMem?: string;
  } = {},
): Promise<PrimaryStream> {
  const { decodingWorkMem, ...streamOptions } = options;
  const source = new PgoutputSource({
    url,
    slot: feed.slot,
    publication: feed.publication,
    durableLsn: resume.lsn,
    decodingWorkMem,
  });
  const stream = new PrimaryStream(source, { resume, ...streamOptions });
  await stream.start();
  return stream;
}

/** Reads whole packets until `count` have arrived (or fails after `ms`). */
export async function readPackets(
  stream: PrimaryStream,
  count: number,
  ms = 30_000,
): Promise<Packet[]> {
  const collector = new PacketCollector();
  const packets: Packet[] = [];
  const timer = setTimeout(() => void stream.stop(), ms);
  try {
    while (packets.length < count) {
      const part = await stream.next();
      if (!part) throw new Error(`stream ended after ${packets.length} of ${count} packets`);
      const packet = collector.add(part);
      if (packet) packets.push(packet);
    }
    return packets;
  } finally {
    clearTimeout(timer);
  }
}
