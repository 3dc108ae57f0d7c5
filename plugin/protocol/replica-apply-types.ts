/**
 * States, events and commands of the replica's apply machine; the spec is
 * `replica-apply.md` beside this file.
 */
import type { PacketPart, ResumePoint } from './packet.js';

/** Why a batch ends after a part (the window's cut): full, or its time is up. */
export type ApplyCut = 'rows' | 'time';

/** A round's prepare, as far as the machine needs it (the driver keeps whom to answer). */
export interface GateRequest {
  readonly gid: string;
  readonly from: number;
  readonly to: number;
}

/** Fixed for a machine's life. */
export interface ApplyOptions {
  /** The replica's name (it appears in the reasons of its votes). */
  readonly node: string;
  /** Most row changes in one batch. */
  readonly batchRows: number;
  /** Longest a batch waits for more packets (ms). */
  readonly batchMs: number;
}

/** Whole packets buffered for one replica transaction, newest first (appending stays O(1)). */
export interface ApplyBatch {
  readonly newest: BatchLink;
  readonly count: number;
  readonly rows: number;
  /** When its first packet arrived (the driver's clock), and its number (for the driver's one timer per batch). */
  readonly since: number;
  readonly number: number;
}

export interface BatchLink {
  readonly part: PacketPart;
  readonly before: BatchLink | null;
}

/** What to do once a piece of work on the replica is done. */
export type ApplyThen =
  | { readonly kind: 'look' }
  /** Parts left the window under a stale cursor: roll back an open packet, then locate. */
  | { readonly kind: 'stale' }
  | { readonly kind: 'locate' }
  | { readonly kind: 'restart' }
  /** The batch before a two-phase packet is in: wait at its gate. */
  | { readonly kind: 'gate'; readonly part: PacketPart }
  /** The batch before a large packet is in: open its transaction. */
  | { readonly kind: 'begin'; readonly part: PacketPart }
  /** The first part of a large packet is in its open transaction. */
  | { readonly kind: 'opened'; readonly part: PacketPart }
  | { readonly kind: 'part-applied'; readonly part: PacketPart }
  /** A round committed here without this machine's vote: read where the replica stands. */
  | { readonly kind: 'read-position'; readonly version: number }
  | { readonly kind: 'moved' }
  /** The batch before a packet that does not move past it is in: halt with `error`. */
  | { readonly kind: 'refuse'; readonly error: Error }
  | { readonly kind: 'exit' };

/** What the machine waits for (see replica-apply.md, "States"). */
export type ApplyMode =
  /** The next look at the window at `cursor`. */
  | { readonly kind: 'reading' }
  /** `cursor` is null: a rewind was asked for; waiting for the restarted stream. */
  | { readonly kind: 'rewinding' }
  | { readonly kind: 'locating'; readonly restart: boolean }
  /** Work on the replica; `applied` is reported once it is done. */
  | { readonly kind: 'working'; readonly applied: ApplyProgress | null; readonly then: ApplyThen }
  /** At two-phase packet `part`: waiting for its prepare, or word it was decided. */
  | { readonly kind: 'gate'; readonly part: PacketPart }
  /** Gathering the round's whole packets from the window at `seq`. */
  | {
      readonly kind: 'collecting';
      readonly request: GateRequest;
      readonly seq: number;
      readonly parts: readonly PacketPart[];
    }
  /** PREPARE TRANSACTION running, then (`voted`) waiting for the decision. */
  | { readonly kind: 'preparing' | 'voted'; readonly vote: ApplyVote }
  | { readonly kind: 'stopped' };

/** A vote in progress: where the replica stands if the round commits. */
export interface ApplyVote {
  readonly gid: string;
  readonly applied: ApplyProgress;
  /** Window parts to pass once committed (0 when the cursor already passed them). */
  readonly advance: number;
}

export interface ApplyProgress {
  readonly position: ResumePoint;
  readonly packets: number;
  readonly rows: number;
}

/** The machine's state. */
export interface ApplyState {
  readonly options: ApplyOptions;
  readonly mode: ApplyMode;
  /** The replica's durable position, as far as this machine knows. */
  readonly position: ResumePoint;
  /** The window's epoch the cursor belongs to. */
  readonly epoch: number;
  /** The next window part to read; null when the stream must be rewound. */
  readonly cursor: number | null;
  readonly batch: ApplyBatch | null;
  readonly batches: number;
  /** A large packet streaming through an open replica transaction. */
  readonly open: { readonly version: number; readonly rows: number } | null;
  /** Duplicates passed since they were last reported. */
  readonly skipped: number;
}

/** What the window shows at `seq` (taken by the driver in one go, with no await in between). */
export interface WindowLook {
  readonly type: 'look';
  readonly epoch: number;
  /** The driver's clock (ms). */
  readonly now: number;
  readonly part: PacketPart | undefined;
  /** The oldest sequence held. */
  readonly start: number;
  /** The cut after `seq`, and whether the part after it is there. */
  readonly cut: ApplyCut | null;
  readonly more: boolean;
  /** The cut after `seq - 1`. */
  readonly cutBefore: ApplyCut | null;
  readonly newestVersion: number | null;
  readonly idle: ResumePoint | null;
}

/** What the gate shows: the parked prepare (not taken yet), and what was decided. */
export interface GateLook {
  readonly type: 'gate';
  readonly epoch: number;
  readonly now: number;
  readonly pending: GateRequest | null;
  /** Highest version a round committed on this replica (told by the coordinator). */
  readonly committedThrough: number;
  /** Whether the stream's round for the gate's version committed (on its participants). */
  readonly roundCommitted: boolean;
  /** As in {@link WindowLook}, at the gate's part. */
  readonly cut: ApplyCut | null;
  readonly more: boolean;
}

export type ApplyEvent =
  | WindowLook
  | GateLook
  | {
      readonly type: 'located';
      readonly seq: number | null;
      readonly epoch: number;
      /** Whole packets between the window's start and `seq` (asked for on a restart). */
      readonly passed: number;
    }
  /** The work is done; `position` answers `read-position`. */
  | { readonly type: 'done'; readonly position?: ResumePoint }
  | { readonly type: 'failed'; readonly reason: string; readonly error: unknown }
  /** Phase two on this replica; null when the agent stops first. */
  | { readonly type: 'decision'; readonly outcome: 'committed' | 'rolled-back' | null }
  /** Instead of a look or a gate, once the agent is stopping. */
  | { readonly type: 'stop' };

/** How a look waits before it is taken. */
export type LookWait = 'none' | 'window' | { readonly ms: number; readonly batch: number };

export type ApplyCommand =
  // Effects the driver performs at once; no event answers them.
  | { readonly type: 'set-cursor'; readonly seq: number }
  | ({ readonly type: 'applied' } & ApplyProgress)
  | { readonly type: 'duplicates'; readonly count: number }
  | { readonly type: 'note-skipped'; readonly count: number; readonly version: number }
  | { readonly type: 'note-delta'; readonly position: ResumePoint }
  /** `catching-up` is reported unless the agent is streaming. */
  | { readonly type: 'status'; readonly status: 'streaming' | 'catching-up' }
  | { readonly type: 'request-rewind'; readonly position: ResumePoint }
  | { readonly type: 'cut-newest' }
  | { readonly type: 'begin'; readonly from: number }
  /** Takes the parked prepare: the machine answers it from now on. */
  | { readonly type: 'take-prepare' }
  | { readonly type: 'vote-no'; readonly reason: string }
  // The last command of a step: one event answers it.
  | { readonly type: 'look'; readonly seq: number | null; readonly wait: LookWait }
  | {
      readonly type: 'gate';
      readonly version: number;
      readonly seq: number;
      readonly wait: boolean;
    }
  /** Finds the window part after `version`; `count`: also the whole packets passed to get there. */
  | { readonly type: 'locate'; readonly version: number; readonly count: boolean }
  | {
      readonly type: 'apply-batch';
      readonly parts: readonly PacketPart[];
      readonly position: ResumePoint;
      readonly commitTime: string;
      /** Set when the batch is a round's: it ends with PREPARE TRANSACTION. */
      readonly gid?: string;
    }
  | { readonly type: 'apply-part'; readonly part: PacketPart }
  | {
      readonly type: 'commit';
      readonly position: ResumePoint;
      readonly commitTime: string;
      readonly gid?: string;
    }
  | { readonly type: 'rollback'; readonly version: number }
  | { readonly type: 'advance'; readonly position: ResumePoint }
  | { readonly type: 'read-position'; readonly version: number }
  /** PREPARE succeeded: wait for the decision, then vote yes (in that order: a quick decision is not missed). */
  | { readonly type: 'vote-yes'; readonly gid: string }
  | { readonly type: 'exit' }
  | { readonly type: 'fail'; readonly error: unknown };

/** A transition's result: effects in order, the last one awaiting the next event. */
export interface ApplyStep {
  readonly state: ApplyState;
  readonly commands: readonly ApplyCommand[];
}
