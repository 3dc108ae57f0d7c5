import type { BusPiece } from '../protocol/change-fragments.js';
import type { PartPosition } from '../protocol/packet-bus-names.js';
/** The packet bus as the sidecar and the agents see it (DESIGN.md, "Scale-out: the packet bus"). */

/** The stream a configuration's `bus` describes, in the units JetStream takes. */
export interface BusSettings {
  /** NATS server URLs; they may carry a user and password or a token: never log them. */
  readonly servers: readonly string[];
  readonly stream: string;
  readonly subject: string;
  /** JetStream replication factor. */
  readonly replicas: number;
  readonly maxAgeMs: number;
  readonly maxBytes: number;
  /** PEM file of the Ed25519 private key `lockstep run` signs with (never log its content). */
  readonly signingKeyFile?: string;
  /** PEM file of the public key agents verify with. */
  readonly verifyKeyFile?: string;
}

/** A message stored on the packet subject: its stream sequence, its headers' position, its part (or fragment). */
export interface StoredPart {
  readonly sequence: number;
  readonly position: PartPosition;
  readonly part: BusPiece;
  /**
   * Whether it carries a valid signature of this publisher's key for its
   * sequence: false for a foreign message, one of the older lockstep (before
   * signing) or of another key pair. Checked when first asked (an Ed25519
   * verify): the resume walk asks only where the chain does not vouch.
   */
  signed(): boolean;
  /** Its chain digest (computed when asked): what this publisher's next message names in {@link chained}. */
  digest(): string;
  /**
   * The chain digest of the message this publisher appended before it, as
   * its signed headers name it; absent on the first one to an empty bus and
   * on messages of the older lockstep. Only worth anything once the message
   * is known to be the publisher's.
   */
  readonly chained?: string;
}

/**
 * The packet subject of the bus stream, as the publisher uses it. Every
 * append names the sequence it must follow, so a gap is refused by the
 * server ({@link BusRefusedError}), never stored. A sequence is all it
 * names (not its predecessor's id: nats-server 2.9.10 checks that again on
 * each node as it applies, against state catch-up does not restore, and a
 * follower's copy then silently stops), so a deposed publisher's message
 * can take the place of one of ours that was refused, and ours after it be
 * stored behind it: resuming checks the chain of messages not confirmed and
 * removes it from the first break ({@link before}, {@link remove}).
 */
export interface PacketLog {
  /** The newest message on the subject; null when it holds none. */
  last(): Promise<StoredPart | null>;
  /** The message at stream sequence `sequence`; null when there is none (any more). */
  at(sequence: number): Promise<StoredPart | null>;
  /** The newest message before stream sequence `sequence` (removed ones skipped); null when none is left. */
  before(sequence: number): Promise<StoredPart | null>;
  /**
   * Messages before stream sequence `sequence`, newest first (removed ones
   * skipped): as many as one read brings (a few MB), at least the one
   * {@link before} finds; empty when none is left. A walk back over many.
   */
  readBack(sequence: number): Promise<StoredPart[]>;
  /**
   * Removes the message at `sequence`. The stream's last sequence stays what
   * it was ({@link end}; appends follow it), {@link last} skips removed ones.
   */
  remove(sequence: number): Promise<void>;
  /** The stream's last sequence, also when retention or {@link remove} took every message since (0: never any). */
  end(): Promise<number>;
  /**
   * Appends that follow each other, the first one the subject's last
   * sequence `after` (0: none). Each names its predecessor's chain digest;
   * the first one `previous`'s (the last message kept on the bus), when it
   * carries this publisher's signature.
   */
  appender(after: number, previous?: StoredPart | null): PacketAppender;
  /** Most bytes of one message body the servers take (headers excluded). */
  readonly maxBody: number;
  close(): Promise<void>;
}

/**
 * A run of appends, sent without waiting for each other's acknowledgement:
 * each is stored only right after stream sequence `after + i` (the first,
 * right after `after`), else refused ({@link BusRefusedError}). Once one was
 * refused, a later one can still be stored after someone else's message at
 * that sequence: only what was acknowledged without a refusal before it
 * counts, and resuming repairs the rest.
 */
export interface PacketAppender {
  /** Sends `body` (an encoded part); resolves to the sequence it was stored at. */
  append(body: Uint8Array, position: PartPosition): Promise<number>;
}

/** The bus refused a message because the subject's last sequence was not the expected one. */
export class BusRefusedError extends Error {
  constructor(
    readonly expected: number,
    detail: string,
  ) {
    super(
      `the bus refused the message: its subject did not end at sequence ${expected} (${detail})`,
    );
    this.name = 'BusRefusedError';
  }
}

/**
 * The stream says it ends before a message JetStream acknowledged to this
 * process: its leader's replica stopped applying (nats-server 2.9, after its
 * node was paused and resumed), or the group has no leader and a member that
 * is behind answered for it (2.9 lets each member answer then), while a
 * quorum holds the message. The leader was asked to step down; the next try
 * reads again. Nothing is built on such an end.
 */
export class BusLeaderBehindError extends Error {
  readonly fix =
    'none while it passes with a new leader; should it persist, the stream lost acknowledged packets: lockstep attach --resync for every replica, after removing the bus stream';

  constructor(
    readonly end: number,
    readonly acknowledged: number,
    /** The server that said so, when it named itself. */
    readonly leader: string | null,
    /** What the step-down request got: `done`, or why not. */
    readonly stepDown: string,
  ) {
    super(
      `${leader ? `the bus stream's leader ${leader}` : 'a replica of the bus stream, its group without a leader,'} says the stream ends at sequence ${end}, before sequence ${acknowledged} JetStream acknowledged: asked the leader to step down (${stepDown})`,
    );
    this.name = 'BusLeaderBehindError';
  }
}
