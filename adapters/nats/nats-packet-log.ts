import {
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
} from '@nats-io/jetstream';
import { type MsgHdrs, type NatsConnection, nuid } from '@nats-io/transport-node';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import {
  BusLeaderBehindError,
  BusRefusedError,
  type BusSettings,
  type PacketAppender,
  type PacketLog,
  type StoredPart,
} from '../../plugin/ports/packet-bus.js';
import type { PartPosition } from '../../plugin/protocol/packet-bus-names.js';
import { type BusSigner, type BusVerifier, loadBusSigner } from './bus-signing.js';
import { type BusWatch, connectBus, dropIfUnresponsive } from './nats-connection.js';
import { signedMessage, storedPacket } from './packet-message.js';
import { ensurePacketStream } from './packet-stream-setup.js';

/** Room left in a message for its headers. */
const HEADER_ROOM = 1024;
/** How long a publish waits for JetStream's acknowledgement (ms). */
const ACK_TIMEOUT_MS = 10_000;
/** How long a stream leader's step-down request may wait for its answer (ms). */
const STEP_DOWN_TIMEOUT_MS = 5_000;
/** JetStream's error code for a failed last-sequence expectation. */
const WRONG_LAST_SEQUENCE = 10071;

/** Bytes one read back brings, at the stream's average message size: a walk holds them all at once. */
const READ_BACK_BYTES = 8 * 1024 * 1024;
/** Bytes one read back brings at most, should its messages all be as large as the servers take. */
const READ_BACK_MAX_BYTES = 64 * 1024 * 1024;
/** How long a read back waits for messages the stream no longer holds (ms). */
const READ_BACK_WAIT_MS = 5_000;

/**
 * Appends that do not wait for each other. Each message names the stream
 * sequence it follows (`Nats-Expected-Last-Sequence`: the stream holds only
 * the packet subject, and unlike the per-subject check, a clustered leader
 * checks it against the messages it has accepted, not only those applied, so
 * it holds with several in flight). No `Nats-Expected-Last-Msg-Id`:
 * nats-server 2.9.10 checks it again as each node applies the message,
 * against an id that catch-up, snapshots and restarts do not restore; a
 * follower that caught up so refuses it and then every later message while
 * Raft calls it current, and its copy silently stops (acknowledged messages
 * on one node only). A sequence alone can be matched by a deposed
 * publisher's message once one of ours was refused: resuming checks the
 * chain of what is not confirmed and repairs it (bus-chain.ts).
 */
class NatsAppender implements PacketAppender {
  private readonly run = nuid.next();
  /** One check of the server for all the messages in flight that failed. */
  private dropping: Promise<boolean> | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly subject: string,
    private after: number,
    /** Told of every sequence JetStream acknowledged. */
    private readonly onAck: (sequence: number) => void,
    private readonly signer: BusSigner,
    /** The chain digest of the message appended last (or kept last on the bus); none: the bus is empty. */
    private previous: string | undefined,
  ) {}

  async append(body: Uint8Array, position: PartPosition): Promise<number> {
    const after = this.after++;
    // Named by the next one whether or not this one is stored: a foreign message in its place breaks the chain.
    const { headers, digest } = signedMessage(
      this.signer,
      this.subject,
      after + 1,
      position,
      body,
      this.previous,
    );
    this.previous = digest;
    try {
      const ack = await this.js.publish(this.subject, body, {
        headers,
        msgID: `${this.run}.${after + 1}`,
        expect: { lastSequence: after },
        timeout: ACK_TIMEOUT_MS,
      });
      this.onAck(ack.seq);
      return ack.seq;
    } catch (error) {
      const code = (error as { api_error?: { err_code?: number } }).api_error?.err_code;
      const message = (error as Error).message;
      if (code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(message))
        throw new BusRefusedError(after, message);
      // An ack that never came from a hung server: the next try goes to another one.
      this.dropping ??= dropIfUnresponsive(this.nc);
      await this.dropping;
      throw error;
    }
  }
}

/** The packet subject on NATS JetStream. */
class NatsPacketLog implements PacketLog {
  readonly maxBody: number;
  private readonly js: JetStreamClient;
  /** The highest sequence JetStream acknowledged to this process: a leader that ends before it is behind. */
  private acknowledged = 0;
  /** Its own reads are checked too: a foreign message that follows the chain is no place to resume from. */
  private readonly verifier: BusVerifier;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly settings: BusSettings,
    private readonly signer: BusSigner,
  ) {
    this.js = jetstream(nc);
    this.maxBody = (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM;
    this.verifier = signer.verifier();
  }

  /** A message read back (a stored message's headers are `header`, a consumed one's `headers`). */
  private stored(sequence: number, header: MsgHdrs | undefined, data: Uint8Array): StoredPart {
    return storedPacket(this.settings.subject, sequence, header, data, this.verifier);
  }

  async last(): Promise<StoredPart | null> {
    const message = await this.jsm.streams.getMessage(this.settings.stream, {
      last_by_subj: this.settings.subject,
    });
    if (message) return this.stored(message.seq, message.header, message.data);
    // nats-server 2.9 answers nothing once the subject's last messages were removed: the one before them.
    const { state } = await this.jsm.streams.info(this.settings.stream);
    return state.messages > 0 ? this.before(state.last_seq + 1) : null;
  }

  async at(sequence: number): Promise<StoredPart | null> {
    const message = await this.jsm.streams.getMessage(this.settings.stream, { seq: sequence });
    return message ? this.stored(message.seq, message.header, message.data) : null;
  }

  async before(sequence: number): Promise<StoredPart | null> {
    /** The stream's first sequence, read once a sequence is missing: below it nothing is left. */
    let first: number | null = null;
    // Deleted sequences (a repaired tail) are stepped over, one request each; a message found costs one.
    for (let seq = sequence - 1; seq >= 1; seq--) {
      const message = await this.jsm.streams.getMessage(this.settings.stream, { seq });
      if (message) return this.stored(message.seq, message.header, message.data);
      first ??= (await this.jsm.streams.info(this.settings.stream)).state.first_seq;
      if (seq <= first) return null;
    }
    return null;
  }

  async readBack(sequence: number): Promise<StoredPart[]> {
    const { state } = await this.jsm.streams.info(this.settings.stream);
    const average = state.messages > 0 ? state.bytes / state.messages : 1;
    const most = Math.floor(READ_BACK_MAX_BYTES / (this.maxBody + HEADER_ROOM));
    const count = Math.min(most, Math.max(1, Math.floor(READ_BACK_BYTES / average)));
    const from = Math.max(sequence - count, state.first_seq, 1);
    if (from >= sequence) return [];
    const read = await this.readRange(from, sequence);
    if (read.length > 0) return read.reverse();
    // Every message of the span removed (a repaired tail): further back, one at a time.
    const one = await this.before(from);
    return one ? [one] : [];
  }

  /** The messages from sequence `from` up to (not with) `to`, oldest first: one consumer's fetch, not a request each. */
  private async readRange(from: number, to: number): Promise<StoredPart[]> {
    const consumer = await this.js.consumers.get(this.settings.stream, {
      filter_subjects: this.settings.subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    const messages = await consumer.fetch({ max_messages: to - from, expires: READ_BACK_WAIT_MS });
    const read: StoredPart[] = [];
    try {
      for await (const message of messages) {
        if (message.seq < to) read.push(this.stored(message.seq, message.headers, message.data));
        // Removed sequences in the span: the fetch goes on past `to` (which the walk stands on).
        if (message.seq >= to - 1) break;
      }
    } finally {
      await messages.close();
    }
    return read;
  }

  async remove(sequence: number): Promise<void> {
    // Not erased: the message is gone for readers; its bytes go with retention.
    try {
      await this.jsm.streams.deleteMessage(this.settings.stream, sequence, false);
    } catch (error) {
      // A stream that denies deletes, or a user without the right, stops every repair: say which.
      throw new LockstepError({
        node: 'bus',
        problem: `cannot remove message ${sequence} of stream "${this.settings.stream}" (a tail that breaks the chain of packets): ${(error as Error).message}`,
        fix: `allow deletes on the stream (deny_delete false) and give the publisher's NATS user $JS.API.STREAM.MSG.DELETE.${this.settings.stream}; it repairs the tail as it resumes`,
        cause: error,
      });
    }
  }

  async end(): Promise<number> {
    const info = await this.jsm.streams.info(this.settings.stream);
    const end = info.state.last_seq;
    if (end >= this.acknowledged) return end;
    // A quorum holds what was acknowledged: another replica, up to date, takes over.
    const stepDown = await this.stepDown();
    throw new BusLeaderBehindError(end, this.acknowledged, info.cluster?.leader || null, stepDown);
  }

  /** Asks the stream's leader to step down; what the server answered, for the report. */
  private async stepDown(): Promise<string> {
    try {
      const reply = await this.nc.request(
        `$JS.API.STREAM.LEADER.STEPDOWN.${this.settings.stream}`,
        undefined,
        { timeout: STEP_DOWN_TIMEOUT_MS },
      );
      const answer = reply.json<{ success?: boolean; error?: { description?: string } }>();
      return answer.success ? 'done' : `refused: ${answer.error?.description ?? 'no reason given'}`;
    } catch (error) {
      return `failed: ${(error as Error).message}`;
    }
  }

  appender(after: number, previous?: StoredPart | null): PacketAppender {
    // Only a message of its own is chained to: a digest vouches for what it names.
    const chained = previous?.signed() ? previous.digest() : undefined;
    const onAck = (sequence: number) => {
      this.acknowledged = Math.max(this.acknowledged, sequence);
    };
    return new NatsAppender(
      this.nc,
      this.js,
      this.settings.subject,
      after,
      onAck,
      this.signer,
      chained,
    );
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

/**
 * Connects to the bus, makes sure the packet stream is there as configured,
 * and opens its subject; every message it appends is signed with
 * `bus.signingKeyFile`'s key (read first: a missing key fails before any connection).
 */
export async function openPacketLog(
  settings: BusSettings,
  name: string,
  watch?: BusWatch,
): Promise<PacketLog> {
  const signer = loadBusSigner(settings);
  const nc = await connectBus(settings, name, { watch });
  try {
    return new NatsPacketLog(nc, await ensurePacketStream(nc, settings), settings, signer);
  } catch (error) {
    await nc.close();
    throw error;
  }
}
