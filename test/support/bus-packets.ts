import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import type { PostgresCluster } from '../../adapters/local-postgres/cluster.js';
import type { BusSigner } from '../../adapters/nats/bus-signing.js';
import type { BusSettings } from '../../plugin/ports/packet-bus.js';
import { packetSignedBytes, SIGNATURE_HEADER } from '../../plugin/protocol/bus-signed-bytes.js';
import type { Change, Lsn, PacketPart, Phase, Relation } from '../../plugin/protocol/index.js';
import { lsnFromBigInt, lsnFromHalves } from '../../plugin/protocol/lsn.js';
import { PACKET_HEADERS } from '../../plugin/protocol/packet-bus-names.js';
import { encodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { testBusSigner } from './bus-keys.js';

/** Table `t (id int primary key, v int)` as packets name it, with its oid on `node`. */
export async function numberedRelation(node: PostgresCluster): Promise<Relation> {
  const [row] = await node.query<{ oid: number }>("SELECT 'public.t'::regclass::oid AS oid");
  return numberedRelationWithOid(Number(row?.oid));
}

/** A whole one-phase packet of `changes`, its LSN growing with its version. */
export function onePhasePacket(version: number, changes: Change[]): PacketPart {
  return {
    header: {
      version,
      lsn: lsnFromHalves(0, version * 64),
      xid: version,
      commitTime: '2026-11-29 12:00:00.000001+00',
    },
    index: 0,
    changes,
    final: { phase: 'one' },
  };
}

/** Table `t (id int primary key, v int)` as packets name it, with a given oid. */
export function numberedRelationWithOid(oid: number): Relation {
  const column = (name: string, isKey: boolean) => ({
    name,
    typeOid: 23,
    typeMod: -1,
    typeName: null,
    isKey,
  });
  return {
    oid,
    schema: 'public',
    name: 't',
    replicaIdentity: 'default',
    columns: [column('id', true), column('v', false)],
    keyIndexes: [0],
  };
}

/**
 * Publishes packets as `lockstep run` would, without a primary behind them:
 * tests of the agent alone (what the publisher never sends, like a two-phase
 * packet, and a stream that lost packets to retention).
 */
export class BusPackets {
  constructor(
    private readonly nc: NatsConnection,
    private readonly settings: BusSettings,
    private readonly relation: Relation,
    /** Who signs: this run's key, as lockstep run; another key or none forges packets. */
    private readonly signer: BusSigner | null = testBusSigner(),
  ) {}

  /** Packet `version` inserting rows `ids` (each id with v = id), in `parts` parts, its commit at `lsn`. */
  async publish(
    version: number,
    ids: readonly number[],
    phase: Phase = 'one',
    parts = 1,
    lsn = lsnFromBigInt(0x7_0000_0000n + BigInt(version) * 0x1000n) as Lsn,
  ) {
    const header = {
      version,
      lsn,
      xid: 1000 + version,
      commitTime: new Date().toISOString(),
    };
    const per = Math.ceil(ids.length / parts);
    let changes = 0;
    for (let index = 0; index < parts; index++) {
      const slice = ids.slice(index * per, (index + 1) * per);
      const last = index === parts - 1;
      const part: PacketPart = {
        header,
        index,
        changes: slice.map((id) => ({
          kind: 'insert' as const,
          relation: this.relation,
          row: [String(id), String(id)],
        })),
        final: last ? { phase } : null,
      };
      changes += slice.length;
      const h = headers();
      h.set(PACKET_HEADERS.version, String(version));
      h.set(PACKET_HEADERS.part, String(index));
      h.set(PACKET_HEADERS.changes, String(changes));
      if (last) h.set(PACKET_HEADERS.final, phase);
      await this.signedPublish(h, encodePacketPart(part));
    }
  }

  /** Publishes `body` signed as `lockstep run` signs it: over the sequence it must be stored at. */
  private async signedPublish(h: ReturnType<typeof headers>, body: Uint8Array): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const after = (await jsm.streams.info(this.settings.stream)).state.last_seq;
    const bytes = packetSignedBytes(
      this.settings.subject,
      after + 1,
      (name) => h.get(name) || undefined,
      body,
    );
    if (this.signer) h.set(SIGNATURE_HEADER, this.signer.sign(bytes));
    await jetstream(this.nc).publish(this.settings.subject, body, {
      headers: h,
      expect: { lastSequence: after },
    });
  }
}
