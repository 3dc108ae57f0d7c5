import type { Logger } from 'pino';
import type { TwoPhaseStatus } from '../ports/two-phase-status.js';
import { type Lsn, makeGid, type RoundState } from '../protocol/index.js';
import type { FaultHook } from './fault-point.js';
import { countInDoubt } from './in-doubt-count.js';
import { type RecoveryReport, recoverPrepared } from './recover-prepared.js';
import type {
  DecisionStore,
  PhaseTwoNode,
  PrepareRequest,
  RoundParticipant,
} from './round-participant.js';
import { runRound } from './run-round.js';

/** A two-phase packet the stream produced, as the coordinator schedules it. */
export interface TwoPhasePacket {
  readonly version: number;
  readonly lsn: Lsn;
  readonly rows: number;
  /** Arrived as one part (small enough to share a round with its neighbours). */
  readonly whole: boolean;
}

/** Tuning of the coordinator. */
export interface CoordinatorOptions {
  /** How long a participant may take to vote after a prepare (ms), per `batchRows` rows of the round. */
  readonly voteTimeoutMs: number;
  /** How long a participant behind the round may take to catch up to its first version (ms). */
  readonly deltaTimeoutMs: number;
  /** Most rows in one round when consecutive packets share it. */
  readonly batchRows: number;
  /** Backoff before retrying an aborted round, and between phase-two retries (ms). */
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** How often prepared transactions left by a crash are looked for (ms). */
  readonly recoveryIntervalMs: number;
}

/** Everything the coordinator works with. */
export interface CoordinatorParts {
  /** The stream's name (in gids and the decision log). */
  readonly stream: string;
  /** The participants that take part in rounds now (not stale, not resyncing). */
  participants(): readonly RoundParticipant[];
  /** Phase two and recovery per node, by name (replicas, and the primary for migrations). */
  readonly nodes: ReadonlyMap<string, PhaseTwoNode>;
  readonly decisions: DecisionStore;
  readonly log: Logger;
  readonly options: CoordinatorOptions;
  readonly fault?: FaultHook;
  /** The migrate lock: while it can be taken, no migration is in flight and its gids are recovered too. */
  readonly migrateLock?: { tryAcquire(): Promise<boolean>; release(): Promise<void> };
  /** This activation's epoch (part of every gid); null while this process holds no coordinator lock. */
  epoch(): number | null;
  /** A decision write was refused: another process holds the coordinator lock now. */
  onDeposed?(): void;
  /** A round committed everywhere, through `version`. */
  onCommitted?(version: number): void;
  /** A round ended (metrics): how, and how long it took from its first prepare. */
  onRoundFinished?(outcome: 'committed' | 'aborted', seconds: number): void;
}

export type { TwoPhaseStatus } from '../ports/two-phase-status.js';

/** The round the stream is held at, for status and logs. */
export interface HeldRound {
  readonly gid: string;
  readonly from: number;
  readonly to: number;
  readonly phase: RoundState['phase'];
  /** Why participants refused, by name, in the last aborted attempt. */
  readonly refusals: Readonly<Record<string, string>>;
  readonly attempts: number;
}

/**
 * Runs two-phase rounds, one at a time, in stream order: prepare on every
 * participant, collect votes (with the needs-update → delta → prepare-again
 * loop), record the decision durably on the primary before any COMMIT
 * PREPARED, then finish phase two everywhere, retrying until done. An aborted
 * round is retried with backoff; meanwhile participants hold at its first
 * version. Recovery of prepared transactions left by a crash runs before the
 * first round and between rounds, so it never meets a round in flight.
 * The round itself is the pure state machine of `protocol/two-phase-round.ts`.
 */
export class TwoPhaseCoordinator {
  /** Names of the participants of the round being run (empty between rounds). */
  private inFlight: ReadonlySet<string> = new Set();
  /** Tells the round being run that a participant left (null between rounds). */
  private leaveRound: ((participant: string) => void) | null = null;
  /** Cuts the round being run short while it collects votes (null between rounds). */
  private cutRound: (() => void) | null = null;
  /** Rounds committed and aborted since start. */
  roundsCommitted = 0;
  roundsAborted = 0;
  /** The round a waiting word cut short (its abort is logged as cut, not as late votes). */
  private cutGid: string | null = null;
  /** The round being run or retried; null when none is pending. */
  held: HeldRound | null = null;
  /** Everything up to this version is decided and committed everywhere it was needed. */
  committedThrough = 0;
  private readonly queue = new Map<number, TwoPhasePacket>();
  private nextRound = 1;
  private stopping = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> = Promise.resolve();
  private lastRecovery = 0;
  /** The last aborted attempt, until a round starting at the same version commits. */
  private refused: TwoPhaseStatus['held'] = null;

  constructor(private readonly parts: CoordinatorParts) {}

  /** Counts, and the refused round the stream is held at. */
  status(): TwoPhaseStatus {
    return {
      roundsCommitted: this.roundsCommitted,
      roundsAborted: this.roundsAborted,
      held: this.refused,
    };
  }

  /** lockstep gids prepared outside the round in flight (see {@link countInDoubt}). */
  inDoubt(): Promise<{ count: number; oldestSeconds: number }> {
    return countInDoubt(this.parts.nodes.values(), this.parts.stream, this.held?.gid);
  }

  /** Recovers what a previous run left prepared, then starts the round loop. */
  async start(): Promise<void> {
    await this.recover();
    this.nextRound = (await this.parts.decisions.lastRound()) + 1;
    this.running = this.loop();
  }

  /** Schedules a two-phase packet the stream produced (repeats after a rewind are ignored). */
  offer(packet: TwoPhasePacket): void {
    if (packet.version <= this.committedThrough || this.queue.has(packet.version)) return;
    this.queue.set(packet.version, packet);
    this.cutIfBehind(packet.version);
    this.wake?.();
  }

  /**
   * A replica waits at an earlier round than the one collecting votes (with
   * the bus, a successor learns of packets its predecessor published only so):
   * no participant parked there can reach this round, so it is cut at once
   * and the earlier one runs next, instead of each earlier round costing this
   * one's vote timeout.
   */
  private cutIfBehind(version: number): void {
    const held = this.held;
    if (!this.cutRound || !held || held.phase !== 'voting' || version >= held.from) return;
    this.parts.log.info(
      { gid: held.gid, from: held.from, version, event: 'round-cut' },
      'round cut short: a replica waits at an earlier round',
    );
    this.cutGid = held.gid;
    this.cutRound();
  }

  /** Stops after the current round is finished (a round being decided or committed is completed first). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  /** One recovery pass over every node; the running round (if any) is left alone. */
  async recover(): Promise<RecoveryReport> {
    this.lastRecovery = Date.now();
    const migrations = (await this.parts.migrateLock?.tryAcquire().catch(() => false)) ?? false;
    let report: RecoveryReport;
    try {
      report = await recoverPrepared(
        this.parts.stream,
        [...this.parts.nodes.values()],
        this.parts.decisions,
        { kinds: migrations ? ['stream', 'migration'] : ['stream'] },
      );
    } finally {
      if (migrations) await this.parts.migrateLock?.release();
    }
    for (const r of report.resolved) {
      const by = r.action === 'committed' ? 'commit decision' : 'presumed abort';
      this.parts.log.warn(
        { gid: r.gid, node: r.node, action: r.action, ageSeconds: r.ageSeconds, by },
        r.action === 'committed' ? 'recovery: committed a gid' : 'recovery: rolled back a gid',
      );
    }
    for (const f of report.failed) {
      // Retried every recovery interval.
      this.parts.log.warn({ node: f.node, err: f.error }, 'recovery could not finish on a node');
    }
    if (report.pruneFailed)
      this.parts.log.warn(
        { node: 'primary', err: report.pruneFailed, event: 'decision-prune-failed' },
        'cannot forget old decisions now',
      );
    return report;
  }

  /**
   * A participant removed from the configuration leaves the round being run
   * once it is decided: the round no longer waits for phase two there (the
   * removal finishes that gid by the decision log). True when the round no
   * longer involves it; false while it is still undecided (a bounded wait).
   */
  leave(participant: string): boolean {
    if (!this.inFlight.has(participant)) return true;
    const phase = this.held?.phase;
    if (phase !== 'committing' && phase !== 'aborting') return false;
    this.inFlight = new Set([...this.inFlight].filter((p) => p !== participant));
    this.leaveRound?.(participant);
    return true;
  }

  /**
   * Finishes the stream's gids prepared on one node by the decision log (a
   * replica leaving the configuration); the round in flight is left alone.
   */
  recoverNode(node: PhaseTwoNode): Promise<RecoveryReport> {
    // The round in flight is skipped only while the node is still in it (undecided).
    const inRound = this.held && this.inFlight.has(node.node);
    return recoverPrepared(this.parts.stream, [node], this.parts.decisions, {
      kinds: ['stream'],
      skip: new Set(inRound && this.held ? [this.held.gid] : []),
    });
  }

  private async loop(): Promise<void> {
    let backoff = this.parts.options.retryInitialMs;
    while (!this.stopping) {
      if (Date.now() - this.lastRecovery >= this.parts.options.recoveryIntervalMs) {
        await this.recover().catch((error: Error) =>
          this.parts.log.warn({ err: error.message }, 'recovery failed'),
        );
      }
      const batch = this.nextBatch();
      if (!batch) {
        await this.pause(this.parts.options.recoveryIntervalMs);
        continue;
      }
      const outcome = await this.deliver(batch).finally(() => {
        this.inFlight = new Set();
        this.leaveRound = null;
        this.cutRound = null;
      });
      if (outcome === 'committed') {
        backoff = this.parts.options.retryInitialMs;
        for (const packet of batch) this.queue.delete(packet.version);
        this.committedThrough = (batch[batch.length - 1] as TwoPhasePacket).version;
        for (const version of this.queue.keys())
          if (version <= this.committedThrough) this.queue.delete(version);
        this.held = null;
        this.refused = null;
        this.parts.onCommitted?.(this.committedThrough);
      } else if (!this.stopping && !this.earlierThan(batch[0] as TwoPhasePacket)) {
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, this.parts.options.retryMaxMs);
      }
    }
  }

  /** Whether a packet before `packet` is pending: it runs next, without the retry's backoff. */
  private earlierThan(packet: TwoPhasePacket): boolean {
    for (const version of this.queue.keys()) if (version < packet.version) return true;
    return false;
  }

  /** Sleeps up to `ms`, woken early by a new packet or a stop. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** The lowest pending packet and the consecutive whole two-phase packets after it, up to `batchRows` rows. */
  private nextBatch(): TwoPhasePacket[] | null {
    let first: number | null = null;
    for (const version of this.queue.keys()) if (first === null || version < first) first = version;
    if (first === null) return null;
    const batch = [this.queue.get(first) as TwoPhasePacket];
    let rows = batch[0]?.rows ?? 0;
    if (!batch[0]?.whole) return batch;
    // A participant that already holds a version inside the batch (others committed it while
    // this one was resynced, before a takeover) would refuse it for ever: the round ends there.
    let end = Number.POSITIVE_INFINITY;
    for (const p of this.parts.participants())
      if (p.heldVersion !== null && p.heldVersion >= first) end = Math.min(end, p.heldVersion);
    for (let v = first + 1; v <= end; v++) {
      const next = this.queue.get(v);
      if (!next?.whole || rows + next.rows > this.parts.options.batchRows) break;
      batch.push(next);
      rows += next.rows;
    }
    return batch;
  }

  /** Runs one round to its end: committed or aborted everywhere. */
  private async deliver(batch: readonly TwoPhasePacket[]): Promise<'committed' | 'aborted'> {
    const first = batch[0] as TwoPhasePacket;
    const last = batch[batch.length - 1] as TwoPhasePacket;
    const participants = this.parts
      .participants()
      .filter((p) => p.heldVersion === null || p.heldVersion < last.version);
    if (participants.length === 0) return 'committed';
    const epoch = this.parts.epoch();
    if (epoch === null) {
      this.parts.onDeposed?.();
      return 'aborted';
    }
    this.inFlight = new Set(participants.map((p) => p.name));
    const round = this.nextRound++;
    const request: PrepareRequest = {
      gid: makeGid({ stream: this.parts.stream, version: first.version, round, epoch }),
      round,
      from: first.version,
      to: last.version,
      toLsn: last.lsn,
    };
    const rows = batch.reduce((sum, p) => sum + p.rows, 0);
    const timeoutMs =
      this.parts.options.voteTimeoutMs *
      Math.max(1, Math.ceil(rows / this.parts.options.batchRows));
    const attempts = (this.held && this.held.from === first.version ? this.held.attempts : 0) + 1;
    const began = performance.now();
    const { outcome, state } = await runRound({
      request,
      participants,
      // Its own nodes: a replica removed meanwhile stays reachable for this round's phase two.
      nodes: new Map(this.parts.nodes),
      decisions: this.parts.decisions,
      log: this.parts.log,
      timeoutMs,
      deltaTimeoutMs: Math.max(timeoutMs, this.parts.options.deltaTimeoutMs),
      retryInitialMs: this.parts.options.retryInitialMs,
      retryMaxMs: this.parts.options.retryMaxMs,
      fault: this.parts.fault,
      stopping: () => this.stopping,
      onDeposed: () => this.parts.onDeposed?.(),
      control: (round) => {
        this.leaveRound = round.leave;
        this.cutRound = round.cut;
      },
      onState: (state) => {
        const { gid, from, to } = request;
        this.held = { gid, from, to, phase: state.phase, refusals: state.reasons, attempts };
      },
    });
    if (outcome !== 'interrupted')
      this.parts.onRoundFinished?.(outcome, (performance.now() - began) / 1000);
    // Interrupted once decided (phase two left to recovery) counts as what was decided.
    const decided =
      state.phase === 'aborting' ? 'aborted' : state.phase === 'committing' ? 'committed' : outcome;
    this.counted(request, outcome === 'interrupted' ? decided : outcome, state.reasons, attempts);
    return outcome === 'committed' ? 'committed' : 'aborted';
  }

  /** Counts a round that ended, and remembers (and logs) why an aborted one was refused. */
  private counted(
    request: PrepareRequest,
    outcome: 'committed' | 'aborted' | 'interrupted',
    refusals: Readonly<Record<string, string>>,
    attempt: number,
  ): void {
    const { gid, from, to } = request;
    if (outcome === 'committed') {
      this.roundsCommitted++;
      this.parts.log.debug({ gid, from, to }, 'round committed');
      return;
    }
    if (outcome === 'interrupted') {
      // Not an abort: deposed or stopping, its successor's (or the next start's) recovery settles it.
      this.parts.log.info({ gid, from, to, event: 'round-interrupted' }, 'round left to recovery');
      return;
    }
    this.roundsAborted++;
    this.refused = { gid, from, to, attempts: attempt, refusals };
    // Cut: the replicas that had not voted were not late, they wait at an earlier round.
    const cut = this.cutGid === gid;
    // Nothing committed anywhere; retried with backoff, the stream held at `from`.
    this.parts.log.warn(
      { gid, from, to, attempt, refusals, cut, versions: `${from}..${to}`, event: 'round-aborted' },
      'two-phase round aborted: retrying',
    );
  }
}
