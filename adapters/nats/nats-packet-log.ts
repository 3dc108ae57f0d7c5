import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  type StoredMsg,
} from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import {
  BusRefusedError,
  type BusSettings,
  type PacketLog,
  type StoredPart,
} from '../../plugin/ports/packet-bus.js';
import {
  PACKET_HEADERS,
  type PartPosition,
  partPosition,
} from '../../plugin/protocol/packet-bus-names.js';
import { decodePacketPart } from '../../plugin/protocol/packet-part-codec.js';
import { connectBus, dropIfUnresponsive } from './nats-connection.js';
import { ensurePacketStream } from './packet-stream-setup.js';

/** Room left in a message for its headers. */
const HEADER_ROOM = 1024;
/** How long a publish waits for JetStream's acknowledgement (ms). */
const ACK_TIMEOUT_MS = 10_000;
/** JetStream's error code for a failed last-sequence expectation. */
const WRONG_LAST_SEQUENCE = 10071;

function stored(message: StoredMsg): StoredPart {
  const position = partPosition((name) => message.header?.get(name) || undefined);
  if (!position)
    throw new Error(`bus message ${message.seq} has no Lockstep-Version/-Part/-Changes headers`);
  return { sequence: message.seq, position, part: decodePacketPart(message.data) };
}

/** The packet subject on NATS JetStream. */
class NatsPacketLog implements PacketLog {
  readonly maxBody: number;
  private readonly js: JetStreamClient;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly settings: BusSettings,
  ) {
    this.js = jetstream(nc);
    this.maxBody = (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM;
  }

  async last(): Promise<StoredPart | null> {
    const message = await this.jsm.streams.getMessage(this.settings.stream, {
      last_by_subj: this.settings.subject,
    });
    return message ? stored(message) : null;
  }

  async at(sequence: number): Promise<StoredPart | null> {
    const message = await this.jsm.streams.getMessage(this.settings.stream, { seq: sequence });
    return message ? stored(message) : null;
  }

  async append(body: Uint8Array, position: PartPosition, after: number): Promise<number> {
    const h = headers();
    h.set(PACKET_HEADERS.version, String(position.version));
    h.set(PACKET_HEADERS.part, String(position.part));
    h.set(PACKET_HEADERS.changes, String(position.changes));
    if (position.final) h.set(PACKET_HEADERS.final, position.final);
    try {
      const ack = await this.js.publish(this.settings.subject, body, {
        headers: h,
        expect: { lastSubjectSequence: after },
        timeout: ACK_TIMEOUT_MS,
      });
      return ack.seq;
    } catch (error) {
      const code = (error as { api_error?: { err_code?: number } }).api_error?.err_code;
      if (code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test((error as Error).message))
        throw new BusRefusedError(after, (error as Error).message);
      // An ack that never came from a hung server: the next try goes to another one.
      await dropIfUnresponsive(this.nc);
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

/** Connects to the bus, makes sure the packet stream is there as configured, and opens its subject. */
export async function openPacketLog(settings: BusSettings, name: string): Promise<PacketLog> {
  const nc = await connectBus(settings, name);
  try {
    return new NatsPacketLog(nc, await ensurePacketStream(nc, settings), settings);
  } catch (error) {
    await nc.close();
    throw error;
  }
}
