import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { expect } from 'vitest';
import { connectBus } from '../../adapters/nats/nats-connection.js';
import {
  type BusPiece,
  isFragment,
  type PartFragment,
} from '../../plugin/protocol/change-fragments.js';
import type { Lsn } from '../../plugin/protocol/lsn.js';
import type { PacketPart } from '../../plugin/protocol/packet.js';
import { decodeBusPieces } from '../../plugin/protocol/packet-batch-codec.js';
import { type PartPosition, partPosition } from '../../plugin/protocol/packet-bus-names.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { sleep } from '../../plugin/support/sleep.js';
import { eventually } from './compare-nodes.js';

/** One message of the packet stream as a test reads it. */
export interface BusPacketMessage {
  readonly sequence: number;
  readonly position: PartPosition;
  /** The part; of a fragment, its head with no changes. */
  readonly part: PacketPart;
  /** The fragment of a change the message holds, if it holds one. */
  readonly fragment: PartFragment | null;
}

/** How long a read may keep failing while the cluster elects (a node was just killed). */
const ELECTION_MS = 30_000;

/**
 * Every message of `stream`, in order (a test's streams are small). Right
 * after a node was killed the cluster may still elect its leaders, and its
 * API times out meanwhile: the read is tried again, for up to ELECTION_MS.
 */
export async function readBusMessages(url: string, stream: string): Promise<BusPacketMessage[]> {
  const deadline = Date.now() + ELECTION_MS;
  for (;;) {
    try {
      return await readAll(url, stream);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(250);
    }
  }
}

async function readAll(url: string, stream: string): Promise<BusPacketMessage[]> {
  const nc = await connectBus({ servers: url.split(',') }, 'test-reader');
  try {
    const jsm = await jetstreamManager(nc);
    // No such stream reads as empty; any other failure (no leader yet) is tried again.
    const info = await jsm.streams.info(stream).catch((error: unknown) => {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
        return null;
      throw error;
    });
    const out: BusPacketMessage[] = [];
    for (let seq = info?.state.first_seq ?? 1; info && seq <= info.state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq });
      if (!message) continue;
      const position = partPosition((name) => message.header?.get(name) || undefined);
      if (!position) throw new Error(`message ${seq} has no position headers`);
      out.push(...packetsOf(seq, position, decodeBusPieces(message.data)));
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * One entry per packet part of a message: a message of several whole packets
 * names the first one's version, and its other headers describe the last.
 */
function packetsOf(
  sequence: number,
  position: PartPosition,
  pieces: readonly BusPiece[],
): BusPacketMessage[] {
  if (pieces.length === 1) {
    expect(position.first).toBeUndefined();
    const piece = pieces[0] as BusPiece;
    if (!isFragment(piece)) return [{ sequence, position, part: piece, fragment: null }];
    return [{ sequence, position, part: { ...piece, changes: [] }, fragment: piece }];
  }
  expect(position.first).toBe(pieces[0]?.header.version);
  const { first: _, ...last } = position;
  return pieces.map((part, i) => {
    if (isFragment(part)) throw new Error(`message ${sequence} holds a fragment among packets`);
    expect({ index: part.index, final: part.final?.phase }).toEqual({ index: 0, final: 'one' });
    const whole = { version: part.header.version, part: 0, changes: part.changes.length };
    return {
      sequence,
      position: i === pieces.length - 1 ? last : { ...whole, final: 'one' as const },
      part,
      fragment: null,
    };
  });
}

/**
 * Checks the bus holds each packet once, whole and in order: versions climb
 * by one from the first, parts count 0, 1, … within a packet, the headers
 * agree with the bodies, and only a packet's last message is final.
 * Returns the inserted ids of `table` the packets carry, in order.
 */
export function expectContiguous(messages: readonly BusPacketMessage[], table: string): number[] {
  const ids: number[] = [];
  let expected = messages[0]?.position.version ?? 1;
  let part = 0;
  let changes = 0;
  for (const { position, part: body, fragment } of messages) {
    expect({ version: position.version, part: position.part }).toEqual({ version: expected, part });
    expect(body.header.version).toBe(position.version);
    expect(body.index).toBe(position.part);
    expect(body.final?.phase ?? null).toBe(position.final);
    // A change in fragments counts once, with its last one.
    if (fragment) changes += fragment.offset + fragment.bytes.length === fragment.total ? 1 : 0;
    else changes += body.changes.length;
    expect(position.changes).toBe(changes);
    for (const change of body.changes)
      if (change.kind === 'insert' && change.relation.name === table)
        ids.push(Number(change.row.at(0)));
    if (position.final) {
      expected++;
      part = 0;
      changes = 0;
    } else part++;
  }
  return ids;
}

/** Packet `version` as one message, inserting row `version` into t. */
export function packetMessage(version: number) {
  const header = {
    version,
    lsn: `0/${(version * 16).toString(16)}` as Lsn,
    xid: version,
    commitTime: '',
  };
  const relation = {
    oid: 1,
    schema: 'public',
    name: 't',
    replicaIdentity: 'default' as const,
    columns: [{ name: 'id', typeOid: 23, typeMod: -1, typeName: null, isKey: true }],
    keyIndexes: [0],
  };
  const changes = [{ kind: 'insert' as const, relation, row: [String(version)] }];
  const body = encodePacketPart({ header, index: 0, changes, final: { phase: 'one' } });
  return { body, position: { version, part: 0, changes: 1, final: 'one' as const } };
}

/** Waits until the bus's last message ends a packet whose last change inserts row `id`; returns its header. */
export async function lastPacketInserting(
  url: string,
  stream: string,
  id: number,
): Promise<{ version: number; lsn: string }> {
  let header = { version: 0, lsn: '0/0' };
  await eventually(async () => {
    const last = (await readBusMessages(url, stream)).at(-1);
    const row = last?.part.changes.at(-1);
    if (last) header = last.part.header;
    return row?.kind === 'insert' && row.row.at(0) === String(id) && !!last?.position.final;
  }, `row ${id} on the bus`);
  return header;
}
