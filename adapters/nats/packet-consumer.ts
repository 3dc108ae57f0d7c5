import {
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type StoredMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { LockstepError } from '../../plugin/ports/lockstep-error.js';
import type { PacketFeed, PacketReader } from '../../plugin/ports/packet-reader.js';
import {
  firstVersion,
  type PartPosition,
  partPosition,
} from '../../plugin/protocol/packet-bus-names.js';
import { RelationInterner } from '../../plugin/protocol/relation-interner.js';
import type { BusVerifier } from './bus-signing.js';
import { closeBus, dropIfUnresponsive } from './nats-connection.js';
import { NatsPacketFeed, SILENCE_MS, type StreamEnd } from './nats-packet-feed.js';
import { PacketSignatureCheck } from './packet-signature-check.js';

/** Bytes of messages the consumer may hold before the agent took them (its back-pressure bound). */
const BUFFERED_BYTES = 32 * 1024 * 1024;
/**
 * How long one pull waits on the server. An idle agent pulls again only this
 * often: with 2 s pulls, re-pulling was most of what an idle agent sent to
 * NATS. Liveness does not hang on it: the server heartbeats every
 * IDLE_HEARTBEAT_MS while a pull waits. Kept well under SILENCE_MS: after
 * missed heartbeats the client re-checks the consumer with a backoff of
 * 0.5–1.5× the expiry (3–9 s here), which must come before the feed gives
 * up as silent (30 s pulls waited 15–45 s there).
 */
const PULL_EXPIRES_MS = 6_000;
/**
 * How often the consumer's server gives a sign while a pull waits with
 * nothing to deliver (the client's default is half the expiry): what tells
 * a hung server (SILENCE_MS) well within its bound.
 */
export const IDLE_HEARTBEAT_MS = 1_000;

/**
 * The pull limits, counted in messages: as many of the largest message as
 * fit 32 MB, at least 8. Not in bytes: the client counts a pull's messages
 * as well, and a pull the server ends on its byte limit is never counted
 * off, so the consumer stalled until the pull expired — 2 s of lag, again
 * and again, under steady load (nats-server 2.9, @nats-io/jetstream 3).
 */
export function pullLimits(maxPayload: number): {
  max_messages: number;
  threshold_messages: number;
  expires: number;
  idle_heartbeat: number;
} {
  const max = Math.max(8, Math.floor(BUFFERED_BYTES / maxPayload));
  return {
    max_messages: max,
    // The client pulls again once this few are left: its default (3/4 of the limit) sent a
    // pull request every 8 messages, the agent's most frequent write to NATS under load.
    threshold_messages: Math.floor(max / 4),
    expires: PULL_EXPIRES_MS,
    idle_heartbeat: IDLE_HEARTBEAT_MS,
  };
}

/** The stream a packet log reads. */
export interface PacketStream {
  readonly stream: string;
  readonly subject: string;
}

/**
 * The packet bus as an agent reads it: a JetStream stream of packet parts.
 * The first part of a version is found by the message headers alone (a
 * binary search by sequence: versions grow with it), then read with an
 * ordered consumer from there, which the client recreates after a server
 * or connection failure at the next sequence. A consumer that goes silent
 * (its server hangs) ends the feed: the agent reads anew, from a new one.
 */
export class NatsPacketReader implements PacketReader {
  private manager: JetStreamManager | null = null;
  private readonly relations = new RelationInterner();

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: PacketStream,
    /** `lockstep run`'s public key: nothing unsigned by it is applied (the feed checks each message). */
    private readonly trust: { readonly verifier: BusVerifier; readonly log?: Logger },
  ) {}

  async readFrom(version: number, replica: string): Promise<PacketFeed> {
    const { verifier, log } = this.trust;
    const signature = new PacketSignatureCheck(verifier, this.names.subject, replica, log);
    try {
      const seq = await this.firstSequenceOf(version, replica);
      const consumer = await jetstream(this.nc).consumers.get(this.names.stream, {
        filter_subjects: this.names.subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: seq,
      });
      const messages = await consumer.consume(pullLimits(this.nc.info?.max_payload ?? 1024 * 1024));
      // A consumer that only heartbeats while the stream goes on is given up as well (its server stopped applying).
      const progress = { start: seq, end: () => this.streamEnd() };
      return new NatsPacketFeed(
        messages,
        replica,
        signature,
        () => dropIfUnresponsive(this.nc),
        SILENCE_MS,
        progress,
        this.relations,
      );
    } catch (error) {
      // A request that timed out on a hung server: the next try goes to another one.
      if (!(error instanceof LockstepError)) await dropIfUnresponsive(this.nc);
      throw error;
    }
  }

  async close(): Promise<void> {
    await closeBus(this.nc);
  }

  /**
   * The stream's end as its leader says (a JetStream API request: bounded by
   * its timeout). A clustered stream with no leader is answered by a member
   * from its own store, which may be behind: not an answer.
   */
  private async streamEnd(): Promise<StreamEnd> {
    this.manager ??= await jetstreamManager(this.nc);
    const { state, cluster } = await this.manager.streams.info(this.names.stream);
    if (cluster?.name && !cluster.leader)
      throw new Error(`no leader answers for stream "${this.names.stream}"`);
    return { sequence: state.last_seq, storedAt: Date.parse(state.last_ts) };
  }

  /**
   * The stream sequence of `version`'s first part, or the next sequence to be
   * written when the stream has nothing that new yet. Throws when retention
   * removed it (the replica needs a resync).
   */
  private async firstSequenceOf(version: number, replica: string): Promise<number> {
    this.manager ??= await jetstreamManager(this.nc);
    const { state } = await this.manager.streams.info(this.names.stream);
    if (state.messages === 0) return state.last_seq + 1;
    const first = await this.positionAt(state.first_seq);
    const oldest = first ? firstVersion(first) : 0;
    if (first && (oldest > version || (oldest === version && first.part > 0)))
      throw retentionLost(replica, version, oldest, this.names.stream);
    const last = await this.positionAt(state.last_seq);
    if (last && last.version < version) return state.last_seq + 1;
    // The first sequence whose version is at least `version`. A deleted
    // message leaves a gap: the message after it decides, not a guess.
    let lo = state.first_seq;
    let hi = state.last_seq;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const at = await this.positionFrom(mid);
      if (at && at.seq < hi && at.position && at.position.version < version) lo = at.seq + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * What the headers of the message at `seq` say; null when it is gone or carries none.
   *
   * Not checked against the signature, nor is `positionFrom`'s: these reads
   * only place the agent, and a position from an unverified message is only
   * a hint. The agent's strict part sequence (PartSequence: the next packet
   * must be exactly its position + 1) fails closed on any gap a false hint
   * makes, and every message the agent applies is still verified in the feed
   * (NatsPacketFeed.next) before anything of it is decoded. Checking here
   * halted every agent at start after an upgrade to signing: the stream
   * still begins with the older lockstep's unsigned packets.
   */
  private async positionAt(seq: number): Promise<PartPosition | null> {
    const message = await (this.manager as JetStreamManager).streams.getMessage(this.names.stream, {
      seq,
    });
    return message ? positionOf(message) : null;
  }

  /** The first message at `seq` or after it, and what its headers say; null when none is left. */
  private async positionFrom(
    seq: number,
  ): Promise<{ seq: number; position: PartPosition | null } | null> {
    // next_by_subj: the server's "first message from seq on this subject" (the client's type lacks it).
    const query = { seq, next_by_subj: this.names.subject } as unknown as { seq: number };
    const message = await (this.manager as JetStreamManager).streams.getMessage(
      this.names.stream,
      query,
    );
    if (!message) return null;
    return { seq: message.seq, position: positionOf(message) };
  }
}

/** What a stored message's headers say (unverified: a hint for placing the agent only). */
function positionOf(message: StoredMsg): PartPosition | null {
  return partPosition((name) => message.header?.get(name) || undefined);
}

/** The error for a replica whose next packet the stream no longer holds (it is stale). */
export function retentionLost(
  replica: string,
  version: number,
  oldest: number,
  stream: string,
): LockstepError {
  return new LockstepError({
    node: replica,
    problem: `the bus no longer holds packet ${version} the replica needs next (stream ${stream} starts at version ${oldest}): it was down longer than the stream keeps packets`,
    fix: `copy the replica anew: lockstep attach --config F --resync ${replica}; then start lockstep agent again (bus.maxAge and bus.maxBytes set how long packets are kept)`,
    reason: 'retention-lost',
  });
}
